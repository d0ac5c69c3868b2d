"""rtc_aggregate: tile statuses, per-pair robust offsets and the verdicts
(pairs and dates) against the requirement."""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where tables are built: stages without tables start faster
    import pandas as pd

log = logging.getLogger(__package__)


class TileStatus(str, enum.Enum):
    """Status of a tile measurement (tiles.csv ``status``), in the order they are checked."""

    OK = "ok"
    TOO_MANY_NAN = "too_many_nan"
    LOW_CORRELATION = "low_correlation"
    SHIFT_TOO_LARGE = "shift_too_large"
    OUTLIER_CONSENSUS = "outlier_consensus"
    OUTLIER_NEIGHBOURS = "outlier_neighbours"


# The statuses as the plain strings stored in tables and files.
STATUS_OK = TileStatus.OK.value


STATUS_NAN = TileStatus.TOO_MANY_NAN.value


STATUS_LOWCORR = TileStatus.LOW_CORRELATION.value


STATUS_LARGE = TileStatus.SHIFT_TOO_LARGE.value


STATUS_OUT_CONSENSUS = TileStatus.OUTLIER_CONSENSUS.value


STATUS_OUT_NEIGHBOURS = TileStatus.OUTLIER_NEIGHBOURS.value


#: Every tile status but ``ok``, in the order they are checked (pairs.csv's ``n_<status>`` columns).
REJECTED_STATUSES = (STATUS_NAN, STATUS_LOWCORR, STATUS_LARGE, STATUS_OUT_CONSENSUS,
                     STATUS_OUT_NEIGHBOURS)  # fmt: skip

#: The outlier test runs on a pair with at least this many ok tiles (fewer:
#: no robust consensus can be told from an outlier; every tile stays ok).
MIN_OUTLIER_TILES = 4

#: A tile's neighbour median needs at least this many ok neighbours (of 8).
MIN_NEIGHBOURS = 3


def classify_tiles(
    valid_ref: np.ndarray,
    valid_sec: np.ndarray,
    quality: np.ndarray,
    shift_px: np.ndarray,
    *,
    max_nan_fraction: float,
    min_quality: float,
    max_shift_px: float,
) -> np.ndarray:
    """Status per tile; the first failing check wins and is never overwritten.

    ``too_many_nan`` (either scene's invalid fraction over the limit), then
    ``low_correlation`` (quality under ``min_quality``), then
    ``shift_too_large`` (|shift| over ``max_shift_px``), else ``ok``.
    """
    status = np.full(valid_ref.shape, STATUS_OK, dtype=object)
    nan_bad = (1 - np.minimum(valid_ref, valid_sec)) > max_nan_fraction
    low = ~nan_bad & ~(quality >= min_quality)
    mag = np.hypot(shift_px[..., 0], shift_px[..., 1])
    large = ~nan_bad & ~low & ~(mag <= max_shift_px)
    status[large] = STATUS_LARGE
    status[low] = STATUS_LOWCORR
    status[nan_bad] = STATUS_NAN
    return status


def _robust_sigma(resid: np.ndarray, floor: float) -> float:
    """1.4826·median(|resid|), at least ``floor``."""
    return max(1.4826 * float(np.median(np.abs(resid))), floor)


def _neighbour_medians(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of each cell's finite 8-neighbours (NaN beyond the edges) and their count."""
    h, w = grid.shape
    pad = np.full((h + 2, w + 2), np.nan)
    pad[1:-1, 1:-1] = grid
    nb = np.stack([pad[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
                   for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)])  # fmt: skip
    count = np.isfinite(nb).sum(axis=0)
    med = np.full((h, w), np.nan)
    some = count > 0
    med[some] = np.nanmedian(nb[:, some], axis=0)
    return med, count


def _detrend(grid: np.ndarray) -> np.ndarray:
    """``grid`` less a plane whose slopes are the medians of the differences
    between adjacent finite cells along rows and along columns (0 where there
    are none): the neighbour median of a smoothly varying field is then not
    biased at the grid's edges, where a tile's neighbours lie on one side."""
    with np.errstate(invalid="ignore"):
        dc, dr = np.diff(grid, axis=1), np.diff(grid, axis=0)
    g_c = float(np.median(dc[np.isfinite(dc)])) if np.isfinite(dc).any() else 0.0
    g_r = float(np.median(dr[np.isfinite(dr)])) if np.isfinite(dr).any() else 0.0
    r, c = np.indices(grid.shape)
    return grid - g_r * r - g_c * c


def outlier_tiles(
    rows: np.ndarray,
    cols: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    candidate: np.ndarray,
    *,
    sigma: float,
    floor: float,
    min_keep: int = 1,
) -> np.ndarray:
    """Which of one pair's tiles disagree with the pair, and why (0 none, 1 consensus, 2 neighbours).

    Among the ``candidate`` tiles (those ok so far) with finite offsets
    ``(dx, dy)`` (any unit, e.g. px along columns and rows):

    1. *consensus*: a tile departs from the candidates' median by more than
       ``sigma`` robust σ in either component, σ = 1.4826·MAD of that
       component, at least ``floor`` (a perfectly consistent pair has MAD 0:
       the floor keeps it from rejecting tiles on quantization);
    2. *neighbours*: a tile left after (1) that has at least
       :data:`MIN_NEIGHBOURS` such tiles among its 8 neighbours departs from
       their median by more than ``sigma`` σ in either component, σ =
       1.4826·median|tile − neighbour median| over those tiles, at least
       ``floor``. This finds a local disagreement (a tile on a moving
       feature) in a pair whose offsets vary smoothly across the scene,
       which inflates the consensus σ. The offsets are first detrended by
       a plane (:func:`_detrend`), so that an edge tile of a ramp is not
       taken for an outlier.

    The test is skipped (all 0) with fewer than :data:`MIN_OUTLIER_TILES`
    candidates, and its result dropped when it would leave fewer than
    ``min_keep`` tiles: with so few tiles an outlier cannot be told from the
    consensus. ``rows``/``cols`` are the tiles' grid positions.
    """
    rows, cols = np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp)
    v = np.stack([np.asarray(dx, dtype=float), np.asarray(dy, dtype=float)], axis=1)
    use = np.asarray(candidate, dtype=bool) & np.isfinite(v).all(axis=1)
    code = np.zeros(len(v), dtype=np.int8)
    if int(use.sum()) < MIN_OUTLIER_TILES:
        return code
    resid = v[use] - np.median(v[use], axis=0)
    scale = np.array([_robust_sigma(resid[:, k], floor) for k in (0, 1)])
    bad = np.zeros(len(v), dtype=bool)
    bad[use] = (np.abs(resid) > sigma * scale).any(axis=1)
    code[bad] = 1
    kept = use & ~bad
    shape = (int(rows.max()) + 1, int(cols.max()) + 1)
    nb_resid = np.full(v.shape, np.nan)
    for k in (0, 1):
        grid = np.full(shape, np.nan)
        grid[rows[kept], cols[kept]] = v[kept, k]
        flat = _detrend(grid)
        med, count = _neighbour_medians(flat)
        enough = kept & (count[rows, cols] >= MIN_NEIGHBOURS)
        at = (rows[enough], cols[enough])
        nb_resid[enough, k] = flat[at] - med[at]
    tested = np.isfinite(nb_resid).all(axis=1)
    if int(tested.sum()) >= MIN_OUTLIER_TILES:
        scale = np.array([_robust_sigma(nb_resid[tested, k], floor) for k in (0, 1)])
        far = np.zeros(len(v), dtype=bool)
        far[tested] = (np.abs(nb_resid[tested]) > sigma * scale).any(axis=1)
        code[far] = 2
    if int((use & (code == 0)).sum()) < min_keep:
        code[:] = 0
    return code


def mark_outliers(
    offsets: pd.DataFrame, *, sigma: float | None, floor_px: float, min_keep: int = 1
) -> pd.DataFrame:
    """``offsets`` (pair × tile, rtc_xcorr's tables) with each pair's outlier
    tiles' ``status`` set to ``outlier_consensus`` or ``outlier_neighbours``
    (:func:`outlier_tiles` on ``d_col_px``, ``d_row_px`` among the ``ok``
    tiles, σ floor ``floor_px``). ``sigma`` None: unchanged (no test)."""
    if sigma is None or offsets.empty:
        return offsets
    out = offsets.copy()
    status = out["status"].to_numpy(dtype=object).copy()
    keys = ["reference_date", "secondary_date"]
    for _, idx in out.groupby(keys, sort=True).indices.items():
        g = out.iloc[idx]
        code = outlier_tiles(
            g["tile_row"].to_numpy(), g["tile_col"].to_numpy(), g["d_col_px"].to_numpy(),
            g["d_row_px"].to_numpy(), (g["status"] == STATUS_OK).to_numpy(), sigma=sigma,
            floor=floor_px, min_keep=min_keep,
        )  # fmt: skip
        status[idx[code == 1]] = STATUS_OUT_CONSENSUS
        status[idx[code == 2]] = STATUS_OUT_NEIGHBOURS
    out["status"] = status
    return out


def robust_stats(values: np.ndarray, clip: float = 3.0) -> tuple[float, float]:
    """Robust mean and spread of finite values.

    The spread is 1.4826·MAD around the median (a robust standard deviation);
    the mean is taken over values within ``clip`` spreads of the median, which
    keeps the efficiency of a mean (and averages away the 1/upsample
    quantization of single tiles) while rejecting outlier tiles.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    med = float(np.median(v))
    spread = float(1.4826 * np.median(np.abs(v - med)))
    keep = np.abs(v - med) <= clip * spread if spread > 0 else np.abs(v - med) == 0
    return float(np.mean(v[keep])), spread


def aggregate_pairs(
    offsets: pd.DataFrame, *, min_ok_tiles: int, requirement_m: float | None
) -> pd.DataFrame:
    """Per pair: robust east/north (clipped mean of ``ok`` tiles), spread, counts, status.

    A pair is ``ok`` when at least ``min_ok_tiles`` tiles are ``ok``, otherwise
    ``unreliable`` with no offset. With ``requirement_m`` each ok pair gets
    ``passes`` = (horizontal offset magnitude ≤ requirement); an unreliable
    pair's ``passes`` is None (empty in pairs.csv): it was not judged.
    """
    import pandas as pd

    rows = []
    keys = ["reference_date", "secondary_date"]
    for (ref, sec), g in offsets.groupby(keys, sort=True):
        ok = g[g["status"] == STATUS_OK]
        e, e_sd = robust_stats(ok["east_m"].to_numpy())
        n, n_sd = robust_stats(ok["north_m"].to_numpy())
        n_ok = len(ok)
        status = STATUS_OK if n_ok >= min_ok_tiles else "unreliable"
        if status != STATUS_OK:
            e = n = e_sd = n_sd = float("nan")
        row = {
            "reference_date": ref,
            "secondary_date": sec,
            "east_m": e,
            "north_m": n,
            "east_spread_m": e_sd,
            "north_spread_m": n_sd,
            "east_se_m": e_sd * 1.2533 / math.sqrt(n_ok) if n_ok else float("nan"),
            "north_se_m": n_sd * 1.2533 / math.sqrt(n_ok) if n_ok else float("nan"),
            "n_ok": n_ok,
            "n_tiles": len(g),
            "status": status,
        }
        for s in REJECTED_STATUSES:
            row[f"n_{s}"] = int((g["status"] == s).sum())
        if requirement_m is not None:
            row["passes"] = bool(math.hypot(e, n) <= requirement_m) if status == STATUS_OK else None
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate_tiles(offsets: pd.DataFrame, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per tile over all pairs: mean, robust mean and spread of ok offsets.

    With ``pairs`` (from :func:`aggregate_pairs`) also the tile *anomaly*:
    the mean over ok pairs of (tile offset − that pair's offset), which shows
    where a tile departs from the scene-wide shift whatever pairs it is ok in.
    """
    import pandas as pd

    if pairs is not None:
        keys = ["reference_date", "secondary_date"]
        ref = pairs[keys + ["east_m", "north_m"]].rename(
            columns={"east_m": "pair_east_m", "north_m": "pair_north_m"}
        )
        offsets = offsets.merge(ref, on=keys, how="left")
    rows = []
    for key, g in offsets.groupby(["tile_row", "tile_col"], sort=True):
        r, c = (int(v) for v in key)
        ok = g[g["status"] == STATUS_OK]
        e_rob, e_sd = robust_stats(ok["east_m"].to_numpy())
        n_rob, n_sd = robust_stats(ok["north_m"].to_numpy())
        row = {
            "tile_row": r,
            "tile_col": c,
            "east_mean_m": float(ok["east_m"].mean()) if len(ok) else float("nan"),
            "north_mean_m": float(ok["north_m"].mean()) if len(ok) else float("nan"),
            "east_robust_m": e_rob,
            "north_robust_m": n_rob,
            "east_spread_m": e_sd,
            "north_spread_m": n_sd,
            "n_ok": len(ok),
            "n_pairs": len(g),
        }
        if pairs is not None:
            row["east_anomaly_m"] = float((ok["east_m"] - ok["pair_east_m"]).mean())
            row["north_anomaly_m"] = float((ok["north_m"] - ok["pair_north_m"]).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(
    passes: Sequence[bool | None] | np.ndarray,
    n_unmeasured: int,
    requirement_m: float | None,
    min_fraction: float | None,
) -> str:
    """The verdict vocabulary of ``summary.csv`` (and ``absolute.csv``).

    Never ``pass`` on what could not be measured.

    Parameters
    ----------
    passes
        One entry per *measured* item (an ok pair, a scene with ok targets):
        whether it meets the requirement (None without a requirement).
    n_unmeasured
        How many items could not be measured.
    requirement_m
        The requirement; None gives ``no_requirement`` (for what was measured).
    min_fraction
        Fraction of the items that must meet the requirement (config
        ``rtc.min_fraction_within``; OPERA: 0.8); None = every item.

    Returns
    -------
    str
        ``not_measurable`` when nothing was measured (with a requirement or
        without); else ``no_requirement`` without a requirement. Every item
        required: ``fail`` when a measured item fails, else ``incomplete``
        when some item was not measured, else ``pass``. A fraction required:
        ``pass`` when enough items pass even counting every unmeasured one
        as failing, ``fail`` when too few of the measured ones pass, else
        ``incomplete``.
    """
    if len(passes) == 0:
        return "not_measurable"
    if requirement_m is None:
        return "no_requirement"
    measured = np.asarray(passes, dtype=bool)
    if min_fraction is not None:
        n_pass = int(measured.sum())
        if n_pass >= min_fraction * (len(measured) + n_unmeasured):
            return "pass"
        return "fail" if n_pass < min_fraction * len(measured) else "incomplete"
    if not bool(measured.all()):
        return "fail"
    if n_unmeasured:
        return "incomplete"
    return "pass"


def summarize(
    pairs: pd.DataFrame, requirement_m: float | None, min_fraction: float | None
) -> pd.DataFrame:
    """One-row stack summary: mean/std of ok pair offsets and the verdict.

    The verdict is never ``pass`` on what could not be measured:
    ``not_measurable`` when no pair was measured (with a requirement or
    without); else ``no_requirement`` without a requirement; else ``fail``
    when a measured (ok) pair exceeds the requirement; else ``incomplete``
    when some pair was not (its dates are listed in ``unmeasured_pairs``);
    else ``pass`` (:func:`verdict`).
    """
    import pandas as pd

    ok = pairs[pairs["status"] == STATUS_OK]
    bad = pairs[pairs["status"] != STATUS_OK]
    out: dict[str, float | str] = {
        "n_pairs": len(pairs),
        "n_pairs_ok": len(ok),
        "east_mean_m": float(ok["east_m"].mean()) if len(ok) else float("nan"),
        "north_mean_m": float(ok["north_m"].mean()) if len(ok) else float("nan"),
        "east_std_m": float(ok["east_m"].std(ddof=1)) if len(ok) > 1 else float("nan"),
        "north_std_m": float(ok["north_m"].std(ddof=1)) if len(ok) > 1 else float("nan"),
        "max_offset_m": float(np.hypot(ok["east_m"], ok["north_m"]).max()) if len(ok) else float("nan"),
        "requirement_m": requirement_m if requirement_m is not None else float("nan"),
    }
    passes = ok["passes"].tolist() if requirement_m is not None else [None] * len(ok)
    out["verdict"] = verdict(passes, len(bad), requirement_m, min_fraction)
    out["unmeasured_pairs"] = " ".join(
        f"{r}_{s}" for r, s in zip(bad["reference_date"], bad["secondary_date"], strict=True)
    )
    return pd.DataFrame([out])


#: summary.csv's criteria, in the order ``failed_criteria`` names them.
CRITERIA = ("pairs", "dates")


def combine_verdicts(pairs_verdict: str, dates_verdict: str) -> str:
    """The stack's verdict from its two criteria (:func:`verdict` vocabulary):
    ``not_measurable`` when no pair was measured, ``no_requirement`` without a
    requirement, ``fail`` when either fails, ``incomplete`` when either could
    not judge all it should, else ``pass``."""
    both = (pairs_verdict, dates_verdict)
    if pairs_verdict == "not_measurable":
        return "not_measurable"
    if "no_requirement" in both:
        return "no_requirement"
    if "fail" in both:
        return "fail"
    if "incomplete" in both or "not_measurable" in both:
        return "incomplete"
    return "pass"


def judge_dates(
    summary: pd.DataFrame,
    scene: pd.DataFrame,
    requirement_m: float | None,
    min_fraction: float | None,
) -> pd.DataFrame:
    """``summary`` (one row, :func:`summarize`) with the per-date criterion.

    A pair network passes when every pair is within the requirement, yet the
    dates may drift away from the first one a little at each pair (OPERA's
    requirement is on each product's geolocation, not on pairs). Each later
    date's horizontal offset relative to the first date (``dates.csv`` of
    :func:`date_offsets`, with its 1-sigma) is judged against the requirement
    too. Adds ``max_date_offset_m`` (the largest), ``max_date_offset_date``,
    ``max_date_offset_sd_m`` (its 1-sigma, propagated from east and north),
    ``n_dates_over_requirement``, ``n_dates_judged`` and ``n_dates_within``
    (the later dates measured, and within the requirement: OPERA counts
    products), ``pairs_verdict``, ``dates_verdict`` and
    ``failed_criteria`` (the criteria that fail, space-separated: ``pairs``,
    ``dates``), and sets ``verdict`` to :func:`combine_verdicts` of the two.
    A date without an offset (no measured pair reaches it) is unmeasured.
    """
    out = summary.copy()
    later = scene.sort_values("date").iloc[1:]  # the first date is the datum (0 m)
    east, north = later["east_m"].to_numpy(float), later["north_m"].to_numpy(float)
    r = np.hypot(east, north)
    measured = np.isfinite(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.hypot(east * later["east_sd_m"].to_numpy(float),
                      north * later["north_sd_m"].to_numpy(float)) / r  # fmt: skip
    if measured.any():
        k = int(np.nanargmax(np.where(measured, r, -1.0)))
        worst = (float(r[k]), str(later["date"].iloc[k]), float(sd[k]) if r[k] > 0 else 0.0)
    else:
        worst = (float("nan"), "", float("nan"))
    passes = list(r[measured] <= requirement_m) if requirement_m is not None else [None] * int(measured.sum())
    pairs_verdict = str(out["verdict"].iloc[0])
    dates_verdict = verdict(passes, int((~measured).sum()), requirement_m, min_fraction)
    out["max_date_offset_m"], out["max_date_offset_date"], out["max_date_offset_sd_m"] = worst
    out["n_dates_over_requirement"] = (
        int(np.sum(r[measured] > requirement_m)) if requirement_m is not None else 0
    )
    out["n_dates_judged"] = int(measured.sum())
    out["n_dates_within"] = (
        int(np.sum(r[measured] <= requirement_m)) if requirement_m is not None else 0
    )
    out["pairs_verdict"] = pairs_verdict
    out["dates_verdict"] = dates_verdict
    failed = [c for c, v in zip(CRITERIA, (pairs_verdict, dates_verdict), strict=True) if v == "fail"]
    out["failed_criteria"] = " ".join(failed)
    out["verdict"] = combine_verdicts(pairs_verdict, dates_verdict)
    return out

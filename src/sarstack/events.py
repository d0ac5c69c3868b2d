"""Steps and drift in an RTC stack's geolocation, found on the pairs and
attributed to what changed (issue 27 item 1).

The per-date offsets of ``dates.csv`` are a network solution: along a chain of
nearest-date pairs their errors add up as a random walk, so a test on them
mistakes accumulated pair noise for drift. The tests here work on the pair
offsets themselves, with the noise model each pair really has:

    y_p = x_j - x_i + e_p,   x_d = (event terms) + delta_d,
    delta_d ~ N(0, tau^2) per date (each product's own geolocation error),
    e_p ~ N(0, a * se_p^2) per pair (the measurement, se_p from pairs.csv).

A step starting at date k adds ``s`` to every date from k on (pairs that span
k measure it); a drift adds ``v (t_j - t_i)``; a platform's offset adds ``s``
to that platform's dates (S1A and S1B scenes interleaved, each with its own
bias). ``tau^2`` and ``a`` are
fitted by maximum likelihood for each model, so neither the jitter of the
scenes nor an under- or over-stated ``se`` passes for an event. Each
candidate (every date with at least ``MIN_SEGMENT`` dates on either side, and
the drift) is a likelihood-ratio test over east and north together (chi^2
with 2 degrees of freedom), Bonferroni-corrected over the candidates; the
most significant event is kept and the search repeats with it in the model,
at most :data:`MAX_EVENTS` times. Pure NumPy; small matrices (pairs x pairs).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: Sentinel-1 platform in a product name: HyP3 (``S1A_IW_2021...``) and OPERA
#: (``..._S1A_30_v1.0_VV.tif``) both carry it as its own ``_``-separated token.
PLATFORM_RX = re.compile(r"(?:^|[_\-/.])(S1[A-D])(?=[_\-/.]|$)")
#: Product/processor version where the name carries one (OPERA ``_v1.0``).
VERSION_RX = re.compile(r"_v(\d+(?:\.\d+)+)(?=[_.]|$)")
#: Dates a step needs on either side (a one-date shift is that scene's jitter).
MIN_SEGMENT = 2
#: Events kept at most per stack.
MAX_EVENTS = 3
#: Columns of date_events.csv (kind: step | drift | platform).
COLUMNS = ["date", "kind", "east_m", "north_m", "sigma_m", "significance",
           "platform_before", "platform_after", "note"]  # fmt: skip


def scene_platform(path: str | Path) -> str:
    """``S1A`` ... ``S1D`` from a product's file name (or its folder); "" if none."""
    for part in (Path(path).name, Path(path).parent.name):
        m = PLATFORM_RX.search(part)
        if m:
            return m.group(1)
    return ""


def scene_version(path: str | Path) -> str:
    """The product version in a file name (``1.0`` of OPERA's ``_v1.0``); "" if none."""
    m = VERSION_RX.search(Path(path).name)
    return m.group(1) if m else ""


#: Pairs that must span a step's date: one pair alone cannot tell a step from its own error.
MIN_SPANNING_PAIRS = 2


def _profile(
    y: np.ndarray, g0: np.ndarray, cands: np.ndarray, bbt: np.ndarray, d: np.ndarray,
    grid: np.ndarray,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Maximum likelihood of ``y ~ N(g0 b0 + c s, a (rho bbt + d))`` over ``b0``,
    ``s``, ``a`` and ``rho`` in ``grid``, for every candidate column ``c`` of
    ``cands`` (and without one).

    Returns the log-likelihood without a candidate, and per candidate its
    log-likelihood, ``s`` and the standard error of ``s``; each at its own
    best ``rho``. The covariance is factored once per ``rho`` for all
    candidates (a rank-one update of the projection per candidate).
    """
    m, k = len(y), cands.shape[1]
    best0 = -np.inf
    best = np.full(k, -np.inf)
    coef, se = np.zeros(k), np.zeros(k)
    for rho in grid:
        lv = np.linalg.cholesky(rho * bbt + d)
        logdet = 2.0 * float(np.sum(np.log(np.diag(lv))))
        wy = np.linalg.solve(lv, y)
        wc = np.linalg.solve(lv, cands)
        if g0.shape[1]:
            q, _ = np.linalg.qr(np.linalg.solve(lv, g0))
            wy = wy - q @ (q.T @ wy)
            wc = wc - q @ (q.T @ wc)
        rss0 = float(wy @ wy)
        ll0 = -0.5 * (m * math.log(max(rss0 / m, 1e-300)) + logdet + m)
        best0 = max(best0, ll0)
        cc = np.einsum("ij,ij->j", wc, wc)
        cy = wc.T @ wy
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.where(cc > 1e-12, cy / cc, 0.0)
            rss = np.maximum(rss0 - s * cy, 1e-300)
        ll = -0.5 * (m * np.log(rss / m) + logdet + m)
        better = ll > best
        best[better] = ll[better]
        coef[better] = s[better]
        with np.errstate(invalid="ignore", divide="ignore"):
            se[better] = np.sqrt((rss / m) / np.where(cc > 1e-12, cc, np.inf))[better]
    return best0, best, coef, se


def _usable(pairs: pd.DataFrame) -> pd.DataFrame:
    """The ok pairs with finite offsets and standard errors."""
    ok = pairs[pairs["status"] == "ok"]
    cols = ["east_m", "north_m", "east_se_m", "north_se_m"]
    return ok[np.isfinite(ok[cols].to_numpy(float)).all(axis=1)]


def redundant(pairs: pd.DataFrame) -> bool:
    """Whether the usable pairs close a loop (more pairs than the dates they
    connect, less one): without one, a date's own jitter and a pair's error
    cannot be told apart, and no event test keeps its false-alarm rate."""
    from sarstack.network import network_components

    ok = _usable(pairs)
    used = sorted(set(ok["reference_date"]) | set(ok["secondary_date"]))
    if len(ok) < 2:
        return False
    idx = {d: k for k, d in enumerate(used)}
    pp = list(zip(ok["reference_date"].map(idx), ok["secondary_date"].map(idx), strict=True))
    n_components = len(set(network_components(pp, len(used)).tolist()))
    return len(set(pp)) > len(used) - n_components


def find_events(
    pairs: pd.DataFrame, scenes: pd.DataFrame | None = None, *, significance: float
) -> pd.DataFrame:
    """Steps and drift in a stack's geolocation (:data:`COLUMNS`).

    Parameters
    ----------
    pairs
        ``pairs.csv`` of rtc_aggregate: ``reference_date``, ``secondary_date``
        (ISO), ``east_m``, ``north_m``, ``east_se_m``, ``north_se_m``,
        ``status``; only ``ok`` pairs with finite values are used.
    scenes
        ``scenes.csv`` (``date``, ``path``): platform and version per date,
        for the attribution; None = nothing known.
    significance
        Family-wise false-alarm probability per stack (config
        ``rtc.event_significance``). A network without a closed loop
        (:func:`redundant`) is not searched: nothing is found.

    Returns
    -------
    pd.DataFrame
        One row per event, most significant first: ``date`` (a step's first
        date; a drift's first date; a platform's first date), ``kind``
        (``step`` | ``drift`` | ``platform``: the scenes of one platform offset
        from those of the first date's platform, interleaved in time),
        ``east_m``/``north_m`` (the step or the platform's offset; for a drift
        its total over the stack), ``sigma_m`` (their 1-sigma, the mean of the two components'),
        ``significance`` (the Bonferroni-corrected p-value), the platforms on
        either side and a ``note`` that says what changed there.
    """
    ok = _usable(pairs)
    dates = sorted(set(pairs["reference_date"]) | set(pairs["secondary_date"]))
    empty = pd.DataFrame(columns=COLUMNS)
    if len(ok) < 3 or len(dates) < 2 * MIN_SEGMENT or not redundant(pairs):
        return empty
    idx = {d: k for k, d in enumerate(dates)}
    i = ok["reference_date"].map(idx).to_numpy()
    j = ok["secondary_date"].map(idx).to_numpy()
    n, m = len(dates), len(ok)
    b = np.zeros((m, n))
    b[np.arange(m), j] += 1.0
    b[np.arange(m), i] -= 1.0
    from sarstack.dates import years_since

    t = years_since([dt.date.fromisoformat(d) for d in dates])  # t[0] = 0
    platform, version = _scene_info(dates, scenes)
    # A platform's own offset is relative to the first date's platform.
    named = [q for q in platform if q]
    common = platform[0] or (max(sorted(set(named)), key=named.count) if named else "")
    candidates = _candidates(b, t, platform, common)
    comps = []
    for c in ("east", "north"):
        y = ok[f"{c}_m"].to_numpy(float)
        se2 = np.maximum(ok[f"{c}_se_m"].to_numpy(float), 1e-6) ** 2
        grid = np.r_[0.0, np.geomspace(1e-3, 1e4, 29)] * float(np.median(se2))
        comps.append((y, np.diag(se2), grid))
    results = _search(candidates, comps, b @ b.T, significance)

    rows = []
    for p_adj, (kind, k, _), est in results:
        (e, se_e), (nn, se_n) = est
        sig = 0.5 * (se_e + se_n)
        if kind == "drift":
            span = t[-1] - t[0]
            rows.append([dates[0], "drift", e * span, nn * span, sig * span, p_adj, "", "",
                         f"linear drift of {math.hypot(e, nn):.2f} m/yr over the stack"])  # fmt: skip
            continue
        if kind == "platform":  # k: the platform's first date
            rows.append([dates[k], "platform", e, nn, sig, p_adj, common, platform[k],
                         f"{platform[k]} scenes offset from the {common} scenes"])  # fmt: skip
            continue
        before, after = platform[k - 1], platform[k]
        rows.append([dates[k], "step", e, nn, sig, p_adj, before, after,
                     _attribution(platform, version, k)])  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


#: An event candidate: kind (``drift``, ``platform``, ``step``), its date index
#: and its column of the pairs' design (what it adds to each pair).
_Candidate = tuple[str, int, np.ndarray]


def _candidates(
    b: np.ndarray, t: np.ndarray, platform: Sequence[str], common: str
) -> list[_Candidate]:
    """The drift, each platform's offset and each step date, as columns of the
    pairs' design ``b`` (pairs x dates)."""
    n = b.shape[1]
    candidates: list[_Candidate] = [("drift", 0, b @ (t - t[0]))]
    # A platform's own offset (S1B scenes against S1A's, interleaved in time),
    # relative to the first date's platform (``common``); a platform whose dates
    # are one block (S1A until a date, S1C after it) is a step, tested as one.
    named = [q for q in platform if q]
    for plat in sorted(set(named) - {common}):
        h = np.array([q == plat for q in platform], float)
        at = np.flatnonzero(h)
        block = at[-1] - at[0] + 1 == len(at)
        g = b @ h
        if (not block and MIN_SEGMENT <= len(at) <= n - MIN_SEGMENT
                and np.count_nonzero(g) >= MIN_SPANNING_PAIRS):
            candidates.append(("platform", int(at[0]), g))
    for k in range(MIN_SEGMENT, n - MIN_SEGMENT + 1):
        g = b @ (np.arange(n) >= k).astype(float)
        if np.count_nonzero(g) >= MIN_SPANNING_PAIRS:
            candidates.append(("step", k, g))
    return candidates


def _search(
    candidates: list[_Candidate], comps: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    bbt: np.ndarray, significance: float,
) -> list[tuple[float, _Candidate, list[tuple[float, float]]]]:
    """Forward selection of the events: the most significant candidate is kept
    while its Bonferroni-corrected p-value is below ``significance``, at most
    :data:`MAX_EVENTS`. Each result: p-value, candidate, ``(estimate, se)`` per
    component of ``comps`` (``(y, diag(se^2), rho grid)``, east then north)."""
    m = bbt.shape[0]
    chosen: list[int] = []  # indices into candidates
    results = []
    while len(chosen) < MAX_EVENTS:
        g0 = np.column_stack([candidates[c][2] for c in chosen]) if chosen else np.zeros((m, 0))
        left = [c for c in range(len(candidates)) if c not in chosen]
        if not left:
            break
        cands = np.column_stack([candidates[c][2] for c in left])
        lr = np.zeros(len(left))
        fits = []
        for y, d, grid in comps:
            l0, l1, coef, se = _profile(y, g0, cands, bbt, d, grid)
            lr += 2.0 * np.maximum(l1 - l0, 0.0)
            fits.append((coef, se))
        # a candidate the model already explains (collinear) has no power: skip it
        usable = np.array([np.linalg.matrix_rank(np.column_stack([g0, cands[:, q]])) == g0.shape[1] + 1
                           for q in range(len(left))])  # fmt: skip
        if not usable.any():
            break
        lr[~usable] = 0.0
        q = int(np.argmax(lr))
        p_adj = min(1.0, math.exp(-lr[q] / 2.0) * len(candidates))  # chi^2, 2 dof; Bonferroni
        if p_adj >= significance:
            break
        chosen.append(left[q])
        est = [(float(coef[q]), float(se[q])) for coef, se in fits]
        results.append((p_adj, candidates[left[q]], est))
    return results


def _scene_info(
    dates: Sequence[str], scenes: pd.DataFrame | None
) -> tuple[list[str], list[str]]:
    if scenes is None or not len(scenes):
        return [""] * len(dates), [""] * len(dates)
    by_date = {str(r.date): str(r.path) for r in scenes.itertuples()}
    paths = [by_date.get(d, "") for d in dates]
    return [scene_platform(p) if p else "" for p in paths], [scene_version(p) if p else "" for p in paths]


def _attribution(platform: Sequence[str], version: Sequence[str], k: int) -> str:
    """What changed at date ``k``: the platform, the product version, or nothing known."""
    notes = []
    if platform[k - 1] and platform[k] and platform[k - 1] != platform[k]:
        notes.append(f"platform {platform[k - 1]} -> {platform[k]}")
    if version[k - 1] and version[k] and version[k - 1] != version[k]:
        notes.append(f"product version {version[k - 1]} -> {version[k]}")
    if notes:
        return "; ".join(notes)
    if set(platform[k:]) - {""} and set(platform[:k]) - {""} and set(platform[k:]) != set(platform[:k]):
        return "platforms differ before and after (not at this date)"
    return "nothing known changed"

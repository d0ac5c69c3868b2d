"""InSAR branch, file level: find and check the interferogram stack, build the
validity / quality / conncomp rasters for the reference point, and run the
block-wise inversion and velocity fit through :mod:`sarstack.io`.

The maths lives in :mod:`sarstack.timeseries`; this module only streams
rasters block by block, so memory follows ``block_shape``, not the scene.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from sarstack import dates as sdates
from sarstack import refpoint
from sarstack import velocity as svel
from sarstack.errors import SarstackError
from sarstack.io import (
    DEFAULT_BLOCK,
    Grid,
    RasterWriter,
    StackReader,
    iter_blocks,
    open_raster,
    read_ahead,
    read_band,
    read_grid,
)

if TYPE_CHECKING:  # pandas is imported where tables are built: most stages never need it
    import pandas as pd

log = logging.getLogger(__name__)

#: Nodata of the uint16 count rasters (0 is a real count).
COUNT_NODATA = 65535


@dataclass(frozen=True)
class Ifg:
    """One unwrapped interferogram and its optional companions."""

    path: Path
    reference: dt.date
    secondary: dt.date
    conncomp: Path | None = None
    correlation: Path | None = None
    #: Why network editing left it out ("" = used).
    excluded: str = ""
    #: RMS of its triangles' closures over the scene, radians (``insar.closure_qc``;
    #: None when not computed, NaN for an ifg in no triangle).
    loop_rms_rad: float | None = None

    def need(self, kind: str) -> Path:
        """The companion raster ``kind`` ("conncomp" or "correlation"); raises if absent."""
        path = getattr(self, kind)
        if path is None:
            raise SarstackError(f"insar.{kind}: no {kind} raster for {self.path.name}")
        return path

    @property
    def key(self) -> str:
        return f"{self.reference:%Y%m%d}_{self.secondary:%Y%m%d}"


def _glob(pattern: str) -> list[Path]:
    from sarstack import storage

    return [Path(p) for p in storage.glob_files(pattern)]


def _by_pair(pattern: str, key: str, date_format: str) -> dict[tuple[dt.date, dt.date], Path]:
    out: dict[tuple[dt.date, dt.date], Path] = {}
    for p in _glob(pattern):
        d = sdates.parse_pair_dates(p, date_format)
        if d in out:
            raise SarstackError(f"{key}: {p} and {out[d]} are both {d[0]}_{d[1]}")
        out[d] = p
    return out


@dataclass(frozen=True)
class NetworkEdit:
    """Network editing from the config, applied by :func:`select_ifgs`.

    Attributes
    ----------
    exclude_dates
        Acquisitions to drop with every ifg that contains them.
    exclude_pairs
        ``(reference, secondary)`` pairs to drop.
    max_temporal_baseline
        Longest ``secondary - reference`` kept, days.
    min_mean_correlation
        Drop ifgs whose scene-mean correlation is below it (needs correlation).
    start_date, end_date
        Keep only ifgs with both dates inside ``[start_date, end_date]``.
    max_loop_rms_rad, loop_exclude
        Loop-closure QC (``insar.closure_qc``): each kept ifg's loop RMS
        (:func:`sarstack.closure.loop_rms`) is recorded, and with
        ``loop_exclude`` the ifgs above ``max_loop_rms_rad`` are left out,
        worst first, which never disconnects the network
        (:func:`sarstack.closure.closure_exclusions`).
    """

    exclude_dates: tuple[dt.date, ...] = ()
    exclude_pairs: tuple[tuple[dt.date, dt.date], ...] = ()
    max_temporal_baseline: float | None = None
    min_mean_correlation: float | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    max_loop_rms_rad: float | None = None
    loop_exclude: bool = True

    @property
    def active(self) -> bool:
        return bool(self.describe())

    def describe(self) -> str:
        parts = []
        if self.exclude_dates:
            parts.append(f"exclude_dates: {len(self.exclude_dates)}")
        if self.exclude_pairs:
            parts.append(f"exclude_pairs: {len(self.exclude_pairs)}")
        for key in ("max_temporal_baseline", "min_mean_correlation", "start_date", "end_date"):
            v = getattr(self, key)
            if v is not None:
                parts.append(f"{key}: {v}")
        if self.max_loop_rms_rad is not None and self.loop_exclude:
            parts.append(f"closure_qc.max_loop_rms_rad: {self.max_loop_rms_rad}")
        return ", ".join(parts)

    def apply_dates(self, ifgs: Sequence[Ifg]) -> list[Ifg]:
        """Mark the ifgs excluded by dates, pairs, baseline and period (with reasons).

        Raises naming the key when an excluded date or pair is not in the stack
        (a typo would otherwise exclude nothing), or the period is empty.
        """
        from dataclasses import replace

        have = {d for i in ifgs for d in (i.reference, i.secondary)}
        for d in self.exclude_dates:
            if d not in have:
                near = min(have, key=lambda x: (abs((x - d).days), x))
                raise SarstackError(
                    f"insar.exclude_dates: {d} is not an acquisition date (nearest: {near})"
                )
        keys = {(i.reference, i.secondary) for i in ifgs}
        for p in self.exclude_pairs:
            if p not in keys:
                raise SarstackError(
                    f"insar.exclude_pairs: {p[0]:%Y%m%d}_{p[1]:%Y%m%d} is not an interferogram"
                    " of the stack"
                )
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise SarstackError(
                f"insar.start_date: {self.start_date} is after insar.end_date {self.end_date}"
            )
        out = []
        for i in ifgs:
            why = []
            gone = [d for d in (i.reference, i.secondary) if d in self.exclude_dates]
            if gone:
                why.append("exclude_dates " + " ".join(map(str, gone)))
            if (i.reference, i.secondary) in self.exclude_pairs:
                why.append("exclude_pairs")
            days = (i.secondary - i.reference).days
            if self.max_temporal_baseline is not None and days > self.max_temporal_baseline:
                why.append(f"max_temporal_baseline {days} d > {self.max_temporal_baseline:g} d")
            if self.start_date is not None and i.reference < self.start_date:
                why.append(f"start_date {self.start_date}")
            if self.end_date is not None and i.secondary > self.end_date:
                why.append(f"end_date {self.end_date}")
            out.append(replace(i, excluded="; ".join(why)) if why else i)
        return out

    def apply_correlation(
        self, ifgs: Sequence[Ifg], grid: Grid, block_shape: Sequence[int]
    ) -> list[Ifg]:
        """Mark the kept ifgs whose mean correlation is below ``min_mean_correlation``."""
        from dataclasses import replace

        kept = [i for i in ifgs if not i.excluded]
        if not all(i.correlation for i in kept):
            raise SarstackError("insar.min_mean_correlation needs insar.correlation rasters")
        means = {}
        for i in kept:
            acc, n = 0.0, 0
            with StackReader([i.need("correlation")]) as one:
                for win in iter_blocks(grid.shape, block_shape):
                    b = one.read_one(0, win)
                    check_range(b, i.need("correlation"), 0.0, 1.0, "correlation")
                    ok = np.isfinite(b)
                    acc += float(b[ok].sum(dtype=np.float64))
                    n += int(ok.sum())
            means[i.key] = acc / n if n else float("nan")
        limit = self.min_mean_correlation
        if limit is None:
            return list(ifgs)
        out = []
        for i in ifgs:
            m = means.get(i.key)
            if m is not None and not m >= limit:
                why = f"min_mean_correlation {m:.3f} < {limit:g}"
                i = replace(i, excluded=why)
            out.append(i)
        return out


def apply_closure_qc(
    edit: NetworkEdit, ifgs: Sequence[Ifg], grid: Grid, block_shape: Sequence[int]
) -> list[Ifg]:
    """Loop-closure QC of the kept ifgs (see :class:`NetworkEdit`): one pass over
    the stack, block by block, summing each triangle's closure moments."""
    from dataclasses import replace

    from sarstack import closure as sclosure

    kept = [i for i in ifgs if not i.excluded]
    dates = sorted({d for i in kept for d in (i.reference, i.secondary)})
    index = {d: k for k, d in enumerate(dates)}
    pairs = [(index[i.reference], index[i.secondary]) for i in kept]
    tri = sclosure.network_triangles(pairs)
    sums = np.zeros((len(tri), 3))
    if len(tri):
        with StackReader([i.path for i in kept]) as stack:
            for win in iter_blocks(grid.shape, block_shape):
                sums += sclosure.closure_sums(stack.read(win).reshape(len(kept), -1), tri)
    else:
        log.warning("insar.closure_qc: the network has no closed triangle (e.g. sequential or"
                    " single-reference): no loop RMS, nothing excluded")  # fmt: skip
    limit = edit.max_loop_rms_rad if edit.loop_exclude else None
    rms, out = sclosure.closure_exclusions(
        pairs, sclosure.closure_variance(sums), np.inf if limit is None else limit
    )
    gone = set(out)
    log.info("insar.closure_qc: loop RMS median %.3g rad, largest %.3g rad; %d ifgs left out%s",
             np.nanmedian(rms) if np.isfinite(rms).any() else np.nan,
             np.nanmax(rms) if np.isfinite(rms).any() else np.nan, len(out),
             f" ({', '.join(kept[k].key for k in out)})" if out else "")  # fmt: skip
    by_key = {}
    for k, i in enumerate(kept):
        why = f"loop_closure {rms[k]:.3f} rad > {limit:g}" if k in gone else ""
        by_key[i.key] = replace(i, loop_rms_rad=float(rms[k]), excluded=why)
    return [by_key.get(i.key, i) for i in ifgs]


def select_ifgs(
    unwrapped: str,
    *,
    conncomp: str | None = None,
    correlation: str | None = None,
    date_format: str = "%Y%m%d",
    edit: NetworkEdit | None = None,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
) -> tuple[list[Ifg], list[dt.date], list[tuple[int, int]], Grid]:
    """Find the interferograms, date them, edit the network, check grids and the network.

    Parameters
    ----------
    edit
        Network editing from the config (:class:`NetworkEdit`), applied
        before the grid and network checks; an excluded ifg keeps its row
        with the reason in ``Ifg.excluded`` (and is not checked further).
    block_shape
        Blocks the correlation rasters are averaged in (``min_mean_correlation``).

    Returns
    -------
    ifgs, dates, pairs, grid
        Interferograms sorted by (reference, secondary) date, excluded ones
        included; the sorted unique dates of the kept ones; each kept ifg's
        ``(i, j)`` date indices; the common grid.

    Raises
    ------
    SarstackError
        No or a single file, undated or duplicate names, a companion raster
        missing for some pair, rasters on different grids, or a network
        that does not connect every date.
    """
    paths = _glob(unwrapped)
    if not paths:
        raise SarstackError(f"insar.unwrapped: no files match {unwrapped!r}")
    if len(paths) < 2:
        raise SarstackError(
            f"insar.unwrapped: only one interferogram ({paths[0]}); need at least 2"
        )
    by_pair: dict[tuple[dt.date, dt.date], Path] = {}
    for p in paths:
        d1, d2 = sdates.parse_pair_dates(p, date_format)
        if d2 < d1:
            raise SarstackError(f"{p}: secondary date {d2} is before reference date {d1}")
        if (d1, d2) in by_pair:
            raise SarstackError(f"{p}: same pair {d1}_{d2} as {by_pair[(d1, d2)]}")
        by_pair[(d1, d2)] = p
    cc = _by_pair(conncomp, "insar.conncomp", date_format) if conncomp else {}
    cor = _by_pair(correlation, "insar.correlation", date_format) if correlation else {}
    ifgs = []
    for (d1, d2), p in sorted(by_pair.items()):
        if conncomp and (d1, d2) not in cc:
            raise SarstackError(f"insar.conncomp: no conncomp raster for {p.name}")
        if correlation and (d1, d2) not in cor:
            raise SarstackError(f"insar.correlation: no correlation raster for {p.name}")
        ifgs.append(Ifg(p, d1, d2, cc.get((d1, d2)), cor.get((d1, d2))))

    what = edit.describe() if edit is not None else ""

    def kept(every: list[Ifg]) -> list[Ifg]:
        out = [i for i in every if not i.excluded]
        if len(out) < 2:
            raise SarstackError(
                f"insar: network editing ({what}) leaves {len(out)} of "
                f"{len(every)} interferograms; need at least 2"
            )
        return out

    all_ifgs = edit.apply_dates(ifgs) if edit is not None else ifgs
    ifgs = kept(all_ifgs)
    # The stack's grid is the one most interferograms share, so that an odd
    # one out is named even when it sorts first (and not its companions).
    grids = [read_grid(i.path, single_band=True) for i in ifgs]
    distinct: list[list] = []  # [grid, count]: few distinct grids, so O(n) comparisons
    for g in grids:
        for d in distinct:
            if d[0].same_as(g):
                d[1] += 1
                break
        else:
            distinct.append([g, 1])
    grid = max(distinct, key=lambda d: d[1])[0]
    for ifg, g in zip(ifgs, grids, strict=True):
        for f in (ifg.path, ifg.conncomp, ifg.correlation):
            if f is None:
                continue
            if not (g if f == ifg.path else read_grid(f, single_band=True)).same_as(grid):
                raise SarstackError(
                    f"{f}: not on the grid of the other interferograms"
                    " (all inputs must share one grid)"
                )
    if edit is not None and edit.min_mean_correlation is not None:
        all_ifgs = edit.apply_correlation(all_ifgs, grid, block_shape)
        ifgs = kept(all_ifgs)
    if edit is not None and edit.max_loop_rms_rad is not None:
        all_ifgs = apply_closure_qc(edit, all_ifgs, grid, block_shape)
        ifgs = kept(all_ifgs)
    dates = sorted({d for ifg in ifgs for d in (ifg.reference, ifg.secondary)})
    index = {d: k for k, d in enumerate(dates)}
    pairs = [(index[i.reference], index[i.secondary]) for i in ifgs]
    if edit is not None and edit.active:
        gone = sorted({d for i in all_ifgs for d in (i.reference, i.secondary)} - set(dates))
        n_out = len(all_ifgs) - len(ifgs)
        log.info("network editing (%s): %d of %d ifgs excluded, %d dates left%s", edit.describe(),
                 n_out, len(all_ifgs), len(dates),
                 f" (dropped: {', '.join(map(str, gone))})" if gone else "")  # fmt: skip
        try:
            sdates.check_network(pairs, len(dates), dates)
        except SarstackError as e:
            raise SarstackError(f"after network editing ({edit.describe()}): {e}") from None
    else:
        sdates.check_network(pairs, len(dates), dates)
    return all_ifgs, dates, pairs, grid


def ifg_table(ifgs: Sequence[Ifg]) -> pd.DataFrame:
    import pandas as pd

    table = pd.DataFrame(
        {
            "reference_date": [i.reference.isoformat() for i in ifgs],
            "secondary_date": [i.secondary.isoformat() for i in ifgs],
            "path": [str(i.path) for i in ifgs],
            "conncomp": [str(i.conncomp) if i.conncomp else "" for i in ifgs],
            "correlation": [str(i.correlation) if i.correlation else "" for i in ifgs],
            "temporal_baseline_days": [(i.secondary - i.reference).days for i in ifgs],
            "used": [not i.excluded for i in ifgs],
            "excluded_reason": [i.excluded for i in ifgs],
        }
    )
    if any(i.loop_rms_rad is not None for i in ifgs):  # insar.closure_qc
        table["loop_rms_rad"] = [np.nan if i.loop_rms_rad is None else i.loop_rms_rad
                                 for i in ifgs]  # fmt: skip
    return table


def read_ifg_table(
    path: str | Path, *, include_excluded: bool = False
) -> tuple[list[Ifg], list[dt.date], list[tuple[int, int]]]:
    """The ifg table of insar_select: the used ifgs (all with ``include_excluded``),
    the sorted dates of the used ones and their ``(i, j)`` date indices."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.setdefault("excluded_reason", "")
    every = [
        Ifg(
            Path(r["path"]),
            dt.date.fromisoformat(r["reference_date"]),
            dt.date.fromisoformat(r["secondary_date"]),
            Path(r["conncomp"]) if r["conncomp"] else None,
            Path(r["correlation"]) if r["correlation"] else None,
            r["excluded_reason"],
        )
        for r in rows
    ]
    ifgs = [i for i in every if not i.excluded]
    if include_excluded:
        dates = sorted({d for i in ifgs for d in (i.reference, i.secondary)})
        index = {d: k for k, d in enumerate(dates)}
        return every, dates, [(index.get(i.reference, -1), index.get(i.secondary, -1))
                              for i in every]  # fmt: skip
    dates = sorted({d for i in ifgs for d in (i.reference, i.secondary)})
    index = {d: k for k, d in enumerate(dates)}
    return ifgs, dates, [(index[i.reference], index[i.secondary]) for i in ifgs]


def read_reference_point(path: str | Path) -> tuple[int, int]:
    """The ``row,col`` written by the insar_reference rule."""
    try:
        r, c = (int(v) for v in Path(path).read_text().strip().split(","))
    except (OSError, ValueError):
        raise SarstackError(f"{path}: expected one line 'row,col'") from None
    return r, c


def check_mask_grid(mask: str | Path | None, grid: Grid, of: str | Path) -> None:
    """A one-line error naming the mask when it is not on ``grid`` (the grid of ``of``)."""
    if mask is not None and not read_grid(mask, single_band=True).same_as(grid):
        raise SarstackError(f"{mask}: insar.mask is not on the grid of {Path(of).name}")


def read_mask(mask: str | Path | None, window) -> np.ndarray | None:
    """``insar.mask`` over ``window`` as bool, True = keep (finite and non-zero); None without one."""
    if mask is None:
        return None
    m = read_band(mask, window, nan_nodata=False)
    return np.isfinite(m) & (m != 0)


def reference_inputs(
    ifgs: Sequence[Ifg],
    grid: Grid,
    *,
    mask: str | Path | None = None,
    quality: str | Path | None = None,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """2-D rasters for the reference point, built block by block.

    Returns ``valid`` (finite and not nodata in every ifg, and not masked),
    ``quality`` (the given raster, e.g. temporal or mean coherence, or None)
    and the conncomp intersection (non-zero in every ifg; None without
    conncomps).
    """
    for name, f in (("insar.mask", mask), ("insar.quality", quality)):
        if f is not None and not read_grid(f, single_band=True).same_as(grid):
            raise SarstackError(f"{f}: {name} is not on the interferograms' grid")
    valid = np.zeros(grid.shape, bool)
    cc_all = np.zeros(grid.shape, bool) if all(i.conncomp for i in ifgs) else None
    qual = np.full(grid.shape, np.nan, np.float32) if quality is not None else None
    # Whether each input has any usable pixel: an empty one is named, not just
    # blamed as "no pixel valid in every interferogram".
    has_data = np.zeros(len(ifgs), bool)
    has_cc = np.zeros(len(ifgs), bool)
    mask_any = False
    with contextlib.ExitStack() as st:
        phase = st.enter_context(StackReader([i.path for i in ifgs]))
        ccs = (st.enter_context(StackReader([i.need("conncomp") for i in ifgs], nan_nodata=False))
               if cc_all is not None else None)  # fmt: skip
        for win in iter_blocks(grid.shape, block_shape):
            mask_any |= _reference_block(win, phase, ccs, mask, quality, valid, cc_all, qual,
                                         has_data, has_cc)  # fmt: skip
    if not has_data.all():
        raise SarstackError(f"{ifgs[int(np.argmin(has_data))].path}: no valid pixel (all nodata)")
    if mask is not None and not mask_any:
        raise SarstackError(f"{mask}: insar.mask is 0 everywhere (0 = bad pixel)")
    if cc_all is not None and not has_cc.all():
        bad = ifgs[int(np.argmin(has_cc))].conncomp
        raise SarstackError(f"{bad}: conncomp label is 0 (unreliable) everywhere")
    return valid, qual, cc_all


def phase_roughness(
    ifgs: Sequence[Ifg], grid: Grid, *, block_shape: Sequence[int] = DEFAULT_BLOCK
) -> np.ndarray:
    """:func:`sarstack.refpoint.gradient_rate` of the interferograms, block by
    block (each block read with a one-pixel halo, so the result does not
    depend on the block size); radians per pixel per year, float32."""
    years = np.array([(i.secondary - i.reference).days / sdates.DAYS_PER_YEAR for i in ifgs])
    out = np.full(grid.shape, np.nan, np.float32)
    rows, cols = grid.shape
    with StackReader([i.path for i in ifgs]) as phase:
        for win in iter_blocks(grid.shape, block_shape):
            r0, c0 = max(0, win.row_off - 1), max(0, win.col_off - 1)
            r1 = min(rows, win.row_off + win.height + 1)
            c1 = min(cols, win.col_off + win.width + 1)
            g = refpoint.gradient_rate(phase.read(Window(c0, r0, c1 - c0, r1 - r0)), years)
            dr, dc = win.row_off - r0, win.col_off - c0
            out[win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width] = (
                g[dr : dr + win.height, dc : dc + win.width]
            )
    return out


def reference_phase(
    ifgs: Sequence[Ifg],
    ref_rc: tuple[int, int],
    window: int = 1,
    ramps: tuple[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Phase of each interferogram at the reference, subtracted before the inversion.

    Parameters
    ----------
    ifgs
        The interferograms.
    ref_rc
        ``(row, col)`` of the reference pixel; it must be valid in every ifg.
    window
        Odd size ``K`` of the square window centred on the pixel (clipped at
        the raster edges): the median of its finite values, robust to one
        noisy pixel. 1 = the pixel's own value.
    ramps
        ``(model, coefficients)`` of :func:`sarstack.deramp.read_ramps`: each
        ifg's ramp is removed from the window's values first.

    Returns
    -------
    np.ndarray
        ``(n_ifg,)`` float64, radians.
    """
    window = int(window)
    if window < 1 or window % 2 == 0:
        raise SarstackError(f"reference window must be an odd number >= 1, got {window}")
    r, c = ref_rc
    h = window // 2
    grid = read_grid(ifgs[0].path)
    r0, c0 = max(0, r - h), max(0, c - h)
    r1, c1 = min(grid.height, r + h + 1), min(grid.width, c + h + 1)
    win = Window(c0, r0, c1 - c0, r1 - r0)
    out = np.empty(len(ifgs), np.float64)
    if ramps is not None:
        from sarstack import deramp

        surfaces = deramp.evaluate(ramps[1], win, grid.shape, ramps[0])
    for k, i in enumerate(ifgs):
        vals = read_band(i.path, win).astype(np.float64)
        if ramps is not None:
            vals -= surfaces[k]
        if not np.isfinite(vals[r - r0, c - c0]):
            raise SarstackError(f"reference point [{r}, {c}] is nodata in {i.path}")
        out[k] = np.nanmedian(vals)
    return out


def point_valid_everywhere(
    ifgs: Sequence[Ifg], grid: Grid, rc: Sequence[int], *, mask: str | Path | None = None
) -> bool:
    """Whether a manual reference point passes every check of :func:`reference_inputs`,
    read at that pixel only (one 1 x 1 window per file instead of the stack).

    True when the point is inside the grid, finite in every ifg, 1 in the mask
    and (with conncomps) non-zero in every conncomp: then no input is empty,
    the mask is not all 0 and no conncomp is all 0, and the full read would
    accept the point. False sends the caller to the full read, whose errors
    say what is wrong.
    """
    try:
        r, c = (int(v) for v in rc)
    except (TypeError, ValueError):
        return False
    if not (0 <= r < grid.height and 0 <= c < grid.width):
        return False
    if mask is not None and not read_grid(mask, single_band=True).same_as(grid):
        return False
    win = Window(c, r, 1, 1)
    with StackReader([i.path for i in ifgs]) as phase:
        if not np.isfinite(phase.read(win)).all():
            return False
    m = read_mask(mask, win)
    if m is not None and not m.all():
        return False
    if all(i.conncomp for i in ifgs):
        with StackReader([i.need("conncomp") for i in ifgs], nan_nodata=False) as ccs:
            if not (ccs.read(win) != 0).all():
                return False
    return True


def _reference_block(
    win: Window,
    phase: StackReader,
    ccs: StackReader | None,
    mask: str | Path | None,
    quality: str | Path | None,
    valid: np.ndarray,
    cc_all: np.ndarray | None,
    qual: np.ndarray | None,
    has_data: np.ndarray,
    has_cc: np.ndarray,
) -> bool:
    """One block of :func:`reference_inputs` (fills its rasters); whether the mask has a 1."""
    sl = (slice(win.row_off, win.row_off + win.height), slice(win.col_off, win.col_off + win.width))
    ok = np.isfinite(phase.read(win))
    has_data |= ok.any(axis=(1, 2))
    v = ok.all(axis=0)
    m = read_mask(mask, win)
    if m is not None:
        v &= m
    valid[sl] = v
    if cc_all is not None and ccs is not None:
        nz = ccs.read(win) != 0
        has_cc |= nz.any(axis=(1, 2))
        cc_all[sl] = nz.all(axis=0)
    if qual is not None and quality is not None:
        qual[sl] = read_band(quality, win)
    return bool(m is not None and m.any())


def _date_tags(first: dt.date, last: dt.date, **extra: str) -> dict[str, str]:
    return {"start_date": first.isoformat(), "end_date": last.isoformat(), **extra}


def _irls_l1(
    a: np.ndarray,
    flat: np.ndarray,
    weights: np.ndarray,
    *,
    l1_tolerance: float,
    l1_max_iterations: int,
) -> tuple[sdates.NetworkSolution, int]:
    """L1 of a censored / weighted system: :func:`sarstack.dates.irls_l1` over
    ``timeseries.invert_weighted`` (residual floor 1e-4 of the median phase)."""
    from sarstack import timeseries as ts  # JAX: imported by the stages that solve

    return sdates.irls_l1(
        lambda w: ts.invert_weighted(a, flat, w), weights, flat,
        floor=1e-4, max_iter=l1_max_iterations, tol=l1_tolerance,
    )  # fmt: skip


#: Most distinct missing-interferogram patterns among a block's partial pixels
#: that L2 solves pattern by pattern in NumPy (one least-squares solve each,
#: all the pattern's pixels as right-hand sides; a frame edge or a nodata
#: corner gives a handful); more go to the batched JAX solver, which costs an
#: import of JAX (~1.3 s, ~150 MB) and a compile per network.
MAX_NUMPY_PATTERNS = 64


def _censored_l2(
    a: np.ndarray, pairs: Sequence[tuple[int, int]], sub: np.ndarray, w: np.ndarray
) -> Any:
    """L2 of pixels missing some ifgs (weights 0/1 ``w``): the same model and
    outputs by either solver, equal to float64 rounding."""
    if len(np.unique(w.T, axis=0)) <= MAX_NUMPY_PATTERNS:
        return sdates.solve_network_columns(pairs, a.shape[1] + 1, sub, w)
    from sarstack import timeseries as ts  # JAX

    return ts.invert_weighted(a, sub, w)


def _solve_block(
    a: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    flat: np.ndarray,
    weights: np.ndarray | None,
    *,
    method: str,
    single: bool,
    l1_tolerance: float,
    l1_max_iterations: int,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One block: (x, residual, n_used, iterations) by the configured method.

    Without weights, pixels valid in every ifg go through the plain L2 / L1
    kernels (single-reference networks are only re-ordered), and pixels
    missing some ifgs through the censored solver (missing ifgs dropped for
    that pixel only; dates cut off from the first date are NaN there). With
    weights (correlation and/or conncomp censoring) every pixel goes through
    the censored, weighted solver. L1 on the censored system is iteratively
    reweighted least squares (:func:`_irls_l1`).
    """
    from sarstack import timeseries as ts  # JAX: imported by the stages that solve

    n_ifg = flat.shape[0]
    finite = np.isfinite(flat)
    full = finite.all(axis=0)
    if weights is None:
        if single:
            x = sdates.single_reference_series(pairs, flat)
            res = np.where(full, 0.0, np.nan) * np.ones_like(flat)
            n_it = 0
        else:
            kw: dict[str, Any] = {}
            if method == "L1":
                kw = {"tol": l1_tolerance, "max_iter": l1_max_iterations, "threads": threads}
            x, res, n_it = ts.invert(a, flat, method, **kw)
        n_used = np.where(full, n_ifg, 0).astype(np.int32)
        partial = finite.any(axis=0) & ~full
        if partial.any():
            x, res = np.array(x), np.array(res)  # writable copies of the kernels' outputs
            sub = flat[:, partial]
            w = np.isfinite(sub).astype(flat.dtype)
            if method == "L1":
                out, it = _irls_l1(a, sub, w, l1_tolerance=l1_tolerance,
                                   l1_max_iterations=l1_max_iterations)  # fmt: skip
                n_it = max(n_it, it)
            else:
                out = _censored_l2(a, pairs, sub, w)
            x[:, partial] = out["x"]
            res[:, partial] = out["residual"]
            n_used[partial] = out["n_used"]
        return x, res, n_used, n_it
    if method == "L1":
        out, n_it = _irls_l1(a, flat, weights, l1_tolerance=l1_tolerance,
                             l1_max_iterations=l1_max_iterations)  # fmt: skip
    else:
        out, n_it = ts.invert_weighted(a, flat, weights), 0
    return out["x"], out["residual"], np.asarray(out["n_used"], np.int32), n_it


#: Gathered outputs with one raster per date or per ifg (COGs without overviews).
PER_ITEM_OUTPUTS = frozenset({"timeseries", "residuals"})
#: Files of one inversion strip (tiled, uncompressed GeoTIFFs read once by the gather).
STRIP_FILES = {
    "timeseries": "timeseries.tif",
    "residuals": "residuals.tif",
    "residual_sum": "residual_sum.tif",
    "ifg_residual_std": "ifg_residual_std.tif",
    "temporal_coherence": "temporal_coherence.tif",
    "n_ifgs_used": "n_ifgs_used.tif",
    "closure_nonzero_count": "closure_nonzero_count.tif",
}


def strip_work(ifg_table: str | Path, block_rows: int) -> tuple[int, int]:
    """The inversion scatter's items: ``(block rows of the grid, pixels x used
    ifgs per block row)`` for the ifg table of ``insar_select`` and
    ``insar.block_shape``'s rows; the one place the strip count starts from
    (``strip_rows`` cuts the same block rows)."""
    used = read_ifg_table(ifg_table)[0]  # excluded ones left out
    grid = read_grid(used[0].path)
    return -(-grid.height // int(block_rows)), int(block_rows) * grid.width * len(used)


def strip_rows(height: int, block_rows: int, label: str) -> tuple[int, int]:
    """Rows ``[r0, r1)`` of strip ``label`` (``"I-of-N"``).

    Strips are made of whole block rows, so every block (and with it every
    per-block solver decision) is the same whatever the number of strips:
    the outputs are identical for every N.
    """
    n_blocks = -(-height // block_rows)
    blocks = sdates.chunk_items(list(range(n_blocks)), label)
    b0, b1 = blocks[0], blocks[-1] + 1
    return b0 * block_rows, min(b1 * block_rows, height)


def invert_strip(
    ifgs: Sequence[Ifg],
    dates: Sequence[dt.date],
    pairs: Sequence[tuple[int, int]],
    ref_rc: tuple[int, int],
    out_dir: str | Path,
    *,
    rows: tuple[int, int] | None = None,
    method: str,
    wavelength: float | None,
    mask: str | Path | None,
    block_shape: Sequence[int],
    l1_tolerance: float,
    l1_max_iterations: int,
    weighting: str,
    correlation_looks: float,
    correlation_threshold: float,
    write_residuals: bool,
    reference_window: int = 1,
    threads: int | None = None,
    ramps: tuple[str, np.ndarray] | None = None,
) -> None:
    """Invert rows ``[r0, r1)`` of the stack block by block into one strip folder.

    Interferograms are referenced to ``ref_rc`` first (each ifg minus its
    value there), then inverted per pixel. With conncomp rasters an ifg
    whose label is 0 at a pixel is dropped for that pixel only (censored
    least squares; dates it cuts off from the first date are nodata there).
    ``weighting="correlation"`` weights each ifg by its inverse Cramér-Rao
    phase variance. The mask (0 = bad) makes a pixel nodata in every output.

    Writes :data:`STRIP_FILES` into ``out_dir`` on the strip's own grid:
    displacement (one band per date after the first, positive towards the
    radar), residuals (one band per ifg, radians, NaN where censored; only
    with ``write_residuals``), residual sum, temporal coherence and the
    number of ifgs used. :func:`gather_strips` assembles the final COGs.
    ``threads``: host threads of the L1 solver (None: the CPUs available).
    ``ramps``: ``(model, coefficients)`` (:func:`sarstack.deramp.read_ramps`),
    each ifg's ramp removed as it is read, before the referencing.
    """

    out_dir = Path(out_dir)
    grid = read_grid(ifgs[0].path)
    r0, r1 = rows if rows is not None else (0, grid.height)
    sgrid = Grid(grid.crs, grid.transform @ Affine.translation(0, r0), grid.width, r1 - r0)
    r, c = ref_rc
    ref_vals = reference_phase(ifgs, ref_rc, reference_window, ramps)
    if weighting == "correlation" and not all(i.correlation for i in ifgs):
        raise SarstackError("insar.weighting: 'correlation' needs insar.correlation rasters")
    censor = all(i.conncomp for i in ifgs)
    weighted = weighting == "correlation" or censor
    a = sdates.incidence_matrix(pairs, len(dates))
    single = sdates.is_single_reference(pairs, len(dates))
    how = describe_method(method, weighting, censor)
    log.info(
        "%d ifgs over %d dates, %s network, reference pixel [%d, %d], %s; rows %d-%d",
        len(ifgs), len(dates), "single-reference" if single else "redundant", r, c,
        "re-ordered (no inversion needed)" if single and not weighted else how, r0, r1 - 1,
    )  # fmt: skip
    # The closure diagnostic (:func:`closure_count`) from the same referenced
    # blocks: no second read of the stack.
    from sarstack import closure as sclosure

    triangles = sclosure.network_triangles(pairs)
    _log_triangles(len(triangles), len(ifgs))
    closure_tags = _closure_tags(dates[0], dates[-1], len(triangles), ref_rc, reference_window)
    n_flagged = 0
    # Scene sums for the per-date quality table: each ifg's squared residuals
    # and finite pixels, each triangle's non-zero and measurable closures.
    # Residual sums are kept per block (summed in block order by the gather,
    # so the tables are identical for every strip count).
    res_ss: list[np.ndarray] = []
    res_n: list[np.ndarray] = []
    tri_totals = np.zeros((len(triangles), 2), np.int64)
    with (
        _StripOutputs(out_dir, sgrid, len(dates), len(ifgs), write_residuals, closure_tags,
                      float(abs(refpoint.phase_to_displacement(np.ones(1), wavelength)[0][0]))
                      ) as outputs,  # fmt: skip
        _BlockReader(ifgs, ref_vals, mask, weighting=weighting, censor=censor,
                     looks=correlation_looks, threshold=correlation_threshold, ramps=ramps,
                     shape=grid.shape) as reader,
    ):  # fmt: skip
        blocks = list(iter_blocks(sgrid.shape, block_shape))
        wins = [Window(w.col_off, w.row_off + r0, w.width, w.height) for w in blocks]
        max_it = 0
        for k, (swin, (flat, weights, m)) in enumerate(
            zip(blocks, read_ahead(reader.read, wins), strict=True)
        ):
            x, res, n_used, n_it = _solve_block(
                a, pairs, flat, weights, method=method, single=single,
                l1_tolerance=l1_tolerance, l1_max_iterations=l1_max_iterations, threads=threads,
            )  # fmt: skip
            max_it = max(max_it, n_it)
            disp, _ = refpoint.phase_to_displacement(x, wavelength)
            closure = _closure_block(flat, triangles, m, tri_totals)
            n_flagged += _n_flagged(closure)
            finite = np.isfinite(res)
            res_ss.append(np.sum(np.square(res), axis=1, where=finite))
            res_n.append(np.count_nonzero(finite, axis=1))
            outputs.write(swin, disp, res, n_used, m, closure)
            log.info(
                "block %d/%d done%s", k + 1, len(blocks),
                f" (iterations <= {max_it})" if method == "L1" else "",
            )  # fmt: skip
    log.info("%d pixels with at least one non-zero closure", n_flagged)
    write_strip_stats(out_dir, ifgs, res_ss, res_n, triangles, tri_totals)


#: The strips' scene sums (CSV), summed over the strips by the gather.
STRIP_STATS = {"ifgs": "ifg_stats.csv", "triangles": "triangle_stats.csv"}


def write_strip_stats(
    out_dir: Path, ifgs: Sequence[Ifg], res_ss: Sequence[np.ndarray],
    res_n: Sequence[np.ndarray], triangles: np.ndarray, tri_totals: np.ndarray,
) -> None:
    """A strip's per-block, per-ifg residual sums and per-triangle closure counts."""
    import pandas as pd

    from sarstack.io import write_csv

    n_ifg = len(ifgs)
    write_csv(out_dir / STRIP_STATS["ifgs"], pd.DataFrame({
        "block": np.repeat(np.arange(len(res_ss)), n_ifg), "ifg": np.tile(np.arange(n_ifg), len(res_ss)),
        "res_ss_rad2": np.concatenate(res_ss) if res_ss else np.zeros(0),
        "n_px": np.concatenate(res_n) if res_n else np.zeros(0, np.int64)}))  # fmt: skip
    tri = np.asarray(triangles, np.int64).reshape(-1, 3)
    write_csv(out_dir / STRIP_STATS["triangles"], pd.DataFrame(
        {"ifg_a": tri[:, 0], "ifg_b": tri[:, 1], "ifg_c": tri[:, 2],
         "nonzero_px": tri_totals[:, 0], "measured_px": tri_totals[:, 1]}))  # fmt: skip


def gather_stats(strips: Sequence[str | Path], ifgs: Sequence[Ifg], out_dir: str | Path) -> None:
    """The strips' scene sums as two tables in ``out_dir``: ``ifg_residuals.csv``
    (per ifg: its dates, RMS residual over the scene in radians and the
    pixels behind it) and ``closure_triangles.csv`` (per triangle: its three
    ifgs, pixels with a non-zero closure, measurable pixels and their ratio)."""
    import pandas as pd

    from sarstack.io import write_csv

    paths = [Path(d) for d in strips]
    blocks = pd.concat([pd.read_csv(d / STRIP_STATS["ifgs"]) for d in paths], ignore_index=True)
    ss, n = np.zeros(len(ifgs)), np.zeros(len(ifgs), np.int64)
    for k, g in blocks.groupby("ifg", sort=True):  # block order: the same sums for every N
        for v in g["res_ss_rad2"].to_numpy(float):
            ss[int(k)] += v
        n[int(k)] = int(g["n_px"].sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(ss / n)
    keys = [f"{i.reference.isoformat()}_{i.secondary.isoformat()}" for i in ifgs]
    write_csv(Path(out_dir) / "ifg_residuals.csv", pd.DataFrame({
        "reference_date": [i.reference.isoformat() for i in ifgs],
        "secondary_date": [i.secondary.isoformat() for i in ifgs],
        "residual_rms_rad": rms, "n_px": n}))  # fmt: skip
    tri = [pd.read_csv(d / STRIP_STATS["triangles"]) for d in paths]
    t = pd.DataFrame({col: [keys[k] for k in tri[0][col]] for col in ("ifg_a", "ifg_b", "ifg_c")})
    t["nonzero_px"] = np.sum([x["nonzero_px"].to_numpy(np.int64) for x in tri], axis=0)
    t["measured_px"] = np.sum([x["measured_px"].to_numpy(np.int64) for x in tri], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["fraction_nonzero"] = t["nonzero_px"] / t["measured_px"]
    write_csv(Path(out_dir) / "closure_triangles.csv", t)


class _BlockReader:
    """The inversion's inputs for one window: referenced phase, weights, mask.

    Holds every ifg (and companion) open while the strip is inverted
    (:class:`sarstack.io.StackReader`); ``read(window)`` returns the phase
    ``(n_ifg, pixels)`` in float64 minus each ifg's reference value (NaN where
    nodata or masked), the weights (None unless correlation-weighted or
    conncomp-censored) and the mask of the window (None without one).
    """

    def __init__(
        self,
        ifgs: Sequence[Ifg],
        ref_vals: np.ndarray,
        mask: str | Path | None,
        *,
        weighting: str,
        censor: bool,
        looks: float,
        threshold: float,
        ramps: tuple[str, np.ndarray] | None = None,
        shape: tuple[int, int] | None = None,
    ) -> None:
        self.ifgs = list(ifgs)
        self.ref_vals = ref_vals
        self.ramps = ramps
        self.shape = shape
        self.mask = mask
        self.weighting = weighting
        self.censor = censor
        self.looks = looks
        self.threshold = threshold
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _BlockReader:
        with self._stack as st:
            self.phase = st.enter_context(StackReader([i.path for i in self.ifgs]))
            self.cor = (st.enter_context(StackReader([i.need("correlation") for i in self.ifgs]))
                        if self.weighting == "correlation" else None)  # fmt: skip
            self.cc = (st.enter_context(StackReader([i.need("conncomp") for i in self.ifgs],
                                                    nan_nodata=False))
                       if self.censor else None)  # fmt: skip
            self._stack = st.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read(self, win: Window) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        from sarstack import timeseries as ts  # JAX: imported by the stages that solve

        n = len(self.ifgs)
        phase = self.phase.read(win).astype(np.float64)
        if self.ramps is not None and self.shape is not None:
            from sarstack import deramp

            phase -= deramp.evaluate(self.ramps[1], win, self.shape, self.ramps[0])
        phase -= self.ref_vals[:, None, None]
        m = read_mask(self.mask, win)
        if m is not None:
            phase[:, ~m] = np.nan
        flat = phase.reshape(n, -1)
        if self.cor is None and self.cc is None:
            return flat, None, m
        weights = np.ones_like(flat)
        if self.cor is not None:
            cor = self.cor.read(win)
            for p, layer in zip(self.cor.paths, cor, strict=True):
                check_range(layer, p, 0.0, 1.0, "correlation")
            weights = ts.correlation_weights(cor.reshape(flat.shape), self.looks, self.threshold)
        if self.cc is not None:
            weights = weights * (self.cc.read(win).reshape(flat.shape) != 0)
        return flat, weights, m


def ifg_residual_std(res: np.ndarray, n_dates: int, units_per_rad: float = 1.0) -> np.ndarray:
    """Per pixel, the interferograms' noise that the network's redundancy
    reveals: ``units_per_rad * sqrt(sum r^2 / (m - n_dates + 1))`` over the ``m``
    finite residuals ``r`` (radians) of the pixel's ifgs; NaN where
    ``m <= n_dates - 1`` (no redundancy: the noise is invisible there).

    ``units_per_rad`` converts radians to the time series' units (``abs`` of
    :func:`sarstack.refpoint.phase_to_displacement` of 1). The velocity stage
    propagates it through the network (``insar.velocity_uncertainty``).
    """
    used = np.isfinite(res)
    m = np.count_nonzero(used, axis=0)
    sq = np.square(res, dtype=np.float64)
    ss = np.sum(sq, axis=0, where=used)
    del sq
    dof = m - (n_dates - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dof > 0, abs(units_per_rad) * np.sqrt(ss / np.maximum(dof, 1)), np.nan)


class _StripOutputs:
    """The strip rasters of :func:`invert_strip` (:data:`STRIP_FILES`), open
    for the strip; ``write(window, disp, res, n_used, mask)`` writes one block
    of every output, residual sum and temporal coherence derived here."""

    def __init__(
        self, out_dir: str | Path, grid: Grid, n_dates: int, n_ifgs: int, residuals: bool,
        closure_tags: dict[str, str], disp_scale: float = 1.0,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.grid = grid
        self.closure_tags = closure_tags
        self.n_dates = n_dates
        self.disp_scale = disp_scale
        self.counts = {"timeseries": n_dates - 1, "residual_sum": 1, "ifg_residual_std": 1,
                       "temporal_coherence": 1}  # fmt: skip
        if residuals:
            self.counts["residuals"] = n_ifgs
        self._stack = contextlib.ExitStack()
        self.w: dict[str, RasterWriter] = {}

    def __enter__(self) -> _StripOutputs:
        with self._stack as st:
            for name, count in self.counts.items():
                self.w[name] = st.enter_context(self._writer(name, count))
            self.w["n_ifgs_used"] = st.enter_context(
                self._writer("n_ifgs_used", 1, dtype="uint16", nodata=COUNT_NODATA)
            )
            self.w["closure_nonzero_count"] = st.enter_context(
                self._writer("closure_nonzero_count", 1, dtype="uint16", nodata=COUNT_NODATA,
                             tags=self.closure_tags)
            )  # fmt: skip
            self._stack = st.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)  # type: ignore[arg-type]

    def _writer(self, name: str, count: int, **kw: object) -> RasterWriter:
        return RasterWriter(self.out_dir / STRIP_FILES[name], self.grid, count=count, cog=False,
                            **kw)  # type: ignore[arg-type]  # fmt: skip

    def write(
        self,
        win: Window,
        disp: np.ndarray,
        res: np.ndarray,
        n_used: np.ndarray,
        mask: np.ndarray | None,
        closure: np.ndarray,
    ) -> None:
        from sarstack import timeseries as ts  # JAX: imported by the stages that solve

        shape = (int(win.height), int(win.width))
        self.w["timeseries"].write(disp.reshape(-1, *shape).astype(np.float32), win)
        if "residuals" in self.w:
            self.w["residuals"].write(res.reshape(-1, *shape).astype(np.float32), win)
        used = np.isfinite(res)
        # A sum over the finite rows: the same sum as nansum, without its copy.
        absres = np.abs(res)
        total = np.where(used.any(axis=0), np.sum(absres, axis=0, where=~np.isnan(absres)), np.nan)
        del absres
        self.w["residual_sum"].write(total.reshape(shape).astype(np.float32), win)
        self.w["ifg_residual_std"].write(
            ifg_residual_std(res, self.n_dates, self.disp_scale).reshape(shape).astype(np.float32),
            win,
        )
        # From the residuals as written (float32): float32 sine and cosine are
        # SIMD and 5x faster than float64 ones; the coherence, itself float32,
        # differs from the float64 one by < 1e-5 (test_insar_workflow).
        coh = ts.temporal_coherence(res.astype(np.float32)).reshape(shape)
        self.w["temporal_coherence"].write(coh, win)
        count = n_used.reshape(shape).astype(np.uint16)
        if mask is not None:
            count[~mask] = COUNT_NODATA
        self.w["n_ifgs_used"].write(count, win)
        self.w["closure_nonzero_count"].write(closure.reshape(shape), win)


def describe_method(method: str, weighting: str, censor: bool) -> str:
    """Human-readable inversion method, e.g. ``"L1, conncomp-censored"``."""
    return (
        f"{method}"
        + (", correlation-weighted" if weighting == "correlation" else "")
        + (", conncomp-censored" if censor else "")
    )


def gather_strips(
    strip_dirs: Sequence[str | Path],
    ifgs: Sequence[Ifg],
    dates: Sequence[dt.date],
    ref_rc: tuple[int, int],
    out_dir: str | Path,
    *,
    wavelength: float | None,
    how: str,
    block_shape: Sequence[int],
    threads: int = 1,
    coherence_mask: float | None = None,
    min_region_px: int | None = None,
) -> pd.DataFrame:
    """Assemble the strips of :func:`invert_strip` (in row order) into the final COGs.

    Writes ``timeseries/{first}_{date}.tif``, ``residuals/{ref}_{sec}.tif``
    (when the strips have residuals), ``residual_sum.tif``,
    ``temporal_coherence.tif`` and ``n_ifgs_used.tif`` under ``out_dir``;
    returns the time-series index table. Streams block by block; ``threads``
    rasters are written side by side (GDAL's reads, compression and COG
    layout release the GIL; each file is the same whatever the count).

    With ``coherence_mask`` also writes ``mask.tif`` (uint8, 1 = kept):
    temporal coherence at least ``coherence_mask``, minus 8-connected regions
    of fewer than ``min_region_px`` kept pixels (the reference point's region
    is always kept); every output but ``temporal_coherence.tif`` (the
    quantity the mask is made from) is nodata where the mask is 0. The mask
    is held whole, one byte per pixel (the region sizes need the scene).
    """
    out_dir = Path(out_dir)
    strips = [Path(d) for d in strip_dirs]
    grid = read_grid(ifgs[0].path)
    first = dates[0]
    r, c = ref_rc
    _, units = refpoint.phase_to_displacement(np.zeros(1), wavelength)
    common = {"reference_point": f"{r},{c}", "method": how}
    span = _date_tags(first, dates[-1], **common)
    disp_q = "line-of-sight displacement, positive towards the radar"
    ts_paths = [out_dir / "timeseries" / f"{first:%Y%m%d}_{d:%Y%m%d}.tif" for d in dates[1:]]
    # (strip file, band) -> (final path, units, tags, writer options)
    outputs: list[tuple[str, int, Path, str, dict, dict]] = [
        ("timeseries", b + 1, p, units, _date_tags(first, d, **common, quantity=disp_q), {})
        for b, (p, d) in enumerate(zip(ts_paths, dates[1:], strict=True))
    ]
    if (strips[0] / STRIP_FILES["residuals"]).exists():
        outputs += [
            ("residuals", b + 1, out_dir / "residuals" / f"{i.key}.tif", "radians",
             _date_tags(i.reference, i.secondary, **common,
                        quantity="network residual (ifg - model)"), {})
            for b, i in enumerate(ifgs)
        ]  # fmt: skip
    outputs += [
        ("residual_sum", 1, out_dir / "residual_sum.tif", "radians", span, {}),
        ("ifg_residual_std", 1, out_dir / "ifg_residual_std.tif", units,
         {**span, "quantity": "interferogram noise from the network residuals: "
          "sqrt(sum r^2 / (ifgs used - dates + 1))"}, {}),
        ("temporal_coherence", 1, out_dir / "temporal_coherence.tif", "1",
         {**span, "quantity": "temporal coherence |mean exp(j residual)| of used ifgs"}, {}),
        ("n_ifgs_used", 1, out_dir / "n_ifgs_used.tif", "count",
         {**span, "quantity": "ifgs used"}, {"dtype": "uint16", "nodata": COUNT_NODATA}),
    ]  # fmt: skip
    closure_strip = strips[0] / STRIP_FILES["closure_nonzero_count"]
    if closure_strip.exists():
        with open_raster(closure_strip) as ds:
            closure_tags = {k: v for k, v in ds.tags().items() if k != "units"}
        outputs.append(("closure_nonzero_count", 1, out_dir / "closure_nonzero_count.tif",
                        "count", closure_tags, {"dtype": "uint16", "nodata": COUNT_NODATA}))
    offsets = []
    r0 = 0
    for d in strips:
        offsets.append(r0)
        r0 += read_grid(d / STRIP_FILES["residual_sum"]).height
    if r0 != grid.height:
        raise SarstackError(f"{strips[0].parent}: strips cover {r0} of {grid.height} rows")
    keep = None
    if coherence_mask is not None:
        keep = _coherence_mask(strips, offsets, grid, ref_rc, coherence_mask, min_region_px,
                               block_shape)  # fmt: skip
        mask_tags = {**span, "quantity": f"1 = kept: temporal coherence >= {coherence_mask:g}"
                     + (f", regions >= {min_region_px} px" if min_region_px else "")}
        with RasterWriter(out_dir / "mask.tif", grid, dtype="uint8", nodata=None, units="1",
                          tags=mask_tags) as w:  # fmt: skip
            for win in iter_blocks(grid.shape, block_shape):
                w.write(_window_of(keep, win).astype(np.uint8), win)
        log.info("mask: %d of %d pixels kept (temporal coherence >= %g%s)", int(keep.sum()),
                 keep.size, coherence_mask,
                 f", regions >= {min_region_px} px" if min_region_px else "")  # fmt: skip

    def assemble(name: str, band: int, path: Path, u: str, tags: dict, kw: dict) -> None:
        # Not masked: the quantity the mask is made from, and the closure
        # diagnostic (a property of the inputs, not of the solution).
        masked = keep is not None and name not in ("temporal_coherence", "closure_nonzero_count")
        # The per-date and per-ifg stacks are COGs without overviews: overviews
        # were 3/4 of the gather's time (0.10 of 0.13 s per 1024^2 raster) for
        # files that are read block-wise, not browsed; single rasters keep them.
        kw = {"overviews": name not in PER_ITEM_OUTPUTS, **kw}
        with RasterWriter(path, grid, units=u, tags=tags, **kw) as w:
            for d, off in zip(strips, offsets, strict=True):
                src = d / STRIP_FILES[name]
                with open_raster(src) as ds:
                    for win in iter_blocks((ds.height, ds.width), block_shape):
                        out_win = Window(win.col_off, win.row_off + off, win.width, win.height)
                        data = ds.read(band, window=win)
                        if masked and keep is not None:
                            drop = ~_window_of(keep, out_win)
                            data[drop] = COUNT_NODATA if data.dtype == np.uint16 else np.nan
                        w.write(data, out_win)

    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            for fut in [pool.submit(assemble, *o) for o in outputs]:
                fut.result()  # re-raise the first failure
    else:
        for o in outputs:
            assemble(*o)
    log.info("gathered %d strips into %d rasters", len(strips), len(outputs))
    import pandas as pd

    return pd.DataFrame(
        {"date": [d.isoformat() for d in dates[1:]], "path": [str(p) for p in ts_paths],
         "units": units}
    )  # fmt: skip


def _window_of(full: np.ndarray, win: Window) -> np.ndarray:
    return full[win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width]


def _coherence_mask(
    strip_dirs: Sequence[Path],
    offsets: Sequence[int],
    grid: Grid,
    ref_rc: tuple[int, int],
    threshold: float,
    min_region_px: int | None,
    block_shape: Sequence[int],
) -> np.ndarray:
    """Whole-scene bool mask from the strips' temporal coherence (see :func:`gather_strips`)."""
    keep = np.zeros(grid.shape, bool)
    for d, off in zip(strip_dirs, offsets, strict=True):
        with open_raster(d / STRIP_FILES["temporal_coherence"]) as ds:
            for win in iter_blocks((ds.height, ds.width), block_shape):
                tc = ds.read(1, window=win)
                with np.errstate(invalid="ignore"):
                    _window_of(keep, Window(win.col_off, win.row_off + off, win.width,
                                            win.height))[:] = tc >= threshold  # fmt: skip
    if min_region_px and min_region_px > 1:
        from scipy import ndimage

        labels, _ = ndimage.label(keep, structure=np.ones((3, 3), bool))
        sizes = np.bincount(labels.ravel())
        small = sizes < min_region_px
        small[0] = False
        ref_label = labels[ref_rc]
        if ref_label:
            small[ref_label] = False
        keep &= ~small[labels]
    return keep


def velocity_files(
    index: pd.DataFrame,
    first: dt.date,
    out_velocity: str | Path,
    out_std: str | Path,
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    weight_ifgs: Sequence[Ifg] | None = None,
    model: svel.DeformationModel | None = None,
    out_dir: str | Path | None = None,
    uncertainty: str = "correlated",
    ifg_noise: tuple[Sequence[tuple[int, int]], str | Path] | None = None,
) -> str:
    """Per-pixel linear velocity (units per year, 365.25 d) of the time series,
    the first date's zero included; writes velocity and its standard error.

    The standard errors follow ``uncertainty`` (``insar.velocity_uncertainty``,
    :data:`sarstack.velocity.UNCERTAINTY_METHODS`); with ``ifg_noise =
    (pairs, ifg_residual_std.tif)`` (the network over the series' dates and
    the inversion's noise raster) ``"correlated"`` adds the interferograms'
    noise propagated through the network (:class:`sarstack.velocity.NetworkNoise`).

    With ``weight_ifgs`` (ifgs with correlation rasters) each date is weighted
    by the mean correlation of the interferograms that contain it.

    With a ``model`` beyond the line (:class:`sarstack.velocity.DeformationModel`
    with annual, semiannual or steps) the fit is :func:`sarstack.velocity.fit_model`
    (each pixel on its finite dates, weighted as above with ``weight_ifgs``):
    velocity and its standard error still go to ``out_velocity`` and
    ``out_std``, every other output of the model to ``{out_dir}/{name}.tif``
    (``out_dir`` default: the folder of ``out_velocity``), ``name`` from
    :meth:`~sarstack.velocity.DeformationModel.output_names` (e.g.
    ``annual_amplitude.tif``, ``annual_phase_std.tif``, ``step_20200301.tif``).
    Without a model, or with the linear one, the result is the plain linear
    fit of :func:`sarstack.velocity.velocity` / ``velocity_weighted``; a
    pixel with NaN dates (cut off from the network there) is fitted on its
    other dates.

    Returns the velocity units, e.g. ``"radians/year"``.
    """
    dates = [first] + [dt.date.fromisoformat(d) for d in index["date"]]
    t = sdates.years_since(dates)
    paths = list(index["path"])
    units = str(index["units"].iloc[0])
    grid = read_grid(paths[0])
    vunits = f"{units}/year"
    quantity = "linear LOS velocity, positive towards the radar"
    if weight_ifgs is not None:
        if not all(i.correlation for i in weight_ifgs):
            raise SarstackError("insar.velocity_weighting: 'correlation' needs insar.correlation")
        quantity += ", dates weighted by mean correlation"
        date_index = {d: k for k, d in enumerate(dates)}
    svel.check_uncertainty(uncertainty)
    date_cov = None
    if ifg_noise is not None and uncertainty == "correlated":
        date_cov = _network_date_cov(ifg_noise[0], len(dates))
    noise_reader = (
        StackReader([ifg_noise[1]]) if date_cov is not None and ifg_noise is not None
        else contextlib.nullcontext()
    )  # fmt: skip

    def network(src: Any, win: Window) -> svel.NetworkNoise | None:
        if date_cov is None:
            return None
        return svel.NetworkNoise(date_cov, src.read_one(0, win).astype(np.float64).reshape(-1) ** 2)

    std_q = f"standard error of the velocity ({_UNCERTAINTY_TAG[uncertainty]})"
    if model is not None and not model.is_linear:
        try:
            model.check(dates)
        except SarstackError as e:
            raise svel.model_error(e) from None
        out_dir = Path(out_velocity).parent if out_dir is None else Path(out_dir)
        paths_out = {"velocity": Path(out_velocity), "velocity_std": Path(out_std)}
        with noise_reader as src:
            _model_files(paths, dates, grid, units, model, paths_out, out_dir, block_shape,
                         weight_ifgs, uncertainty, lambda win: network(src, win))  # fmt: skip
        return vunits
    tags = _date_tags(dates[0], dates[-1], quantity=quantity)
    with (
        RasterWriter(out_velocity, grid, units=vunits, tags=tags) as wv,
        RasterWriter(out_std, grid, units=vunits, tags={**tags, "quantity": std_q}) as ws,
        StackReader(paths) as series,
        _correlation_reader(weight_ifgs) as cors,
        noise_reader as noise,
    ):
        for win in iter_blocks(grid.shape, block_shape):
            y = np.concatenate([np.zeros((1, win.height, win.width)), series.read(win)])
            shape = y.shape[1:]
            flat = y.reshape(len(dates), -1).astype(np.float64)
            net = network(noise, win)
            if weight_ifgs is None:
                v, s = svel.velocity(flat, t, uncertainty=uncertainty, network=net)[:2]
                # Dates cut off from the network at some pixels (NaN there):
                # those pixels are fitted on their other dates, the same line.
                part = np.isnan(flat).any(axis=0) & np.isfinite(flat).any(axis=0)
                if part.any():
                    sub = flat[:, part]
                    sub_net = None if net is None else net._replace(noise_var=net.noise_var[part])
                    v[part], s[part] = svel.velocity_weighted(
                        sub, t, np.isfinite(sub) * 1.0, uncertainty=uncertainty, network=sub_net
                    )
            else:
                v, s = svel.velocity_weighted(
                    flat, t, _correlation_date_weights(weight_ifgs, cors, date_index, win, flat.shape),
                    uncertainty=uncertainty, network=net,
                )  # fmt: skip
            wv.write(np.asarray(v).reshape(shape).astype(np.float32), win)
            ws.write(np.asarray(s).reshape(shape).astype(np.float32), win)
    return vunits


#: How each ``insar.velocity_uncertainty`` is described in the standard errors' tags.
_UNCERTAINTY_TAG = {
    "correlated": "residuals correlated from date to date (AR(1)), plus the interferograms' "
    "noise through the network",
    "white": "independent residuals",
}


def _network_date_cov(pairs: Sequence[tuple[int, int]], n_dates: int) -> np.ndarray | None:
    """``(A^T A)^-1`` of the network over ``n_dates`` (None, with a warning, when
    the network does not determine every date: no network term then)."""
    a = sdates.incidence_matrix(pairs, n_dates)
    ata = a.T @ a
    if np.linalg.matrix_rank(ata) < n_dates - 1:
        log.warning("insar.velocity_uncertainty: the network does not connect every date; "
                    "the interferograms' noise is not propagated into the standard errors")
        return None
    return np.linalg.inv(ata)


def _correlation_reader(weight_ifgs: Sequence[Ifg] | None) -> contextlib.AbstractContextManager:
    """The correlation rasters of ``weight_ifgs`` held open (a no-op context without them)."""
    if weight_ifgs is None:
        return contextlib.nullcontext()
    return StackReader([i.need("correlation") for i in weight_ifgs])


def _correlation_date_weights(
    weight_ifgs: Sequence[Ifg],
    cors: StackReader,
    date_index: dict[dt.date, int],
    win: Window,
    shape: tuple,
) -> np.ndarray:
    """``(n_dates, n_pixels)`` mean correlation of the ifgs that contain each date."""
    acc = np.zeros(shape)
    n = np.zeros(shape)
    for k, i in enumerate(weight_ifgs):
        cor = np.nan_to_num(cors.read_one(k, win).reshape(-1), nan=0.0)
        for d in (i.reference, i.secondary):
            acc[date_index[d]] += cor
            n[date_index[d]] += 1
    return acc / np.maximum(n, 1)


#: Quantity tag of each kind of output of the deformation model.
_MODEL_QUANTITY = {
    "velocity": "LOS velocity, positive towards the radar",
    "amplitude": "amplitude of the {} LOS displacement sinusoid",
    "phase": "day of year of the peak of the {} LOS displacement sinusoid (1.0: 1 January)",
    "step": "LOS displacement step on {}, positive towards the radar",
}


def _model_files(
    paths: Sequence[str],
    dates: Sequence[dt.date],
    grid: Grid,
    units: str,
    model: svel.DeformationModel,
    paths_out: dict[str, Path],
    out_dir: Path,
    block_shape: Sequence[int],
    weight_ifgs: Sequence[Ifg] | None,
    uncertainty: str,
    network: Callable[[Window], svel.NetworkNoise | None],
) -> None:
    """Block-wise :func:`sarstack.velocity.fit_model`, one COG per output (see velocity_files)."""
    span = (dates[-1] - dates[0]).days / sdates.DAYS_PER_YEAR
    for name, on, period in (("annual", model.annual, 1.0), ("semiannual", model.semiannual, 0.5)):
        if on and span < period:
            log.warning("insar.velocity_model.%s: the series spans %.2f years, less than one"
                        " period: the %s terms are poorly constrained", name, span, name)
    date_index = {d: k for k, d in enumerate(dates)}
    how = f"fit {model.describe()}" + (
        ", dates weighted by mean correlation" if weight_ifgs is not None else ""
    )
    tags = _date_tags(dates[0], dates[-1], model=how)
    std_how = _UNCERTAINTY_TAG[uncertainty]

    def quantity(name: str) -> str:
        base = name.removesuffix("_std")
        if base == "velocity":
            q = _MODEL_QUANTITY["velocity"]
        elif base.startswith("step_"):
            q = _MODEL_QUANTITY["step"].format(dt.datetime.strptime(base[5:], "%Y%m%d").date())
        else:
            term, kind = base.split("_")
            q = _MODEL_QUANTITY[kind].format(term)
        return f"standard error of the {q} ({std_how})" if name.endswith("_std") else q

    with contextlib.ExitStack() as stack:
        writers = {
            name: stack.enter_context(
                RasterWriter(
                    paths_out.get(name, out_dir / f"{name}.tif"), grid,
                    units=svel.output_units(name, units), tags={**tags, "quantity": quantity(name)},
                )
            )
            for name in model.output_names()
        }  # fmt: skip
        series = stack.enter_context(StackReader(paths))
        cors = stack.enter_context(_correlation_reader(weight_ifgs))
        for win in iter_blocks(grid.shape, block_shape):
            y = np.concatenate([np.zeros((1, win.height, win.width)), series.read(win)])
            flat = y.reshape(len(dates), -1).astype(np.float64)
            w = (
                None
                if weight_ifgs is None
                else _correlation_date_weights(weight_ifgs, cors, date_index, win, flat.shape)
            )
            out = svel.fit_model(flat, dates, model, weights=w, uncertainty=uncertainty,
                                 network=network(win))  # fmt: skip
            for name, wr in writers.items():
                wr.write(out[name].reshape(y.shape[1:]).astype(np.float32), win)


def check_range(block: np.ndarray, path: str | Path, lo: float, hi: float, what: str) -> None:
    """Raise naming the file when a finite value of ``block`` is outside ``[lo, hi]``."""
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(block) & ((block < lo - 1e-6) | (block > hi + 1e-6))
    if bad.any():
        v = float(block[bad].flat[0])
        raise SarstackError(f"{path}: {what} value {v:g} outside [{lo:g}, {hi:g}]")


def temporal_average(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    units: str | None = None,
    mask: str | Path | None = None,
    valid_range: tuple[float, float] | None = None,
) -> None:
    """NaN-aware per-pixel mean of a stack of rasters on one grid (e.g. mean correlation).

    With ``valid_range`` a value outside it is an error naming the file
    (e.g. a correlation above 1 is not a correlation).
    """
    grid = read_grid(paths[0])
    for p in paths[1:]:
        if not read_grid(p).same_as(grid):
            raise SarstackError(f"{p}: not on the grid of {Path(paths[0]).name}")
    check_mask_grid(mask, grid, paths[0])
    with RasterWriter(
        out, grid, units=units, tags={"quantity": f"temporal mean of {len(paths)} rasters"}
    ) as w, StackReader(paths) as stack:
        for win in iter_blocks(grid.shape, block_shape):
            acc = np.zeros((win.height, win.width))
            n = np.zeros((win.height, win.width), np.int32)
            for k, p in enumerate(paths):
                b = stack.read_one(k, win)
                if valid_range is not None:
                    check_range(b, p, *valid_range, "correlation")
                ok = np.isfinite(b)
                acc[ok] += b[ok]
                n += ok
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(n > 0, acc / n, np.nan)
            m = read_mask(mask, win)
            if m is not None:
                mean[~m] = np.nan
            w.write(mean.astype(np.float32), win)


def conncomp_count(
    ifgs: Sequence[Ifg],
    dates: Sequence[dt.date],
    out: str | Path,
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    mask: str | Path | None = None,
) -> None:
    """Per date, the number of interferograms with that date whose conncomp
    label is non-zero at each pixel (uint16, one band per date; masked
    pixels get the nodata value 65535)."""
    if not all(i.conncomp for i in ifgs):
        raise SarstackError("insar.conncomp: a conncomp raster is needed for every ifg")
    grid = read_grid(ifgs[0].need("conncomp"))
    check_mask_grid(mask, grid, ifgs[0].need("conncomp"))
    with RasterWriter(
        out,
        grid,
        count=len(dates),
        dtype="uint16",
        nodata=COUNT_NODATA,
        units="count",
        tags=_date_tags(dates[0], dates[-1]),
        descriptions=[d.isoformat() for d in dates],
    ) as w, StackReader([i.need("conncomp") for i in ifgs], nan_nodata=False) as ccs:
        index = {d: k for k, d in enumerate(dates)}
        for win in iter_blocks(grid.shape, block_shape):
            counts = np.zeros((len(dates), win.height, win.width), np.uint16)
            for k, i in enumerate(ifgs):
                good = ccs.read_one(k, win) != 0
                counts[index[i.reference]] += good
                counts[index[i.secondary]] += good
            m = read_mask(mask, win)
            if m is not None:
                counts[:, ~m] = COUNT_NODATA
            w.write(counts, win)


def closure_count(
    ifgs: Sequence[Ifg],
    pairs: Sequence[tuple[int, int]],
    out: str | Path,
    *,
    ref_rc: tuple[int, int],
    reference_window: int = 1,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    mask: str | Path | None = None,
) -> int:
    """Per pixel, the number of network triangles whose phase closure is farther than pi from zero.

    The unwrapping-error indicator of MintPy (``numTriNonzeroIntAmbiguity``).
    The phase is first referenced as for the inversion (each ifg minus
    :func:`reference_phase` at ``ref_rc``), so the closure is 0 at the
    reference point. A triangle with nodata in any of its three ifgs is not
    counted.

    Writes a uint16 raster (units ``count``, nodata :data:`COUNT_NODATA`):
    nodata where masked (mask 0) and where no triangle is measurable. A
    network without triangles (sequential, single-reference) is logged as a
    warning; the raster is then 0 wherever a pixel is valid in at least one
    ifg (and not masked).

    Returns
    -------
    int
        The number of triangles.
    """
    from sarstack import closure as sclosure

    if len(pairs) != len(ifgs):
        raise SarstackError(f"{len(ifgs)} interferograms but {len(pairs)} pairs")
    triangles = sclosure.network_triangles(pairs)
    n_tri = len(triangles)
    _log_triangles(n_tri, len(ifgs))
    grid = read_grid(ifgs[0].path)
    check_mask_grid(mask, grid, ifgs[0].path)
    ref_vals = reference_phase(ifgs, ref_rc, reference_window)
    first = min(i.reference for i in ifgs)
    last = max(i.secondary for i in ifgs)
    tags = _closure_tags(first, last, n_tri, ref_rc, reference_window)
    n_flagged = 0
    with RasterWriter(
        out, grid, dtype="uint16", nodata=COUNT_NODATA, units="count", tags=tags
    ) as w, StackReader([i.path for i in ifgs]) as stack:
        wins = list(iter_blocks(grid.shape, block_shape))
        for win, block in zip(wins, read_ahead(stack.read, wins), strict=True):
            phase = block.astype(np.float64)
            phase -= ref_vals[:, None, None]
            count = _closure_block(phase, triangles, read_mask(mask, win))
            n_flagged += _n_flagged(count)
            w.write(count, win)
    log.info("%d pixels with at least one non-zero closure", n_flagged)
    return n_tri


def _closure_tags(
    first: dt.date, last: dt.date, n_tri: int, ref_rc: tuple[int, int], reference_window: int
) -> dict[str, str]:
    r, c = ref_rc
    return _date_tags(
        first, last, triangles=str(n_tri), reference_point=f"{r},{c}",
        reference_window=str(reference_window),
        quantity="triangles with |ifg_ij + ifg_jk - ifg_ik| > pi (unwrapping errors)",
    )  # fmt: skip


def _closure_block(
    phase: np.ndarray, triangles: np.ndarray, mask: np.ndarray | None,
    totals: np.ndarray | None = None,
) -> np.ndarray:
    """The closure count raster of one block of referenced phase ``(n_ifg, ...)``:
    nodata where no triangle is measurable (without triangles: where no ifg has
    data) and where ``mask`` is 0."""
    from sarstack import closure as sclosure

    nonzero, measured = sclosure.closure_counts(phase, triangles, totals=totals)
    count = nonzero.copy()
    if len(triangles):
        count[measured == 0] = COUNT_NODATA
    else:
        count[~np.isfinite(phase).any(axis=0)] = COUNT_NODATA
    if mask is not None:
        count[~mask.reshape(count.shape)] = COUNT_NODATA
    return count


def _n_flagged(count: np.ndarray) -> int:
    return int(((count > 0) & (count != COUNT_NODATA)).sum())


def _log_triangles(n_tri: int, n_ifgs: int) -> None:
    if n_tri:
        log.info("%d triangles in the network of %d interferograms", n_tri, n_ifgs)
    else:
        log.warning(
            "the network of %d interferograms has no triangle (e.g. sequential or"
            " single-reference): no closure to check, the count is 0 wherever there is data",
            n_ifgs,
        )


def rereference_files(
    index: pd.DataFrame,
    first: dt.date,
    new_ref: dt.date,
    out_dir: str | Path,
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
) -> pd.DataFrame:
    """Re-reference the time series to ``new_ref`` (an acquisition date): for
    every later date, displacement(date) − displacement(new_ref), written as
    ``{new_ref}_{date}.tif``. Returns the new index table."""
    dates = [dt.date.fromisoformat(d) for d in index["date"]]
    paths = dict(zip(dates, index["path"], strict=True))
    units = str(index["units"].iloc[0])
    if new_ref != first and new_ref not in paths:
        raise SarstackError(f"insar.extra_reference_date: {new_ref} is not an acquisition date")
    later = [d for d in dates if d > new_ref]
    if not later:
        raise SarstackError(f"insar.extra_reference_date: no acquisition after {new_ref}")
    grid = read_grid(paths[later[0]])
    out_dir = Path(out_dir)
    out_paths = [out_dir / f"{new_ref:%Y%m%d}_{d:%Y%m%d}.tif" for d in later]
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(
                RasterWriter(
                    p,
                    grid,
                    units=units,
                    tags=_date_tags(
                        new_ref,
                        d,
                        quantity="line-of-sight displacement, positive towards the radar",
                        reference_date=new_ref.isoformat(),
                    ),
                )
            )
            for p, d in zip(out_paths, later, strict=True)
        ]
        series = stack.enter_context(StackReader([paths[d] for d in later]))
        base_in = None if new_ref == first else stack.enter_context(StackReader([paths[new_ref]]))
        for win in iter_blocks(grid.shape, block_shape):
            base = (
                np.zeros((win.height, win.width)) if base_in is None else base_in.read_one(0, win)
            )
            for k, w in enumerate(writers):
                w.write((series.read_one(k, win) - base).astype(np.float32), win)
    import pandas as pd

    return pd.DataFrame(
        {
            "date": [d.isoformat() for d in later],
            "path": [str(p) for p in out_paths],
            "units": units,
        }
    )


def nearest_date(dates: Sequence[dt.date], wanted: dt.date) -> dt.date:
    """The acquisition nearest to ``wanted`` (earlier one on a tie)."""
    return min(dates, key=lambda d: (abs((d - wanted).days), d))

"""The reference point: its candidates, the phase there, the mask, and
re-referencing finished rasters to another point."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rasterio.windows import Window

from sarstack import dates as sdates
from sarstack import refpoint, stagefiles
from sarstack.errors import SarstackError
from sarstack.insar.common import _date_tags
from sarstack.insar.select import Ifg
from sarstack.io import (
    Grid,
    RasterWriter,
    StackReader,
    process_blocks,
    read_band,
    read_grid,
)

if TYPE_CHECKING:
    from sarstack.stagefiles import SeriesIndex
    from sarstack.troposphere import IfgDelays
    from sarstack.unwrap import IfgAmbiguities

log = logging.getLogger(__package__)


#: The reader of ``reference_point.txt``, :func:`sarstack.stagefiles.read_reference_point`,
#: by its older name.
read_reference_point = stagefiles.read_reference_point


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
    mask: str | Path | None,
    quality: str | Path | None,
    block_shape: Sequence[int],
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

        def scan_block(win: Window) -> None:
            nonlocal mask_any
            mask_any |= _reference_block(win, phase, ccs, mask, quality, valid, cc_all, qual,
                                         has_data, has_cc)  # fmt: skip

        process_blocks(grid.shape, block_shape, scan_block, band_rows=phase.tile_rows)
    if not has_data.all():
        raise SarstackError(f"{ifgs[int(np.argmin(has_data))].path}: no valid pixel (all nodata)")
    if mask is not None and not mask_any:
        raise SarstackError(f"{mask}: insar.mask is 0 everywhere (0 = bad pixel)")
    if cc_all is not None and not has_cc.all():
        bad = ifgs[int(np.argmin(has_cc))].conncomp
        raise SarstackError(f"{bad}: conncomp label is 0 (unreliable) everywhere")
    return valid, qual, cc_all


def phase_roughness(
    ifgs: Sequence[Ifg], grid: Grid, *, block_shape: Sequence[int]
) -> np.ndarray:
    """:func:`sarstack.refpoint.gradient_rate` of the interferograms, block by
    block (each block read with a one-pixel halo, so the result does not
    depend on the block size); radians per pixel per year, float32."""
    years = np.array([(i.secondary - i.reference).days / sdates.DAYS_PER_YEAR for i in ifgs])
    out = np.full(grid.shape, np.nan, np.float32)
    rows, cols = grid.shape
    with StackReader([i.path for i in ifgs]) as phase:
        def roughness_block(win: Window) -> None:
            r0, c0 = max(0, win.row_off - 1), max(0, win.col_off - 1)
            r1 = min(rows, win.row_off + win.height + 1)
            c1 = min(cols, win.col_off + win.width + 1)
            g = refpoint.gradient_rate(phase.read(Window(c0, r0, c1 - c0, r1 - r0)), years)
            dr, dc = win.row_off - r0, win.col_off - c0
            out[win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width] = (
                g[dr : dr + win.height, dc : dc + win.width]
            )

        process_blocks(grid.shape, block_shape, roughness_block, band_rows=phase.tile_rows)
    return out


def reference_phase(
    ifgs: Sequence[Ifg],
    ref_rc: tuple[int, int],
    window: int,
    ramps: tuple[str, np.ndarray] | None = None,
    troposphere: IfgDelays | None = None,
    unwrap: IfgAmbiguities | None = None,
    reader: StackReader | None = None,
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
    troposphere
        :class:`sarstack.troposphere.IfgDelays`: each ifg's delay difference
        is removed from the window's values first (an error names the delay
        rasters when they have no value at the point).
    unwrap
        :class:`sarstack.unwrap.IfgAmbiguities`: each ifg's ``2 pi U`` is
        added to the window's values first (the phase the inversion reads).
    reader
        The ifgs already held open (:class:`sarstack.io.StackReader` of their
        paths, in order): the same values without opening every file again.

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
    delays = troposphere.read(win) if troposphere is not None else None
    cycles = unwrap.read(win) if unwrap is not None else None
    for k, i in enumerate(ifgs):
        vals = (read_band(i.path, win) if reader is None else reader.read_one(k, win)).astype(np.float64)
        if cycles is not None:
            vals += cycles[k]
        if ramps is not None:
            vals -= surfaces[k]
        if not np.isfinite(vals[r - r0, c - c0]):
            raise SarstackError(f"reference point [{r}, {c}] is nodata in {i.path}")
        if delays is not None and troposphere is not None:
            if not np.isfinite(delays[k, r - r0, c - c0]):
                raise SarstackError(
                    f"reference point [{r}, {c}] has no troposphere delay in "
                    f"{troposphere.source(k)} (insar.troposphere.delays do not cover it; "
                    "choose insar.reference_point inside them)"
                )
            vals -= delays[k]
        out[k] = np.nanmedian(vals)
    return out


def point_valid_everywhere(
    ifgs: Sequence[Ifg], grid: Grid, rc: Sequence[int], *, mask: str | Path | None
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


def rereference_files(
    index: SeriesIndex,
    first: dt.date,
    new_ref: dt.date,
    out_dir: str | Path,
    *,
    block_shape: Sequence[int],
) -> dict[str, list[str]]:
    """Re-reference the time series to ``new_ref`` (an acquisition date): for
    every later date, displacement(date) − displacement(new_ref), written as
    ``{new_ref}_{date}.tif``. Returns the new index table."""
    dates = [dt.date.fromisoformat(d) for d in index["date"]]
    paths = dict(zip(dates, index["path"], strict=True))
    units = str(list(index["units"])[0])
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

        def rereference_block(win: Window) -> None:
            base = (
                np.zeros((win.height, win.width)) if base_in is None else base_in.read_one(0, win)
            )
            for k, w in enumerate(writers):
                w.write((series.read_one(k, win) - base).astype(np.float32), win)

        process_blocks(grid.shape, block_shape, rereference_block)
    return {
        "date": [d.isoformat() for d in later],
        "path": [str(p) for p in out_paths],
        "units": [units] * len(later),
    }


def nearest_date(dates: Sequence[dt.date], wanted: dt.date) -> dt.date:
    """The acquisition nearest to ``wanted`` (earlier one on a tie)."""
    return min(dates, key=lambda d: (abs((d - wanted).days), d))

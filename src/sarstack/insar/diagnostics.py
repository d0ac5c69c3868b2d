"""Stack diagnostics from the inputs: temporal averages, conncomp counts and
the triplet-closure count."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from sarstack.errors import SarstackError
from sarstack.insar.common import COUNT_NODATA, _date_tags, check_range
from sarstack.insar.reference import check_mask_grid, read_mask, reference_phase
from sarstack.insar.select import Ifg
from sarstack.io import (
    RasterWriter,
    StackReader,
    process_blocks,
    read_grid,
)

log = logging.getLogger(__package__)


def temporal_average(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    block_shape: Sequence[int],
    units: str | None = None,
    mask: str | Path | None,
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
        def mean_block(win: Window) -> None:
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

        process_blocks(grid.shape, block_shape, mean_block, band_rows=stack.tile_rows)


def conncomp_count(
    ifgs: Sequence[Ifg],
    dates: Sequence[dt.date],
    out: str | Path,
    *,
    block_shape: Sequence[int],
    mask: str | Path | None,
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

        def count_block(win: Window) -> None:
            counts = np.zeros((len(dates), win.height, win.width), np.uint16)
            for k, i in enumerate(ifgs):
                good = ccs.read_one(k, win) != 0
                counts[index[i.reference]] += good
                counts[index[i.secondary]] += good
            m = read_mask(mask, win)
            if m is not None:
                counts[:, ~m] = COUNT_NODATA
            w.write(counts, win)

        process_blocks(grid.shape, block_shape, count_block, band_rows=ccs.tile_rows)


def closure_count(
    ifgs: Sequence[Ifg],
    pairs: Sequence[tuple[int, int]],
    out: str | Path,
    *,
    ref_rc: tuple[int, int],
    reference_window: int,
    block_shape: Sequence[int],
    mask: str | Path | None,
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

        def closure_block(win: Window, block: np.ndarray) -> np.ndarray:
            nonlocal n_flagged
            phase = block.astype(np.float64)
            phase -= ref_vals[:, None, None]
            count = _closure_block(phase, triangles, read_mask(mask, win))
            n_flagged += _n_flagged(count)
            return count

        process_blocks(grid.shape, block_shape, closure_block, read=stack.read, writers=[w],
                       prefetch=True, band_rows=stack.tile_rows)  # fmt: skip
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
    totals: np.ndarray | None = None, complete: bool | None = None,
) -> np.ndarray:
    """The closure count raster of one block of referenced phase ``(n_ifg, ...)``:
    nodata where no triangle is measurable (without triangles: where no ifg has
    data) and where ``mask`` is 0. ``complete``: as :func:`closure_counts`."""
    from sarstack import closure as sclosure

    nonzero, measured = sclosure.closure_counts(phase, triangles, totals=totals, complete=complete)
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

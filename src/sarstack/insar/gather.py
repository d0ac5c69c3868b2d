"""insar_gather: assemble the strips into the final COGs and the strips' scene
sums into the per-ifg and per-triangle tables."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from sarstack import refpoint
from sarstack.errors import SarstackError
from sarstack.insar import outputs as spec
from sarstack.insar.common import COUNT_NODATA, _date_tags
from sarstack.insar.invert import STRIP_STATS
from sarstack.insar.outputs import OUTPUTS_BY_NAME, InversionOutput
from sarstack.insar.select import Ifg
from sarstack.io import (
    Grid,
    RasterWriter,
    open_raster,
    process_blocks,
    read_grid,
)

if TYPE_CHECKING:
    from sarstack.stagefiles import SeriesIndex

log = logging.getLogger(__package__)


def gather_stats(strips: Sequence[str | Path], ifgs: Sequence[Ifg], out_dir: str | Path) -> None:
    """The strips' scene sums as two tables in ``out_dir``: ``ifg_residuals.csv``
    (per ifg: its dates, RMS residual over the scene in radians and the
    pixels behind it) and ``closure_triangles.csv`` (per triangle: its three
    ifgs, pixels with a non-zero closure, measurable pixels and their ratio)."""
    from sarstack.atomic import write_columns

    paths = [Path(d) for d in strips]
    # The strips' per-block sums, strip after strip (block order): each ifg's
    # sum taken in that order, the same sums for every N. Read without pandas.
    blocks = [_read_columns(d / STRIP_STATS["ifgs"]) for d in paths]
    ifg = np.concatenate([b["ifg"].astype(np.int64) for b in blocks])
    res_ss = np.concatenate([_floats(b["res_ss_rad2"]) for b in blocks])
    n_px = np.concatenate([b["n_px"].astype(np.int64) for b in blocks])
    ss, n = np.zeros(len(ifgs)), np.zeros(len(ifgs), np.int64)
    for k, v, c in zip(ifg.tolist(), res_ss.tolist(), n_px.tolist(), strict=True):
        ss[k] += v
        n[k] += c
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(ss / n)
    keys = [f"{i.reference.isoformat()}_{i.secondary.isoformat()}" for i in ifgs]
    write_columns(Path(out_dir) / "ifg_residuals.csv", {
        "reference_date": [i.reference.isoformat() for i in ifgs],
        "secondary_date": [i.secondary.isoformat() for i in ifgs],
        "residual_rms_rad": rms, "n_px": n})  # fmt: skip
    tri = [_read_columns(d / STRIP_STATS["triangles"]) for d in paths]
    t: dict[str, Any] = {col: [keys[int(k)] for k in tri[0][col]]
                         for col in ("ifg_a", "ifg_b", "ifg_c")}  # fmt: skip
    t["nonzero_px"] = np.sum([x["nonzero_px"].astype(np.int64) for x in tri], axis=0, dtype=np.int64)
    t["measured_px"] = np.sum([x["measured_px"].astype(np.int64) for x in tri], axis=0, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["fraction_nonzero"] = t["nonzero_px"] / t["measured_px"]
    write_columns(Path(out_dir) / "closure_triangles.csv", t)


def _read_columns(path: Path) -> dict[str, np.ndarray]:
    """A strip's table (:func:`sarstack.insar.invert.write_strip_stats`), each
    column as an array of its text."""
    from sarstack.atomic import read_columns

    return {k: np.asarray(v, dtype=str) for k, v in read_columns(path).items()}


def _floats(text: np.ndarray) -> np.ndarray:
    """Numbers written by :func:`sarstack.atomic.write_columns` (NaN as an empty field)."""
    return np.array([float(x) if x else np.nan for x in text.tolist()], dtype=np.float64)


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
    coherence_mask: float | None,
    min_region_px: int | None,
    compress_series: bool,
) -> SeriesIndex:
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
    # (output, band) -> (final path, units, tags); the outputs the strips hold
    outputs: list[tuple[InversionOutput, int, Path, str, dict]] = [
        (o, b + 1, path, units if o.units == "displacement" else o.units, tags)
        for o in spec.INVERSION_OUTPUTS if (strips[0] / o.strip_file).exists()
        for b, (path, tags) in enumerate(_gathered_files(o, out_dir, strips[0], dates, ifgs,
                                                         common, span))
    ]  # fmt: skip
    ts_paths = [p for o, _, p, _, _ in outputs if o.name == "timeseries"]
    offsets = _strip_offsets(strips, grid)
    keep = None
    if coherence_mask is not None:
        keep = _coherence_mask(strips, offsets, grid, ref_rc, coherence_mask, min_region_px,
                               block_shape)  # fmt: skip
        _write_mask(out_dir / "mask.tif", keep, grid, span, coherence_mask, min_region_px,
                    block_shape)  # fmt: skip

    def assemble(o: InversionOutput, band: int, path: Path, u: str, tags: dict) -> None:
        # Not masked (o.masked False): the quantity the mask is made from, and
        # the closure diagnostic (a property of the inputs, not of the solution).
        masked = keep is not None and o.masked
        # The per-date and per-ifg stacks are COGs without overviews: overviews
        # were 3/4 of the gather's time (0.10 of 0.13 s per 1024^2 raster) for
        # files that are read block-wise, not browsed; single rasters keep them.
        # Their tiles are compressed only with ``compress_series``
        # (insar.compress_series: float32 displacement compresses 1.05-1.2x).
        kw = {"overviews": o.per == "pixel", "compress": o.per == "pixel" or compress_series,
              **o.writer_options()}  # fmt: skip
        if not masked and GATHER_BY_MOSAIC:
            _mosaic(o, band, path, u, tags, grid, strips, offsets, bool(kw["compress"]))
            return
        with RasterWriter(path, grid, units=u, tags=tags, **kw) as w:  # type: ignore[arg-type]
            for d, off in zip(strips, offsets, strict=True):
                _copy_strip(d / o.strip_file, band, w, off, keep if masked else None, block_shape)

    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            for fut in [pool.submit(assemble, *o) for o in outputs]:
                fut.result()  # re-raise the first failure
    else:
        for o in outputs:
            assemble(*o)
    log.info("gathered %d strips into %d rasters", len(strips), len(outputs))
    return {"date": [d.isoformat() for d in dates[1:]], "path": [str(p) for p in ts_paths],
            "units": [units] * len(ts_paths)}  # fmt: skip


def _gathered_files(
    o: InversionOutput, out_dir: Path, first_strip: Path, dates: Sequence[dt.date],
    ifgs: Sequence[Ifg], common: dict[str, str], span: dict[str, str],
) -> list[tuple[Path, dict[str, str]]]:  # fmt: skip
    """The final file of each band of ``o`` with its tags."""
    first = dates[0]
    q = {} if o.quantity is None else {"quantity": o.quantity}
    if o.per == "date":
        return [(out_dir / o.final / f"{first:%Y%m%d}_{d:%Y%m%d}.tif",
                 _date_tags(first, d, **common, **q)) for d in dates[1:]]  # fmt: skip
    if o.per == "ifg":
        return [(out_dir / o.final / f"{i.key}.tif",
                 _date_tags(i.reference, i.secondary, **common, **q)) for i in ifgs]  # fmt: skip
    if o.tags_from_strip:
        with open_raster(first_strip / o.strip_file) as ds:
            return [(out_dir / o.final, {k: v for k, v in ds.tags().items() if k != "units"})]
    return [(out_dir / o.final, {**span, **q})]


def _strip_offsets(strips: Sequence[Path], grid: Grid) -> list[int]:
    """Each strip's first row in the whole raster; the strips must cover it."""
    offsets, r0 = [], 0
    for d in strips:
        offsets.append(r0)
        r0 += read_grid(d / OUTPUTS_BY_NAME["residual_sum"].strip_file).height
    if r0 != grid.height:
        raise SarstackError(f"{strips[0].parent}: strips cover {r0} of {grid.height} rows")
    return offsets


def _write_mask(
    path: Path, keep: np.ndarray, grid: Grid, span: dict[str, str], threshold: float,
    min_region_px: int | None, block_shape: Sequence[int],
) -> None:  # fmt: skip
    """``mask.tif`` (uint8, 1 = kept) from the whole scene's mask."""
    regions = f", regions >= {min_region_px} px" if min_region_px else ""
    tags = {**span, "quantity": f"1 = kept: temporal coherence >= {threshold:g}" + regions}
    with RasterWriter(path, grid, dtype="uint8", nodata=None, units="1", tags=tags) as w:
        process_blocks(grid.shape, block_shape, lambda win: _window_of(keep, win).astype(np.uint8),
                       writers=[w])  # fmt: skip
    log.info("mask: %d of %d pixels kept (temporal coherence >= %g%s)", int(keep.sum()),
             keep.size, threshold, regions)  # fmt: skip


def _window_of(full: np.ndarray, win: Window) -> np.ndarray:
    return full[win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width]


#: The gather's unmasked rasters are COG copies of a VRT of the strips' band
#: (:func:`sarstack.cog.mosaic_cog`): ``gather_strips`` alone, four alternating
#: runs, 2048² x 60 dates in two strips 1.86-3.09 -> 1.36-1.60 s, 1024² in one
#: 0.76-0.97 -> 0.50-0.56 s.
#: False: through a RasterWriter, block by block (the same files; the masked
#: rasters always go that way).
GATHER_BY_MOSAIC = True


def _mosaic(
    o: InversionOutput, band: int, path: Path, units: str, tags: dict, grid: Grid,
    strips: Sequence[Path], offsets: Sequence[int], compress: bool,
) -> None:  # fmt: skip
    """Band ``band`` of the strips' ``o`` as it is, copied to the COG ``path``
    through a VRT: the same file as through a RasterWriter (tested), without
    its staging copy."""
    from sarstack.cog import BandPiece, mosaic_cog

    heights = [*np.diff(offsets), grid.height - offsets[-1]]
    pieces = [BandPiece(d / o.strip_file, band, off, int(h))
              for d, off, h in zip(strips, offsets, heights, strict=True)]  # fmt: skip
    mosaic_cog(path, grid, pieces, units=units, tags=tags, compress=compress,
               overviews=o.per == "pixel", **o.writer_options())  # type: ignore[arg-type]  # fmt: skip


#: Pixels per piece of a strip band copied by the gather (4 MB of float32).
COPY_PX = 1 << 20


def _copy_strip(
    src: Path, band: int, w: RasterWriter, off: int, keep: np.ndarray | None,
    block_shape: Sequence[int],
) -> None:  # fmt: skip
    """Band ``band`` of a strip file into the gathered raster from row ``off`` on,
    nodata where ``keep`` (the whole scene's mask) is False. Copied in
    full-width pieces of whole ``block_shape`` rows, about :data:`COPY_PX`
    pixels each (a plain copy: any piece gives the same raster, in fewer
    reads and writes than ``block_shape``'s blocks)."""
    with open_raster(src) as ds:
        rows = int(block_shape[0]) * max(1, COPY_PX // max(1, int(block_shape[0]) * ds.width))

        def piece(win: Window, data: np.ndarray) -> np.ndarray:
            if keep is not None:
                drop = ~_window_of(keep, Window(win.col_off, win.row_off + off, win.width,
                                                win.height))  # fmt: skip
                data[drop] = COUNT_NODATA if data.dtype == np.uint16 else np.nan
            return data

        process_blocks((ds.height, ds.width), (rows, ds.width), piece,
                       read=lambda win: ds.read(band, window=win), writers=[w], offset=(off, 0))  # fmt: skip


def _threshold_strip(
    src: Path, off: int, keep: np.ndarray, threshold: float, block_shape: Sequence[int]
) -> None:
    """``keep`` (the whole scene) from row ``off`` on: the strip's temporal
    coherence ``src`` at least ``threshold``."""
    with open_raster(src) as ds:

        def mark(win: Window, tc: np.ndarray) -> None:
            with np.errstate(invalid="ignore"):
                _window_of(keep, Window(win.col_off, win.row_off + off, win.width,
                                        win.height))[:] = tc >= threshold  # fmt: skip

        process_blocks((ds.height, ds.width), block_shape, mark,
                       read=lambda win: ds.read(1, window=win))  # fmt: skip


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
        _threshold_strip(d / OUTPUTS_BY_NAME["temporal_coherence"].strip_file, off, keep,
                         threshold, block_shape)  # fmt: skip
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

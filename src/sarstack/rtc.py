"""RTC geolocation-stability kernels: scene selection, the union grid, outlier
flattening, the tile layout, per-tile offsets in metres and their aggregates.

Everything here is pure (arrays and small records in, arrays and DataFrames
out) except :func:`superset_scene` and :func:`flatten_scene`, which stream a
raster block by block through :mod:`sarstack.io`.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from sarstack import dates as sdates
from sarstack.errors import SarstackError
from sarstack.io import (
    DEFAULT_BLOCK,
    Grid,
    RasterWriter,
    StackReader,
    atomic_output,
    iter_blocks,
    open_raster,
    read_band,
    read_grid,
)

if TYPE_CHECKING:  # pandas is imported where tables are built: stages without tables start faster
    import pandas as pd

log = logging.getLogger(__name__)

class TileStatus(str, enum.Enum):
    """Status of a tile measurement (tiles.csv ``status``), in the order they are checked."""

    OK = "ok"
    TOO_MANY_NAN = "too_many_nan"
    LOW_CORRELATION = "low_correlation"
    SHIFT_TOO_LARGE = "shift_too_large"


# The statuses as the plain strings stored in tables and files.
STATUS_OK = TileStatus.OK.value
STATUS_NAN = TileStatus.TOO_MANY_NAN.value
STATUS_LOWCORR = TileStatus.LOW_CORRELATION.value
STATUS_LARGE = TileStatus.SHIFT_TOO_LARGE.value


# --------------------------------------------------------------------------- select


@dataclass(frozen=True)
class Scene:
    """One acquisition: its date and file."""

    date: dt.date
    path: Path


def find_scenes(pattern: str) -> list[Path]:
    """Files matching a recursive glob (``**`` allowed), sorted by path."""
    from sarstack import storage

    return [Path(p) for p in storage.glob_files(pattern)]


def select_scenes(paths: Sequence[str | Path], pattern: str = "") -> list[Scene]:
    """Date every file, sort chronologically (as dates, never as strings).
    ``pattern`` (the glob the paths came from) is named in the errors.

    Raises
    ------
    SarstackError
        No files, a single file, an undated name or two scenes of one date.
    """
    if not paths:
        raise SarstackError(f"no files match {pattern!r}")
    scenes = [Scene(sdates.parse_scene_date(p), Path(p)) for p in paths]
    sdates.check_unique([s.date for s in scenes], [s.path for s in scenes])
    scenes.sort(key=lambda s: s.date)
    if len(scenes) < 2:
        raise SarstackError(
            f"only one scene ({scenes[0].path}) matches {pattern!r}; need at least 2"
        )
    return scenes


def _bounds_in(grids: Sequence[Grid], crs: object) -> np.ndarray:
    """``(n, 4)`` left, bottom, right, top of each grid in ``crs``; NaN where the
    bounds cannot be transformed (e.g. far outside the CRS's area of use)."""
    out = np.full((len(grids), 4), np.nan)
    for k, g in enumerate(grids):
        b = g.bounds
        if g.crs != crs:
            try:
                b = rasterio.warp.transform_bounds(g.crs, crs, *b, densify_pts=21)
            except Exception:  # noqa: BLE001 - any failure: the footprint cannot be placed
                continue
        out[k] = b
    out[~np.isfinite(out).all(axis=1)] = np.nan
    return out


def misplaced_scenes(grids: Sequence[Grid], names: Sequence[str | Path]) -> list[int]:
    """Indices of the scenes whose footprint lies off the stack's majority footprint.

    A scene belongs to the stack when its bounds overlap (with a positive
    area) those of more than half of the scenes, itself included; the others
    are misplaced (e.g. a wrong geotransform that puts the scene 1,000 km
    away). Bounds are compared in the CRS most scenes share. Nothing is read
    but the grids: this runs before any union grid is built.

    Raises
    ------
    SarstackError
        No scene overlaps more than half of the stack (no majority footprint,
        e.g. two scenes that do not overlap), naming two scenes apart.
    """
    n = len(grids)
    crs_counts: dict[object, int] = {}
    for g in grids:
        crs_counts[g.crs] = crs_counts.get(g.crs, 0) + 1
    crs = max(crs_counts, key=lambda c: crs_counts[c])
    b = _bounds_in(grids, crs)
    left, bottom, right, top = (b[:, k] for k in range(4))
    with np.errstate(invalid="ignore"):
        overlap = (
            (np.minimum(right[:, None], right[None, :]) > np.maximum(left[:, None], left[None, :]))
            & (np.minimum(top[:, None], top[None, :]) > np.maximum(bottom[:, None], bottom[None, :]))
        )
    count = overlap.sum(axis=1)
    good = 2 * count > n
    if not good.any():
        i = int(np.argmax(count))
        j = int(np.flatnonzero(~overlap[i])[0])
        raise SarstackError(
            f"{names[i]} and {names[j]} do not overlap, and no footprint is shared by more "
            f"than half of the {n} scenes: a stack's scenes must cover the same area"
        )
    return [int(k) for k in np.flatnonzero(~good)]


def misplaced_message(grid: Grid, name: str | Path, grids: Sequence[Grid]) -> str:
    """One line on a misplaced scene: its bounds and how far it lies from the stack."""
    b = grid.bounds
    others = _bounds_in(grids, grid.crs)
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    ox = np.nanmedian((others[:, 0] + others[:, 2]) / 2)
    oy = np.nanmedian((others[:, 1] + others[:, 3]) / 2)
    far = (f", {math.hypot(cx - ox, cy - oy) / 1000:.0f} km from the stack's centre"
           if np.isfinite(ox) and np.isfinite(oy) and grid.crs is not None
           and grid.crs.is_projected else "")  # fmt: skip
    return (
        f"{name}: footprint ({b[0]:.10g}, {b[1]:.10g}, {b[2]:.10g}, {b[3]:.10g}) does not overlap "
        f"the footprint most scenes of the stack share{far} (a wrong geotransform?)"
    )


#: The union grid may be at most this many times the largest scene in each
#: dimension. Scenes that each overlap most of the stack stay within 3 times.
MAX_UNION_FACTOR = 4.0


def check_union_size(
    union: Grid, grids: Sequence[Grid], names: Sequence[str | Path], factor: float = MAX_UNION_FACTOR
) -> None:
    """Raise, naming the scenes at its far edges, when the union grid is more than
    ``factor`` times the largest scene (in the union's pixels) in either dimension."""
    b = _bounds_in(grids, union.crs)
    px, py = union.pixel_size
    widths, heights = (b[:, 2] - b[:, 0]) / px, (b[:, 3] - b[:, 1]) / py
    for size, largest, lo, hi, what in (
        (union.width, np.nanmax(widths), b[:, 0], b[:, 2], "wide"),
        (union.height, np.nanmax(heights), b[:, 1], b[:, 3], "tall"),
    ):
        if size > factor * largest:
            a, z = int(np.nanargmin(lo)), int(np.nanargmax(hi))
            raise SarstackError(
                f"the union grid would be {union.height} x {union.width} px, {size / largest:.1f} "
                f"times as {what} as the largest scene (at most {factor:g}): {names[a]} and "
                f"{names[z]} lie that far apart (a wrong geotransform?)"
            )


# --------------------------------------------------------------------------- superset


def union_grid(grids: Sequence[Grid]) -> Grid:
    """Union of all scenes' bounds on the first scene's pixel grid and CRS.

    The first grid's origin and pixel size define the lattice; the union box
    is snapped outwards to it. Grids in another CRS contribute their bounds
    transformed into the first CRS.
    """
    first = grids[0]
    t = first.transform
    if t.b != 0 or t.d != 0:
        raise SarstackError("superset: rotated geotransforms are not supported")
    lefts, bottoms, rights, tops = [], [], [], []
    for g in grids:
        b = g.bounds
        if g.crs != first.crs:
            b = rasterio.warp.transform_bounds(g.crs, first.crs, *b, densify_pts=21)
        lefts.append(b[0])
        bottoms.append(b[1])
        rights.append(b[2])
        tops.append(b[3])
    # Column/row indices of the union box on the first lattice (snap outwards).
    eps = 1e-6
    c0 = math.floor((min(lefts) - t.c) / t.a + eps)
    c1 = math.ceil((max(rights) - t.c) / t.a - eps)
    if t.e < 0:
        r0 = math.floor((max(tops) - t.f) / t.e + eps)
        r1 = math.ceil((min(bottoms) - t.f) / t.e - eps)
    else:
        r0 = math.floor((min(bottoms) - t.f) / t.e + eps)
        r1 = math.ceil((max(tops) - t.f) / t.e - eps)
    transform = t @ Affine.translation(c0, r0)
    return Grid(first.crs, transform, int(c1 - c0), int(r1 - r0))


def grid_offset(src: Grid, dst: Grid, tol: float = 1e-3) -> tuple[int, int] | None:
    """Integer (row, col) position of ``src``'s origin on ``dst``'s lattice.

    None when ``src`` is not on that lattice (other CRS, pixel size, rotation
    or a fractional origin offset), in which case it must be resampled.
    """
    if src.crs != dst.crs:
        return None
    s, d = src.transform, dst.transform
    if not np.allclose([s.a, s.b, s.d, s.e], [d.a, d.b, d.d, d.e], rtol=1e-9, atol=1e-12):
        return None
    col = (s.c - d.c) / d.a
    row = (s.f - d.f) / d.e
    if abs(col - round(col)) > tol or abs(row - round(row)) > tol:
        return None
    return int(round(row)), int(round(col))


def superset_scene(
    src_path: str | Path,
    dst_path: str | Path,
    grid: Grid,
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    resampling: str = "bilinear",
    tags: dict[str, str] | None = None,
    fill: float | None = None,
) -> str:
    """Place one scene on the union grid, block by block; nodata → NaN.

    A scene already on the grid's lattice is padded with NaN (never
    resampled: resampling would itself shift it). Any other scene is
    reprojected with ``resampling``. ``fill`` is a value that is nodata
    beside the file's own nodata tag (:func:`detect_fill`, or ``rtc.nodata``).
    Returns ``"padded"`` or ``"reprojected"``.
    """
    src_grid = read_grid(src_path)
    off = grid_offset(src_grid, grid)
    mode = "padded" if off is not None else "reprojected"
    with open_raster(src_path) as ds, RasterWriter(
        dst_path, grid, units="linear power", tags=tags
    ) as out:
        nodatas = _nodata_values(ds.nodata, fill)
        src_nodata = nodatas[0] if len(nodatas) == 1 else ds.nodata
        source: object = rasterio.band(ds, 1)
        reproject_kw: dict[str, object] = {}
        if off is None and len(nodatas) > 1:
            # Two nodata values: GDAL's warper takes one, so both become NaN in memory first.
            arr = ds.read(1).astype(np.float32)
            arr[np.isin(arr, nodatas)] = np.nan
            source, src_nodata = arr, np.nan
            reproject_kw = {"src_transform": ds.transform, "src_crs": ds.crs}
        for win in iter_blocks(grid.shape, block_shape):
            block = np.full((int(win.height), int(win.width)), np.nan, dtype=np.float32)
            if off is not None:
                r0 = int(win.row_off) - off[0]
                c0 = int(win.col_off) - off[1]
                rr0, cc0 = max(r0, 0), max(c0, 0)
                rr1 = min(r0 + int(win.height), src_grid.height)
                cc1 = min(c0 + int(win.width), src_grid.width)
                if rr1 > rr0 and cc1 > cc0:
                    sub = ds.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0)).astype(
                        np.float32
                    )
                    sub[np.isin(sub, nodatas)] = np.nan
                    block[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = sub
            else:
                rasterio.warp.reproject(
                    source=source,
                    destination=block,
                    src_nodata=src_nodata,
                    **reproject_kw,
                    dst_transform=rasterio.windows.transform(win, grid.transform),
                    dst_crs=grid.crs,
                    dst_nodata=np.nan,
                    resampling=Resampling[resampling],
                )
            block[~np.isfinite(block)] = np.nan
            out.write(block, win)
    return mode


def _nodata_values(declared: float | None, fill: float | None) -> list[float]:
    """The distinct non-NaN nodata values of a scene: its tag and a fill value."""
    out: list[float] = []
    for v in (declared, fill):
        if v is not None and not np.isnan(v) and float(v) not in out:
            out.append(float(v))
    return out


def vrt_possible(src_path: str | Path, fill: float | None) -> bool:
    """Whether one VRT source can carry the scene's nodata (a VRT source has one value)."""
    with open_raster(src_path) as ds:
        return len(_nodata_values(ds.nodata, fill)) <= 1


def superset_vrt(
    src_path: str | Path, dst_path: str | Path, grid: Grid, fill: float | None = None
) -> None:
    """Write a VRT that places a scene already on the union grid's lattice.

    Nothing is copied or resampled: the VRT pads the scene with NaN to the
    union grid and maps the scene's own nodata value (if any), or ``fill``,
    to NaN, so readers see exactly the padded float32 raster a superset copy
    would hold. A scene with both a nodata tag and another ``fill`` value
    needs :func:`superset_scene` (see :func:`vrt_possible`).
    """
    from xml.sax.saxutils import escape

    src_grid = read_grid(src_path)
    off = grid_offset(src_grid, grid)
    if off is None:
        raise SarstackError(f"{src_path}: not on the union grid's pixel lattice (needs reprojection)")
    with open_raster(src_path) as ds:
        nodatas = _nodata_values(ds.nodata, fill)
    if len(nodatas) > 1:
        raise SarstackError(f"{src_path}: two nodata values {nodatas}; a VRT holds one")
    row0, col0 = off
    srs = f"  <SRS>{escape(grid.crs.to_wkt())}</SRS>\n" if grid.crs else ""
    nd = f"      <NODATA>{nodatas[0]!r}</NODATA>\n" if nodatas else ""
    gt = ", ".join(repr(float(v)) for v in grid.transform.to_gdal())
    src_abs = escape(str(Path(src_path).resolve()))
    xml = (
        f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">\n'
        f"{srs}"
        f"  <GeoTransform>{gt}</GeoTransform>\n"
        '  <VRTRasterBand dataType="Float32" band="1">\n'
        "    <NoDataValue>nan</NoDataValue>\n"
        "    <ComplexSource>\n"
        f'      <SourceFilename relativeToVRT="0">{src_abs}</SourceFilename>\n'
        "      <SourceBand>1</SourceBand>\n"
        f'      <SrcRect xOff="0" yOff="0" xSize="{src_grid.width}" ySize="{src_grid.height}"/>\n'
        f'      <DstRect xOff="{col0}" yOff="{row0}" xSize="{src_grid.width}" '
        f'ySize="{src_grid.height}"/>\n'
        f"{nd}"
        "    </ComplexSource>\n"
        "  </VRTRasterBand>\n"
        "</VRTDataset>\n"
    )
    from sarstack.io import write_text

    write_text(dst_path, xml)


# --------------------------------------------------------------------------- fill values

#: A repeated extreme value is fill (undeclared nodata) when it covers more
#: than this fraction of a scene's valid pixels (in the decimated read).
FILL_MIN_FRACTION = 0.001
#: Longer side of the decimated read that :func:`detect_fill` looks at.
FILL_READ_SIDE = 1024
#: dB values at or below this are no backscatter (1e-10 in linear power).
DB_FLOOR = -100.0


def detect_fill(path: str | Path, scale: str = "power") -> tuple[float | None, float]:
    """An undeclared fill value of a scene: ``(value, fraction)``, or ``(None, 0)``.

    Cheap: one decimated read (an overview where the file has them; longer
    side :data:`FILL_READ_SIDE`). The declared nodata, NaN and values beyond
    :data:`FILL_ABS` are left out; the smallest remaining value is fill when
    it repeats exactly over more than :data:`FILL_MIN_FRACTION` of the
    pixels (not all of them) and cannot be backscatter: ≤ 0 in linear power or amplitude
    (−9999, −32768, 0 borders), ≤ :data:`DB_FLOOR` in dB. Real backscatter
    is continuous: its smallest value does not repeat.
    """
    with open_raster(path) as ds:
        f = max(1, math.ceil(max(ds.height, ds.width) / FILL_READ_SIDE))
        shape = (max(1, math.ceil(ds.height / f)), max(1, math.ceil(ds.width / f)))
        try:
            v = ds.read(1, out_shape=shape, resampling=Resampling.nearest).ravel()
        except Exception as e:  # noqa: BLE001 - rasterio raises several types on bad data
            raise SarstackError(f"{path}: cannot read band 1 ({e})") from None
        nodata = ds.nodata
    with np.errstate(invalid="ignore"):
        ok = np.abs(v.astype(np.float64)) < FILL_ABS  # False for NaN
    if nodata is not None and not np.isnan(nodata):
        ok &= v != nodata
    v = v[ok]
    if v.size == 0:
        return None, 0.0
    lo = v.min()
    n = int(np.count_nonzero(v == lo))
    fraction = n / v.size
    impossible = lo <= 0 if scale in ("power", "amplitude") else lo <= DB_FLOOR
    # A value covering the whole scene is not told from data here (a constant
    # negative scene is more likely dB read as power: flatten_stats says so).
    if n < 2 or not FILL_MIN_FRACTION < fraction < 1.0 or not impossible:
        return None, 0.0
    return float(lo), fraction


def scene_fill(
    path: str | Path, scale: str, nodata: float | None = None, name: str | Path | None = None
) -> float | None:
    """The value read as nodata beside the file's tag: ``nodata`` (``rtc.nodata``)
    when given, else :func:`detect_fill`'s, with a warning naming the file."""
    if nodata is not None:
        return float(nodata)
    value, fraction = detect_fill(path, scale)
    if value is not None:
        log.warning("%s: value %g covers %.1f %% of the scene without a nodata tag: read as "
                    "nodata (undeclared fill; set rtc.nodata to declare it)",
                    name or path, value, 100 * fraction)  # fmt: skip
    return value


# --------------------------------------------------------------------------- flatten


def sample_valid(
    path: str | Path,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    max_samples: int = 4_000_000,
    *,
    scale: str | None = None,
    name: str | Path | None = None,
    coarse: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Valid (finite) values of a raster, streamed by block.

    Exact when the raster has at most ``max_samples`` pixels; otherwise a
    regular pixel stride keeps the sample near ``max_samples`` so that memory
    follows that bound, not the scene size. With ``scale`` the values are read
    as a scene (:func:`read_scene`: fill values ≥ :data:`FILL_ABS` are nodata,
    with a warning naming ``name``; converted to linear power).

    With a list ``coarse`` (and ``scale``), the same pass also appends the
    scene decimated for :func:`coarse_offset` (every :func:`coarse_stride`-th
    pixel, unclipped), equal to what that function would read itself.
    """
    g = read_grid(path)
    stride = max(1, math.ceil(math.sqrt(g.width * g.height / max_samples)))
    f = coarse_stride(g.shape)
    dec = np.full((-(-g.height // f), -(-g.width // f)), np.nan, np.float32) if coarse is not None else None
    parts, n_fill = [], 0
    with StackReader([path]) as src:
        for win in iter_blocks(g.shape, block_shape):
            b = src.read_one(0, win)
            if scale is not None:
                with np.errstate(invalid="ignore"):
                    fill = np.abs(b) >= FILL_ABS
                n_fill += int(np.count_nonzero(fill))
                b[fill] = np.nan
                b = to_power(b, scale)
            # Keep the stride phase global so blocks sample one regular lattice.
            r_start = (-int(win.row_off)) % stride
            c_start = (-int(win.col_off)) % stride
            v = b[r_start::stride, c_start::stride]
            parts.append(v[np.isfinite(v)])
            if dec is not None:
                r_f, c_f = (-int(win.row_off)) % f, (-int(win.col_off)) % f
                d = b[r_f::f, c_f::f]
                r_d, c_d = (int(win.row_off) + r_f) // f, (int(win.col_off) + c_f) // f
                dec[r_d:r_d + d.shape[0], c_d:c_d + d.shape[1]] = d
    if coarse is not None and dec is not None:
        coarse.append(dec)
    if n_fill:
        log.warning("%s: %d pixels of magnitude >= %g read as nodata (undeclared fill value)",
                    name or path, n_fill, FILL_ABS)
    return np.concatenate(parts) if parts else np.empty(0, np.float32)


def percentile_bounds(values: np.ndarray, percentiles: Sequence[float]) -> tuple[float, float]:
    """NaN-aware low/high percentile values; (nan, nan) for no valid data."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(v, [percentiles[0], percentiles[1]])
    return float(lo), float(hi)


def flatten_block(block: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values outside [lo, hi] → NaN (NaN stays NaN)."""
    out = block.astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        out[(out < lo) | (out > hi)] = np.nan
    return out


def flatten_scene(
    src_path: str | Path,
    dst_path: str | Path,
    percentiles: Sequence[float],
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    tags: dict[str, str] | None = None,
) -> tuple[float, float]:
    """Flatten outliers of one scene at its own percentiles; returns (lo, hi)."""
    lo, hi = percentile_bounds(sample_valid(src_path, block_shape), percentiles)
    grid = read_grid(src_path)
    all_tags = dict(tags or {})
    all_tags.update(flatten_low=f"{lo:.6g}", flatten_high=f"{hi:.6g}")
    with (
        RasterWriter(dst_path, grid, units="linear power", tags=all_tags) as out,
        StackReader([src_path]) as src,
    ):
        for win in iter_blocks(grid.shape, block_shape):
            out.write(flatten_block(src.read_one(0, win), lo, hi), win)
    return lo, hi


#: Values at or beyond this magnitude are fill values (e.g. float32 max 3.4e38
#: written without a nodata tag), never backscatter: they are read as NaN.
FILL_ABS = 1e30


#: How RTC values are stored (``rtc.scale``); every kernel works on linear power.
SCALES = ("power", "amplitude", "db")


def to_power(values: np.ndarray, scale: str) -> np.ndarray:
    """Linear power from ``power`` (as is), ``amplitude`` (squared) or ``db`` (10^(v/10))."""
    if scale == "power":
        return values
    if scale == "amplitude":
        return values * values
    if scale == "db":
        return np.power(np.float32(10.0), values / np.float32(10.0))
    raise SarstackError(f"rtc.scale: {scale!r} is not one of {', '.join(SCALES)}")


def read_scene(
    path: str | Path,
    window: Window | None = None,
    clip: Sequence[float] | None = None,
    scale: str = "power",
) -> np.ndarray:
    """One window of a scene as float32 linear power: nodata, non-finite and fill values → NaN.

    ``scale`` says how the file stores backscatter (see :func:`to_power`).
    With ``clip = (lo, hi)`` (linear power) values outside it become NaN too
    (the flatten step applied on the fly, so no flattened copy is written).
    """
    b = read_band(path, window)
    with np.errstate(invalid="ignore"):
        b[~(np.abs(b) < FILL_ABS)] = np.nan
    b = to_power(b, scale)
    if clip is not None:
        b = flatten_block(b, clip[0], clip[1])
    return b


def flatten_stats(
    path: str | Path,
    percentiles: Sequence[float],
    layout: TileLayout,
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    max_samples: int = 4_000_000,
    scale: str = "power",
    source: str | Path | None = None,
    coarse_path: str | Path | None = None,
) -> tuple[float, float, np.ndarray]:
    """Flatten bounds of one scene and the valid fraction of every tile after flattening.

    Pass one samples the scene's valid values (exact up to ``max_samples``
    pixels, a regular stride beyond) for its ``percentiles``; pass two reads
    one tile row at a time and counts pixels that are valid and inside the
    bounds. Memory follows ``block_shape`` and one tile row, not the scene.
    With ``coarse_path`` pass one also saves the decimated scene that
    :func:`coarse_offset` needs there (``.npy``; see :func:`coarse_cache_path`),
    so that the correlation jobs do not read the whole scene for it again.

    Returns
    -------
    lo, hi : float
        Values outside ``[lo, hi]`` are NaN after flattening (NaN, NaN: no valid pixel).
    valid : np.ndarray
        ``(n_rows, n_cols)`` fraction of valid pixels per tile after flattening.
    """
    name = source or path  # the file a user knows, in errors and warnings
    coarse: list[np.ndarray] | None = [] if coarse_path is not None else None
    values = sample_valid(path, block_shape, max_samples, scale=scale, name=name, coarse=coarse)
    if coarse_path is not None and coarse:
        with atomic_output(coarse_path, suffix=".npy") as tmp:
            np.save(tmp, coarse[0])
    if values.size == 0:
        raise SarstackError(f"{name}: no valid pixel (all nodata)")
    negative = float(np.mean(values < 0))
    if negative > 0.5:
        raise SarstackError(
            f"{name}: {negative:.0%} of the values are negative, which linear power cannot be; "
            "dB? set rtc.scale: db"
        )
    lo, hi = percentile_bounds(values, percentiles)
    valid = np.zeros((layout.n_rows, layout.n_cols))
    for r in range(layout.n_rows):
        tiles = tile_stack(read_scene(path, layout.band_window(r), (lo, hi), scale), layout)
        valid[r] = np.isfinite(tiles).mean(axis=(1, 2))
    return lo, hi, valid


# --------------------------------------------------------------------------- tiles


@dataclass(frozen=True)
class TileLayout:
    """Equal-size tiles centred on the grid (leftover margin split evenly)."""

    n_rows: int
    n_cols: int
    tile_height: int
    tile_width: int
    row0: int
    col0: int

    def window(self, r: int, c: int) -> Window:
        return Window(
            self.col0 + c * self.tile_width,
            self.row0 + r * self.tile_height,
            self.tile_width,
            self.tile_height,
        )

    def band_window(self, r: int) -> Window:
        """The window covering tile row ``r`` (all tile columns)."""
        return Window(
            self.col0, self.row0 + r * self.tile_height, self.n_cols * self.tile_width, self.tile_height
        )


def fast_tile_size(n: int) -> int:
    """The largest length ``<= n`` whose only prime factors are 2, 3 and 5.

    Real FFTs of such lengths are several times faster than of lengths with a
    large prime factor (a 514 x 515 px tile, 2 x 257 by 5 x 103, costs 3.7x a
    512 x 512 one in pocketfft); these lengths are dense enough that a tile
    loses at most a few pixels (514 -> 512, 1029 -> 1024, 97 -> 96).
    """
    import scipy.fft as sfft

    m = int(n)
    while m > 1 and sfft.next_fast_len(m, real=True) != m:
        m -= 1
    return m


def tile_layout(shape: tuple[int, int], tiles: Sequence[int], min_size: int = 8) -> TileLayout:
    """Split a (rows, cols) grid into ``tiles = [n_rows, n_cols]`` equal tiles.

    Each tile side is the largest FFT-friendly length (:func:`fast_tile_size`)
    that fits ``tiles`` in the grid; the tiles are centred and the leftover
    margin, split evenly, is not measured.
    """
    n_r, n_c = int(tiles[0]), int(tiles[1])
    if n_r < 1 or n_c < 1:
        raise SarstackError(f"rtc.tiles: {list(tiles)} must be two positive integers")
    th, tw = shape[0] // n_r, shape[1] // n_c
    if th < min_size or tw < min_size:
        raise SarstackError(
            f"rtc.tiles: {list(tiles)} gives {th}x{tw} px tiles on a {shape[0]}x{shape[1]} grid; "
            f"tiles must be at least {min_size} px"
        )
    th, tw = fast_tile_size(th), fast_tile_size(tw)
    return TileLayout(n_r, n_c, th, tw, (shape[0] - n_r * th) // 2, (shape[1] - n_c * tw) // 2)


def tile_stack(band: np.ndarray, layout: TileLayout) -> np.ndarray:
    """Cut one tile-row band ``(tile_height, n_cols*tile_width)`` into ``(n_cols, th, tw)``."""
    th, tw = layout.tile_height, layout.tile_width
    return band.reshape(th, layout.n_cols, tw).transpose(1, 0, 2)


def tiles_geojson(
    layout: TileLayout, grid: Grid, valid: dict[str, np.ndarray] | None = None
) -> dict:
    """Tile polygons in the grid's CRS, with row/col, pixel window and valid fractions."""
    feats = []
    for r in range(layout.n_rows):
        for c in range(layout.n_cols):
            w = layout.window(r, c)
            c0, r0 = int(w.col_off), int(w.row_off)
            c1, r1 = c0 + int(w.width), r0 + int(w.height)
            ring = [grid.transform @ xy for xy in [(c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0)]]
            props: dict[str, object] = {
                "tile_row": r,
                "tile_col": c,
                "row_off": r0,
                "col_off": c0,
                "height": int(w.height),
                "width": int(w.width),
            }
            for d, arr in (valid or {}).items():
                props[f"valid_{d}"] = round(float(arr[r, c]), 4)
            feats.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
                    "properties": props,
                }
            )
    fc: dict[str, object] = {"type": "FeatureCollection", "name": "rtc_tiles", "features": feats}
    epsg = grid.crs.to_epsg() if grid.crs else None
    if epsg:
        fc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
    return fc


def _json_number(value: object) -> object:
    """A CSV value as GeoJSON wants it: NaN becomes null, numpy scalars plain Python."""
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _direction(east: float, north: float) -> tuple[float | None, float | None]:
    """Length (m) and azimuth (degrees clockwise from north, 0-360) of an offset."""
    if not (math.isfinite(east) and math.isfinite(north)):
        return None, None
    return math.hypot(east, north), math.degrees(math.atan2(east, north)) % 360.0


def tiles_offsets_geojson(layout_fc: dict, tiles: pd.DataFrame) -> dict:
    """The tile polygons of :func:`tiles_geojson` with each tile's offsets over time.

    Every column of ``tiles`` (from :func:`aggregate_tiles`: temporal mean,
    robust mean, spread and count of ok pairs, anomaly) becomes a property
    of its tile, plus ``offset_m`` and ``azimuth_deg`` (clockwise from north,
    the direction the scene is displaced) of the mean offset, so a GIS can
    style the map directly. NaN (a tile never ok) is null.
    """
    by_tile = {(int(r.tile_row), int(r.tile_col)): r for r in tiles.itertuples(index=False)}
    feats = []
    for f in layout_fc["features"]:
        props = dict(f["properties"])
        row = by_tile.get((int(props["tile_row"]), int(props["tile_col"])))
        if row is not None:
            for k, v in row._asdict().items():
                props[k] = _json_number(v)
            length, azimuth = _direction(float(row.east_mean_m), float(row.north_mean_m))
            props["offset_m"], props["azimuth_deg"] = length, azimuth
        feats.append({**f, "properties": props})
    return {**layout_fc, "name": "rtc_tile_offsets", "features": feats}


def tile_vectors_geojson(layout_fc: dict, offsets: pd.DataFrame) -> dict:
    """One point per tile and pair at the tile's centre, with that pair's offset.

    Properties: every column of ``offsets`` (dates, ``east_m``, ``north_m``,
    status, correlation quality) plus ``offset_m`` and ``azimuth_deg``
    (clockwise from north); NaN is null. In a GIS, an arrow symbol rotated by
    ``azimuth_deg`` and scaled by ``offset_m`` draws the vector field of a pair.
    """
    centres = {}
    for f in layout_fc["features"]:
        ring = f["geometry"]["coordinates"][0][:4]
        key = (int(f["properties"]["tile_row"]), int(f["properties"]["tile_col"]))
        centres[key] = [sum(p[0] for p in ring) / 4.0, sum(p[1] for p in ring) / 4.0]
    feats = []
    for r in offsets.itertuples(index=False):
        props = {k: _json_number(v) for k, v in r._asdict().items()}
        props["offset_m"], props["azimuth_deg"] = _direction(float(r.east_m), float(r.north_m))
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": centres[(int(r.tile_row), int(r.tile_col))]},
                "properties": props,
            }
        )
    out = {k: v for k, v in layout_fc.items() if k != "features"}
    return {**out, "name": "rtc_tile_vectors", "features": feats}


def layout_from_geojson(fc: dict) -> TileLayout:
    """Recover the :class:`TileLayout` written by :func:`tiles_geojson`."""
    props = [f["properties"] for f in fc["features"]]
    n_r = 1 + max(p["tile_row"] for p in props)
    n_c = 1 + max(p["tile_col"] for p in props)
    p0 = next(p for p in props if p["tile_row"] == 0 and p["tile_col"] == 0)
    return TileLayout(n_r, n_c, p0["height"], p0["width"], p0["row_off"], p0["col_off"])


# --------------------------------------------------------------------------- offsets


def shifts_to_map(shift_rc: np.ndarray, transform: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Convert phase-correlation shifts to map offsets of secondary vs reference.

    ``shift_rc`` is skimage's (row, col) shift that registers the secondary
    onto the reference, i.e. minus the displacement of the features. The
    displacement (drow, dcol) = −shift is mapped through the geotransform's
    linear part, so a feature 1 px further east in the secondary gives
    ``east_m = +pixel width`` and 1 px further north ``north_m = +pixel height``
    (whatever the sign of the transform's ``e``).
    """
    d_row = -np.asarray(shift_rc)[..., 0]
    d_col = -np.asarray(shift_rc)[..., 1]
    east = transform.a * d_col + transform.b * d_row
    north = transform.d * d_col + transform.e * d_row
    return east, north


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


# --------------------------------------------------------------------------- aggregate


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
    offsets: pd.DataFrame, *, min_ok_tiles: int = 3, requirement_m: float | None = None
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
        for s in (STATUS_NAN, STATUS_LOWCORR, STATUS_LARGE):
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
    min_fraction: float | None = None,
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
    pairs: pd.DataFrame, requirement_m: float | None, min_fraction: float | None = None
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
    min_fraction: float | None = None,
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


class StackOutcome(str, enum.Enum):
    """How one stack of a many-stack run ended (``status`` in stacks_summary.csv)."""

    OK = "ok"  # the branch completed; its verdict is in summary.csv
    FAILED = "failed"  # a job of the stack failed; ``error`` says which and why
    NOT_RUN = "not_run"  # not finished: the run stopped at another stack's error


@dataclass(frozen=True)
class StackResult:
    """What one stack left behind: its tables (None where not written) or its error."""

    name: str
    outcome: StackOutcome
    summary: pd.DataFrame | None = None
    pairs: pd.DataFrame | None = None
    scenes: pd.DataFrame | None = None
    error: str = ""
    absolute: pd.DataFrame | None = None  # absolute.csv, with point targets


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else float("nan")


def summarize_stacks(
    stacks: Sequence[StackResult], requirement_m: float | None, min_fraction: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-stack and overall tables of a many-stack run.

    Returns
    -------
    per_stack
        One row per stack: ``stack``, ``status`` (:class:`StackOutcome`),
        dates (``n_dates``, ``first_date``, ``last_date``), ``n_pairs``,
        ``n_pairs_ok``, ``n_pairs_within`` (ok pairs whose offset is within the
        requirement) and ``fraction_pairs_within`` (of the ok pairs), mean and RMS of the ok pairs' east/north offsets (m),
        ``max_offset_m``, ``requirement_m``, ``verdict`` (as in summary.csv;
        ``not_measurable`` for a stack that failed or did not run: never
        ``pass`` on what was not measured) and ``error``; when some stack
        has an absolute evaluation (absolute.csv) also ``absolute_n_ok``
        (ok target measurements), ``absolute_east_mean_m``,
        ``absolute_north_mean_m`` and ``absolute_verdict`` (its stack row).
    overall
        One row: ``n_stacks``, ``n_stacks_ok`` (completed), ``n_stacks_pass``,
        ``fraction_stacks_pass`` (of all stacks), ``n_pairs_ok``,
        ``n_pairs_within``, ``fraction_pairs_within`` (of the ok pairs),
        ``n_dates_judged``, ``n_dates_within``, ``fraction_dates_within``
        (each stack's later dates, i.e. products, measured and within the
        requirement relative to its first date), ``requirement_m``,
        ``min_fraction_within`` and ``calval_met``: ``yes`` when the fraction
        of products within the requirement reaches ``min_fraction`` (every
        product when None), ``no`` when it does not, empty without a
        requirement or a product. Fractions are NaN without a requirement or
        a denominator.
    """
    import pandas as pd

    nan = float("nan")
    rows = []
    for st in stacks:
        row: dict[str, object] = {"stack": st.name, "status": st.outcome.value}
        scenes = st.scenes if st.outcome is StackOutcome.OK else None
        pairs = st.pairs if st.outcome is StackOutcome.OK else None
        summary = st.summary if st.outcome is StackOutcome.OK else None
        dates = sorted(scenes["date"].astype(str)) if scenes is not None else []
        row["n_dates"] = len(dates) if scenes is not None else nan
        row["first_date"] = dates[0] if dates else ""
        row["last_date"] = dates[-1] if dates else ""
        if pairs is not None and summary is not None:
            ok = pairs[pairs["status"] == STATUS_OK]
            east, north = ok["east_m"].to_numpy(float), ok["north_m"].to_numpy(float)
            within = (
                int(ok["passes"].astype(str).str.lower().eq("true").sum())
                if requirement_m is not None and "passes" in ok
                else 0
            )
            row.update(
                n_pairs=len(pairs),
                n_pairs_ok=len(ok),
                n_pairs_within=within if requirement_m is not None else nan,
                fraction_pairs_within=within / len(ok) if len(ok) and requirement_m is not None else nan,
                east_mean_m=float(east.mean()) if len(ok) else nan,
                north_mean_m=float(north.mean()) if len(ok) else nan,
                east_rms_m=_rms(east),
                north_rms_m=_rms(north),
                max_offset_m=float(np.hypot(east, north).max()) if len(ok) else nan,
                verdict=str(summary["verdict"].iloc[0]),
            )
            judged = summary.get("n_dates_judged")  # summary.csv of rtc_dates' criterion
            if judged is not None and requirement_m is not None:
                nj, nw = int(judged.iloc[0]), int(summary["n_dates_within"].iloc[0])
                row.update(n_dates_judged=nj, n_dates_within=nw,
                           fraction_dates_within=nw / nj if nj else nan)  # fmt: skip
        else:
            row.update(n_pairs=nan, n_pairs_ok=nan, n_pairs_within=nan, fraction_pairs_within=nan,
                       east_mean_m=nan,
                       north_mean_m=nan, east_rms_m=nan, north_rms_m=nan, max_offset_m=nan,
                       verdict="not_measurable")
        row["requirement_m"] = requirement_m if requirement_m is not None else nan
        row["error"] = st.error
        if any(x.absolute is not None for x in stacks):
            a = st.absolute if st.outcome is StackOutcome.OK else None
            whole = a[a["scope"] == "stack"].iloc[0] if a is not None else None
            row.update(
                absolute_n_ok=int(a.loc[a["scope"] == "scene", "n_ok"].sum()) if a is not None else nan,
                absolute_east_mean_m=float(whole["east_mean_m"]) if whole is not None else nan,
                absolute_north_mean_m=float(whole["north_mean_m"]) if whole is not None else nan,
                absolute_verdict=str(whole["verdict"]) if whole is not None else "not_measurable",
            )
        rows.append(row)
    per_stack = pd.DataFrame(rows)
    # The products' columns after the verdict, whichever stack came first.
    products = ["n_dates_judged", "n_dates_within", "fraction_dates_within"]
    for col in products:
        if col not in per_stack:
            per_stack[col] = nan
    cols = [c for c in per_stack.columns if c not in products]
    at = cols.index("verdict") + 1
    per_stack = per_stack[cols[:at] + products + cols[at:]]
    for col in ("n_dates", "n_pairs", "n_pairs_ok", "n_pairs_within", "absolute_n_ok",
                "n_dates_judged", "n_dates_within"):
        if col in per_stack:
            per_stack[col] = per_stack[col].astype("Int64")  # counts; empty where not known
    done = per_stack[per_stack["status"] == StackOutcome.OK.value]
    n_ok_pairs = int(done["n_pairs_ok"].sum()) if len(done) else 0
    n_within = int(done["n_pairs_within"].sum()) if len(done) and requirement_m is not None else 0
    n_pass = int((per_stack["verdict"] == "pass").sum())
    n_judged = int(done["n_dates_judged"].sum()) if len(done) else 0
    n_dates_within = int(done["n_dates_within"].sum()) if len(done) else 0
    frac_dates = n_dates_within / n_judged if n_judged and requirement_m is not None else nan
    need = min_fraction if min_fraction is not None else 1.0
    calval = "" if math.isnan(frac_dates) else ("yes" if frac_dates >= need else "no")
    overall = pd.DataFrame([{
        "n_stacks": len(per_stack),
        "n_stacks_ok": len(done),
        "n_stacks_pass": n_pass,
        "fraction_stacks_pass": n_pass / len(per_stack) if len(per_stack) and requirement_m is not None else nan,
        "n_pairs_ok": n_ok_pairs,
        "n_pairs_within": n_within if requirement_m is not None else nan,
        "fraction_pairs_within": n_within / n_ok_pairs if n_ok_pairs and requirement_m is not None else nan,
        "n_dates_judged": n_judged,
        "n_dates_within": n_dates_within if requirement_m is not None else nan,
        "fraction_dates_within": frac_dates,
        "requirement_m": requirement_m if requirement_m is not None else nan,
        "min_fraction_within": min_fraction if min_fraction is not None else nan,
        "calval_met": calval,
    }])  # fmt: skip
    return per_stack, overall


# --------------------------------------------------------------------------- one pair

#: Default minimum correlation SNR (peak correlation over its chance level).
DEFAULT_MIN_QUALITY = 2.0

def chance_peak_corr(n_pixels: np.ndarray, n_lags: int, efficiency: float = 1.0) -> np.ndarray:
    """Typical normalized correlation peak of two *unrelated* tiles.

    The maximum over ``n_lags`` lags of a correlation estimated from
    ``n_eff`` independent samples is about ``sqrt(2 ln(n_lags) / n_eff)``;
    a taper lowers ``n_eff`` by its ``efficiency``
    (:func:`sarstack.xcorr.taper_efficiency`).
    """
    n_eff = np.maximum(np.asarray(n_pixels, dtype=float) * efficiency, 1.0)
    return np.sqrt(2.0 * np.log(max(n_lags, 2)) / n_eff)


def coarse_stride(shape: Sequence[int], max_side: int = 1024) -> int:
    """The decimation of :func:`coarse_offset`: the longer side at most ``max_side``."""
    return max(1, math.ceil(max(int(shape[0]), int(shape[1])) / max_side))


def coarse_cache_path(path: str | Path, stride: int) -> Path:
    """Where ``rtc_flatten`` leaves a scene's decimated copy: beside the scene, ``.stride{N}.npy``."""
    return Path(path).with_suffix(f".stride{stride}.npy")


@functools.lru_cache(maxsize=8)
def _strided_scene(
    path: str, stride: int, clip: tuple[float, float] | None, scale: str
) -> np.ndarray:
    """Every ``stride``-th pixel of a flattened scene (cached: a chunk job meets each scene twice).

    Taken from the decimated copy ``rtc_flatten`` saved beside the scene
    (:func:`coarse_cache_path`) when there is one, else read.
    """
    g = read_grid(path)
    cached = coarse_cache_path(path, stride)
    out: np.ndarray | None = None
    if cached.exists():
        dec = np.load(cached)
        if dec.shape == (-(-g.height // stride), -(-g.width // stride)):
            out = dec if clip is None else flatten_block(dec, clip[0], clip[1])
    if out is None:
        rows = []
        for r0 in range(0, g.height, 512 - 512 % stride):
            h = min(512 - 512 % stride, g.height - r0)
            rows.append(read_scene(path, Window(0, r0, g.width, h), clip, scale)[::stride, ::stride])
        out = np.concatenate(rows)
    out.setflags(write=False)
    return out


def coarse_offset(
    ref_path: str | Path,
    sec_path: str | Path,
    *,
    clip_ref: Sequence[float] | None = None,
    clip_sec: Sequence[float] | None = None,
    max_side: int = 1024,
    min_quality: float = DEFAULT_MIN_QUALITY,
    scale: str = "power",
) -> tuple[int, int, float]:
    """Whole-scene integer displacement of the secondary relative to the reference.

    The coarse step of a coarse-to-fine search: both scenes, decimated so the
    longer side is at most ``max_side``, in dB with their mean removed, NaN
    set to zero and a Hann taper, are cross-correlated by FFT. The peak's
    lag, scaled back to full-resolution pixels, is the displacement
    ``(d_row, d_col)`` of the secondary's features (``+1`` column = one pixel
    further along the grid's columns). It is returned only when the peak is
    ``min_quality`` times above the level two unrelated scenes would reach by
    chance; otherwise ``(0, 0)``.

    Returns
    -------
    d_row, d_col : int
        Displacement in full-resolution pixels (0, 0 when not significant).
    snr : float
        Peak correlation over its chance level.
    """
    from sarstack import xcorr

    g = read_grid(ref_path)
    f = coarse_stride(g.shape, max_side)
    key = lambda c: None if c is None else (float(c[0]), float(c[1]))  # noqa: E731
    a = _strided_scene(str(ref_path), f, key(clip_ref), scale)
    b = _strided_scene(str(sec_path), f, key(clip_sec), scale)

    def prep(x: np.ndarray) -> tuple[np.ndarray, int]:
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(x > 0, 10.0 * np.log10(x), np.nan)
        ok = np.isfinite(y)
        if not ok.any():
            return np.zeros_like(y, dtype=np.float64), 0
        y = np.where(ok, y - y[ok].mean(), 0.0)
        w = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
        return y * w, int(ok.sum())

    pa, na = prep(a)
    pb, nb = prep(b)
    norm = math.sqrt(float((pa * pa).sum()) * float((pb * pb).sum()))
    if norm == 0.0:
        return 0, 0, 0.0
    corr = np.fft.irfft2(np.fft.rfft2(pa) * np.conj(np.fft.rfft2(pb)), s=pa.shape) / norm
    k = np.unravel_index(int(np.argmax(corr)), corr.shape)
    lag = [int(k[i]) if k[i] <= corr.shape[i] // 2 else int(k[i]) - corr.shape[i] for i in (0, 1)]
    eff = xcorr.taper_efficiency("hann", *pa.shape)
    snr = float(corr[k] / chance_peak_corr(np.array(min(na, nb)), corr.size, eff))
    if not snr >= min_quality:
        return 0, 0, snr
    return -lag[0] * f, -lag[1] * f, snr


@functools.lru_cache(maxsize=256)
def _coarse_offset_once(
    ref: str, sec: str, clip_ref: tuple[float, float] | None,
    clip_sec: tuple[float, float] | None, min_quality: float, scale: str,
) -> tuple[int, int, float]:
    """:func:`coarse_offset`, once per pair and process (``rtc.injection``
    measures a chunk's pairs twice)."""
    return coarse_offset(ref, sec, clip_ref=clip_ref, clip_sec=clip_sec,
                         min_quality=min_quality, scale=scale)  # fmt: skip


def _read_shifted(
    path: str | Path, window: Window, offset: tuple[int, int], shape: tuple[int, int],
    clip: Sequence[float] | None, scale: str,
) -> np.ndarray:
    """``window`` moved by ``offset`` (rows, cols); NaN where it leaves the grid."""
    if offset == (0, 0):
        return read_scene(path, window, clip, scale)
    h, w = int(window.height), int(window.width)
    r0, c0 = int(window.row_off) + offset[0], int(window.col_off) + offset[1]
    out = np.full((h, w), np.nan, np.float32)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, shape[0]), min(c0 + w, shape[1])
    if rr1 > rr0 and cc1 > cc0:
        out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = read_scene(
            path, Window(cc0, rr0, cc1 - cc0, rr1 - rr0), clip, scale
        )
    return out


def measure_pair(
    ref_path: str | Path,
    sec_path: str | Path,
    layout: TileLayout,
    *,
    clip_ref: Sequence[float] | None = None,
    clip_sec: Sequence[float] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Phase-correlate every tile of one scene pair (:func:`measure_pairs` of one pair)."""
    return measure_pairs([ref_path, sec_path], [(0, 1)], layout, clips=[clip_ref, clip_sec],
                         **kwargs)[0]  # fmt: skip


def measure_pairs(
    paths: Sequence[str | Path],
    pairs: Sequence[tuple[int, int]],
    layout: TileLayout,
    *,
    clips: Sequence[Sequence[float] | None] | None = None,
    upsample_factor: int = 10,
    max_nan_fraction: float = 0.10,
    preprocess: str = "default",
    min_quality: float | None = None,
    max_shift_px: float | None = None,
    iterations: int | None = None,
    max_batch_pixels: int = 1 << 20,
    scale: str = "power",
    threads: int | None = None,
    inject: Sequence[tuple[float, float]] | None = None,
) -> list[pd.DataFrame]:
    """Phase-correlate every tile of the scene pairs ``(i, j)`` of ``paths``; one
    frame per pair, one row per tile.

    Tiles are read one band of tile rows at a time (``max_batch_pixels``, at
    least one tile row) and, within a band, each scene is read, prepared and
    Fourier transformed once for all the pairs it is in
    (:func:`sarstack.xcorr.tile_products`), then dropped after its last pair:
    memory follows the band and the network's neighbourhood, not the scene.
    A pair whose secondary must be read around a coarse offset reads it for
    itself. The results are those of measuring each pair alone, bit for bit.
    Offsets are metres east/north of the secondary relative to the
    reference, from each scene's geotransform.

    ``iterations`` re-centring passes (default 1; 0 for the ``notebook``
    preset, which also skips the parabolic peak refinement so that it
    reproduces the original one-shot procedure).

    ``clips`` are each scene's flatten bounds (:func:`flatten_stats`),
    applied while reading; ``scale`` how the files store backscatter
    (:func:`to_power`). ``threads``: worker threads for the tiles (None: the
    CPUs this process may use); the tables do not depend on it. ``inject``:
    a ``(rows, cols)`` shift per scene moved into its tiles as they are
    prepared (:func:`injected_shift`; nothing is written), for
    injection-recovery.
    """
    from sarstack import xcorr

    names = [str(p) for p in paths]
    clips = list(clips) if clips is not None else [None] * len(paths)
    grids = {i: read_grid(names[i]) for pair in pairs for i in pair}
    for i, j in pairs:
        if not grids[i].same_as(grids[j]):
            raise SarstackError(f"{names[j]}: not on the same grid as {names[i]}")
    pre = dict(xcorr.PRESETS[preprocess])
    taper = pre.get("taper")
    notebook = preprocess == "notebook"
    if iterations is None:
        iterations = 0 if notebook else 1
    th, tw = layout.tile_height, layout.tile_width
    max_shift = max_shift_px if max_shift_px is not None else min(th, tw) / 4.0
    min_q = DEFAULT_MIN_QUALITY if min_quality is None else min_quality
    # Coarse to fine: a gross whole-scene offset (beyond what a tile can measure
    # reliably) is found on the decimated scenes first, and every secondary tile
    # is read around it; the tiles then measure the remainder.
    offsets = []
    key = lambda c: None if c is None else (float(c[0]), float(c[1]))  # noqa: E731
    for i, j in pairs:
        d_row, d_col, coarse_snr = _coarse_offset_once(
            names[i], names[j], key(clips[i]), key(clips[j]), min_q, scale
        )
        offset = (d_row, d_col) if math.hypot(d_row, d_col) > max_shift / 2 else (0, 0)
        if offset != (0, 0):
            log.info("%s: coarse offset %+d rows %+d cols (SNR %.1f): tiles searched around it",
                     Path(names[j]).name, d_row, d_col, coarse_snr)
        offsets.append(offset)
    rows_per_batch = max(1, min(layout.n_rows, max_batch_pixels // (th * tw * layout.n_cols)))
    reg: dict[str, Any] = dict(upsample_factor=upsample_factor, iterations=iterations,
                               interpolate=not notebook, threads=threads)  # fmt: skip
    prep: dict[str, Any] = {k: pre[k] for k in ("scale", "remove_mean", "taper") if k in pre}
    prep["threads"] = threads
    moves: list[tuple[float, float] | None] = list(inject) if inject else [None] * len(names)
    # The last pair (in order) that uses each scene's own tiles.
    last_use: dict[int, int] = {}
    for k, ((i, j), off) in enumerate(zip(pairs, offsets, strict=True)):
        last_use[i] = k
        if off == (0, 0):
            last_use[j] = k

    results: list[list[dict[str, np.ndarray]]] = [[] for _ in pairs]
    for r0 in range(0, layout.n_rows, rows_per_batch):
        r_rows = range(r0, min(r0 + rows_per_batch, layout.n_rows))
        live: dict[int, Any] = {}  # scene -> its band's tile products, until its last pair
        for k, ((i, j), off) in enumerate(zip(pairs, offsets, strict=True)):
            for s, s_off in ((i, (0, 0)), (j, off)):
                if s_off == (0, 0) and s not in live:
                    live[s] = _band_products(names[s], layout, r_rows, s_off, grids[s].shape,
                                             clips[s], scale, prep, moves[s])  # fmt: skip
            mov = live[j] if off == (0, 0) else _band_products(
                names[j], layout, r_rows, off, grids[j].shape, clips[j], scale, prep, moves[j])
            results[k].append(xcorr.register_products(live[i], mov, **reg))
            for s in [s for s in live if last_use[s] <= k]:
                del live[s]
        log.info("tile rows %d-%d of %d done (%d pairs)", r_rows[0], r_rows[-1],
                 layout.n_rows - 1, len(pairs))
    eff = xcorr.taper_efficiency(taper, th, tw)
    return [
        _pair_frame(res, off, grids[i].transform, layout, eff, max_nan_fraction, min_q, max_shift)
        for res, off, (i, _) in zip(results, offsets, pairs, strict=True)
    ]


def _band_products(
    path: str, layout: TileLayout, r_rows: range, offset: tuple[int, int],
    shape: tuple[int, int], clip: Sequence[float] | None, scale: str, prep: dict[str, Any],
    shift: tuple[float, float] | None = None,
) -> Any:
    """:func:`sarstack.xcorr.tile_products` of tile rows ``r_rows`` of one scene,
    read around ``offset``."""
    from sarstack import xcorr

    tiles = np.concatenate([
        tile_stack(_read_shifted(path, layout.band_window(r), offset, shape, clip, scale), layout)
        for r in r_rows
    ])  # fmt: skip
    return xcorr.tile_products(tiles, **prep, shift=shift)


def _pair_frame(
    parts: list[dict[str, np.ndarray]], offset: tuple[int, int], transform: Affine,
    layout: TileLayout, eff: float, max_nan_fraction: float, min_q: float, max_shift: float,
) -> pd.DataFrame:
    """One pair's tile table from its bands' registration results."""
    import pandas as pd

    th, tw = layout.tile_height, layout.tile_width

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    residual = cat("shift").astype(float)
    shift = residual - np.array(offset, dtype=float)  # skimage convention: minus the displacement
    peak, pslr = cat("peak_corr").astype(float), cat("pslr").astype(float)
    vr, vs = cat("valid_ref"), cat("valid_mov")
    snr = peak / chance_peak_corr(np.minimum(vr, vs) * th * tw, th * tw, eff)
    status = classify_tiles(
        vr,
        vs,
        snr,
        residual,
        max_nan_fraction=max_nan_fraction,
        min_quality=min_q,
        max_shift_px=max_shift,
    )
    east, north = shifts_to_map(shift, transform)
    nan_bad = status == STATUS_NAN
    east[nan_bad] = np.nan
    north[nan_bad] = np.nan
    rr, cc = np.divmod(np.arange(layout.n_rows * layout.n_cols), layout.n_cols)
    return pd.DataFrame(
        {
            "tile_row": rr,
            "tile_col": cc,
            "east_m": east,
            "north_m": north,
            "d_col_px": np.where(nan_bad, np.nan, -shift[:, 1]),
            "d_row_px": np.where(nan_bad, np.nan, -shift[:, 0]),
            "status": status,
            "peak_corr": np.where(nan_bad, np.nan, peak),
            "snr": np.where(nan_bad, np.nan, snr),
            "pslr_db": np.where(nan_bad, np.nan, pslr),
            "valid_reference": vr,
            "valid_secondary": vs,
            "coarse_d_row_px": offset[0],
            "coarse_d_col_px": offset[1],
        }
    )


# --------------------------------------------------------------------------- per date


def invert_dates(
    values: np.ndarray,
    ok: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    n_dates: int,
    *,
    sigma: np.ndarray | None = None,
    robust: bool = False,
    irls_iterations: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-date offsets from pair offsets over the network (first date = 0).

    The same incidence-matrix least squares as the InSAR inversion
    (:func:`sarstack.timeseries.invert_weighted`), here in NumPy through
    :func:`sarstack.dates.solve_network_columns` (a few columns need no
    JAX): each column of ``values`` (n_pairs, P) is one series (east or
    north, whole scene or one tile); pairs that are not ``ok`` are censored
    for that column only, and dates cut off from the first date by censoring
    come out NaN.

    Parameters
    ----------
    values
        Pair offsets (n_pairs, P); anything where ``ok`` is False is ignored.
    ok
        Boolean (n_pairs, P): the pair's offset is usable for that column.
    pairs
        ``(i, j)`` date indices of each pair.
    n_dates
        Number of dates.
    sigma
        Optional standard error per pair offset (n_pairs, P): weights 1/σ².
    robust
        Iteratively reweighted least squares towards least absolute deviations
        (weights 1/max(|residual|, floor)), for networks with outlier pairs.

    Returns
    -------
    offsets, sd, n_used
        ``offsets`` (n_dates, P) with the first row 0; ``sd`` its standard
        deviation from the network (NaN without ``sigma`` unless the fit has
        redundancy: then from the residual scatter); ``n_used`` (P,) pairs used.
    """
    from sarstack import dates as sdates

    vals = np.where(ok, np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0)
    w0 = ok.astype(np.float64)
    if sigma is not None:
        s = np.asarray(sigma, dtype=np.float64)
        # A zero spread (identical tiles) must not become an infinite weight.
        w0 = np.where(ok & np.isfinite(s), 1.0 / np.maximum(s, 1e-3) ** 2, 0.0)
    def solve(w: np.ndarray) -> sdates.NetworkSolution:
        return sdates.solve_network_columns(pairs, n_dates, vals, w)

    if robust:
        res, _ = sdates.irls_l1(solve, w0, vals[ok], floor=1e-3, max_iter=irls_iterations)
    else:
        res = solve(w0)
    x = res["x"]
    var = res["x_var"]
    n_used = res["n_used"]
    if sigma is None:
        # Unit weights: scale the cofactor by the residual variance where redundant.
        dof = n_used - np.isfinite(x).sum(axis=0)
        rss = np.nansum(np.where(np.isfinite(res["residual"]), res["residual"] ** 2, 0.0), axis=0)
        s2 = np.where(dof > 0, rss / np.maximum(dof, 1), np.nan)
        var = var * s2
    offsets = np.vstack([np.zeros((1, x.shape[1])), x])
    sd = np.vstack([np.zeros((1, x.shape[1])), np.sqrt(var)])
    return offsets, sd, n_used


def date_offsets(
    offsets: pd.DataFrame, pairs_df: pd.DataFrame, *, robust: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-date offsets (east, north) of the whole scene and of every tile.

    Scene level: the ``ok`` pairs' robust offsets, weighted by their standard
    errors. Tile level: each tile's ``ok`` offsets, unit weights. The first
    date is the datum (0 m); every other date's offset is relative to it.
    """
    import pandas as pd

    dates = sorted(set(pairs_df["reference_date"]) | set(pairs_df["secondary_date"]))
    idx = {d: k for k, d in enumerate(dates)}
    pair_keys = list(zip(pairs_df["reference_date"], pairs_df["secondary_date"], strict=True))
    pairs = [(idx[r], idx[s]) for r, s in pair_keys]
    ok = (pairs_df["status"] == STATUS_OK).to_numpy()
    vals = pairs_df[["east_m", "north_m"]].to_numpy()
    sig = pairs_df[["east_se_m", "north_se_m"]].to_numpy()
    okm = np.repeat(ok[:, None], 2, axis=1) & np.isfinite(vals)
    x, sd, _ = invert_dates(vals, okm, pairs, len(dates), sigma=sig, robust=robust)
    # Pairs used for a date: the used pairs (both components weighted, as in
    # invert_dates) that involve it. Each used pair counts for its two dates.
    used = (okm & np.isfinite(sig)).all(axis=1)
    n_pairs_used = np.zeros(len(dates), dtype=int)
    for (i, j), u in zip(pairs, used, strict=True):
        if u:
            n_pairs_used[[i, j]] += 1
    scene = pd.DataFrame(
        {
            "date": dates,
            "east_m": x[:, 0],
            "north_m": x[:, 1],
            "east_sd_m": sd[:, 0],
            "north_sd_m": sd[:, 1],
            "n_pairs_used": n_pairs_used,
        }
    )

    tiles = offsets[["tile_row", "tile_col"]].drop_duplicates().sort_values(["tile_row", "tile_col"])
    tile_list = list(tiles.itertuples(index=False, name=None))
    t_index = {t: k for k, t in enumerate(tile_list)}
    n_t = len(tile_list)
    vals_t = np.full((len(pairs), 2 * n_t), np.nan)
    ok_t = np.zeros((len(pairs), 2 * n_t), bool)
    p_index = {k: n for n, k in enumerate(pair_keys)}
    for row in offsets.itertuples(index=False):
        p = p_index[(row.reference_date, row.secondary_date)]
        t = t_index[(row.tile_row, row.tile_col)]
        east, north = float(row.east_m), float(row.north_m)
        good = row.status == STATUS_OK and np.isfinite(east) and np.isfinite(north)
        vals_t[p, t], vals_t[p, n_t + t] = row.east_m, row.north_m
        ok_t[p, t] = ok_t[p, n_t + t] = good
    xt, sdt, _ = invert_dates(vals_t, ok_t, pairs, len(dates), robust=robust)
    rows = []
    for k, d in enumerate(dates):
        for t, (tr, tc) in enumerate(tile_list):
            rows.append((d, tr, tc, xt[k, t], xt[k, n_t + t], sdt[k, t], sdt[k, n_t + t]))
    tile_df = pd.DataFrame(
        rows, columns=["date", "tile_row", "tile_col", "east_m", "north_m", "east_sd_m", "north_sd_m"]
    )
    return scene, tile_df


# --------------------------------------------------------------------------- injection-recovery


def injected_shift(date: str, max_shift_px: float, seed: int) -> tuple[float, float]:
    """The known ``(rows, cols)`` shift injected into the scene of ``date``
    (``YYYY-MM-DD``) by ``rtc.injection``: uniform in ``[-max_shift_px,
    max_shift_px]`` per axis, drawn from ``seed`` and the date alone, so every
    job draws the same shift for a scene whatever its chunk."""
    rng = np.random.default_rng([int(seed), int(str(date).replace("-", ""))])
    d = rng.uniform(-float(max_shift_px), float(max_shift_px), 2)
    return float(d[0]), float(d[1])


#: Columns of ``injection.csv``.
INJECTION_COLUMNS = ["date", "injected_east_m", "injected_north_m", "recovered_east_m",
                     "recovered_north_m", "error_m"]  # fmt: skip


def injection_recovery(
    measured: pd.DataFrame,
    injected_run: pd.DataFrame,
    transform: Affine,
    *,
    max_shift_px: float,
    seed: int,
    requirement_m: float | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per date, the injected offset and the one the branch recovered.

    ``measured`` and ``injected_run`` are the per-date tables (:func:`date_offsets`)
    of the stack as it is and of the same stack with each scene's tiles moved
    by :func:`injected_shift`. The injected offset of a date is its shift minus
    the first date's (the datum), in metres through ``transform`` (a scene
    whose content moves one column east is one pixel width east); the
    recovered one is ``injected_run - measured``, so the stack's own offsets
    cancel. ``error_m`` is the distance between the two.

    Returns the table (:data:`INJECTION_COLUMNS`) and a summary: ``n_dates``
    with a recovery (the datum aside), ``rms_m``, ``max_m``, ``rms_px``,
    ``max_px``, ``within_requirement`` (fraction of those dates with
    ``error_m <= requirement_m``; NaN without one) and ``note`` (``"nothing
    measurable"`` when no date was recovered).
    """
    import pandas as pd

    m = measured.set_index("date")
    inj = injected_run.set_index("date").reindex(m.index)
    shifts = np.array([injected_shift(d, max_shift_px, seed) for d in m.index]).reshape(-1, 2)
    rel = shifts - shifts[:1]
    east = transform.a * rel[:, 1] + transform.b * rel[:, 0]
    north = transform.d * rel[:, 1] + transform.e * rel[:, 0]
    rec_e = (inj["east_m"] - m["east_m"]).to_numpy(dtype=float)
    rec_n = (inj["north_m"] - m["north_m"]).to_numpy(dtype=float)
    err = np.hypot(rec_e - east, rec_n - north)
    table = pd.DataFrame(
        {"date": list(m.index), "injected_east_m": east, "injected_north_m": north,
         "recovered_east_m": rec_e, "recovered_north_m": rec_n, "error_m": err}
    )  # fmt: skip
    e = err[1:][np.isfinite(err[1:])]
    px = math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))
    nan = float("nan")
    summary: dict[str, Any] = {"n_dates": int(e.size), "rms_m": nan, "max_m": nan, "rms_px": nan,
                               "max_px": nan, "within_requirement": nan,
                               "note": "nothing measurable" if e.size == 0 else ""}  # fmt: skip
    if e.size:
        summary.update(rms_m=float(np.sqrt(np.mean(e**2))), max_m=float(e.max()))
        summary.update(rms_px=summary["rms_m"] / px, max_px=summary["max_m"] / px)
        if requirement_m is not None:
            summary["within_requirement"] = float(np.mean(e <= requirement_m))
    return table, summary

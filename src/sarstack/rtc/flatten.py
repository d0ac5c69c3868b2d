"""rtc_flatten: fill detection, the percentile bounds of each scene and its
tiles' valid fractions; reading a scene flattened and in linear power."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from sarstack.errors import SarstackError
from sarstack.io import (
    RasterWriter,
    StackReader,
    atomic_output,
    open_raster,
    process_blocks,
    read_band,
    read_grid,
)
from sarstack.rtc.tiles import TileLayout, tile_stack

log = logging.getLogger(__package__)


#: A repeated extreme value is fill (undeclared nodata) when it covers more
#: than this fraction of a scene's valid pixels (in the decimated read).
FILL_MIN_FRACTION = 0.001


#: Longer side of the decimated read that :func:`detect_fill` looks at.
FILL_READ_SIDE = 1024


#: dB values at or below this are no backscatter (1e-10 in linear power).
DB_FLOOR = -100.0


def detect_fill(path: str | Path, scale: str) -> tuple[float | None, float]:
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
    path: str | Path, scale: str, nodata: float | None, name: str | Path | None = None
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


def sample_valid(
    path: str | Path,
    block_shape: Sequence[int],
    max_samples: int = 4_000_000,
    *,
    scale: str | None,
    name: str | Path | None = None,
    coarse: list[np.ndarray] | None = None,
    reader: StackReader | None = None,
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

    ``reader``: the raster already held open (a :class:`StackReader` of
    ``path`` alone), e.g. for a second pass that then finds its blocks in
    GDAL's cache.
    """
    g = read_grid(path)
    stride = max(1, math.ceil(math.sqrt(g.width * g.height / max_samples)))
    f = coarse_stride(g.shape)
    dec = np.full((-(-g.height // f), -(-g.width // f)), np.nan, np.float32) if coarse is not None else None
    parts, n_fill = [], 0
    with contextlib.nullcontext(reader) if reader is not None else StackReader([path]) as src:
        def sample_block(win: Window) -> None:
            nonlocal n_fill
            b = src.read_one(0, win)
            if scale is not None:
                with np.errstate(invalid="ignore"):
                    fill = np.abs(b) >= FILL_ABS
                n_block = int(np.count_nonzero(fill))
                if n_block:
                    n_fill += n_block
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

        process_blocks(g.shape, block_shape, sample_block)
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
    block_shape: Sequence[int],
    tags: dict[str, str] | None = None,
) -> tuple[float, float]:
    """Flatten outliers of one scene at its own percentiles; returns (lo, hi)."""
    lo, hi = percentile_bounds(sample_valid(src_path, block_shape, scale=None), percentiles)
    grid = read_grid(src_path)
    all_tags = dict(tags or {})
    all_tags.update(flatten_low=f"{lo:.6g}", flatten_high=f"{hi:.6g}")
    with (
        RasterWriter(dst_path, grid, units="linear power", tags=all_tags) as out,
        StackReader([src_path]) as src,
    ):
        def flatten_out_block(win: Window) -> None:
            out.write(flatten_block(src.read_one(0, win), lo, hi), win)

        process_blocks(grid.shape, block_shape, flatten_out_block)
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
    *,
    scale: str,
    reader: StackReader | None = None,
) -> np.ndarray:
    """One window of a scene as float32 linear power: nodata, non-finite and fill values → NaN.

    ``scale`` says how the file stores backscatter (see :func:`to_power`).
    With ``clip = (lo, hi)`` (linear power) values outside it become NaN too
    (the flatten step applied on the fly, so no flattened copy is written).
    ``reader``: ``path`` already held open (a :class:`StackReader` of it alone).
    """
    b = read_band(path, window) if reader is None else reader.read_one(0, window)
    return _as_scene(b, clip, scale)


def _as_scene(b: np.ndarray, clip: Sequence[float] | None, scale: str) -> np.ndarray:
    """:func:`read_scene`'s values of a window ``b`` as read (nodata already NaN;
    ``b`` may be changed in place)."""
    if _fast_mask(b, scale):
        # The same values as the general path below, in one mask and one
        # masked copy instead of a boolean assignment per step (~0.7 s of
        # a 12-pair xcorr job's 12.3 s on 4096² scenes).
        np.copyto(b, np.float32(np.nan), where=~_kept(b, clip))
        return b
    with np.errstate(invalid="ignore"):
        b[~(np.abs(b) < FILL_ABS)] = np.nan
    b = to_power(b, scale)
    if clip is not None:
        b = flatten_block(b, clip[0], clip[1])
    return b


def _fast_mask(b: np.ndarray, scale: str) -> bool:
    """Whether :func:`_kept` is :func:`read_scene`'s whole mask for ``b``."""
    return b.dtype == np.float32 and scale == "power"


def _kept(b: np.ndarray, clip: Sequence[float] | None) -> np.ndarray:
    """Where float32 power ``b`` (nodata already NaN) stays a value after
    :func:`read_scene`: finite, below :data:`FILL_ABS`, inside ``clip``."""
    with np.errstate(invalid="ignore"):
        keep = np.abs(b) < FILL_ABS  # False for NaN too
        if clip is not None:
            keep &= b >= clip[0]  # as flatten_block compares (same precision)
            keep &= b <= clip[1]
    return keep


def flatten_stats(
    path: str | Path,
    percentiles: Sequence[float],
    layout: TileLayout,
    *,
    block_shape: Sequence[int],
    max_samples: int = 4_000_000,
    scale: str,
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
    # Both passes through one open dataset: the second finds the scene's
    # decompressed blocks in GDAL's cache (up to GDAL_CACHEMAX, 5 % of the RAM
    # by default) instead of decompressing them again.
    with StackReader([path]) as src:
        return _flatten_stats(path, src, percentiles, layout, block_shape, max_samples, scale,
                              name, coarse, coarse_path)  # fmt: skip


def _flatten_stats(
    path: str | Path, src: StackReader, percentiles: Sequence[float], layout: TileLayout,
    block_shape: Sequence[int], max_samples: int, scale: str, name: str | Path,
    coarse: list[np.ndarray] | None, coarse_path: str | Path | None,
) -> tuple[float, float, np.ndarray]:  # fmt: skip
    values = sample_valid(path, block_shape, max_samples, scale=scale, name=name, coarse=coarse,
                          reader=src)  # fmt: skip
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
        raw = src.read_one(0, layout.band_window(r))
        if _fast_mask(raw, scale):  # read_scene's mask counted, not applied: the same fractions
            kept = _kept(raw, (lo, hi))
        else:
            kept = np.isfinite(_as_scene(raw, (lo, hi), scale))
        valid[r] = tile_stack(kept, layout).mean(axis=(1, 2))
    return lo, hi, valid


def coarse_stride(shape: Sequence[int], max_side: int = 1024) -> int:
    """The decimation of :func:`coarse_offset`: the longer side at most ``max_side``."""
    return max(1, math.ceil(max(int(shape[0]), int(shape[1])) / max_side))


def coarse_cache_path(path: str | Path, stride: int) -> Path:
    """Where ``rtc_flatten`` leaves a scene's decimated copy: beside the scene, ``.stride{N}.npy``."""
    return Path(path).with_suffix(f".stride{stride}.npy")

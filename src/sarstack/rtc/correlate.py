"""rtc_xcorr: the coarse offset, then the per-tile sub-pixel offsets of every
pair of a chunk, each scene read and transformed once."""

from __future__ import annotations

import collections
import functools
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from sarstack.errors import SarstackError
from sarstack.io import (
    StackReader,
    read_grid,
)
from sarstack.rtc.aggregate import STATUS_NAN, classify_tiles
from sarstack.rtc.flatten import coarse_cache_path, coarse_stride, flatten_block, read_scene
from sarstack.rtc.tiles import TileLayout, shifts_to_map, tile_stack

if TYPE_CHECKING:  # pandas is imported where tables are built: stages without tables start faster
    import pandas as pd

log = logging.getLogger(__package__)


def chance_peak_corr(n_pixels: np.ndarray, n_lags: int, efficiency: float = 1.0) -> np.ndarray:
    """Typical normalized correlation peak of two *unrelated* tiles.

    The maximum over ``n_lags`` lags of a correlation estimated from
    ``n_eff`` independent samples is about ``sqrt(2 ln(n_lags) / n_eff)``;
    a taper lowers ``n_eff`` by its ``efficiency``
    (:func:`sarstack.xcorr.taper_efficiency`).
    """
    n_eff = np.maximum(np.asarray(n_pixels, dtype=float) * efficiency, 1.0)
    return np.sqrt(2.0 * np.log(max(n_lags, 2)) / n_eff)


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
            part = read_scene(path, Window(0, r0, g.width, h), clip, scale=scale)
            rows.append(part[::stride, ::stride])
        out = np.concatenate(rows)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=16)
def _coarse_spectrum(
    path: str, stride: int, clip: tuple[float, float] | None, scale: str
) -> tuple[np.ndarray, int, float, tuple[int, int]]:
    """One scene's share of :func:`coarse_offset`, once per process (a scene
    is in up to two sequential pairs): the decimated scene in dB, mean
    removed, NaN zeroed, Hann-tapered; its ``rfft2`` (read-only), valid pixel
    count, energy and shape. 16 scenes of a 1024^2 decimation: about 140 MB."""
    x = _strided_scene(path, stride, clip, scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(x > 0, 10.0 * np.log10(x), np.nan)
    ok = np.isfinite(y)
    if not ok.any():
        p, n = np.zeros_like(y, dtype=np.float64), 0
    else:
        y = np.where(ok, y - y[ok].mean(), 0.0)
        w = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
        p, n = y * w, int(ok.sum())
    spec = np.fft.rfft2(p)
    spec.setflags(write=False)
    return spec, n, float((p * p).sum()), (int(p.shape[0]), int(p.shape[1]))


def coarse_offset(
    ref_path: str | Path,
    sec_path: str | Path,
    *,
    clip_ref: Sequence[float] | None = None,
    clip_sec: Sequence[float] | None = None,
    max_side: int = 1024,
    min_quality: float,
    scale: str,
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
    spec_a, na, energy_a, shape = _coarse_spectrum(str(ref_path), f, key(clip_ref), scale)
    spec_b, nb, energy_b, _ = _coarse_spectrum(str(sec_path), f, key(clip_sec), scale)
    norm = math.sqrt(energy_a * energy_b)
    if norm == 0.0:
        return 0, 0, 0.0
    corr = np.fft.irfft2(spec_a * np.conj(spec_b), s=shape) / norm
    k = np.unravel_index(int(np.argmax(corr)), corr.shape)
    lag = [int(k[i]) if k[i] <= corr.shape[i] // 2 else int(k[i]) - corr.shape[i] for i in (0, 1)]
    eff = xcorr.taper_efficiency("hann", *shape)
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
    clip: Sequence[float] | None, scale: str, reader: StackReader | None = None,
) -> np.ndarray:
    """``window`` moved by ``offset`` (rows, cols); NaN where it leaves the grid.
    ``reader``: ``path`` held open (:func:`read_scene`)."""
    if offset == (0, 0):
        return read_scene(path, window, clip, scale=scale, reader=reader)
    h, w = int(window.height), int(window.width)
    r0, c0 = int(window.row_off) + offset[0], int(window.col_off) + offset[1]
    out = np.full((h, w), np.nan, np.float32)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, shape[0]), min(c0 + w, shape[1])
    if rr1 > rr0 and cc1 > cc0:
        out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = read_scene(
            path, Window(cc0, rr0, cc1 - cc0, rr1 - rr0), clip, scale=scale, reader=reader
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


#: Scenes :func:`measure_pairs` holds open at once (two files each, a padding
#: VRT and its source): far under the usual limit of 1024 open files.
OPEN_SCENES = 128


def measure_pairs(
    paths: Sequence[str | Path],
    pairs: Sequence[tuple[int, int]],
    layout: TileLayout,
    *,
    clips: Sequence[Sequence[float] | None] | None = None,
    upsample_factor: int,
    max_nan_fraction: float,
    preprocess: str,
    min_quality: float,
    max_shift_px: float | None,
    iterations: int,
    max_batch_pixels: int = 1 << 20,
    scale: str,
    threads: int | None = None,
    inject: Sequence[tuple[float, float]] | None = None,
    tile_rows: Sequence[range] | None = None,
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

    ``iterations`` re-centring passes (0 for the ``notebook`` preset, which
    also skips the parabolic peak refinement so that it reproduces the
    original one-shot procedure).

    ``clips`` are each scene's flatten bounds (:func:`flatten_stats`),
    applied while reading; ``scale`` how the files store backscatter
    (:func:`to_power`). ``threads``: worker threads for the tiles (None: the
    CPUs this process may use); the tables do not depend on it. ``inject``:
    a ``(rows, cols)`` shift per scene moved into its tiles as they are
    prepared (:func:`injected_shift`; nothing is written), for
    injection-recovery. ``tile_rows``: the tile rows measured of each pair
    (None: all), so that a job may take a share of a pair's tiles; each
    tile's result is the same whatever else is measured with it.
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
    th, tw = layout.tile_height, layout.tile_width
    max_shift = max_shift_px if max_shift_px is not None else min(th, tw) / 4.0
    offsets = _coarse_offsets(names, pairs, clips, min_quality, scale, max_shift)
    rows_per_batch = max(1, min(layout.n_rows, max_batch_pixels // (th * tw * layout.n_cols)))
    reg: dict[str, Any] = dict(upsample_factor=upsample_factor, iterations=iterations,
                               interpolate=not notebook, threads=threads)  # fmt: skip
    prep: dict[str, Any] = {k: pre[k] for k in ("scale", "remove_mean", "taper") if k in pre}
    prep["threads"] = threads
    moves: list[tuple[float, float] | None] = list(inject) if inject else [None] * len(names)
    # Each scene held open while its bands are read: the tiles a band shares
    # with the next stay in GDAL's cache (a padded scene's bands straddle its
    # tiles) and no band pays an open (the reads of 12 scenes of 4096² in
    # bands of 512 rows: 2.1 s opened per band, 1.15 s held open; an xcorr
    # job 9.3-9.6 -> 9.0-9.4 s, with up to GDAL's cache more held). At most
    # OPEN_SCENES at once (a VRT and its source each), the least recently
    # read closed first.
    readers: collections.OrderedDict[int, StackReader] = collections.OrderedDict()

    def open_scene(s: int) -> StackReader:
        if s in readers:
            readers.move_to_end(s)
        else:
            if len(readers) >= OPEN_SCENES:
                readers.popitem(last=False)[1].__exit__(None, None, None)
            readers[s] = StackReader([names[s]]).__enter__()
        return readers[s]

    try:
        return _measure_bands(names, pairs, layout, offsets, grids, clips, moves, scale, prep,
                              reg, rows_per_batch, tile_rows, open_scene, taper,
                              max_nan_fraction, min_quality, max_shift)  # fmt: skip
    finally:
        for r in readers.values():
            r.__exit__(None, None, None)


def _measure_bands(
    names: Sequence[str], pairs: Sequence[tuple[int, int]], layout: TileLayout,
    offsets: Sequence[tuple[int, int]], grids: dict[int, Any],
    clips: Sequence[Sequence[float] | None], moves: Sequence[tuple[float, float] | None],
    scale: str, prep: dict[str, Any], reg: dict[str, Any], rows_per_batch: int,
    tile_rows: Sequence[range] | None, open_scene: Callable[[int], StackReader], taper: Any,
    max_nan_fraction: float, min_quality: float, max_shift: float,
) -> list[pd.DataFrame]:  # fmt: skip
    """:func:`measure_pairs`' loop over the bands of tile rows, then the pairs' tables."""
    from sarstack import xcorr

    th, tw = layout.tile_height, layout.tile_width
    wanted = [range(layout.n_rows)] * len(pairs) if tile_rows is None else list(tile_rows)
    results: list[list[dict[str, np.ndarray]]] = [[] for _ in pairs]
    measured: list[list[int]] = [[] for _ in pairs]  # each pair's tile rows in its results
    for r0 in range(0, layout.n_rows, rows_per_batch):
        r_rows = range(r0, min(r0 + rows_per_batch, layout.n_rows))
        band = [k for k, w in enumerate(wanted) if max(w.start, r0) < min(w.stop, r_rows.stop)]
        # The last pair of the band (in order) that uses each scene's own tiles.
        last_use: dict[int, int] = {}
        for k in band:
            last_use[pairs[k][0]] = k
            if offsets[k] == (0, 0):
                last_use[pairs[k][1]] = k
        live: dict[int, Any] = {}  # scene -> its band's tile products, until its last pair
        for k in band:
            (i, j), off = pairs[k], offsets[k]
            measured[k].extend(r_rows)
            for s, s_off in ((i, (0, 0)), (j, off)):
                if s_off == (0, 0) and s not in live:
                    live[s] = _band_products(names[s], layout, r_rows, s_off, grids[s].shape,
                                             clips[s], scale, prep, moves[s], open_scene(s))  # fmt: skip
            mov = live[j] if off == (0, 0) else _band_products(
                names[j], layout, r_rows, off, grids[j].shape, clips[j], scale, prep, moves[j],
                open_scene(j))
            results[k].append(xcorr.register_products(live[i], mov, **reg))
            for s in [s for s in live if last_use[s] <= k]:
                del live[s]
        log.info("tile rows %d-%d of %d done (%d pairs)", r_rows[0], r_rows[-1],
                 layout.n_rows - 1, len(band))
    eff = xcorr.taper_efficiency(taper, th, tw)
    frames = []
    for k, (i, _) in enumerate(pairs):
        df = _pair_frame(results[k], offsets[k], grids[i].transform, layout, eff,
                         max_nan_fraction, min_quality, max_shift, measured[k])  # fmt: skip
        keep = df["tile_row"].isin(wanted[k]).to_numpy()
        frames.append(df if keep.all() else df[keep].reset_index(drop=True))
    return frames


def _coarse_offsets(
    names: Sequence[str], pairs: Sequence[tuple[int, int]],
    clips: Sequence[Sequence[float] | None], min_q: float, scale: str, max_shift: float,
) -> list[tuple[int, int]]:
    """Each pair's whole-scene offset ``(rows, cols)``, around which its
    secondary's tiles are read: ``(0, 0)`` where it is at most ``max_shift / 2``.

    Coarse to fine: a gross whole-scene offset (beyond what a tile can measure
    reliably) is found on the decimated scenes first, and every secondary tile
    is read around it; the tiles then measure the remainder.
    """
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
    return offsets


def _band_products(
    path: str, layout: TileLayout, r_rows: range, offset: tuple[int, int],
    shape: tuple[int, int], clip: Sequence[float] | None, scale: str, prep: dict[str, Any],
    shift: tuple[float, float] | None = None, reader: StackReader | None = None,
) -> Any:
    """:func:`sarstack.xcorr.tile_products` of tile rows ``r_rows`` of one scene,
    read around ``offset`` (through ``reader``, the scene held open, if given)."""
    from sarstack import xcorr

    tiles = np.concatenate([
        tile_stack(_read_shifted(path, layout.band_window(r), offset, shape, clip, scale, reader),
                   layout)
        for r in r_rows
    ])  # fmt: skip
    return xcorr.tile_products(tiles, **prep, shift=shift)


def _pair_frame(
    parts: list[dict[str, np.ndarray]], offset: tuple[int, int], transform: Affine,
    layout: TileLayout, eff: float, max_nan_fraction: float, min_q: float, max_shift: float,
    rows: Sequence[int],
) -> pd.DataFrame:
    """One pair's tile table from its bands' registration results (tile ``rows``)."""
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
    rr = np.repeat(np.asarray(rows, dtype=np.int64), layout.n_cols)
    cc = np.tile(np.arange(layout.n_cols), len(rows))
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

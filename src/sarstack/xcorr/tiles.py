"""Tile preparation (scaling, mean removal, tapers) and the thread chunks
the batched correlation runs in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from sarstack.cpus import available_cpus
from sarstack.errors import SarstackError

#: Taper parameter of the ``"tukey"`` window (fraction of the length in cosine lobes).
TUKEY_ALPHA = 0.25


#: Named keyword sets for :func:`prepare_tiles`, e.g. ``prepare_tiles(t, **PRESETS["notebook"])``.
#: ``"default"`` (dB, mean removed, Tukey taper) was the most accurate on the
#: synthetic truth (``bench/rtc_preprocess_accuracy.py``; README has the table).
#: ``"notebook"`` reproduces the original exploratory notebook: linear power,
#: no mean removal, no taper, NaN -> 0.
PRESETS: dict[str, dict[str, Any]] = {
    "default": dict(scale="db", remove_mean=True, taper="tukey"),
    "hann": dict(scale="db", remove_mean=True, taper="hann"),
    "notebook": dict(scale="linear", remove_mean=False, taper=None),
}


def _hann_periodic(n: int) -> np.ndarray:
    """Periodic (DFT-even) Hann window of length ``n``, float64.

    ``w[k] = 0.5 - 0.5 cos(2 pi k / n)``; equal to ``scipy.signal.get_window("hann", n)``
    (i.e. ``scipy.signal.windows.hann(n, sym=False)``). Length 1 gives ``[1.0]``.
    """
    if n <= 1:
        return np.ones(n)
    k = np.arange(n)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * k / n)


def _tukey_periodic(n: int, alpha: float = TUKEY_ALPHA) -> np.ndarray:
    """Periodic Tukey (tapered cosine) window of length ``n``, float64.

    The symmetric window of length ``n + 1`` with its last sample dropped; equal to
    ``scipy.signal.windows.tukey(n, alpha, sym=False)``. Length 1 gives ``[1.0]``.
    """
    if n <= 1:
        return np.ones(n)
    m = n + 1
    x = np.arange(m) / (m - 1)  # 0 .. 1 inclusive
    w = np.ones(m)
    if alpha > 0:
        lo = x < alpha / 2
        hi = x > 1 - alpha / 2
        w[lo] = 0.5 * (1 - np.cos(2 * np.pi * x[lo] / alpha))
        w[hi] = 0.5 * (1 - np.cos(2 * np.pi * (1 - x[hi]) / alpha))
    return w[:-1]


def taper_efficiency(taper: str | None, h: int, w: int) -> float:
    """Fraction of independent samples a taper keeps: (sum w^2)^2 / (N sum w^4)."""
    win = _taper_2d(taper, h, w)
    if win is None:
        return 1.0
    w2 = np.square(win, dtype=np.float64)
    return float(w2.sum() ** 2 / (win.size * np.square(w2).sum()))


def _taper_2d(taper: str | None, h: int, w: int) -> np.ndarray | None:
    """Separable 2-D taper ``outer(win(h), win(w))`` or ``None`` for no taper."""
    name = "none" if taper is None else str(taper).lower()
    if name == "none":
        return None
    if name == "hann":
        return np.outer(_hann_periodic(h), _hann_periodic(w))
    if name == "tukey":
        return np.outer(_tukey_periodic(h), _tukey_periodic(w))
    raise SarstackError(f"taper must be 'hann', 'tukey' or None, got {taper!r}")


def prepare_tiles(
    tiles: np.ndarray,
    *,
    scale: str = "db",
    remove_mean: bool = True,
    taper: str | None = "hann",
    eps: float = 1e-10,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Prepare a stack of backscatter tiles for cross-correlation.

    Parameters
    ----------
    tiles
        Float array ``(B, H, W)`` of RTC linear power; NaN (or any non-finite
        value) marks an invalid pixel.
    scale
        ``"db"``: ``10 * log10(max(x, eps))`` on valid pixels (zero or negative
        power is clipped to ``eps``); ``"linear"``: values unchanged.
    remove_mean
        Subtract, per tile, the mean of its valid (scaled) pixels.
    taper
        ``"hann"``: multiply by a separable 2-D *periodic* (DFT-even) Hann window,
        ``w[k] = 0.5 - 0.5 cos(2 pi k / n)`` along each axis, as
        ``scipy.signal.get_window("hann", n)``; ``"tukey"``: separable periodic
        Tukey window with ``alpha = 0.25`` (:data:`TUKEY_ALPHA`); ``None`` or
        ``"none"``: no taper. Case-insensitive.
    eps
        Floor applied to linear power before taking the logarithm.
    threads
        Worker threads for the chunks of tiles (None: the CPUs this process may
        use); the result does not depend on it.

    Returns
    -------
    prepared
        Float32 ``(B, H, W)``: scaled, mean-removed (if asked), invalid pixels set
        to 0 (after mean removal, so they contribute nothing to a correlation),
        then tapered. An all-invalid tile comes back as zeros.
    valid_fraction
        Float64 ``(B,)``: fraction of finite pixels in each input tile (0 for an
        all-invalid tile).

    Notes
    -----
    The ``"notebook"`` entry of :data:`PRESETS` (linear, no mean removal, no
    taper) reproduces the original notebook, which only replaced NaN by 0.
    """
    arr = np.asarray(tiles)
    if arr.ndim != 3:
        raise SarstackError(f"tiles must have shape (B, H, W), got {arr.shape}")
    scale_name = str(scale).lower()
    if scale_name not in ("db", "linear"):
        raise SarstackError(f"scale must be 'db' or 'linear', got {scale!r}")
    b, h, w = arr.shape
    window = _taper_2d(taper, h, w)  # validates taper before any work
    out = np.empty((b, h, w), dtype=np.float32)
    valid_fraction = np.empty(b, dtype=np.float64)

    def chunk(sl: slice) -> None:
        out[sl], valid_fraction[sl] = _prepare_chunk(
            arr[sl], scale_name == "db", remove_mean, window, eps
        )

    _map_chunks(chunk, _chunk_slices(b, h * w, threads), threads)
    return out, valid_fraction


def _prepare_chunk(
    tiles: np.ndarray, db: bool, remove_mean: bool, window: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`prepare_tiles` on one chunk, in place, in the tiles' precision:
    float32 tiles (a scene as read) in float32, others in float64.

    The operations of the textbook version in its order (``where(valid, ...)``
    after every step); the masking passes are skipped for chunks without
    invalid pixels. Float32 work (SIMD logarithm, half the memory traffic:
    a 4096² xcorr job 10.3 -> 9.0-9.5 s, 2026-12-05) moves a prepared value by
    a few float32 roundings from the float64 one, and a tile's offset by less
    than :data:`F32_PREPARE_CHANGE_PX` (tested against the float64 path).
    """
    _, h, w = tiles.shape
    work = np.float32 if tiles.dtype == np.float32 else np.float64
    out = np.array(tiles, dtype=work)  # a copy, worked on in place
    invalid = ~np.isfinite(out)
    n_valid = h * w - np.count_nonzero(invalid, axis=(1, 2))
    masked = bool(np.any(n_valid < h * w))
    if masked:
        out[invalid] = 0.0
    if db:
        np.maximum(out, eps, out=out)
        if work == np.float32:
            _decibels32(out)
        else:
            np.log10(out, out=out)
            np.multiply(out, 10.0, out=out)
        if masked:
            out[invalid] = 0.0
    if remove_mean:
        mean = (out.sum(axis=(1, 2)) / np.maximum(n_valid, 1)).astype(work)
        np.subtract(out, mean[:, None, None], out=out)
        if masked:
            out[invalid] = 0.0
    if window is not None:
        np.multiply(out, window[None, :, :].astype(work, copy=False), out=out)
    return out.astype(np.float32, copy=False), n_valid / float(max(h * w, 1))


#: ``10 / ln 10`` in float32: float32 decibels as ``DB_PER_NEPER * ln(x)``
#: (NumPy's float32 ``log`` is vectorised, its ``log10`` is not: 4.0 against
#: 13.0 ms for 8 x 512² on the CI's AMD EPYC, about 0.9 s of a 4096² xcorr
#: job's 11.7; 2026-12-06). Within 4 float32 roundings of ``10 * log10(x)``
#: (tests/test_xcorr.py), inside :data:`F32_PREPARE_CHANGE_PX` of the
#: float64 path as before.
DB_PER_NEPER = np.float32(10.0 / np.log(10.0))

def _decibels32(out: np.ndarray) -> None:
    """``10 log10`` of float32 ``out`` in place, as ``DB_PER_NEPER * ln``
    (NumPy's float32 ``log10`` is scalar, its ``log`` vectorised)."""
    np.log(out, out=out)
    np.multiply(out, DB_PER_NEPER, out=out)


#: Largest change of a tile's offset (pixels) that preparing float32 tiles in
#: float32 instead of float64 may make (tests/test_xcorr.py: at most 4e-5 px on
#: noisy textured tiles; the 4096² bench's 768 tile offsets of one xcorr job
#: moved by at most 3.2e-5 px, 1 mm, every status the same; 2026-12-05).
F32_PREPARE_CHANGE_PX = 1e-4


#: Largest chunk, in pixels, that one thread works on at a time (2 tiles of 512²:
#: the chunk's float32 tiles and complex64 spectra stay in cache-sized buffers).
CHUNK_PIXELS = 1 << 19


_T = TypeVar("_T")


def _n_threads(threads: int | None) -> int:
    """Worker threads: ``threads``, or the CPUs available to this process when None."""
    return available_cpus() if threads is None else max(1, int(threads))


def _chunk_slices(b: int, tile_pixels: int, threads: int | None) -> list[slice]:
    """Split ``b`` tiles into contiguous chunks of at most :data:`CHUNK_PIXELS` pixels
    (at least one tile each), and into at least one chunk per worker thread."""
    if b <= 0:
        return []
    per = max(1, CHUNK_PIXELS // max(tile_pixels, 1))
    n = min(b, max(-(-b // per), _n_threads(threads)))
    bounds = np.linspace(0, b, n + 1).round().astype(int)
    return [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _map_chunks(
    fn: Callable[[slice], _T], slices: Sequence[slice], threads: int | None
) -> list[_T]:
    """``[fn(s) for s in slices]``, spread over up to ``threads`` threads (None: the CPUs)."""
    n = min(_n_threads(threads), len(slices))
    if n <= 1:
        return [fn(s) for s in slices]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="sarstack-xcorr") as pool:
        return list(pool.map(fn, slices))

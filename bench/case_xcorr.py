"""xcorr: batched ``phase_correlate`` vs a skimage loop vs FFT-only lower bounds."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft as sfft
from _common import CaseResult, Table, Target, ratio, time_interleaved
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from sarstack import xcorr

# Targets of the issue at 512² tiles.
TARGET_SIZE = 512
MIN_SPEEDUP_VS_SKIMAGE = 2.5
MAX_RATIO_TO_FFT_BOUND = 1.3


def make_tiles(batch: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textured float32 tile pairs; ``mov`` is ``ref`` moved by a known sub-pixel shift plus noise.

    Returns ``ref``, ``mov`` (both ``(batch, size, size)``, mean removed) and the
    true shifts ``(batch, 2)`` in skimage's convention.
    """
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.standard_normal((batch, size, size)), (0, 1.5, 1.5))
    shifts = rng.uniform(-4.0, 4.0, size=(batch, 2))
    fy = np.fft.fftfreq(size)[None, :, None]
    fx = np.fft.rfftfreq(size)[None, None, :]
    phase = -2j * np.pi * (fy * shifts[:, :1, None] + fx * shifts[:, 1:, None])
    moved = np.fft.irfft2(np.fft.rfft2(base) * np.exp(phase), s=(size, size))
    noise = 0.2 * base.std()
    ref = base + noise * rng.standard_normal(base.shape)
    mov = moved + noise * rng.standard_normal(base.shape)
    ref -= ref.mean(axis=(1, 2), keepdims=True)
    mov -= mov.mean(axis=(1, 2), keepdims=True)
    return ref.astype(np.float32), mov.astype(np.float32), -shifts


# --------------------------------------------------------------------------- JAX stages
# Building blocks of an upsampled phase correlation, written here (not imported from
# sarstack.xcorr, whose internals change) so that each stage can be timed on its own.


def _spectrum_and_peak(ref: jax.Array, mov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The three real FFTs and the integer-lag argmax: the work no method can skip."""
    b, h, w = ref.shape
    prod = jnp.fft.rfft2(ref) * jnp.conj(jnp.fft.rfft2(mov))
    cc = jnp.fft.irfft2(prod, s=(h, w))
    return prod, jnp.argmax(jnp.abs(cc).reshape(b, h * w), axis=1)


def _full_spectrum(half: jax.Array, w: int) -> jax.Array:
    """The full ``(B, H, W)`` spectrum from the rfft2 half (Hermitian symmetry)."""
    h = half.shape[-2]
    rows = (-np.arange(h)) % h
    cols = w - np.arange(w // 2 + 1, w)
    return jnp.concatenate([half, jnp.conj(half[:, rows][:, :, cols])], axis=-1)


def _dft_kernel(peak: jax.Array, n: int, uf: int, region: int) -> jax.Array:
    """``(B, region, n)`` kernel ``exp(2πi (i − c + peak·uf) f_k / (n uf))`` around each peak."""
    freqs = np.fft.fftfreq(n, 1.0 / n).round().astype(np.int32)
    off = jnp.arange(region, dtype=jnp.int32)[None, :] - region // 2 + peak[:, None] * uf
    angle = (2 * np.pi / (n * uf)) * jnp.mod(off[:, :, None] * freqs, n * uf).astype(jnp.float32)
    return jax.lax.complex(jnp.cos(angle), jnp.sin(angle))


def _kernels(peak: jax.Array, h: int, w: int, uf: int) -> tuple[jax.Array, jax.Array]:
    region = int(math.ceil(1.5 * uf))
    return _dft_kernel(peak // w, h, uf, region), _dft_kernel(peak % w, w, uf, region)


@jax.jit
def fft_only(ref: jax.Array, mov: jax.Array) -> jax.Array:
    """Lower bound: rfft2 of both tiles, irfft2 of the product, argmax; batched."""
    return _spectrum_and_peak(ref, mov)[1]


@jax.jit
def fft_full_spectrum(ref: jax.Array, mov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The bound plus the Hermitian rebuild of the full ``(B, H, W)`` spectrum."""
    prod, peak = _spectrum_and_peak(ref, mov)
    return peak, _full_spectrum(prod, ref.shape[2])


@partial(jax.jit, static_argnames="uf")
def fft_upsampled(ref: jax.Array, mov: jax.Array, uf: int) -> tuple[jax.Array, jax.Array]:
    """The bound plus the matrix-multiply DFT of the full spectrum around the peak."""
    b, h, w = ref.shape
    prod, peak = _spectrum_and_peak(ref, mov)
    ker_r, ker_c = _kernels(peak, h, w, uf)
    full = _full_spectrum(prod, w)
    up = jnp.einsum("brw,bcw->brc", jnp.einsum("brh,bhw->brw", ker_r, full), ker_c)
    return peak, jnp.argmax(jnp.abs(up).reshape(b, -1), axis=1)


@partial(jax.jit, static_argnames="uf")
def fft_upsampled_half(ref: jax.Array, mov: jax.Array, uf: int) -> tuple[jax.Array, jax.Array]:
    """The bound plus the matrix-multiply DFT on the rfft half-spectrum (timing only).

    A column and its Hermitian mirror contribute complex conjugates, so the sum
    is ``Re(sum over the rfft columns of c_w P K)``, ``c_w = 2`` except 1 at the
    DC and even-length Nyquist columns: no rebuild, half the multiply-adds. (It
    leaves out the O(R²) correction of the even-length Nyquist row, whose kernel
    is not conjugate-symmetric; negligible in time.)
    """
    b, h, w = ref.shape
    prod, peak = _spectrum_and_peak(ref, mov)
    ker_r, ker_c = _kernels(peak, h, w, uf)
    n_half = w // 2 + 1
    c_w = np.full(n_half, 2.0, np.float32)
    c_w[0] = 1.0
    if w % 2 == 0:
        c_w[-1] = 1.0
    up = jnp.einsum(
        "brw,bcw->brc", jnp.einsum("brh,bhw->brw", ker_r, prod), ker_c[:, :, :n_half] * c_w
    )
    return peak, jnp.argmax(jnp.abs(jnp.real(up)).reshape(b, -1), axis=1)


# --------------------------------------------------------------------------- SciPy stages
# The same floor with the FFTs sarstack.xcorr uses now (scipy.fft / pocketfft, float32),
# chunked and threaded like it (its public CHUNK_PIXELS and its threads argument).


def _chunks(b: int, tile_pixels: int, threads: int) -> list[slice]:
    per = max(1, xcorr.CHUNK_PIXELS // tile_pixels)
    n = min(b, max(-(-b // per), threads))
    bounds = np.linspace(0, b, n + 1).round().astype(int)
    return [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _threaded(fn: Callable[[slice], object], b: int, tile_pixels: int, threads: int) -> list:
    slices = _chunks(b, tile_pixels, threads)
    if threads <= 1:
        return [fn(s) for s in slices]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, slices))


def _scipy_spectrum_and_peak(ref: np.ndarray, mov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The three real FFTs (float32) and the integer-lag argmax of one chunk."""
    b, h, w = ref.shape
    prod = sfft.rfft2(ref) * np.conj(sfft.rfft2(mov))
    cc = sfft.irfft2(prod, s=(h, w))
    return prod, np.argmax(np.abs(cc).reshape(b, h * w), axis=1)


def scipy_fft_only(ref: np.ndarray, mov: np.ndarray, threads: int) -> list:
    """Lower bound of the SciPy route: rfft2 x2, product, irfft2, argmax |cc|, per chunk."""
    b, h, w = ref.shape
    return _threaded(lambda s: _scipy_spectrum_and_peak(ref[s], mov[s])[1], b, h * w, threads)


def scipy_upsampled_half(ref: np.ndarray, mov: np.ndarray, uf: int, threads: int) -> list:
    """The SciPy bound plus the matrix-multiply DFT of the rfft half-spectrum (timing only,
    like ``fft_upsampled_half``: no Nyquist-row correction)."""
    b, h, w = ref.shape
    region = int(math.ceil(1.5 * uf))
    n_half = w // 2 + 1
    c_w = np.full(n_half, 2.0, np.float32)
    c_w[0] = 1.0
    if w % 2 == 0:
        c_w[-1] = 1.0

    def kernel(peak: np.ndarray, n: int) -> np.ndarray:
        freqs = np.fft.fftfreq(n, 1.0 / n).round().astype(np.int64)
        off = np.arange(region)[None, :] - region // 2 + peak[:, None] * uf
        angle = (2 * np.pi / (n * uf)) * np.mod(off[:, :, None] * freqs, n * uf)
        return np.exp(1j * angle).astype(np.complex64)

    def chunk(s: slice) -> np.ndarray:
        prod, peak = _scipy_spectrum_and_peak(ref[s], mov[s])
        ker_r, ker_c = kernel(peak // w, h), kernel(peak % w, w)
        up = np.matmul(np.matmul(ker_r, prod), (ker_c[:, :, :n_half] * c_w).transpose(0, 2, 1))
        return np.argmax(np.abs(up.real).reshape(up.shape[0], -1), axis=1)

    return _threaded(chunk, b, h * w, threads)


def _default_threads() -> int:
    """Threads ``phase_correlate`` uses here by default (``threads=None``): the CPUs available."""
    return len(os.sched_getaffinity(0))


# --------------------------------------------------------------------------- case


def run(sizes: list[int], batch: int, uf: int, repeats: int) -> CaseResult:
    jax.config.update("jax_enable_x64", False)  # as rtc_xcorr.py: float32 kernels
    main = Table(
        f"xcorr: {batch} tile pairs per call, upsample {uf} (median of {repeats} interleaved "
        "rounds after a warm-up)",
        [
            "tile",
            "skimage loop s",
            "ours s",
            "FFT-only s",
            "SciPy FFT-only s",
            "ours tiles/s",
            "speed-up vs skimage",
            "ours / FFT-only",
            "ours / SciPy FFT-only",
            "max |Δshift| vs skimage",
        ],
    )
    threads = _default_threads()
    main.notes += [
        "skimage: a Python loop of `phase_cross_correlation(ref, mov, normalization=None, "
        f"upsample_factor={uf})` over the same float32 tiles (complex64 `scipy.fft.fftn` "
        "/ `ifftn` of the full spectrum inside skimage).",
        "ours: `sarstack.xcorr.phase_correlate` on the whole batch (host arrays in, NumPy out).",
        "FFT-only: jitted, batched rfft2 × 2, product, irfft2 and the integer argmax, "
        "`block_until_ready`: the floor for any FFT phase correlation (JAX / XLA FFT).",
        "SciPy FFT-only: the same three transforms done plainly with `scipy.fft` (pocketfft, "
        "float32: rfft2, rfft2, irfft2), in the chunks and threads `phase_correlate` uses "
        f"({threads} here, the CPUs available); `phase_correlate` does its inverse "
        "transform in place, so it can come in under this bound.",
    ]
    stages = Table(
        f"xcorr building blocks and kernel at {TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]}² "
        "(interleaved)",
        ["stage", "s", "× stage 1"],
    )
    result = CaseResult([main, stages])
    stage_size = TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]
    for size in sizes:
        ref, mov, _ = make_tiles(batch, size)
        ref_j, mov_j = jnp.asarray(ref), jnp.asarray(mov)

        def skimage_loop(ref=ref, mov=mov) -> np.ndarray:
            return np.array(
                [
                    phase_cross_correlation(r, m, normalization=None, upsample_factor=uf)[0]
                    for r, m in zip(ref, mov, strict=True)
                ]
            )

        def ours(ref=ref, mov=mov) -> dict[str, np.ndarray]:
            return xcorr.phase_correlate(ref, mov, uf)

        def bound(ref_j=ref_j, mov_j=mov_j) -> jax.Array:
            return fft_only(ref_j, mov_j).block_until_ready()

        def scipy_bound(ref=ref, mov=mov) -> list:
            return scipy_fft_only(ref, mov, threads)

        t = time_interleaved(
            {"skimage": skimage_loop, "ours": ours, "fft": bound, "scipy": scipy_bound}, repeats
        )
        t_sk, t_ours, t_fft, t_sp = t["skimage"], t["ours"], t["fft"], t["scipy"]
        diff = float(np.max(np.abs(ours()["shift"] - skimage_loop())))
        speedup, to_bound = ratio(t_sk, t_ours), ratio(t_ours, t_fft)
        main.add(
            f"{size}²", t_sk, t_ours, t_fft, t_sp, batch / t_ours, speedup, to_bound,
            ratio(t_ours, t_sp), diff,
        )  # fmt: skip
        if size == stage_size:
            _stage_rows(stages, ref_j, mov_j, ref, mov, uf, repeats, threads)
        if size == TARGET_SIZE:
            result.targets += [
                Target(
                    f"xcorr {size}²: speed-up vs skimage loop",
                    f"≥ {MIN_SPEEDUP_VS_SKIMAGE}×",
                    speedup,
                    speedup is not None and speedup >= MIN_SPEEDUP_VS_SKIMAGE,
                ),
                Target(
                    f"xcorr {size}²: time / FFT-only bound",
                    f"≤ {MAX_RATIO_TO_FFT_BOUND}×",
                    to_bound,
                    to_bound is not None and to_bound <= MAX_RATIO_TO_FFT_BOUND,
                ),
            ]
    if not stages.rows:
        result.tables.remove(stages)
    return result


def _stage_rows(
    table: Table, a: jax.Array, b: jax.Array, ref: np.ndarray, mov: np.ndarray, uf: int,
    repeats: int, threads: int,
) -> None:  # fmt: skip
    """Time the building blocks and the kernel, interleaved, relative to the first row.

    SciPy rows on one thread show where single-core time goes; the JAX rows are
    the XLA building blocks the previous (jitted) implementation was made of.
    """

    def jax_ready(fn: Callable[[], object]) -> Callable[[], object]:
        return lambda: jax.block_until_ready(fn())

    fns = {
        "1. SciPy rfft2 ×2 + irfft2 + argmax (FFT-only), 1 thread": partial(
            scipy_fft_only, ref, mov, 1
        ),
        "2. 1 + upsampled DFT of the rfft half-spectrum (matmul), 1 thread": partial(
            scipy_upsampled_half, ref, mov, uf, 1
        ),
        "3. `phase_correlate` (+ PSLR, peak_corr, NumPy post), 1 thread": partial(
            xcorr.phase_correlate, ref, mov, uf, threads=1
        ),
        f"4. SciPy FFT-only, {threads} threads": partial(scipy_fft_only, ref, mov, threads),
        f"5. `phase_correlate`, {threads} threads (default)": partial(
            xcorr.phase_correlate, ref, mov, uf
        ),
        "6. JAX rfft2 ×2 + irfft2 + argmax (FFT-only, jitted, device arrays)": jax_ready(
            partial(fft_only, a, b)
        ),
        "7. JAX 6 + upsampled DFT of the rfft half-spectrum": jax_ready(
            partial(fft_upsampled_half, a, b, uf)
        ),
    }
    times = time_interleaved(fns, repeats)
    first = next(iter(times.values()))
    for name, t in times.items():
        table.add(name, t, t / first)

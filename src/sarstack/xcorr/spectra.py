"""The correlation surface from two tiles' spectra: FFT helpers, the
upsampled DFT around the peak and its sub-pixel vertex."""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft as sfft


def _rfft2(tiles: np.ndarray) -> np.ndarray:
    """Real 2-D FFT over the last two axes, float32 in, complex64 ``(n, H, W//2 + 1)`` out."""
    return sfft.rfft2(tiles, axes=(-2, -1), workers=1)


def _rfft2_conj(tiles: np.ndarray) -> np.ndarray:
    """``conj(_rfft2(tiles))``, conjugated in place. The conjugate of a scene's
    reference spectrum is then bit for bit its moving spectrum, so a scene
    that is both (a chunk of sequential pairs) is transformed once
    (:class:`sarstack.xcorr.register.TileProducts`). Until 2026-12-05 this was
    ``ihfft2`` (the unscaled backward real transform, one transform as well),
    equal to float32 rounding; the offsets moved by at most
    :data:`CONJ_CHANGE_PX` (tests/test_xcorr.py)."""
    spec = _rfft2(tiles)
    return np.conjugate(spec, out=spec)


#: Most a tile's offset may move (pixels) from :func:`_rfft2_conj`'s change
#: of ``ihfft2`` to ``conj(rfft2)`` (float32 rounding in the spectra): checked
#: by a test against the previous kernel on noisy tiles. Measured: 0 there, and
#: the 24 x 4096² bench's offsets table was identical.
CONJ_CHANGE_PX = 1e-6


def _sum_sq(row: np.ndarray) -> float:
    """``sum(row**2)`` of a 1-D float32 array (float32 SIMD accumulators).

    A 1-D ``einsum`` per row: the same summation whatever the batch or chunk
    a tile comes in (BLAS ``sdot`` depends on the address alignment, and a
    2-D ``einsum`` changes its summation order with the number of rows).
    """
    return float(np.einsum("i,i->", row, row))


def _energy(tiles: np.ndarray) -> np.ndarray:
    """``sum(tile**2)`` per tile, float64 ``(n,)`` (see :func:`_sum_sq`)."""
    flat = tiles.reshape(tiles.shape[0], -1)
    return np.array([_sum_sq(row) for row in flat], dtype=np.float64)


def _surface_stats(cc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Statistics of the real correlation surfaces ``cc`` ``(n, N)``, row by row.

    Returns ``|cc|`` (float32 ``(n, N)``, computed in place of ``cc``), the
    index of its first maximum (a NaN counts as a maximum, as in
    :func:`numpy.argmax`), ``sum |cc|`` (pairwise float32 sum) and
    ``sum cc**2``, the sums as float64. Each row is reduced on its own, so the
    result does not depend on the chunking.
    """
    n = cc.shape[0]
    mag = np.abs(cc, out=cc)
    idx = np.empty(n, dtype=np.int64)
    s1 = np.empty(n, dtype=np.float64)
    s2 = np.empty(n, dtype=np.float64)
    for i in range(n):
        idx[i] = np.argmax(mag[i])
        s1[i] = float(np.add.reduce(mag[i]))
        s2[i] = _sum_sq(mag[i])
    return mag, idx, s1, s2


_PHASORS: dict[int, np.ndarray] = {}


def _phasors(m: int) -> np.ndarray:
    """``exp(2 pi j k / m)`` for ``k = 0 .. m - 1``, complex128 (cached per ``m``)."""
    table = _PHASORS.get(m)
    if table is None:
        angle = (2.0 * np.pi / m) * np.arange(m)
        table = np.cos(angle) + 1j * np.sin(angle)
        table.setflags(write=False)
        _PHASORS[m] = table
    return table


@functools.cache
def _dft_base(n: int, uf: int, region: int, centre: int) -> np.ndarray:
    """``exp(2 pi j (i - centre) f_k / (n uf))``, complex128 ``(region, n)``: the
    part of :func:`_dft_kernel` that is the same for every tile."""
    freqs = np.fft.fftfreq(n, 1.0 / n).round().astype(np.int64)  # signed integers
    pos = np.arange(region, dtype=np.int64) - centre
    base = _phasors(n * uf)[np.mod(pos[:, None] * freqs[None, :], n * uf)]
    base.setflags(write=False)
    return base


def _dft_kernel(
    peak_idx: np.ndarray, n: int, uf: int, region: int, centre: int, bins: int | None = None
) -> np.ndarray:
    """Per-tile matrix-multiply inverse-DFT kernel along one axis, ``(B, region, bins)``
    (the first ``bins`` frequency bins, default all ``n``).

    Entry ``[b, i, k] = exp(+2 pi j * (i - centre + peak_idx[b] * uf) * f_k / (n * uf))``
    with ``f_k`` the signed integer frequency of bin ``k`` (``fftfreq(n) * n``),
    built as the product of the tile-independent :func:`_dft_base` and the
    per-tile factor ``exp(2 pi j peak_idx[b] f_k / n)``. Both phases have exact
    integer numerators, reduced modulo ``n * uf`` before a float64 table
    look-up, so they are accurate for any lag; the product is rounded once to
    complex64. Using the unwrapped peak index instead of the signed lag
    is exact: they differ by a multiple of ``n``, which changes the phase by a
    multiple of ``2 pi``.
    """
    k = n if bins is None else bins
    freqs = np.fft.fftfreq(n, 1.0 / n).round().astype(np.int64)[:k]
    numer = np.mod(peak_idx.astype(np.int64)[:, None] * freqs[None, :], n) * uf  # (B, k)
    tile = _phasors(n * uf)[numer]
    ker = np.multiply(_dft_base(n, uf, region, centre)[None, :, :k], tile[:, None, :])
    return ker.astype(np.complex64)


@functools.cache
def _dirichlet_base(n: int, uf: int, region: int, centre: int) -> np.ndarray:
    """``G[i, m] = sum_k exp(2 pi j f_k (m + (i - centre) / uf) / n)``, complex64
    ``(region, n)``, summed over the signed integer frequencies ``f_k`` of an
    ``n``-point DFT (computed in complex128 as ``n * ifft`` of :func:`_dft_base`)."""
    table = (n * np.fft.ifft(_dft_base(n, uf, region, centre), axis=1)).astype(np.complex64)
    table.setflags(write=False)
    return table


def _dirichlet_kernel(
    peak_idx: np.ndarray, n: int, uf: int, region: int, centre: int
) -> np.ndarray:
    """Kernel ``D`` ``(B, region, n)`` with ``D @ ifft(P, axis=rows) == K @ P`` for the
    :func:`_dft_kernel` ``K`` of the same arguments.

    ``K[b, i, :] @ P = sum_k exp(2 pi j f_k y_i / n) P[k]`` with
    ``y_i = peak_idx[b] + (i - centre) / uf``; writing ``P[k] = sum_y Q[y]
    exp(-2 pi j f_k y / n)`` with ``Q = ifft(P)`` gives ``D[b, i, y] =
    G[i, (peak_idx[b] - y) mod n]`` (:func:`_dirichlet_base`), a gather.
    """
    shift = np.mod(peak_idx.astype(np.int64)[:, None] - np.arange(n)[None, :], n)  # (B, n)
    return _dirichlet_base(n, uf, region, centre)[
        np.arange(region)[None, :, None], shift[:, None, :]
    ]


def _dft_column(
    peak_idx: np.ndarray, n: int, uf: int, region: int, centre: int, k: int
) -> np.ndarray:
    """Column ``k`` of :func:`_dft_kernel` (frequency bin ``k``), complex64 ``(B, region)``."""
    f_k = int(round(float(np.fft.fftfreq(n, 1.0 / n)[k])))
    pos = np.arange(region, dtype=np.int64) - centre
    numer = np.mod((pos[None, :] + peak_idx.astype(np.int64)[:, None] * uf) * f_k, n * uf)
    return _phasors(n * uf)[numer].astype(np.complex64)


def _upsampled_from_half(
    rows: np.ndarray,
    nyq_row: np.ndarray | None,
    kr_nyq: np.ndarray | None,
    ker_c: np.ndarray,
    h: int,
    w: int,
) -> np.ndarray:
    """Matrix-multiply DFT ``ker_r @ P @ ker_c^T`` of the full spectrum ``P`` of
    real data, evaluated from its rfft2 half without rebuilding ``P``.

    The omitted columns are the Hermitian mirrors of the interior columns
    ``1 .. W - W//2 - 1``: a column and its mirror sum to ``2 Re(...)`` except
    on the Nyquist row (even ``H``), whose row frequency is -1/2 for both, and
    which is corrected exactly; the zero and Nyquist columns are added as
    they are. This halves the dominant contraction and equals the full-spectrum
    product to float rounding. The dominant product ``ker_r @ half`` (``R x H``
    by ``H x (W//2 + 1)``) comes in as ``rows``; everything here is ``O(R^2 W)``.

    Parameters
    ----------
    rows
        ``ker_r @ half``, complex64 ``(B, R, W//2 + 1)``, where ``half`` is the
        rfft2 product ``(B, H, W//2 + 1)`` and ``ker_r`` the row kernel
        ``(B, R, H)`` (:func:`_dft_kernel`).
    nyq_row, kr_nyq
        For even ``H``: the Nyquist row ``half[:, H // 2, :]`` ``(B, W//2 + 1)``
        and the Nyquist column of the row kernel ``ker_r[:, :, H // 2]``
        ``(B, R)``; ``None`` for odd ``H``.
    ker_c
        Column kernel (:func:`_dft_kernel`), at least its first ``W//2 + 1``
        bins: ``(B, R, >= W//2 + 1)``.

    Returns
    -------
    numpy.ndarray
        Complex64 ``(B, R, R)``: ``H * W`` times the circular cross-correlation
        at the ``R x R`` sub-pixel lags.
    """
    b, region, _ = rows.shape
    wh = w // 2 + 1
    n_int = w - wh  # interior columns 1 .. n_int have a mirror in the omitted part
    if n_int > 0:
        # Interior columns: T = (Kr P_int) Kc_int^T; only 2 Re(T) is needed.
        kc_int = ker_c[:, :, 1 : 1 + n_int].transpose(0, 2, 1)  # (B, n_int, R)
        t = _matmul_c64(rows[:, :, 1 : 1 + n_int], kc_int)  # (B, R, R)
        up = (2.0 * t.real).astype(np.complex64)
        if h % 2 == 0:
            # Nyquist row: replace 2 Re(Kr_N S) by Kr_N 2 Re(S), S = sum_k P[N, k] Kc[k].
            assert nyq_row is not None and kr_nyq is not None
            s_n = _matmul_c64(nyq_row[:, None, 1 : 1 + n_int], kc_int)[:, 0, :]  # (B, R)
            prod_n = kr_nyq[:, :, None] * s_n[:, None, :]
            up -= 2.0 * prod_n.real
            up += kr_nyq[:, :, None] * (2.0 * s_n.real)[:, None, :]
    else:
        up = np.zeros((b, region, region), dtype=np.complex64)
    # Zero column (frequency 0: ker_c = 1) and, for even W, the Nyquist column.
    up += rows[:, :, 0:1]
    if w % 2 == 0:
        up += rows[:, :, wh - 1 : wh] * ker_c[:, None, :, wh - 1]
    return up


#: Largest ``M * N * K`` of a float32 BLAS product that OpenBLAS runs on the
#: calling thread (``SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD`` = 65536 * 4
#: in its ``interface/gemm.c``; for complex products the limit is 8 times
#: lower). Above it OpenBLAS hands the product to its own threads; next to the
#: worker threads, on a busy 2-core machine, that made one 512² tile's product
#: about 25x slower and ``phase_correlate`` about 3x slower whenever
#: ``OPENBLAS_NUM_THREADS`` was not set to 1.
BLAS_SINGLE_THREAD_MNK = 1 << 18


def _matmul_c64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for complex64 stacks ``(B, M, K) @ (B, K, N)`` without BLAS threads.

    Computed as the real product ``[Re a; Im a] @ view_float32(b)``
    (``(B, 2M, K) @ (B, K, 2N)``, whose rows give ``Re(a) @ b`` and ``Im(a) @ b``
    as complex pairs), split into column blocks of at most
    :data:`BLAS_SINGLE_THREAD_MNK` multiply-adds each, so that BLAS runs every
    block on the calling thread.
    """
    bsz, m, k = a.shape
    n = b.shape[2]
    stacked = np.concatenate([a.real, a.imag], axis=1)  # (B, 2M, K) float32
    b_real = np.ascontiguousarray(b).view(np.float32)  # (B, K, 2N): re, im interleaved
    out = np.empty((bsz, 2 * m, 2 * n), dtype=np.float32)
    step = max(1, BLAS_SINGLE_THREAD_MNK // max(2 * m * k, 1))
    for j in range(0, 2 * n, step):
        np.matmul(stacked, b_real[:, :, j : j + step], out=out[:, :, j : j + step])
    pairs = out.view(np.complex64)  # (B, 2M, N): rows Re(a) @ b, then Im(a) @ b
    return pairs[:, :m] + 1j * pairs[:, m:]


def _vertex(m_minus: np.ndarray, m0: np.ndarray, m_plus: np.ndarray) -> np.ndarray:
    """Vertex offset, in steps within [-0.5, 0.5], of the parabola through three
    equally spaced samples; 0 where it does not open downwards."""
    curv = m_minus - 2.0 * m0 + m_plus
    down = curv < 0
    frac = np.where(down, 0.5 * (m_minus - m_plus) / np.where(down, curv, -1.0), 0.0)
    return np.clip(frac, -0.5, 0.5)


def _window_index(peak: np.ndarray, n: int, exclude: int) -> np.ndarray:
    """Indices ``(B, k)`` of the bins within circular distance ``exclude`` of each peak
    (each bin once, so ``k = min(n, 2 * exclude + 1)``)."""
    if 2 * exclude + 1 >= n:
        return np.broadcast_to(np.arange(n), (peak.shape[0], n))
    return np.mod(peak[:, None] + np.arange(-exclude, exclude + 1)[None, :], n)


def _correlate_spectra(
    ref_spec: np.ndarray,
    mov_conj: np.ndarray,
    energy: np.ndarray,
    shape: tuple[int, int],
    uf: int,
    exclude: int,
    interpolate: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift, peak correlation and PSLR of one chunk from the tiles' rfft2 spectra.

    Parameters
    ----------
    ref_spec, mov_conj
        Complex64 ``(n, H, W//2 + 1)``: the spectrum of the (tapered) reference
        tiles (:func:`_rfft2`, not modified) and the *conjugate* spectrum of the
        moving tiles (:func:`_rfft2_conj`, overwritten).
    energy
        Float64 ``(n,)``: ``sum(ref**2) * sum(mov**2)``.
    shape
        ``(H, W)`` of the tiles.
    uf, exclude, interpolate
        As ``upsample_factor``, ``pslr_exclude`` and ``interpolate`` of
        :func:`phase_correlate`.

    Returns
    -------
    tuple of numpy.ndarray
        ``shift`` ``(n, 2)``, ``peak_corr`` ``(n,)`` and ``pslr`` ``(n,)``, float64,
        as :func:`phase_correlate` returns them.
    """
    n = ref_spec.shape[0]
    h, w = shape
    rows = np.arange(n)

    # Cross-power spectrum P (no normalisation), in place of the moving spectrum,
    # and the integer-lag surface |cc|: irfft2 in two steps, the first in place,
    # which turns P into its row-wise inverse transform Q (the upsampled DFT
    # below works from Q; only P's Nyquist row is kept).
    prod = np.multiply(ref_spec, mov_conj, out=mov_conj)
    nyq_row = prod[:, h // 2, :].copy() if uf > 1 and h % 2 == 0 else None
    q = sfft.ifft(prod, axis=-2, workers=1, overwrite_x=True)
    cc = sfft.irfft(q, n=w, axis=-1, workers=1)  # float32 (n, H, W)
    mag, idx, s1, s2 = _surface_stats(cc.reshape(n, h * w))
    pr, pc = np.divmod(idx, w)
    peak_int = mag[rows, idx].astype(np.float64)
    zero = ~(peak_int > 0)  # identically zero (or NaN) surface: shift undefined

    size = np.array([h, w], dtype=np.int64)
    lag_idx = np.stack([pr, pc], axis=1).astype(np.int64)
    shift = np.where(lag_idx > size // 2, lag_idx - size, lag_idx).astype(np.float64)

    if uf > 1:
        # Adds the sub-pixel part to shift (in place).
        peak = _upsampled_peak(q, nyq_row, pr, pc, (h, w), uf, interpolate, shift)
    else:
        peak = peak_int
    shift[:, size == 1] = 0.0
    shift[zero] = 0.0

    denom = np.sqrt(energy)
    ok = denom > 0
    peak_corr = np.where(ok, np.clip(peak / np.where(ok, denom, 1.0), 0.0, 1.0), 0.0)
    pslr = _pslr(mag, s1, s2, peak_int, pr, pc, (h, w), exclude)
    return shift, peak_corr, pslr


def _upsampled_peak(
    q: np.ndarray, nyq_row: np.ndarray | None, pr: np.ndarray, pc: np.ndarray,
    shape: tuple[int, int], uf: int, interpolate: bool, shift: np.ndarray,
) -> np.ndarray:
    """Peak of the ``uf`` times upsampled correlation around each integer peak
    ``(pr, pc)``, from the row-wise inverse transform ``q`` of the cross-power
    spectrum (and its Nyquist row ``nyq_row``, even ``H``): returns the peak of
    ``|cc|`` (float64 ``(n,)``, the upsampled DFT's divided by ``H * W``) and adds the
    sub-pixel offset of the peak, parabola-refined with ``interpolate``, to
    ``shift`` ``(n, 2)`` in place (see :func:`_correlate_spectra`)."""
    h, w = shape
    n = q.shape[0]
    rows = np.arange(n)
    region = int(math.ceil(1.5 * uf))
    centre = region // 2
    # The dominant product ker_r @ P, as D @ Q.
    rows_up = _matmul_c64(_dirichlet_kernel(pr, h, uf, region, centre), q)
    kr_nyq = None if nyq_row is None else _dft_column(pr, h, uf, region, centre, h // 2)
    ker_c = _dft_kernel(pc, w, uf, region, centre, w // 2 + 1)  # (n, R, W//2 + 1)
    up = _upsampled_from_half(rows_up, nyq_row, kr_nyq, ker_c, h, w)  # H*W*cc(sub-lag)
    up_mag = np.abs(up).reshape(n, region * region)
    sub = np.argmax(up_mag, axis=1)
    sr, sc = np.divmod(sub, region)
    peak = up_mag[rows, sub].astype(np.float64) / float(h * w)
    shift += (np.stack([sr, sc], axis=1) - centre) / uf
    if interpolate:
        # Parabola through the upsampled peak and its neighbours, per axis
        # (a fraction of one upsampled step); 0 on the grid's edge.
        grid = up_mag.reshape(n, region, region).astype(np.float64)
        rm, rp = np.clip(sr - 1, 0, region - 1), np.clip(sr + 1, 0, region - 1)
        cm, cp = np.clip(sc - 1, 0, region - 1), np.clip(sc + 1, 0, region - 1)
        m0 = grid[rows, sr, sc]
        fr = _vertex(grid[rows, rm, sc], m0, grid[rows, rp, sc])
        fc = _vertex(grid[rows, sr, cm], m0, grid[rows, sr, cp])
        fr[(sr == 0) | (sr == region - 1)] = 0.0
        fc[(sc == 0) | (sc == region - 1)] = 0.0
        shift += np.stack([fr, fc], axis=1) / uf
    return peak


def _pslr(
    mag: np.ndarray, s1: np.ndarray, s2: np.ndarray, peak_int: np.ndarray, pr: np.ndarray,
    pc: np.ndarray, shape: tuple[int, int], exclude: int,
) -> np.ndarray:
    """Peak-to-sidelobe ratio (dB, float64 ``(n,)``) on the integer-lag ``|cc|``
    surfaces ``mag`` ``(n, H * W)`` (sums ``s1``, ``s2`` of :func:`_surface_stats`,
    peak ``peak_int`` at ``(pr, pc)``): peak versus mean + std of the surface
    outside a ``(2 exclude + 1)^2`` circular window, computed as the
    whole-surface sums minus the window's (a small gather)."""
    h, w = shape
    n = mag.shape[0]
    rows = np.arange(n)
    r_idx = _window_index(pr, h, exclude)
    c_idx = _window_index(pc, w, exclude)
    win = mag.reshape(n, h, w)[rows[:, None, None], r_idx[:, :, None], c_idx[:, None, :]]
    win = win.reshape(n, -1).astype(np.float64)
    n_side = h * w - r_idx.shape[1] * c_idx.shape[1]
    safe_n = float(max(n_side, 1))
    mean = (s1 - win.sum(axis=1)) / safe_n
    var = np.maximum((s2 - np.square(win).sum(axis=1)) / safe_n - mean * mean, 0.0)
    level = mean + np.sqrt(var)
    floor = peak_int * 1e-6  # caps the ratio at 60 dB
    ratio = peak_int / np.maximum(np.maximum(level, floor), float(np.finfo(np.float32).tiny))
    pslr = np.zeros(n, dtype=np.float64)
    good = (peak_int > 0) & (n_side > 0)
    pslr[good] = 10.0 * np.log10(ratio[good])
    return pslr

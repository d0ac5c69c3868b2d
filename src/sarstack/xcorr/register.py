"""Phase correlation of tile batches: ``phase_correlate``, the shared per-scene
``TileProducts`` and ``register_products`` / ``register_tiles``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.fft as sfft

from sarstack.errors import SarstackError
from sarstack.xcorr.spectra import _correlate_spectra, _energy, _rfft2, _rfft2_conj
from sarstack.xcorr.tiles import _chunk_slices, _map_chunks, _prepare_chunk, _taper_2d

if TYPE_CHECKING:  # annotations only: importing jax costs seconds
    import jax


def phase_correlate(
    ref: np.ndarray | jax.Array,
    mov: np.ndarray | jax.Array,
    upsample_factor: int,
    *,
    pslr_exclude: int = 2,
    interpolate: bool = False,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Sub-pixel translation between tile pairs, batched over the leading axis.

    Parameters
    ----------
    ref, mov
        Real arrays ``(B, H, W)`` (cast to float32), e.g. from
        :func:`prepare_tiles`. Must be finite; a tile pair with a non-finite
        value gets shift 0, ``peak_corr`` 0 (NaN if a value is infinite) and
        ``pslr`` 0, and does not affect the other tiles.
    upsample_factor
        Tiles are registered to within ``1 / upsample_factor`` pixel; 1 means
        integer lags only.
    pslr_exclude
        Half-width, in pixels, of the square window around the integer peak that
        is left out of the side-lobe statistics of ``pslr`` (default 2: a 5x5
        window).
    interpolate
        Refine the upsampled peak by a parabola through it and its neighbours
        (per axis), so the shift is no longer quantized to ``1/upsample_factor``.
        Off by default, which keeps the result identical to skimage.
    threads
        Worker threads for the chunks of tiles (None: the CPUs this process may
        use); the result does not depend on it.

    Returns
    -------
    dict
        ``"shift"``: float64 ``(B, 2)`` (row, col), the shift required to
        register ``mov`` onto ``ref``, in exactly the convention of
        ``skimage.registration.phase_cross_correlation(ref[b], mov[b],
        normalization=None, upsample_factor=upsample_factor)[0]``: a feature at
        ``(r, c)`` in ``ref`` and ``(r + dr, c + dc)`` in ``mov`` gives
        ``(-dr, -dc)``. Integer lags beyond ``fix(n / 2)`` wrap to negative
        values; an axis of length 1 gives 0. Where the correlation surface is
        identically zero (e.g. a tile with no energy) the shift is undefined and
        reported as 0 (skimage returns the artefact ``-(ceil(1.5 uf) // 2) / uf``
        there); ``peak_corr`` is then 0 too.

        ``"peak_corr"``: float64 ``(B,)``, the normalised cross-correlation at the
        peak, ``|cc_peak| / sqrt(sum(ref**2) * sum(mov**2))`` in [0, 1], where
        ``cc_peak`` is the (upsampled, when ``upsample_factor > 1``) circular
        cross-correlation at the estimated shift; 0 when a tile has no energy.
        No mean is removed here, so prepare tiles with ``remove_mean=True`` for
        a correlation coefficient.

        ``"pslr"``: float64 ``(B,)``, peak-to-side-lobe ratio in dB on the
        integer-lag surface ``S = |cc|``: ``10 * log10(S_peak / (mean + std))``
        where mean and std are taken over ``S`` outside the
        ``(2 * pslr_exclude + 1)``-square circular window centred on the peak.
        ``10 log10`` because ``cc`` is already a second-order (power-like)
        quantity. Capped at 60 dB; 0 for a zero surface or when the window
        covers the whole tile.

    Notes
    -----
    Algorithm (as skimage, ``normalization=None``): cross-power spectrum
    ``P = F(ref) * conj(F(mov))`` from real FFTs (:func:`scipy.fft.rfft2`, float32);
    integer peak ``argmax |irfft2(P)|``; for ``upsample_factor = uf > 1`` the
    matrix-multiply DFT of ``P`` is evaluated on a ``ceil(1.5 uf)``-square grid
    with spacing ``1/uf`` centred on the integer peak (two batched matrix
    products with per-tile kernels, on the half spectrum), and the shift is
    refined to its maximum magnitude. Chunks of tiles run in parallel threads
    (:data:`CHUNK_PIXELS`, ``threads``: None = the CPUs available). Results can differ
    from skimage's float64 run only where two candidate peaks are equal to
    within float32 rounding.
    """
    uf = int(upsample_factor)
    if uf != upsample_factor or uf < 1:
        raise SarstackError(f"upsample_factor must be an integer >= 1, got {upsample_factor!r}")
    exclude = int(pslr_exclude)
    if exclude < 0:
        raise SarstackError(f"pslr_exclude must be >= 0, got {pslr_exclude!r}")
    ref_a = np.asarray(ref, dtype=np.float32)
    mov_a = np.asarray(mov, dtype=np.float32)
    if ref_a.ndim != 3 or ref_a.shape != mov_a.shape:
        raise SarstackError(
            f"ref and mov must have the same (B, H, W) shape, got {ref_a.shape} and {mov_a.shape}"
        )
    b, h, w = ref_a.shape
    if b == 0:
        empty = np.zeros((0,), dtype=np.float64)
        return {"shift": np.zeros((0, 2)), "peak_corr": empty, "pslr": empty.copy()}

    def chunk(sl: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r, m = ref_a[sl], mov_a[sl]
        with np.errstate(invalid="ignore", over="ignore"):
            return _correlate_spectra(
                _rfft2(r), _rfft2_conj(m), _energy(r) * _energy(m), (h, w), uf, exclude, interpolate
            )

    parts = _map_chunks(chunk, _chunk_slices(b, h * w, threads), threads)
    return {
        "shift": np.concatenate([p[0] for p in parts]),
        "peak_corr": np.concatenate([p[1] for p in parts]),
        "pslr": np.concatenate([p[2] for p in parts]),
    }


def _fourier_shift(spec: np.ndarray, shift: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Tiles of rfft2 spectrum ``spec`` moved by ``shift[b] = (rows, cols)``
    (circular, sub-pixel): ``irfft2(spec * exp(-2 pi j (f_y dy + f_x dx)))``.

    The phase ramp is separable, built in float64 from ``(B, H)`` and
    ``(B, W//2 + 1)`` factors; ``spec`` is not modified. Returns float32 tiles.
    """
    h, w = shape
    fy = np.fft.fftfreq(h)
    fx = np.fft.rfftfreq(w)
    ramp_r = np.exp(-2j * np.pi * fy[None, :] * shift[:, 0:1]).astype(np.complex64)
    ramp_c = np.exp(-2j * np.pi * fx[None, :] * shift[:, 1:2]).astype(np.complex64)
    moved = np.multiply(spec, ramp_r[:, :, None])
    np.multiply(moved, ramp_c[:, None, :], out=moved)
    # irfft2 as an in-place inverse over rows, then the real inverse over columns.
    moved = sfft.ifft(moved, axis=-2, workers=1, overwrite_x=True)
    return sfft.irfft(moved, n=w, axis=-1, workers=1)


class TileProducts:
    """One scene's tiles, prepared once for every pair the scene is in.

    Built by :func:`tile_products` from raw tiles of linear power (NaN =
    invalid): the prepared untapered tiles, the tapered tiles' energy
    ``sum(tapered**2)`` and the valid fraction per tile; the spectra a pair
    needs (tapered as reference, conjugate tapered and untapered as moving
    tiles) are computed on first use and kept. A scene met in several pairs
    (a chunk of sequential or nearest-K pairs) is read, prepared and
    transformed once; :func:`register_products` correlates two of them with
    the same result as :func:`register_tiles` on the raw tiles, bit for bit
    (the moving spectrum is the conjugate of the reference spectrum, as
    :func:`_rfft2_conj` computes it: a scene that is both is transformed once).
    """

    __slots__ = ("energy", "prepared", "valid", "_spectra", "_win")

    def __init__(
        self, prepared: np.ndarray, energy: np.ndarray, valid: np.ndarray, win: np.ndarray | None
    ) -> None:
        self.prepared, self.energy, self.valid, self._win = prepared, energy, valid, win
        self._spectra: dict[tuple[str, int, int], np.ndarray] = {}

    def spectrum(self, kind: str, sl: slice) -> np.ndarray:
        """Spectrum of tiles ``sl``: ``"ref"`` rfft2 of the tapered tiles, ``"mov"`` its
        conjugate, ``"plain"`` rfft2 of the untapered tiles (each computed once per slice).
        ``"mov"`` comes as a fresh copy, since the correlation overwrites it."""
        if kind == "mov":  # a fresh array: conj(rfft2) of the tapered tiles
            return np.conjugate(self.spectrum("ref", sl))
        key = (kind, int(sl.start), int(sl.stop))
        spec = self._spectra.get(key)
        if spec is None:
            tiles = self.prepared[sl]
            if kind != "plain" and self._win is not None:
                tiles = tiles * self._win
            spec = self._spectra[key] = _rfft2(tiles)
        return spec


def _check_register_args(upsample_factor: int, scale: str, taper: str | None, h: int, w: int):
    uf = int(upsample_factor)
    if uf != upsample_factor or uf < 1:
        raise SarstackError(f"upsample_factor must be an integer >= 1, got {upsample_factor!r}")
    window = _taper_2d(taper, h, w)
    scale_name = str(scale).lower()
    if scale_name not in ("db", "linear"):
        raise SarstackError(f"scale must be 'db' or 'linear', got {scale!r}")
    return uf, None if window is None else window.astype(np.float32), scale_name == "db"


def tile_products(
    tiles: np.ndarray,
    *,
    scale: str = "db",
    remove_mean: bool = True,
    taper: str | None = "hann",
    threads: int | None = None,
    shift: tuple[float, float] | None = None,
) -> TileProducts:
    """Prepare one scene's raw tiles ``(B, H, W)`` for :func:`register_products`.

    ``shift = (rows, cols)`` moves every prepared tile's content by that many
    pixels (circular Fourier shift of the scaled, mean-removed tile, before
    the taper): the injection of a known offset (``rtc.injection``).
    """
    arr = np.asarray(tiles)
    if arr.ndim != 3:
        raise SarstackError(f"tiles must have shape (B, H, W), got {arr.shape}")
    b, h, w = arr.shape
    _, win, db = _check_register_args(1, scale, taper, h, w)
    prepared = np.empty((b, h, w), dtype=np.float32)
    energy = np.empty(b, dtype=np.float64)
    valid = np.empty(b, dtype=np.float64)

    def chunk(sl: slice) -> None:
        prepared[sl], valid[sl] = _prepare_chunk(arr[sl], db, remove_mean, None, 1e-10)
        if shift is not None:
            moves = np.broadcast_to(np.asarray(shift, np.float64), (prepared[sl].shape[0], 2))
            prepared[sl] = _fourier_shift(_rfft2(prepared[sl]), moves, (h, w))
        energy[sl] = _energy(prepared[sl] if win is None else prepared[sl] * win)

    _map_chunks(chunk, _chunk_slices(b, h * w, threads), threads)
    return TileProducts(prepared, energy, valid, win)


def register_products(
    ref: TileProducts,
    mov: TileProducts,
    *,
    upsample_factor: int,
    iterations: int,
    interpolate: bool = True,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """:func:`register_tiles` from two scenes' :func:`tile_products` (made with the
    same taper: the re-centring passes taper the moving tiles with the reference's)."""
    b, h, w = ref.prepared.shape
    if mov.prepared.shape != (b, h, w):
        raise SarstackError(
            f"ref and mov must have the same (B, H, W) shape, got {(b, h, w)} and "
            f"{mov.prepared.shape}"
        )
    uf = _check_register_args(upsample_factor, "db", None, h, w)[0]
    win = ref._win
    n_iter = int(iterations)

    def chunk(sl: slice) -> tuple[np.ndarray, ...]:
        ref_spec, e_ref = ref.spectrum("ref", sl), ref.energy[sl]
        with np.errstate(invalid="ignore", over="ignore"):
            total, peak_corr, pslr = _correlate_spectra(
                ref_spec, mov.spectrum("mov", sl), e_ref * mov.energy[sl], (h, w), uf, 2,
                interpolate,
            )  # fmt: skip
            if n_iter > 0:
                mov_spec = mov.spectrum("plain", sl)
                for _ in range(n_iter):
                    moved = _fourier_shift(mov_spec, total, (h, w))
                    if win is not None:
                        moved *= win
                    step, peak_corr, pslr = _correlate_spectra(
                        ref_spec, _rfft2_conj(moved), e_ref * _energy(moved), (h, w), uf, 2,
                        interpolate,
                    )  # fmt: skip
                    total = total + step
        return total, peak_corr, pslr

    parts = _map_chunks(chunk, _chunk_slices(b, h * w, threads), threads)
    if not parts:
        return {k: np.zeros((0, 2) if k == "shift" else (0,)) for k in _KEYS}
    out = {k: np.concatenate([p[i] for p in parts]) for i, k in enumerate(_KEYS[:3])}
    out["valid_ref"], out["valid_mov"] = ref.valid.copy(), mov.valid.copy()
    return out


_KEYS = ("shift", "peak_corr", "pslr", "valid_ref", "valid_mov")


def register_tiles(
    ref: np.ndarray,
    mov: np.ndarray,
    *,
    upsample_factor: int,
    scale: str = "db",
    remove_mean: bool = True,
    taper: str | None = "hann",
    iterations: int,
    interpolate: bool = True,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Measure tile shifts, re-centring the moving tiles ``iterations`` times.

    A taper applied to both tiles at the same place correlates with itself at
    zero lag and biases a single phase-correlation estimate towards zero (on
    the synthetic truth, by 4-8 % of the shift). Each refinement Fourier-shifts
    the *untapered* moving tiles by the current estimate, tapers them again and
    adds the residual shift, which shrinks the bias geometrically. With
    ``iterations=0`` this is :func:`prepare_tiles` followed by one
    :func:`phase_correlate` (equal to skimage's ``phase_cross_correlation``).

    Parameters
    ----------
    ref, mov
        Raw tiles ``(B, H, W)`` of linear power, NaN = invalid.
    upsample_factor, scale, remove_mean, taper
        As in :func:`phase_correlate` and :func:`prepare_tiles`.
    iterations
        Number of re-centring passes after the first estimate.
    interpolate
        Parabolic refinement of each upsampled peak (see
        :func:`phase_correlate`); without it every tile's shift is quantized to
        ``1/upsample_factor``, and a mean over low-noise tiles keeps that
        quantization as a bias of up to half a step.
    threads
        Worker threads for the chunks of tiles (None: the CPUs this process may
        use); the result does not depend on it.

    Returns
    -------
    dict
        ``shift`` (B, 2) in the skimage convention (total), ``peak_corr`` and
        ``pslr`` of the last pass, ``valid_ref`` and ``valid_mov`` fractions.

    Notes
    -----
    :func:`tile_products` of both stacks, then :func:`register_products`.
    Per chunk of tiles (chunks run in parallel threads): the tapered reference
    spectrum is computed once and reused by every pass, and so is the spectrum
    of the untapered moving tiles, which each pass shifts by the running total
    in the Fourier domain; a pass then costs one inverse FFT (the shift), one
    forward FFT (after the taper) and the correlation's inverse FFT.
    """
    ref_a, mov_a = np.asarray(ref), np.asarray(mov)
    if ref_a.ndim != 3 or ref_a.shape != mov_a.shape:
        raise SarstackError(
            f"ref and mov must have the same (B, H, W) shape, got {ref_a.shape} and {mov_a.shape}"
        )
    _check_register_args(upsample_factor, scale, taper, *ref_a.shape[1:])
    kw: dict[str, Any] = dict(scale=scale, remove_mean=remove_mean, taper=taper, threads=threads)
    ref_p, mov_p = tile_products(ref_a, **kw), tile_products(mov_a, **kw)
    return register_products(ref_p, mov_p, upsample_factor=upsample_factor,
                             iterations=iterations, interpolate=interpolate,
                             threads=threads)  # fmt: skip

"""Tests for sarstack.xcorr: skimage equivalence, truth shifts, quality measures, preparation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import with_schema_defaults
from scipy import ndimage as ndi
from scipy.signal import get_window
from skimage.registration import phase_cross_correlation

import sarstack
from sarstack import xcorr
from sarstack.xcorr import PRESETS, prepare_tiles

phase_correlate = with_schema_defaults(xcorr.phase_correlate)
register_tiles = with_schema_defaults(xcorr.register_tiles)


def _textured(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 1.5) -> np.ndarray:
    """Gaussian-filtered white noise (filtered over the last two axes only)."""
    noise = rng.standard_normal(shape)
    sig = (0,) * (len(shape) - 2) + (sigma, sigma)
    return ndi.gaussian_filter(noise, sig, mode="wrap")


def _fourier_shift(img: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """Circularly shift ``img`` by a sub-pixel ``shift`` (content moves by +shift)."""
    return np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(img), shift)).real


def _shifted_pairs(
    rng: np.random.Generator, b: int, h: int, w: int, max_shift: float = 5.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref = _textured(rng, (b, h, w))
    shifts = rng.uniform(-max_shift, max_shift, size=(b, 2))
    mov = np.stack([_fourier_shift(r, tuple(s)) for r, s in zip(ref, shifts, strict=True)])
    mov += 0.02 * rng.standard_normal(mov.shape)
    return ref.astype(np.float32), mov.astype(np.float32), shifts


# --------------------------------------------------------------------------- #
# phase_correlate
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("shape", [(32, 32), (48, 64), (33, 47)])
@pytest.mark.parametrize("uf", [1, 10, 20])
def test_matches_skimage(shape: tuple[int, int], uf: int) -> None:
    h, w = shape
    rng = np.random.default_rng(1000 * h + w + uf)
    b = 10
    ref, mov, _ = _shifted_pairs(rng, b, h, w)
    # Two pairs of unrelated tiles exercise arbitrary (possibly wrapped) peaks too.
    mov[-2:] = _textured(rng, (2, h, w)).astype(np.float32)

    ours = phase_correlate(ref, mov, upsample_factor=uf)["shift"]
    assert ours.shape == (b, 2)
    sk = np.stack(
        [
            phase_cross_correlation(
                ref[i].astype(np.float64),
                mov[i].astype(np.float64),
                normalization=None,
                upsample_factor=uf,
            )[0]
            for i in range(b)
        ]
    )
    diff = np.abs(ours - sk)
    assert np.all(diff <= 1.0 / uf + 1e-6), diff.max()
    # In practice the two agree exactly (float32 vs float64 ties aside).
    assert np.mean(np.all(diff <= 1e-6, axis=1)) >= 0.9, diff


def test_truth_shift_subpixel() -> None:
    rng = np.random.default_rng(7)
    ref = _textured(rng, (3, 64, 64), sigma=2.0)
    moves = [(2.35, -1.6), (-3.8, 0.45), (0.0, 7.15)]
    mov = np.stack([_fourier_shift(r, m) for r, m in zip(ref, moves, strict=True)])
    out = phase_correlate(ref.astype(np.float32), mov.astype(np.float32), upsample_factor=20)
    expected = -np.asarray(moves)
    np.testing.assert_allclose(out["shift"], expected, atol=0.05)
    np.testing.assert_array_less(0.99, out["peak_corr"])


def test_truth_shift_integer_uf1() -> None:
    rng = np.random.default_rng(8)
    ref = _textured(rng, (2, 40, 56))
    mov = np.stack([np.roll(ref[0], (3, -5), axis=(0, 1)), np.roll(ref[1], (-12, 20), axis=(0, 1))])
    out = phase_correlate(ref, mov, upsample_factor=1)
    np.testing.assert_array_equal(out["shift"], [[-3.0, 5.0], [12.0, -20.0]])


def test_quality_measures() -> None:
    rng = np.random.default_rng(3)
    a = _textured(rng, (1, 64, 64), sigma=1.0)[0]
    b = _textured(rng, (1, 64, 64), sigma=1.0)[0]
    noisy = _fourier_shift(a, (1.3, -2.2)) + 0.1 * a.std() * rng.standard_normal(a.shape)
    ref = np.stack([a, a, a, b * 0])
    mov = np.stack([a, noisy, b, b])
    out = phase_correlate(ref.astype(np.float32), mov.astype(np.float32), upsample_factor=10)
    pc, pslr = out["peak_corr"], out["pslr"]

    assert pc[0] == pytest.approx(1.0, abs=1e-4)  # identical tiles
    assert 0.9 < pc[1] <= 1.0  # shifted + noisy copy
    assert pc[2] < 0.3  # independent textures
    assert pc[3] == 0.0 and pslr[3] == 0.0  # zero-energy reference
    np.testing.assert_array_equal(out["shift"][3], [0.0, 0.0])
    assert np.all((pc >= 0) & (pc <= 1))

    assert pslr[0] > pslr[2] + 6.0
    assert pslr[1] > pslr[2] + 6.0
    assert pslr[2] < 6.0


def test_peak_corr_uf1_equals_direct_ncc() -> None:
    rng = np.random.default_rng(11)
    a = _textured(rng, (1, 24, 30))[0]
    b = np.roll(a, (2, 3), axis=(0, 1)) + 0.3 * rng.standard_normal(a.shape)
    out = phase_correlate(a[None], b[None], upsample_factor=1)
    r, c = (int(v) for v in out["shift"][0])
    direct = np.sum(a * np.roll(b, (r, c), axis=(0, 1))) / np.sqrt(np.sum(a**2) * np.sum(b**2))
    assert out["peak_corr"][0] == pytest.approx(abs(direct), rel=1e-4)


def test_phase_correlate_rejects_bad_input() -> None:
    z = np.zeros((2, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError):
        phase_correlate(z, z[:1])
    with pytest.raises(ValueError):
        phase_correlate(z[0], z[0])
    with pytest.raises(ValueError):
        phase_correlate(z, z, upsample_factor=0)


# --------------------------------------------------------------------------- #
# prepare_tiles
# --------------------------------------------------------------------------- #


def _power_stack(rng: np.random.Generator) -> np.ndarray:
    tiles = rng.gamma(4.0, 0.05, size=(3, 16, 20))
    tiles[0, :4, :] = np.nan  # 80 of 320 invalid
    tiles[1, 5, 7] = np.nan
    tiles[2] = np.nan  # all invalid
    return tiles


def test_prepare_valid_fraction_and_nan_handling() -> None:
    tiles = _power_stack(np.random.default_rng(0))
    prep, frac = prepare_tiles(tiles, scale="db", remove_mean=True, taper=None)
    assert prep.dtype == np.float32 and prep.shape == tiles.shape
    np.testing.assert_allclose(frac, [1 - 80 / 320, 1 - 1 / 320, 0.0])
    assert np.all(np.isfinite(prep))
    nan = np.isnan(tiles)
    assert np.all(prep[nan] == 0.0)
    # Mean removed over the valid pixels only.
    for i in range(2):
        assert abs(prep[i][~nan[i]].mean()) < 1e-5
    np.testing.assert_array_equal(prep[2], 0.0)


def test_prepare_db_and_linear() -> None:
    tiles = _power_stack(np.random.default_rng(1))
    tiles[1, 0, 0] = 0.0  # clipped to eps before log
    nan = np.isnan(tiles)
    db, _ = prepare_tiles(tiles, scale="db", remove_mean=False, taper=None, eps=1e-10)
    expected = 10 * np.log10(np.maximum(np.nan_to_num(tiles, nan=1.0), 1e-10))
    np.testing.assert_allclose(db[~nan], expected[~nan], rtol=1e-6)
    assert db[1, 0, 0] == pytest.approx(-100.0)
    assert np.all(db[nan] == 0.0)

    lin, _ = prepare_tiles(tiles, scale="linear", remove_mean=False, taper=None)
    np.testing.assert_allclose(lin, np.nan_to_num(tiles, nan=0.0), rtol=1e-6)

    lin_c, _ = prepare_tiles(tiles, scale="linear", remove_mean=True, taper=None)
    v = ~nan[0]
    np.testing.assert_allclose(lin_c[0][v], tiles[0][v] - tiles[0][v].mean(), atol=1e-6)


def test_prepare_tapers() -> None:
    rng = np.random.default_rng(2)
    tiles = rng.gamma(4.0, 0.05, size=(2, 12, 17))
    plain, _ = prepare_tiles(tiles, taper=None)
    for name, spec in [("hann", "hann"), ("tukey", ("tukey", 0.25)), ("HANN", "hann")]:
        tapered, _ = prepare_tiles(tiles, taper=name)
        win = np.outer(get_window(spec, 12), get_window(spec, 17))  # periodic windows
        np.testing.assert_allclose(tapered, plain * win[None], rtol=1e-5, atol=1e-6)
    none_str, _ = prepare_tiles(tiles, taper="none")
    np.testing.assert_array_equal(none_str, plain)
    with pytest.raises(ValueError):
        prepare_tiles(tiles, taper="kaiser")
    with pytest.raises(ValueError):
        prepare_tiles(tiles, scale="log")


def test_notebook_preset() -> None:
    tiles = _power_stack(np.random.default_rng(4))
    assert PRESETS["notebook"] == dict(scale="linear", remove_mean=False, taper=None)
    prep, frac = prepare_tiles(tiles, **PRESETS["notebook"])
    np.testing.assert_array_equal(prep, np.nan_to_num(tiles, nan=0.0).astype(np.float32))
    assert frac[2] == 0.0
    # The default differs (dB, mean removal, Hann taper).
    default, _ = prepare_tiles(tiles)
    assert not np.allclose(default, prep)


def test_prepare_then_correlate_recovers_shift() -> None:
    rng = np.random.default_rng(5)
    base = np.exp(_textured(rng, (1, 64, 64), sigma=2.0)[0])  # positive "power"
    moved = np.exp(_fourier_shift(np.log(base), (1.5, -2.25)))
    moved[:6, :6] = np.nan  # a few invalid pixels
    prep, frac = prepare_tiles(np.stack([base, moved]))
    assert frac[1] == pytest.approx(1 - 36 / 4096)
    out = phase_correlate(prep[:1], prep[1:], upsample_factor=20)
    np.testing.assert_allclose(out["shift"][0], [-1.5, 2.25], atol=0.1)


# --------------------------------------------------------------------------- #
# register_tiles, NaN handling, chunking, imports
# --------------------------------------------------------------------------- #


def _power_pairs(
    rng: np.random.Generator, b: int, h: int, w: int, max_shift: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """Positive "power" tiles; ``mov`` is ``ref`` moved sub-pixel (in dB) plus noise."""
    log_ref = 3.0 * _textured(rng, (b, h, w), sigma=2.0)
    shifts = rng.uniform(-max_shift, max_shift, size=(b, 2))
    log_mov = np.stack([_fourier_shift(r, tuple(s)) for r, s in zip(log_ref, shifts, strict=True)])
    ref = np.exp(log_ref + 0.1 * rng.standard_normal(log_ref.shape))
    mov = np.exp(log_mov + 0.1 * rng.standard_normal(log_mov.shape))
    return ref.astype(np.float32), mov.astype(np.float32)


def _skimage_shift(ref: np.ndarray, mov: np.ndarray, uf: int) -> np.ndarray:
    return phase_cross_correlation(
        ref.astype(np.float64), mov.astype(np.float64), normalization=None, upsample_factor=uf
    )[0]


@pytest.mark.parametrize("shape", [(48, 64), (33, 47)])
def test_register_tiles_matches_skimage_recentring(shape: tuple[int, int]) -> None:
    """One re-centring pass equals, tile by tile, skimage on the tapered tiles, a
    float64 Fourier shift of the untapered moving tile by that estimate, and
    skimage again on the re-tapered result."""
    h, w = shape
    uf = 10
    rng = np.random.default_rng(20 + h)
    ref, mov = _power_pairs(rng, 8, h, w)
    ref[0, :3, :5] = np.nan
    mov[1, -4:, :] = np.nan
    out = register_tiles(ref, mov, upsample_factor=uf, iterations=1, interpolate=False)

    p_ref, v_ref = prepare_tiles(ref, taper=None)
    p_mov, v_mov = prepare_tiles(mov, taper=None)
    np.testing.assert_array_equal(out["valid_ref"], v_ref)
    np.testing.assert_array_equal(out["valid_mov"], v_mov)
    win = np.outer(get_window("hann", h), get_window("hann", w)).astype(np.float32)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    expected = []
    for r, m in zip(p_ref * win, p_mov, strict=True):
        first = _skimage_shift(r, m * win, uf)
        ramp = np.exp(-2j * np.pi * (fy * first[0] + fx * first[1]))
        moved = np.fft.irfft2(np.fft.rfft2(m.astype(np.float64)) * ramp, s=(h, w))
        expected.append(first + _skimage_shift(r, (moved * win).astype(np.float32), uf))
    diff = np.abs(out["shift"] - np.array(expected))
    assert np.all(diff <= 2.0 / uf + 1e-6), diff.max()
    assert np.mean(np.all(diff <= 1e-6, axis=1)) >= 0.8, diff


@pytest.mark.parametrize("interpolate", [False, True])
def test_register_tiles_without_iterations_is_one_phase_correlate(interpolate: bool) -> None:
    rng = np.random.default_rng(31)
    ref, mov = _power_pairs(rng, 5, 40, 36)
    mov[2, :, :4] = np.nan
    out = register_tiles(
        ref, mov, upsample_factor=20, iterations=0, interpolate=interpolate, **PRESETS["default"]
    )
    p_ref, _ = prepare_tiles(ref, scale="db", remove_mean=True, taper=None)
    p_mov, _ = prepare_tiles(mov, scale="db", remove_mean=True, taper=None)
    win = np.outer(get_window(("tukey", 0.25), 40), get_window(("tukey", 0.25), 36))
    win = win.astype(np.float32)
    one = phase_correlate(p_ref * win, p_mov * win, 20, interpolate=interpolate)
    for key in ("shift", "peak_corr", "pslr"):
        np.testing.assert_allclose(out[key], one[key], rtol=1e-12, atol=1e-12)


def test_register_tiles_iterations_reduce_taper_bias() -> None:
    rng = np.random.default_rng(32)
    log_ref = 3.0 * _textured(rng, (6, 64, 64), sigma=2.0)
    true = np.array([[2.6, -1.7]] * 6)
    log_mov = np.stack([_fourier_shift(r, tuple(t)) for r, t in zip(log_ref, true, strict=True)])
    ref, mov = np.exp(log_ref), np.exp(log_mov)
    err = [
        np.abs(register_tiles(ref, mov, iterations=k, taper="hann")["shift"] + true).mean()
        for k in (0, 2)
    ]
    assert err[1] < 0.5 * err[0], err
    assert err[1] < 0.02, err


def test_nan_tiles_do_not_affect_the_others() -> None:
    rng = np.random.default_rng(33)
    ref, mov, _ = _shifted_pairs(rng, 5, 32, 40)
    bad_ref, bad_mov = ref.copy(), mov.copy()
    bad_ref[1, 4, 4] = np.nan
    bad_mov[3, 0, 0] = np.inf
    out = phase_correlate(bad_ref, bad_mov, 10)
    good = phase_correlate(ref[[0, 2, 4]], mov[[0, 2, 4]], 10)
    for key in ("shift", "peak_corr", "pslr"):
        np.testing.assert_array_equal(out[key][[0, 2, 4]], good[key])
    np.testing.assert_array_equal(out["shift"][[1, 3]], 0.0)
    assert out["peak_corr"][1] == 0.0 and out["pslr"][1] == 0.0 and out["pslr"][3] == 0.0

    # register_tiles: an all-invalid tile is reported as such, with zero results.
    power_ref, power_mov = _power_pairs(rng, 3, 32, 32)
    power_mov[1] = np.nan
    res = register_tiles(power_ref, power_mov, iterations=1)
    assert res["valid_mov"][1] == 0.0 and res["valid_ref"][1] == 1.0
    np.testing.assert_array_equal(res["shift"][1], 0.0)
    assert res["peak_corr"][1] == 0.0 and res["pslr"][1] == 0.0
    assert np.all(np.isfinite(res["shift"])) and np.all(res["peak_corr"][[0, 2]] > 0.5)


def test_results_do_not_depend_on_chunks_or_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(34)
    ref, mov, _ = _shifted_pairs(rng, 7, 48, 40)
    power_ref, power_mov = _power_pairs(rng, 7, 48, 40)
    runs = []
    for threads, chunk in [(1, 1 << 30), (3, 1), (2, 2 * 48 * 40)]:
        monkeypatch.setattr(xcorr, "CHUNK_PIXELS", chunk)
        runs.append(
            (
                phase_correlate(ref, mov, 10, interpolate=True, threads=threads),
                register_tiles(power_ref, power_mov, iterations=2, threads=threads),
            )
        )
    for other in runs[1:]:
        for first, second in zip(runs[0], other, strict=True):
            assert first.keys() == second.keys()
            for key in first:
                np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_empty_batch_and_bad_register_input() -> None:
    empty = np.zeros((0, 8, 8), dtype=np.float32)
    out = register_tiles(empty, empty)
    assert out["shift"].shape == (0, 2) and out["valid_ref"].shape == (0,)
    assert phase_correlate(empty, empty)["shift"].shape == (0, 2)
    tiles = np.ones((2, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError):
        register_tiles(tiles, tiles[:1])
    with pytest.raises(ValueError):
        register_tiles(tiles, tiles, taper="kaiser")
    with pytest.raises(ValueError):
        register_tiles(tiles, tiles, scale="log")
    with pytest.raises(ValueError):
        register_tiles(tiles, tiles, upsample_factor=0)


def test_xcorr_does_not_import_jax() -> None:
    code = (
        "import sys, numpy as np\n"
        "from sarstack import xcorr\n"
        "t = np.random.default_rng(0).random((2, 16, 16)) + 0.5\n"
        "xcorr.phase_correlate(t, t[::-1], 10)\n"
        "xcorr.register_tiles(t, t[::-1], upsample_factor=10, iterations=1)\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
    )
    src = str(Path(sarstack.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_float32_preparation_against_the_float64_one() -> None:
    """Float32 tiles (a scene as read) are prepared in float32 since 2026-12-05,
    in float64 before (which float64 tiles still are): prepared values within
    a few float32 roundings, offsets within F32_PREPARE_CHANGE_PX, quality
    measures to float32 rounding, with and without a re-centring pass."""
    from sarstack.xcorr import tiles as xtiles

    rng = np.random.default_rng(78)
    ref, mov = _power_pairs(rng, 24, 64, 64)
    mov[3, :, :6] = np.nan
    mov[5, 10, 10] = 0.0  # clipped to eps before the logarithm
    p32, f32 = prepare_tiles(mov)
    p64, f64 = prepare_tiles(mov.astype(np.float64))  # the float64 path, as before
    np.testing.assert_array_equal(f32, f64)
    assert not np.array_equal(p32, p64)  # float32 work, not float64
    np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=2e-5 * np.abs(p64).max())
    kw = dict(upsample_factor=20, **PRESETS["default"])
    for it in (0, 1):
        new = register_tiles(ref, mov, iterations=it, **kw)
        old = register_tiles(ref.astype(np.float64), mov.astype(np.float64), iterations=it, **kw)
        assert np.abs(new["shift"] - old["shift"]).max() <= xtiles.F32_PREPARE_CHANGE_PX
        for key in ("peak_corr", "pslr"):
            np.testing.assert_allclose(new[key], old[key], rtol=1e-4, atol=1e-5)


def test_float32_decibels_through_the_natural_logarithm() -> None:
    """Float32 tiles get their decibels as DB_PER_NEPER * ln(x) since
    2026-12-06 (10 * log10(x) before): within 4 float32 roundings of the
    previous kernel's values, offsets within F32_PREPARE_CHANGE_PX of it."""
    from sarstack.xcorr import tiles as xtiles

    rng = np.random.default_rng(79)
    x = rng.gamma(1.0, 0.05, (3, 64, 64)).astype(np.float32) + np.float32(1e-6)
    new = xtiles._prepare_chunk(x, True, False, None, 1e-10)[0]
    old = np.multiply(np.log10(x), np.float32(10.0))  # the previous kernel, in float32
    assert new.dtype == old.dtype == np.float32 and not np.array_equal(new, old)
    ulp = np.spacing(np.abs(old))
    assert np.abs(new - old).max() <= 4 * ulp.max() and (np.abs(new - old) <= 4 * ulp).all()
    ref, mov = _power_pairs(rng, 24, 64, 64)
    kw = dict(upsample_factor=20, **PRESETS["default"])
    got = register_tiles(ref, mov, iterations=1, **kw)

    def previous(out: np.ndarray) -> None:  # the previous kernel: log10, then x 10
        np.log10(out, out=out)
        np.multiply(out, np.float32(10.0), out=out)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(xtiles, "_decibels32", previous)
        prev = register_tiles(ref, mov, iterations=1, **kw)
        np.testing.assert_array_equal(xtiles._prepare_chunk(x, True, False, None, 1e-10)[0], old)
    assert np.abs(got["shift"] - prev["shift"]).max() <= xtiles.F32_PREPARE_CHANGE_PX
    np.testing.assert_allclose(got["peak_corr"], prev["peak_corr"], rtol=1e-4, atol=1e-5)


def test_conjugate_spectrum_against_the_previous_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The moving spectrum is conj(rfft2) (a scene's reference spectrum,
    conjugated) since 2026-12-05, ihfft2 before: the same to float32 rounding.
    Offsets within CONJ_CHANGE_PX of the previous kernel's, quality measures
    to float32 rounding, on noisy tiles with and without a re-centring pass."""
    import scipy.fft as sfft

    from sarstack.xcorr import register, spectra

    rng = np.random.default_rng(77)
    ref, mov = _power_pairs(rng, 24, 64, 64)
    mov[3, :, :6] = np.nan
    kw = dict(upsample_factor=20, **PRESETS["default"])
    new = {it: register_tiles(ref, mov, iterations=it, **kw) for it in (0, 1)}

    def previous(tiles: np.ndarray) -> np.ndarray:
        return sfft.ihfft2(tiles, axes=(-2, -1), norm="forward", workers=1)

    monkeypatch.setattr(spectra, "_rfft2_conj", previous)
    monkeypatch.setattr(register, "_rfft2_conj", previous)
    for it in (0, 1):
        old = register_tiles(ref, mov, iterations=it, **kw)
        assert np.abs(new[it]["shift"] - old["shift"]).max() <= spectra.CONJ_CHANGE_PX
        for key in ("peak_corr", "pslr"):
            np.testing.assert_allclose(new[it][key], old[key], rtol=1e-4, atol=1e-5)
    # and the new kernel is conj(rfft2) bit for bit
    tiles = ref[:4].copy()
    tiles[np.isnan(tiles)] = 0.0
    np.testing.assert_array_equal(spectra._rfft2_conj(tiles), np.conj(spectra._rfft2(tiles)))

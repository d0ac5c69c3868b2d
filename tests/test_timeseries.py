"""Network inversion, reference point, displacement and velocity kernels."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import invert_options, with_schema_defaults
from scipy.optimize import linprog

from sarstack import dates
from sarstack import network as snet
from sarstack import timeseries as ts
from sarstack.errors import SarstackError

invert_l1 = with_schema_defaults(ts.invert_l1)
select_reference_point = with_schema_defaults(ts.select_reference_point)
fit_velocity = with_schema_defaults(ts.velocity)

N_DATES = 13
NETWORK = "nearest:3"  # 33 interferograms; the L1 tests share this shape (one compile)


pytestmark = pytest.mark.usefixtures("x64")


def _network(n_dates: int = N_DATES, spec: str = NETWORK):
    pairs = snet.make_pairs(n_dates, spec)
    return pairs, snet.incidence_matrix(pairs, n_dates)


def _stack(a, n_pix, noise, seed, outlier_frac=0.0):
    """Random-walk truth (n_dates - 1, P) and its noisy interferograms (n_ifg, P)."""
    rng = np.random.default_rng(seed)
    truth = np.cumsum(rng.normal(0.0, 1.0, (a.shape[1], n_pix)), axis=0)
    phase = a @ truth + rng.normal(0.0, noise, (a.shape[0], n_pix))
    phase += 2 * np.pi * (rng.random(phase.shape) < outlier_frac)
    return truth, phase


def _l1_objective(a, phase, x):
    return np.abs(phase - a @ x).sum(axis=0)


# --------------------------------------------------------------------------- #
# L2
# --------------------------------------------------------------------------- #


def test_l2_equals_lstsq_per_pixel():
    rng = np.random.default_rng(0)
    n = 9
    pairs = [(i, i + 1) for i in range(n - 1)]  # spanning chain, then random extras
    pairs += [tuple(sorted(rng.choice(n, 2, replace=False))) for _ in range(14)]
    a = snet.incidence_matrix(pairs, n)
    phase = rng.normal(0.0, 3.0, (len(pairs), 7, 5))
    x, res = ts.invert_l2(a, phase)
    assert x.shape == (n - 1, 7, 5) and res.shape == phase.shape
    assert x.dtype == np.float64
    for r in range(7):
        for c in range(5):
            want = np.linalg.lstsq(a, phase[:, r, c], rcond=None)[0]
            np.testing.assert_allclose(x[:, r, c], want, rtol=0, atol=1e-10)
    np.testing.assert_allclose(res, phase - np.einsum("kn,nrc->krc", a, x), atol=1e-12)
    # A caller that knows every phase is finite skips the NaN scan: the same results.
    x2, res2 = ts.invert(a, phase, "L2", all_finite=True)[:2]
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(res2, res)
    with pytest.raises(SarstackError, match="no options but all_finite"):
        ts.invert(a, phase, "L2", tol=1e-3)


def test_l2_recovers_truth_to_noise_level():
    _, a = _network()
    noise = 0.1
    truth, phase = _stack(a, 4000, noise, seed=1)
    x, _ = ts.invert_l2(a, phase)
    err = x - truth
    # Predicted per-date standard error: noise * sqrt(diag((A^T A)^-1)).
    sd = noise * np.sqrt(np.diag(np.linalg.inv(a.T @ a)))
    np.testing.assert_allclose(err.std(axis=1), sd, rtol=0.08)
    assert np.all(np.abs(err.mean(axis=1)) < 4 * sd / np.sqrt(4000))


def test_nan_pixels_give_nan_and_leave_others_alone():
    _, a = _network()
    _, phase = _stack(a, 50, 0.1, seed=2, outlier_frac=0.05)
    holed = phase.copy()
    holed[3, 7] = np.nan
    holed[:, 11] = np.nan
    for method in ("L2", "L1"):
        x, res, _ = ts.invert(a, holed, method, **invert_options(method))
        x_ref, _, _ = ts.invert(a, phase, method, **invert_options(method))
        assert np.all(np.isnan(x[:, [7, 11]])) and np.all(np.isnan(res[:, [7, 11]]))
        keep = np.setdiff1d(np.arange(50), [7, 11])
        assert np.all(np.isfinite(x[:, keep]))
        np.testing.assert_allclose(x[:, keep], x_ref[:, keep], atol=1e-12)


# --------------------------------------------------------------------------- #
# L1
# --------------------------------------------------------------------------- #


def _lp_optimum(a, b):
    """Exact LAD objective by linear programming (min sum t, -t <= b - A x <= t)."""
    m, n = a.shape
    c = np.r_[np.zeros(n), np.ones(m)]
    a_ub = np.block([[a, -np.eye(m)], [-a, -np.eye(m)]])
    bounds = [(None, None)] * n + [(0, None)] * m
    sol = linprog(c, A_ub=a_ub, b_ub=np.r_[b, -b], bounds=bounds, method="highs")
    assert sol.status == 0
    return sol.fun


def test_l1_reaches_lp_optimum_by_tolerance():
    _, a = _network()
    _, phase = _stack(a, 300, 0.1, seed=3, outlier_frac=0.05)
    tol = 1e-6
    x, res, n_iter = invert_l1(a, phase, tol=tol, max_iter=200)
    assert 0 < n_iter < 200  # stopped by the tolerance, not the cap
    obj = _l1_objective(a, phase, x)
    np.testing.assert_allclose(res, phase - a @ x, atol=1e-12)
    opt = np.array([_lp_optimum(a, phase[:, p]) for p in range(60)])
    assert np.all(obj[:60] >= opt - 1e-9)
    assert np.all(obj[:60] <= opt * (1 + tol) + 1e-9)
    # Never worse than least squares, and clearly better with outliers.
    x2, _ = ts.invert_l2(a, phase)
    obj2 = _l1_objective(a, phase, x2)
    assert np.all(obj <= obj2 + 1e-9)
    assert np.mean(obj2 - obj) > 0.5


def test_l1_default_tolerance_and_truth():
    _, a = _network()
    truth, phase = _stack(a, 2000, 0.05, seed=4)
    x, _, n_iter = invert_l1(a, phase)
    assert n_iter < 500
    # L1 is less efficient than L2 on gaussian noise (about 1.25 x the error), but
    # still at the noise level (0.05 rad).
    rms = np.sqrt(np.mean((x - truth) ** 2))
    rms2 = np.sqrt(np.mean((ts.invert_l2(a, phase)[0] - truth) ** 2))
    assert rms < 1.3 * rms2 and rms2 < 0.05
    assert np.abs(x - truth).max() < 0.4


def test_l1_rejects_unwrapping_error_l2_does_not():
    pairs, a = _network()
    truth, clean = _stack(a, 400, 0.05, seed=5)
    k = pairs.index((5, 7))
    jumped = clean.copy()
    patch = np.arange(100, 300)
    jumped[k, patch] += 2 * np.pi
    x1c, _, _ = invert_l1(a, clean)
    x1j, _, n_iter = invert_l1(a, jumped)
    x2c, _ = ts.invert_l2(a, clean)
    x2j, _ = ts.invert_l2(a, jumped)
    assert n_iter < 500
    d1 = np.abs(x1j - x1c)[:, patch]
    d2 = np.abs(x2j - x2c)[:, patch]
    # L2 spreads the 2 pi error over the dates near the jump in every patch pixel.
    assert d2.max(axis=0).min() > 0.3
    # L1 moves by noise-level amounts only (<< 2 pi), and not at all outside the patch.
    assert np.sqrt(np.mean(d1**2)) < 0.1
    assert d1.max() < 0.5
    np.testing.assert_array_equal(x1j[:, :100], x1c[:, :100])
    assert np.all(_l1_objective(a, jumped, x1j) <= _l1_objective(a, jumped, x2j) + 1e-9)


def test_l1_longer_network_reaches_optimum():
    n = 18  # 17 unknowns: a longer band for the factorisation
    _, a = _network(n, "nearest:2")
    _, phase = _stack(a, 40, 0.1, seed=6, outlier_frac=0.05)
    x, _, n_iter = invert_l1(a, phase, tol=1e-6)
    assert n_iter < 500
    obj = _l1_objective(a, phase, x)
    opt = np.array([_lp_optimum(a, phase[:, p]) for p in range(20)])
    assert np.all(obj[:20] <= opt * (1 + 1e-6) + 1e-9)


def _patchy_network_stack(n_dates, n_pix, seed):
    """nearest:3 plus random longer pairs, and 2 pi unwrapping errors on pixel patches."""
    rng = np.random.default_rng(seed)
    pairs = snet.make_pairs(n_dates, "nearest:3")
    extra = {tuple(sorted(rng.choice(n_dates, 2, replace=False))) for _ in range(n_dates // 3)}
    pairs += sorted(extra - set(pairs))
    a = snet.incidence_matrix(pairs, n_dates)
    truth = np.cumsum(rng.normal(0.0, 1.0, (n_dates - 1, n_pix)), axis=0)
    phase = a @ truth + rng.normal(0.0, 0.3, (len(pairs), n_pix))
    for k in rng.choice(len(pairs), size=max(2, len(pairs) // 8), replace=False):
        start = int(rng.integers(0, n_pix // 2))
        phase[k, start : start + n_pix // 3] += 2 * np.pi * rng.choice([-1, 1])
    return a, phase


@pytest.mark.parametrize("n_dates", [10, 30, 60])
def test_l1_objective_within_tol_of_highs(n_dates):
    a, phase = _patchy_network_stack(n_dates, 240, seed=n_dates)
    phase[:, 5] = np.nan  # nodata pixel
    phase[2, 6] = np.nan  # one nodata interferogram
    tol = 1e-4
    x, res, n_iter = invert_l1(a, phase, tol=tol)
    assert 0 < n_iter < 500
    assert np.all(np.isnan(x[:, [5, 6]])) and np.all(np.isnan(res[:, [5, 6]]))
    ok = np.setdiff1d(np.arange(240), [5, 6])
    assert np.all(np.isfinite(x[:, ok])) and np.all(np.isfinite(res[:, ok]))
    np.testing.assert_allclose(res[:, ok], phase[:, ok] - a @ x[:, ok], atol=1e-10)
    obj = _l1_objective(a, phase[:, ok], x[:, ok])
    # Never worse than least squares.
    obj2 = _l1_objective(a, phase[:, ok], ts.invert_l2(a, phase)[0][:, ok])
    assert np.all(obj <= obj2 * (1 + 1e-12))
    sub = np.arange(0, ok.size, 6)
    opt = np.array([_lp_optimum(a, phase[:, ok[p]]) for p in sub])
    assert np.all(obj[sub] >= opt * (1 - 1e-9))
    assert np.all(obj[sub] <= opt * (1 + tol))
    assert np.mean(obj2[sub] - obj[sub]) > 0.5  # the outliers matter


def test_l1_dense_design_matrix():
    # Not an incidence matrix: a dense design (dense products, a full band).
    rng = np.random.default_rng(11)
    a = rng.normal(size=(40, 6))
    phase = a @ rng.normal(size=(6, 60)) + rng.laplace(0.0, 0.5, (40, 60))
    x, _, n_iter = invert_l1(a, phase, tol=1e-6)
    assert n_iter < 500
    obj = _l1_objective(a, phase, x)
    opt = np.array([_lp_optimum(a, phase[:, p]) for p in range(15)])
    assert np.all(obj[:15] <= opt * (1 + 1e-6))


@pytest.mark.parametrize("tol", [1e-4, 1e-8])  # float32 then float64; float64 only
def test_l1_counts_pixels_that_did_not_converge(tol, caplog):
    pairs, a = _network()
    truth, clean = _stack(a, 100, 0.0, seed=12)  # consistent: L2 is optimal at once
    _, noisy = _stack(a, 100, 0.1, seed=13, outlier_frac=0.1)
    phase = np.concatenate([clean, noisy], axis=1)
    phase[:, 150] = np.nan  # nodata is not counted
    with caplog.at_level("WARNING", logger="sarstack.timeseries"):
        x, _, n_iter = invert_l1(a, phase, tol=tol, max_iter=1)
    assert n_iter == 1
    assert "99 of 200 pixels stopped before reaching" in caplog.text
    np.testing.assert_allclose(x[:, :100], truth, atol=1e-9)
    caplog.clear()
    with caplog.at_level("WARNING", logger="sarstack.timeseries"):
        invert_l1(a, phase, tol=tol)
    assert caplog.text == ""


def test_l1_blocks_run_side_by_side_give_the_same_pixels(monkeypatch):
    _, a = _network()
    _, phase = _stack(a, 1300, 0.1, seed=16, outlier_frac=0.05)
    phase[:, 700] = np.nan
    x1, r1, n1 = invert_l1(a, phase)  # one block
    monkeypatch.setattr(ts._l1, "_L1_BLOCK", 512)  # three blocks, the last one padded
    x3, r3, n3 = invert_l1(a, phase, threads=2)  # what the workflow passes from the rule
    np.testing.assert_allclose(x3, x1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r3, r1, rtol=0, atol=1e-12)
    assert n3 == n1  # the same chunks of 256 pixels


def test_l1_certificate_is_a_lower_bound():
    # A dual guess that is not feasible (A^T y != 0) must not certify a poor x.
    _, a = _network()
    _, phase = _stack(a, 20, 0.1, seed=15, outlier_frac=0.1)
    a64, _, _, dtype, pinv = ts._prepare(a, phase)
    des = ts._design(a64, pinv, dtype)
    x2, _ = ts.invert_l2(a, phase)
    y = np.sign(phase)  # in [-1, 1], and phase^T y = sum|phase| > optimum
    b_j, x2_j, y_j = (jax.numpy.asarray(v) for v in (phase, x2, y))
    x, res, ok = (np.asarray(v) for v in ts._l1_certify(des, b_j, x2_j, x2_j, y_j, 1e-4))
    np.testing.assert_allclose(x, x2)  # least squares kept: nothing better was given
    np.testing.assert_allclose(res, phase - a @ x2, atol=1e-12)
    obj2 = _l1_objective(a, phase, x2)
    opt = np.array([_lp_optimum(a, phase[:, p]) for p in range(20)])
    assert np.all(obj2 > opt * (1 + 1e-3))  # least squares is far from optimal here
    assert not ok.any()
    # The solver's own dual does certify its solution (solved from least squares on).
    r2 = jax.numpy.asarray(phase - a @ x2)
    d, y1, _ = jax.jit(ts._l1_chunk)(des, r2, jax.numpy.zeros(20), 1e-8, 100)
    x1, _, ok1 = ts._l1_certify(des, b_j, x2_j + d, x2_j, y1, 1e-6)
    assert np.all(np.asarray(ok1))
    np.testing.assert_array_less(_l1_objective(a, phase, np.asarray(x1)), opt * (1 + 1e-6))


def test_band_cholesky_and_solve():
    rng = np.random.default_rng(14)
    n, c = 9, 5
    for half in (0, 2, n - 1):  # diagonal, banded, full
        inside = np.abs(np.subtract.outer(range(n), range(n))) <= half
        g = rng.uniform(-1.0, 1.0, (c, n, n)) * inside
        mats = g + g.transpose(0, 2, 1) + 2 * n * np.eye(n)  # diagonally dominant: SPD
        band = np.zeros((half + 1, n, c))
        for d in range(half + 1):
            band[d, : n - d] = np.diagonal(mats, offset=d, axis1=1, axis2=2).T
        low = np.asarray(ts._band_cholesky(jax.numpy.asarray(band)))
        rhs = rng.normal(size=(n, c))
        x = np.asarray(ts._band_solve(jax.numpy.asarray(low), jax.numpy.asarray(rhs)))
        for p in range(c):
            want = np.linalg.cholesky(mats[p])
            for d in range(half + 1):
                np.testing.assert_allclose(low[: n - d, d, p], np.diagonal(want, -d), atol=1e-12)
            np.testing.assert_allclose(x[:, p], np.linalg.solve(mats[p], rhs[:, p]), atol=1e-12)


def test_float32_matches_float64():
    _, a = _network()
    _, phase = _stack(a, 300, 0.1, seed=7, outlier_frac=0.05)
    x64, _, _ = invert_l1(a, phase)
    l2_64, _ = ts.invert_l2(a, phase)
    with jax.enable_x64(False):
        x32, _, n32 = invert_l1(a, phase.astype(np.float32))
        l2_32, _ = ts.invert_l2(a, phase.astype(np.float32))
    assert x32.dtype == np.float32 and l2_32.dtype == np.float32
    assert n32 < 500
    np.testing.assert_allclose(l2_32, l2_64, atol=1e-4)
    obj32 = _l1_objective(a, phase, x32.astype(np.float64))
    obj64 = _l1_objective(a, phase, x64)
    np.testing.assert_allclose(obj32, obj64, rtol=1e-3)


def test_invert_dispatch_and_options():
    _, a = _network(4, "nearest:2")
    phase = np.random.default_rng(8).normal(size=(a.shape[0], 3))
    x2, _, n2 = ts.invert(a, phase, method="l2")
    np.testing.assert_allclose(x2, ts.invert_l2(a, phase)[0])
    assert n2 == 0
    with pytest.raises(SarstackError, match="'L1' or 'L2'"):
        ts.invert(a, phase, method="L3")
    with pytest.raises(SarstackError, match="tol must be positive"):
        invert_l1(a, phase, tol=0.0)
    with pytest.raises(SarstackError, match="expected"):
        ts.invert_l2(a, phase[:-1])


# --------------------------------------------------------------------------- #
# Single reference, disconnected networks
# --------------------------------------------------------------------------- #


def test_single_reference_needs_no_inversion():
    n = 6
    pairs = [(0, 3), (0, 1), (0, 5), (0, 2), (0, 4)]  # any order
    assert ts.is_single_reference(pairs)
    assert ts.is_single_reference(pairs, n_dates=6)
    assert not ts.is_single_reference(pairs, n_dates=7)  # date 6 missing
    assert not ts.is_single_reference(snet.make_pairs(n, "sequential"))
    assert not ts.is_single_reference([*pairs, (1, 2)])
    assert not ts.is_single_reference([(0, 1), (0, 1), (0, 3)])
    a = snet.incidence_matrix(pairs, n)
    phase = np.random.default_rng(9).normal(size=(5, 4, 3))
    phase[2, 1, 1] = np.nan
    x = ts.single_reference_series(pairs, phase)
    x2, res = ts.invert_l2(a, phase)
    np.testing.assert_allclose(x, x2, atol=1e-12, equal_nan=True)
    assert np.all(np.isnan(x[:, 1, 1]))
    np.testing.assert_allclose(x[2][~np.isnan(x[2])], phase[0][~np.isnan(x[2])])  # date 3
    np.testing.assert_allclose(np.nan_to_num(res), 0.0, atol=1e-12)
    with pytest.raises(SarstackError, match="not single-reference"):
        ts.single_reference_series(snet.make_pairs(n, "sequential"), phase)


def test_disconnected_network_names_dates():
    d = [dt.date(2020, 1, 1) + dt.timedelta(days=12 * k) for k in range(6)]
    pairs = [(0, 1), (1, 2), (3, 4)]  # 3 and 4 apart; 5 in no interferogram
    with pytest.raises(SarstackError) as err:
        ts.check_network(pairs, 6, d)
    msg = str(err.value)
    assert msg.startswith("the interferogram network is disconnected: dates ")
    assert "2020-02-06, 2020-02-18, 2020-03-01 not connected to 2020-01-01" in msg
    assert "\n" not in msg
    ts.check_network(snet.make_pairs(6, "sequential"), 6, d)  # connected: no error
    a = snet.incidence_matrix(pairs, 6)
    for method in ("L1", "L2"):
        with pytest.raises(SarstackError, match=r"dates #3, #4, #5 not connected to #0"):
            ts.invert(a, np.zeros((3, 2)), method, **invert_options(method))


# --------------------------------------------------------------------------- #
# Reference point
# --------------------------------------------------------------------------- #


def _ring_scene():
    """41 x 41: a high-quality ring around a nodata hole that holds the quality maximum."""
    rr, cc = np.mgrid[0:41, 0:41]
    dist = np.hypot(rr - 20, cc - 20)
    valid = dist >= 4  # nodata hole at the centre
    quality = np.full((41, 41), 0.2)
    quality[(dist >= 8) & (dist <= 14)] = 0.97
    quality[dist < 4] = 1.0  # the maximum is on nodata pixels
    return valid, quality, dist


def test_reference_point_never_on_nodata():
    valid, quality, dist = _ring_scene()
    r, c = select_reference_point(valid, quality, threshold=0.95)
    assert valid[r, c] and quality[r, c] >= 0.95
    # The ring's centroid is the hole; the nearest ring pixel is 8 pixels away.
    assert dist[r, c] == pytest.approx(8.0)
    assert (r, c) == (12, 20)  # first in row-major order among the nearest


def test_reference_point_largest_region_centroid():
    valid = np.ones((30, 50), dtype=bool)
    quality = np.zeros((30, 50))
    quality[2:8, 2:8] = 1.0  # small region
    quality[10:25, 20:45] = 1.0  # large region, centroid (17, 32)
    valid[17, 32] = False  # centroid on nodata: nearest valid neighbour instead
    r, c = select_reference_point(valid, quality)
    assert valid[r, c]
    assert (r, c) == (16, 32)


def test_reference_point_fallback_to_best_quality():
    valid, quality, _ = _ring_scene()
    quality[3, 37] = 0.98  # best valid quality, below the threshold
    quality[0, 0] = np.nan
    assert select_reference_point(valid, quality, threshold=0.999) == (3, 37)
    # No quality at all: the centroid rule over every valid pixel.
    r, c = select_reference_point(valid)
    assert valid[r, c]


def test_reference_point_no_valid_pixel():
    with pytest.raises(SarstackError, match="no pixel is valid in every interferogram"):
        select_reference_point(np.zeros((5, 5), dtype=bool))


def test_reference_point_conncomp():
    valid = np.ones((30, 60), dtype=bool)
    quality = np.ones((30, 60))
    assert select_reference_point(valid, quality) == (14, 29)
    # 3-D labels: columns >= 20 are not unwrapped in the second interferogram.
    cc = np.ones((3, 30, 60), dtype=np.int32)
    cc[1, :, 20:] = 0
    r, c = select_reference_point(valid, quality, conncomp=cc)
    assert (r, c) == (14, 9)
    # 2-D labels: two touching components are separate regions; the larger wins.
    cc2 = np.where(np.arange(60) < 40, 1, 2)[None, :].repeat(30, axis=0)
    assert select_reference_point(valid, quality, conncomp=cc2) == (14, 19)
    # Labels on only invalid pixels: ignored rather than failing.
    r, c = select_reference_point(valid & (np.arange(60) >= 5), quality, conncomp=cc[1] * 0)
    assert c >= 5


def test_check_reference_point():
    valid = np.ones((100, 60), dtype=bool)
    valid[10, 20] = False
    assert ts.check_reference_point([5, 7], valid) == (5, 7)
    with pytest.raises(SarstackError) as err:
        ts.check_reference_point([100, 5], valid)
    assert str(err.value) == "reference point [100, 5] is outside the 100 x 60 raster"
    with pytest.raises(SarstackError, match="outside"):
        ts.check_reference_point((-1, 5), valid)
    with pytest.raises(SarstackError, match=r"\[10, 20\] is nodata"):
        ts.check_reference_point((10, 20), valid)


def test_reference_subtracts_reference_pixel():
    x = np.random.default_rng(10).normal(size=(4, 6, 5))
    out = ts.reference(x, (2, 3))
    np.testing.assert_allclose(out[:, 2, 3], 0.0)
    np.testing.assert_allclose(out - x, -x[:, 2, 3][:, None, None] * np.ones((1, 6, 5)))
    x[1, 2, 3] = np.nan
    with pytest.raises(SarstackError, match=r"reference pixel \[2, 3\] is NaN"):
        ts.reference(x, (2, 3))


# --------------------------------------------------------------------------- #
# Sign, units, velocity
# --------------------------------------------------------------------------- #


def test_uplift_is_positive_displacement():
    # Uplift: the ground moves towards the radar, the range shortens, phase decreases.
    t = np.arange(8) * 12 / 365.25
    phase = -5.0 * t[:, None] * np.ones((1, 3))  # -5 rad/yr
    disp, units = ts.phase_to_displacement(phase, None)
    assert units == "radians"
    assert np.all(disp[1:] > 0)
    vel, _, _ = fit_velocity(disp, t)
    np.testing.assert_allclose(vel, 5.0)
    wl = 0.0555
    disp_m, units_m = ts.phase_to_displacement(phase, wl)
    assert units_m == "meters"
    np.testing.assert_allclose(disp_m, -phase * wl / (4 * np.pi))
    # -4 pi rad of phase is one wavelength towards the radar.
    np.testing.assert_allclose(ts.phase_to_displacement(np.array([-4 * np.pi]), wl)[0], [wl])
    with pytest.raises(SarstackError, match="wavelength"):
        ts.phase_to_displacement(phase, -1.0)


def test_velocity_exact_on_linear_data():
    t = dates.years_since([dt.date(2020, 1, 1) + dt.timedelta(days=12 * k) for k in range(10)])
    slope = np.array([[1.5, -2.0], [0.0, 7.25]])
    disp = 0.3 + slope[None] * t[:, None, None]
    disp[:, 1, 0] = np.nan
    vel, std, icpt = fit_velocity(disp, t)
    assert vel.shape == (2, 2)
    np.testing.assert_allclose(vel[[0, 0, 1], [0, 1, 1]], [1.5, -2.0, 7.25], atol=1e-10)
    np.testing.assert_allclose(icpt[[0, 0, 1], [0, 1, 1]], 0.3, atol=1e-10)
    assert np.all(std[[0, 0, 1], [0, 1, 1]] < 1e-9)
    assert np.isnan(vel[1, 0]) and np.isnan(std[1, 0]) and np.isnan(icpt[1, 0])
    _, std2, _ = fit_velocity(disp[:2, 0], t[:2])
    assert np.all(np.isnan(std2))


def test_velocity_std_is_calibrated_and_shrinks_with_dates():
    rng = np.random.default_rng(11)
    stds = []
    for n in (6, 12, 24):
        t = np.arange(n) * 12 / 365.25
        disp = 2.0 * t[:, None] + rng.normal(0.0, 0.5, (n, 3000))
        vel, std, _ = fit_velocity(disp, t)
        # The reported standard error matches the scatter of the estimates.
        assert vel.std() == pytest.approx(np.mean(std), rel=0.1)
        assert abs(vel.mean() - 2.0) < 4 * vel.std() / np.sqrt(3000)
        stds.append(np.mean(std))
    assert stds[0] > stds[1] > stds[2]


def test_phase_and_velocity_recovered_from_noisy_network():
    pairs, a = _network()
    t = np.arange(N_DATES) * 12 / 365.25
    rng = np.random.default_rng(12)
    v = rng.uniform(-10, 10, 2000)  # phase rad/yr
    truth = v[None] * t[1:, None]
    noise = 0.1
    phase = a @ truth + rng.normal(0.0, noise, (a.shape[0], 2000))
    x, _ = ts.invert_l2(a, phase)
    series = np.vstack([np.zeros((1, 2000)), x])
    disp, _ = ts.phase_to_displacement(series, None)
    vel, _, _ = fit_velocity(disp, t)
    # Error propagation: vel = c . x with slope weights c, cov(x) = noise^2 (A^T A)^-1.
    c = (t - t.mean()) / np.sum((t - t.mean()) ** 2)
    sd = noise * np.sqrt(c[1:] @ np.linalg.inv(a.T @ a) @ c[1:])
    err = vel - (-v)
    assert np.sqrt(np.mean(err**2)) == pytest.approx(sd, rel=0.08)
    assert abs(err.mean()) < 4 * sd / np.sqrt(2000)


def test_l1_threads_are_an_argument(monkeypatch):
    monkeypatch.setenv("SARSTACK_THREADS", "3")  # the environment no longer counts
    assert ts._l1_threads(3) == 3
    assert 1 <= ts._l1_threads() <= 4


def test_l2_and_coherence_never_import_jax_and_configure_sets_its_environment():
    """An L2 job pays no JAX import: the timeseries package loads its JAX
    modules on first use, and configure_jax before any import only sets JAX's
    environment variables, which JAX then reads (a fresh interpreter)."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from sarstack.jaxcfg import configure_jax, x64_enabled
configure_jax(x64=True, cache_dir=sys.argv[1])
from sarstack import network as snet, timeseries as ts
pairs = snet.make_pairs(6, "nearest:2")
a = snet.incidence_matrix(pairs, 6)
phase = np.random.default_rng(0).normal(size=(len(pairs), 50))
x, res = ts.invert_l2(a, phase)
ts.temporal_coherence(res)
ts.invert(a, phase, "L2")
assert x.dtype == np.float64 and x64_enabled()
assert "jax" not in sys.modules, "L2 imported JAX"
ts.invert_weighted  # first use of a JAX name imports it
import jax
assert jax.config.jax_enable_x64 and jax.config.jax_compilation_cache_dir == sys.argv[1]
assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
print("ok")
"""
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        p = subprocess.run([sys.executable, "-c", code, cache], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


_POOL_CODE = """
import os, sys, json
import numpy as np
from test_timeseries import _patchy_network_stack  # the tests folder is on PYTHONPATH
from sarstack.jaxcfg import configure_jax
configure_jax(x64=True, cache_dir="")
from sarstack.timeseries import invert_l1  # starts the backend (sarstack.jaxcfg.start_backend)
a, phase = _patchy_network_stack(30, 600, seed=7)
x = invert_l1(a, phase, tol=1e-4, max_iter=500).x
np.save(sys.argv[1], x)
tasks = os.listdir("/proc/self/task")
pool = [t for t in tasks if open(f"/proc/self/task/{t}/comm").read().startswith("tf_XLAEigen")]
masks = {t: sorted(os.sched_getaffinity(int(t))) for t in tasks}
print(json.dumps({"pool": len(pool), "masks": list(masks.values()), "all": sorted(os.sched_getaffinity(0))}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs (the pool follows the affinity)")
def test_jax_pool_has_one_thread_on_every_cpu_and_l1_matches_a_wider_pool(tmp_path):
    """sarstack's processes start XLA's CPU pool with one thread (unless
    SARSTACK_JAX_THREADS says otherwise), and the pool's thread may run on
    every CPU of the process. A pool of two (what JAX chose on this 2-CPU
    machine before) sums some products in another order: the L1 solution is
    then another point within the certified tolerance of the optimum."""
    import json
    import subprocess
    import sys

    out = {}
    for n in ("", "2"):
        env = {k: v for k, v in os.environ.items() if k != "SARSTACK_JAX_THREADS"}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])])
        if n:
            env["SARSTACK_JAX_THREADS"] = n
        path = tmp_path / f"x{n or 'default'}.npy"
        p = subprocess.run([sys.executable, "-c", _POOL_CODE, str(path)],
                           capture_output=True, text=True, env=env)  # fmt: skip
        assert p.returncode == 0, p.stderr[-2000:]
        out[n] = json.loads(p.stdout.strip().splitlines()[-1])
        out[n]["x"] = np.load(path)
    assert out[""]["pool"] == 1 and out["2"]["pool"] == 2
    for r in out.values():
        assert all(m == r["all"] for m in r["masks"])  # no thread left pinned
    a, phase = _patchy_network_stack(30, 600, seed=7)
    obj1 = _l1_objective(a, phase, out[""]["x"])
    obj2 = _l1_objective(a, phase, out["2"]["x"])
    np.testing.assert_allclose(obj1, obj2, rtol=2e-4)  # both within tol = 1e-4 of the optimum


def test_design_pseudo_inverse_is_factored_once_per_network():
    """_prepare's pseudo-inverse comes from a per-network cache: the same
    (read-only) array for every block of a network, equal to the QR solve."""
    from sarstack.timeseries._common import _design_pinv, _prepare

    pairs = [(i, j) for i in range(8) for j in range(i + 1, min(i + 3, 8))]
    a = snet.incidence_matrix(pairs, 8)
    _design_pinv.cache_clear()
    p1 = _prepare(a, np.zeros((len(pairs), 4)))[4]
    p2 = _prepare(a.copy(), np.ones((len(pairs), 2, 3)))[4]
    assert p1 is p2 and not p1.flags.writeable
    assert _design_pinv.cache_info().misses == 1
    q, r = np.linalg.qr(a)
    np.testing.assert_array_equal(p1, np.linalg.solve(r, q.T))
    with pytest.raises(SarstackError, match="expected"):
        _prepare(a, np.zeros((len(pairs) + 1, 4)))

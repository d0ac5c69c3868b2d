"""Weighted and censored L2 inversion, temporal coherence, weighted velocity."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import with_schema_defaults

from sarstack import network as snet
from sarstack import timeseries as ts
from sarstack.errors import SarstackError

invert_l1 = with_schema_defaults(ts.invert_l1)
velocity_weighted = with_schema_defaults(ts.velocity_weighted)
fit_velocity = with_schema_defaults(ts.velocity)

N_DATES = 10
NETWORK = "nearest:3"  # 24 interferograms, shared by most tests (one compile)


pytestmark = pytest.mark.usefixtures("x64")


@pytest.fixture(params=["sparse", "dense"])
def path(request, monkeypatch):
    """Run a test through the unrolled sparse solver and the library fallback."""
    if request.param == "dense":
        monkeypatch.setattr(ts._weighted, "_SPARSE_MAX_OPS", -1)
    return request.param


def _network(n_dates: int = N_DATES, spec: str = NETWORK):
    pairs = snet.make_pairs(n_dates, spec)
    return pairs, snet.incidence_matrix(pairs, n_dates)


def _random_network(seed: int = 0, n: int = 9, extra: int = 14):
    """Spanning chain plus random extra pairs (duplicates allowed), shuffled."""
    rng = np.random.default_rng(seed)
    pairs = [(i, i + 1) for i in range(n - 1)]
    pairs += [tuple(int(v) for v in sorted(rng.choice(n, 2, replace=False))) for _ in range(extra)]
    pairs = [pairs[k] for k in rng.permutation(len(pairs))]
    return pairs, snet.incidence_matrix(pairs, n)


def _stack(a, n_pix, noise, seed):
    """Random-walk truth (n_dates - 1, P) and its noisy interferograms (n_ifg, P)."""
    rng = np.random.default_rng(seed)
    truth = np.cumsum(rng.normal(0.0, 1.0, (a.shape[1], n_pix)), axis=0)
    return truth, a @ truth + rng.normal(0.0, noise, (a.shape[0], n_pix))


def _wlstsq(a, b, w):
    """Oracle: least squares of the sqrt(W)-scaled system (rows with w = 0 drop out)."""
    sw = np.sqrt(w)
    return np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)[0]


def _is_connected(pairs, n_dates):
    comp = snet.network_components(pairs, n_dates)
    return bool(np.all(comp == comp[0]))


# --------------------------------------------------------------------------- #
# Weighted L2 against NumPy
# --------------------------------------------------------------------------- #


def test_weighted_equals_scaled_lstsq_and_variance(path):
    pairs, a = _random_network()
    m, n = a.shape
    rng = np.random.default_rng(1)
    phase = rng.normal(0.0, 3.0, (m, 20, 15))  # 300 pixels
    w = rng.uniform(0.05, 20.0, phase.shape)
    out = ts.invert_weighted(a, phase, w)
    assert out["x"].shape == (n, 20, 15) and out["x_var"].shape == (n, 20, 15)
    assert out["residual"].shape == phase.shape and out["n_used"].shape == (20, 15)
    assert out["x"].dtype == np.float64 and out["n_used"].dtype == np.int32
    np.testing.assert_array_equal(out["n_used"], m)
    for r in range(20):
        for c in range(15):
            wp = w[:, r, c]
            want = _wlstsq(a, phase[:, r, c], wp)
            np.testing.assert_allclose(out["x"][:, r, c], want, rtol=0, atol=1e-8)
            var = np.diag(np.linalg.inv(a.T @ (wp[:, None] * a)))
            np.testing.assert_allclose(out["x_var"][:, r, c], var, rtol=1e-8, atol=0)
    np.testing.assert_allclose(
        out["residual"], phase - np.einsum("kn,nrc->krc", a, out["x"]), atol=1e-10
    )
    # Unit weights reproduce the unweighted solve; the shared-weights form is accepted.
    x_l2, res_l2 = ts.invert_l2(a, phase)
    out1 = ts.invert_weighted(a, phase, np.ones(m))
    np.testing.assert_allclose(out1["x"], x_l2, atol=1e-10)
    np.testing.assert_allclose(out1["residual"], res_l2, atol=1e-10)


def test_zero_weight_drops_the_row(path):
    pairs, a = _network()
    m, n = a.shape
    rng = np.random.default_rng(2)
    _, phase = _stack(a, 240, 0.3, seed=3)
    phase += 2 * np.pi * (rng.random(phase.shape) < 0.1)  # make dropping rows matter
    w = rng.uniform(0.5, 2.0, phase.shape)
    # A different row dropped in each pixel (any single row keeps this network connected),
    # plus a second one in every other pixel.
    drop1 = np.arange(240) % m
    drop2 = (7 * np.arange(240) + 3) % m
    w[drop1, np.arange(240)] = 0.0
    w[drop2[::2], np.arange(0, 240, 2)] = 0.0
    out = ts.invert_weighted(a, phase, w)
    for p in range(240):
        keep = w[:, p] > 0
        assert _is_connected([pairs[k] for k in np.flatnonzero(keep)], N_DATES)
        want = np.linalg.lstsq(
            a[keep] * np.sqrt(w[keep, p])[:, None], phase[keep, p] * np.sqrt(w[keep, p]), rcond=None
        )[0]
        np.testing.assert_allclose(out["x"][:, p], want, rtol=0, atol=1e-8)
        assert out["n_used"][p] == keep.sum()
        assert np.all(np.isnan(out["residual"][~keep, p]))
        np.testing.assert_allclose(
            out["residual"][keep, p], phase[keep, p] - a[keep] @ want, atol=1e-8
        )
    # The censored rows' values do not matter at all.
    garbage = np.where(w > 0, phase, 1e3)
    np.testing.assert_array_equal(ts.invert_weighted(a, garbage, w)["x"], out["x"])


# --------------------------------------------------------------------------- #
# Censoring by connected components
# --------------------------------------------------------------------------- #


def test_conncomp_censoring_stops_unwrapping_error():
    pairs, a = _network()
    k = pairs.index((4, 6))
    truth, clean = _stack(a, 400, 0.05, seed=4)
    patch = np.arange(100, 300)
    jumped = clean.copy()
    jumped[k, patch] += 2 * np.pi  # unwrapping error, flagged by conncomp label 0
    cc = np.where(np.random.default_rng(5).random(clean.shape) < 0.5, 1, 2)
    cc[k, patch] = 0
    out = ts.invert_weighted(a, jumped, cc != 0)
    x_plain, _ = ts.invert_l2(a, jumped)
    x_clean, _ = ts.invert_l2(a, clean)
    # Outside the patch every label is non-zero: identical to the plain solve.
    outside = np.r_[0:100, 300:400]
    np.testing.assert_allclose(out["x"][:, outside], x_plain[:, outside], atol=1e-10)
    # Plain L2 leaks the 2 pi error into the dates near the jump in every patch pixel.
    d_plain = np.abs(x_plain - x_clean)[:, patch]
    assert d_plain.max(axis=0).min() > 0.3
    # Censored: one interferogram fewer, so only noise-level changes from the clean solve.
    d_cens = np.abs(out["x"] - x_clean)[:, patch]
    assert np.sqrt(np.mean(d_cens**2)) < 0.03
    assert d_cens.max() < 0.15
    assert np.sqrt(np.mean((out["x"][:, patch] - truth[:, patch]) ** 2)) < 0.06
    np.testing.assert_array_equal(out["n_used"][patch], a.shape[0] - 1)
    assert np.all(np.isnan(out["residual"][k, patch]))
    assert not np.any(np.isnan(out["residual"][:, outside]))


def test_cut_off_dates_are_nan_and_others_exact(path):
    pairs, a = _network()
    m, n = a.shape
    rng = np.random.default_rng(6)
    _, phase = _stack(a, 8, 0.2, seed=7)
    w = rng.uniform(0.5, 2.0, (m, 8))
    across = np.array([(i < 6) != (j < 6) for i, j in pairs])
    isolated = np.array([3 in (i, j) for i, j in pairs])
    w[across, 0] = 0.0  # pixel 0: dates 6..9 cut off from date 0
    w[isolated, 1] = 0.0  # pixel 1: date 3 alone, 0-2 and 4-9 still connected
    w[across | isolated, 2] = 0.0  # pixel 2: both
    w[:, 3] = 0.0  # pixel 3: nothing used
    phase[:, 4] = 2.5  # pixel 4: an inconsistent stack (for the coherence check)
    phase[5, 5] = np.nan  # pixel 5: one missing observation, dropped like a zero weight
    phase[:, 7] = np.nan  # pixel 7: nodata, whatever the weights
    censored = w == 0
    phase_g = np.where(censored, 50.0, phase)  # censored values must not matter
    out = ts.invert_weighted(a, phase_g, w)
    x, res = out["x"], out["residual"]
    lost = {0: [6, 7, 8, 9], 1: [3], 2: [3, 6, 7, 8, 9], 3: list(range(1, 10))}
    for p, dd in lost.items():
        nan_dates = np.flatnonzero(np.isnan(x[:, p])) + 1
        np.testing.assert_array_equal(nan_dates, dd)
        assert np.all(np.isnan(out["x_var"][np.array(dd) - 1, p]))
        keep = [d for d in range(1, N_DATES) if d not in dd]
        used = ~censored[:, p]
        assert out["n_used"][p] == used.sum()
        # Reachable dates: exactly the weighted solve of the reachable sub-network.
        rows = used & np.array([i not in dd and j not in dd for i, j in pairs])
        sub = a[np.ix_(rows, np.array(keep, dtype=int) - 1)]
        if keep:
            want = _wlstsq(sub, phase[rows, p], w[rows, p])
            np.testing.assert_allclose(x[np.array(keep) - 1, p], want, atol=1e-10)
            var = np.diag(np.linalg.inv(sub.T @ (w[rows, p][:, None] * sub)))
            np.testing.assert_allclose(out["x_var"][np.array(keep) - 1, p], var, rtol=1e-10)
        assert np.all(np.isnan(res[~used, p])) and not np.any(np.isnan(res[used, p]))
        # Pairs among the lost dates keep the residuals of their own (datum-free) fit.
        a_full = snet.incidence_matrix(pairs, N_DATES)
        sw = np.sqrt(w[used, p])
        x_mn = np.linalg.lstsq(a_full[used] * sw[:, None], phase[used, p] * sw, rcond=None)[0]
        np.testing.assert_allclose(res[used, p], phase[used, p] - a_full[used] @ x_mn, atol=1e-9)
    assert out["n_used"][3] == 0
    # Temporal coherence uses only the used rows.
    coh = ts.temporal_coherence(res)
    for p in range(5):
        r = res[~censored[:, p], p]
        want = np.abs(np.mean(np.exp(1j * r))) if r.size else np.nan
        np.testing.assert_allclose(coh[p], want, atol=1e-12)
    assert np.isnan(coh[3]) and coh[4] < 0.9
    # A missing observation is censored for its pixel only: the same as weight 0.
    w5 = w[:, 5].copy()
    w5[5] = 0.0
    want5 = ts.invert_weighted(a, np.nan_to_num(phase[:, 5:6]), w5[:, None])
    for key in ("x", "residual", "x_var", "n_used"):
        np.testing.assert_allclose(out[key][..., 5], want5[key][..., 0], atol=1e-10)
    assert out["n_used"][5] == m - 1 and np.isnan(res[5, 5])
    # Nodata pixel: all NaN.
    assert np.all(np.isnan(x[:, 7])) and np.all(np.isnan(res[:, 7]))
    assert np.all(np.isnan(out["x_var"][:, 7])) and np.isnan(coh[7]) and out["n_used"][7] == 0
    assert not np.any(np.isnan(x[:, 5:7]))


# --------------------------------------------------------------------------- #
# Temporal coherence
# --------------------------------------------------------------------------- #


def test_temporal_coherence_consistent_and_jump():
    pairs, a = _network()
    truth = np.cumsum(np.random.default_rng(8).normal(0.0, 2.0, (a.shape[1], 30, 20)), axis=0)
    phase = np.einsum("kn,nrc->krc", a, truth)
    _, res = ts.invert_l2(a, phase)
    coh = ts.temporal_coherence(res)
    assert coh.shape == (30, 20)
    np.testing.assert_allclose(coh, 1.0, atol=1e-6)
    jumped = phase.copy()
    jumped[pairs.index((4, 6)), 10:20, 5:15] += 2 * np.pi
    jumped[0, 0, 0] = np.nan
    _, res_j = ts.invert_l2(a, jumped)
    coh_j = ts.temporal_coherence(res_j)
    patch = np.zeros((30, 20), dtype=bool)
    patch[10:20, 5:15] = True
    assert coh_j[patch].max() < 0.9
    rest = ~patch
    rest[0, 0] = False
    np.testing.assert_allclose(coh_j[rest], 1.0, atol=1e-6)
    assert np.isnan(coh_j[0, 0])
    # L1 residuals work the same way (the L1 fit absorbs the jump: coherence stays high).
    _, res1, _ = invert_l1(a, jumped)
    assert np.nanmin(ts.temporal_coherence(res1)[patch]) > coh_j[patch].max()


def test_temporal_coherence_of_float32_residuals_within_1e5_of_exact():
    """The inversion stage computes the coherence from float32 residuals (as
    written); against the float64 complex mean it is within 1e-5, also for
    residuals of tens of radians and with missing rows."""
    rng = np.random.default_rng(21)
    res = rng.normal(0.0, 1.5, (174, 4000))
    res[:, :500] *= 30.0  # unwrapping-error sized residuals
    res[rng.random(res.shape) < 0.05] = np.nan
    res[:, 7] = np.nan
    exact = np.abs(np.nanmean(np.exp(1j * res), axis=0))
    got = ts.temporal_coherence(res.astype(np.float32))
    assert got.dtype == np.float32 and np.isnan(got[7])
    ok = ~np.isnan(exact)
    assert np.max(np.abs(got[ok] - exact[ok])) < 1e-5


# --------------------------------------------------------------------------- #
# Weighted velocity
# --------------------------------------------------------------------------- #


def test_velocity_weighted_equals_weighted_polyfit():
    rng = np.random.default_rng(9)
    n, n_pix = 12, 50
    t = np.sort(rng.uniform(0.0, 3.0, n))
    disp = 0.4 + 2.5 * t[:, None] + rng.normal(0.0, 0.3, (n, n_pix))
    w = rng.uniform(0.1, 10.0, (n, n_pix))
    w[rng.random(w.shape) < 0.15] = 0.0  # skipped dates
    disp[rng.random(disp.shape) < 0.1] = np.nan  # skipped dates
    w[:, 0] = 0.0
    w[:2, 0] = 1.0  # pixel 0: only two dates -> slope, no std
    w[:, 1] = 0.0
    w[4, 1] = 1.0  # pixel 1: one date -> NaN
    disp[:2, 0] = [0.0, 1.0]
    vel, std = velocity_weighted(disp, t, w, uncertainty="white")  # the textbook oracle
    assert vel.shape == (n_pix,) and std.shape == (n_pix,)
    for p in range(2, n_pix):
        ok = np.isfinite(disp[:, p]) & (w[:, p] > 0)
        coef, cov = np.polyfit(t[ok], disp[ok, p], 1, w=np.sqrt(w[ok, p]), cov=True)
        np.testing.assert_allclose(vel[p], coef[0], rtol=1e-10)
        np.testing.assert_allclose(std[p], np.sqrt(cov[0, 0]), rtol=1e-8)
    np.testing.assert_allclose(vel[0], 1.0 / (t[1] - t[0]), rtol=1e-12)
    assert np.isnan(std[0]) and np.isnan(vel[1]) and np.isnan(std[1])
    # Absolute: the weights are inverse variances.
    _, std_abs = velocity_weighted(disp, t, w, absolute=True)
    for p in range(2, n_pix):
        ok = np.isfinite(disp[:, p]) & (w[:, p] > 0)
        _, cov = np.polyfit(t[ok], disp[ok, p], 1, w=np.sqrt(w[ok, p]), cov="unscaled")
        np.testing.assert_allclose(std_abs[p], np.sqrt(cov[0, 0]), rtol=1e-8)
    # An infinite weight pins the line to that date: the limit of a huge finite weight.
    w_inf = w[:, 2:].copy()
    w_inf[0] = np.inf
    w_big = w[:, 2:].copy()
    w_big[0] = 1e9
    d = disp[:, 2:].copy()
    d[0] = 0.0
    v_inf, s_inf = velocity_weighted(d, t, w_inf, uncertainty="white")
    v_big, s_big = velocity_weighted(d, t, w_big, uncertainty="white")
    np.testing.assert_allclose(v_inf, v_big, rtol=1e-6)
    np.testing.assert_allclose(s_inf, s_big, rtol=1e-4)
    # The AR(1) factor sees the huge weight's residual as sqrt(w) r ~ w^-1/2, not ~ 1/w.
    s_inf_c = velocity_weighted(d, t, w_inf)[1]
    np.testing.assert_allclose(s_inf_c, velocity_weighted(d, t, w_big)[1], rtol=1e-3)
    assert np.all(s_inf_c >= s_inf * (1 - 1e-12))
    ok = np.isfinite(d[:, 0]) & (w_inf[:, 0] > 0)
    tt, yy, ww = t[ok][1:] - t[0], d[ok, 0][1:], w_inf[ok, 0][1:]
    np.testing.assert_allclose(v_inf[0], np.sum(ww * tt * yy) / np.sum(ww * tt * tt), rtol=1e-12)
    with pytest.raises(SarstackError, match="at most one date"):
        velocity_weighted(d, t, np.full(d.shape, np.inf))
    with pytest.raises(SarstackError, match="non-negative"):
        velocity_weighted(d, t, -w_big)


def test_velocity_weighted_std_calibrated_and_shrinks_with_dates():
    rng = np.random.default_rng(10)
    n_pix = 3000
    stds = []
    for n in (6, 12, 24):
        t = np.arange(n) * 12 / 365.25
        sigma = rng.uniform(0.2, 1.0, n)  # per-date noise, known
        disp = 2.0 * t[:, None] + rng.normal(0.0, 1.0, (n, n_pix)) * sigma[:, None]
        w = 1.0 / sigma**2  # one weight per date, shared by all pixels
        vel, std = velocity_weighted(disp, t, w)
        _, std_abs = velocity_weighted(disp, t, w, absolute=True)
        # The reported standard error matches the scatter of the estimates.
        assert vel.std() == pytest.approx(np.mean(std), rel=0.1)
        assert vel.std() == pytest.approx(std_abs[0], rel=0.1)
        assert abs(vel.mean() - 2.0) < 4 * vel.std() / np.sqrt(n_pix)
        # Weighting beats the unweighted fit on heteroscedastic noise.
        vel_u, _, _ = fit_velocity(disp, t)
        assert vel.std() < vel_u.std()
        stds.append(np.mean(std))
    assert stds[0] > stds[1] > stds[2]


def test_velocity_from_weighted_series_with_exact_first_date():
    pairs, a = _network()
    t = np.arange(N_DATES) * 12 / 365.25
    rng = np.random.default_rng(11)
    v = rng.uniform(-10, 10, 500)
    phase = a @ (v[None] * t[1:, None]) + rng.normal(0.0, 0.1, (a.shape[0], 500))
    corr = rng.uniform(0.3, 0.9, phase.shape)
    out = ts.invert_weighted(a, phase, ts.correlation_weights(corr, looks=20, threshold=0.0))
    series = np.vstack([np.zeros((1, 500)), out["x"]])
    with np.errstate(divide="ignore"):
        w = 1.0 / np.vstack([np.zeros((1, 500)), out["x_var"]])  # inf on the datum
    disp, _ = ts.phase_to_displacement(series, None)
    vel, std = velocity_weighted(disp, t, w)
    assert np.all(np.isfinite(vel)) and np.all(np.isfinite(std))
    assert np.sqrt(np.mean((vel + v) ** 2)) < 5 * np.mean(std)


# --------------------------------------------------------------------------- #
# Correlation weights, input checks
# --------------------------------------------------------------------------- #


def test_correlation_weights():
    gam = np.array([[0.5, 0.8, np.nan], [0.1, 1.0, -0.2], [0.3, 0.9995, 0.0]])
    w = ts.correlation_weights(gam, looks=10, threshold=0.0)
    assert w.shape == gam.shape and w.dtype == np.float64
    np.testing.assert_allclose(
        w[0, :2], 2 * 10 * np.array([0.25, 0.64]) / (1 - np.array([0.25, 0.64]))
    )
    cap = 2 * 10 * 0.999**2 / (1 - 0.999**2)
    np.testing.assert_allclose([w[1, 1], w[2, 1]], cap)  # clipped at 0.999
    assert w[0, 2] == 0.0 and w[1, 2] == 0.0 and w[2, 2] == 0.0  # NaN, negative, zero
    assert w[1, 0] == pytest.approx(20 * 0.01 / 0.99)
    wt = ts.correlation_weights(gam, looks=10, threshold=0.35)
    np.testing.assert_array_equal(wt[[1, 2], [0, 0]], 0.0)  # 0.1, 0.3 < 0.35
    np.testing.assert_array_equal(wt[0, :2], w[0, :2])
    assert ts.correlation_weights(gam.astype(np.float32), 5, 0.0).dtype == np.float32
    with pytest.raises(SarstackError, match="looks"):
        ts.correlation_weights(gam, looks=0, threshold=0.0)


def test_invert_weighted_input_checks():
    _, a = _network()
    phase = np.zeros((a.shape[0], 4, 3))
    with pytest.raises(SarstackError, match="non-negative"):
        ts.invert_weighted(a, phase, -np.ones_like(phase))
    with pytest.raises(SarstackError, match="finite"):
        ts.invert_weighted(a, phase, np.full_like(phase, np.nan))
    with pytest.raises(SarstackError, match="weights have shape"):
        ts.invert_weighted(a, phase, np.ones((a.shape[0], 3, 4)))
    with pytest.raises(SarstackError, match="incidence matrix"):
        ts.invert_weighted(2.0 * a, phase, np.ones_like(phase))
    a_cut = snet.incidence_matrix([(0, 1), (2, 3)], 4)
    with pytest.raises(SarstackError, match=r"dates #2, #3 not connected"):
        ts.invert_weighted(a_cut, phase[:2], np.ones_like(phase[:2]))
    with pytest.raises(SarstackError, match="residual"):
        ts.temporal_coherence(np.float64(1.0))


def test_weighted_float32():
    pairs, a = _network()
    _, phase = _stack(a, 200, 0.1, seed=12)
    w = ts.correlation_weights(np.random.default_rng(13).uniform(0.2, 0.99, phase.shape), 10, 0.0)
    x64 = ts.invert_weighted(a, phase, w)["x"]
    with jax.enable_x64(False):
        out32 = ts.invert_weighted(a, phase.astype(np.float32), w.astype(np.float32))
    assert out32["x"].dtype == np.float32
    np.testing.assert_allclose(out32["x"], x64, atol=1e-3)


def test_numpy_network_solver_matches_invert_weighted():
    """snet.solve_network_columns (NumPy, used for the RTC per-date offsets)
    gives the JAX solver's x, residual, n_used and x_var, including censored
    rows, dates cut off by censoring (NaN) and NaN columns."""
    rng = np.random.default_rng(1)
    for trial in range(12):
        n = int(rng.integers(3, 12))
        pairs = snet.make_pairs(n, f"nearest:{rng.integers(1, 4)}")
        b = rng.normal(size=(len(pairs), 7))
        w = rng.uniform(0.1, 2.0, size=b.shape) * (rng.uniform(size=b.shape) > 0.35)
        b[0, 6] = np.nan
        b[:, 5] = np.nan
        got = snet.solve_network_columns(pairs, n, b, w)
        want = ts.invert_weighted(snet.incidence_matrix(pairs, n), b, w)
        for key in ("x", "residual", "n_used", "x_var"):
            np.testing.assert_allclose(got[key], want[key], atol=1e-9, err_msg=f"{trial} {key}")
    assert np.isnan(got["x"][:, 5]).all() and (got["n_used"][5] == 0)  # the NaN column
    assert got["n_used"][6] == (w[1:, 6] > 0).sum()  # a NaN drops its row only


def test_temporal_coherence_equals_the_former_jax_kernel():
    """The NumPy temporal coherence (issue 22: 8x faster) agrees with the JAX kernel it
    replaced to float32 rounding, NaN rows and all-NaN pixels included."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def former(res):
        ok = jnp.isfinite(res)
        r = jnp.where(ok, res, 0.0)
        cnt = jnp.sum(ok, axis=0)
        re = jnp.sum(jnp.where(ok, jnp.cos(r), 0.0), axis=0)
        im = jnp.sum(jnp.where(ok, jnp.sin(r), 0.0), axis=0)
        return jnp.where(cnt > 0, jnp.hypot(re, im) / jnp.maximum(cnt, 1), jnp.nan)

    rng = np.random.default_rng(3)
    res = rng.normal(0, 1.5, (40, 3 * (1 << 14) + 17)).astype(np.float32)
    res[rng.random(res.shape) < 0.2] = np.nan
    res[:, 5] = np.nan
    new = ts.temporal_coherence(res)
    old = np.asarray(former(jnp.asarray(res)))
    assert np.isnan(new[5]) and np.array_equal(np.isnan(new), np.isnan(old))
    np.testing.assert_allclose(new, old, rtol=0, atol=2e-6, equal_nan=True)
    assert new.dtype == np.float32


def test_distinct_columns_are_numpy_unique_groups():
    """The columns' groups by bytes are np.unique's groups by value (-0.0 as 0.0)."""
    rng = np.random.default_rng(5)
    patterns = rng.choice([0.0, 0.5, 1.0], size=(9, 6))
    m = patterns[:, rng.integers(0, 6, size=200)]
    m[:, :3] = -0.0 * m[:, :3]  # -0.0 and 0.0 are the same weight
    groups, inverse = snet.distinct_columns(m)
    want_groups, want_inverse = np.unique(m.T + 0.0, axis=0, return_inverse=True)
    assert len(groups) == len(want_groups) < 200
    np.testing.assert_array_equal(groups[inverse].T, m)
    # the same partition of the columns
    same = inverse[:, None] == inverse[None, :]
    want_inverse = np.asarray(want_inverse).reshape(-1)
    np.testing.assert_array_equal(same, want_inverse[:, None] == want_inverse[None, :])
    empty_groups, empty_inverse = snet.distinct_columns(np.zeros((0, 4)))
    assert len(empty_groups) == 1 and empty_inverse.tolist() == [0, 0, 0, 0]


def test_l2_model_phase_of_an_incidence_matrix_is_the_product_bit_for_bit():
    """``A @ x`` taken as date differences (timeseries._l2) equals BLAS's product
    exactly, rows with one date alone (+1 or -1) included; a matrix that is not
    an incidence matrix goes through the product."""
    from sarstack.timeseries._l2 import _model_phase

    rng = np.random.default_rng(7)
    a = snet.incidence_matrix(snet.make_pairs(9, "nearest:3"), 9)
    a = np.vstack([a, -np.eye(8)[3]])  # a row of -1 alone
    for dtype in (np.float64, np.float32):
        x = (rng.normal(size=(8, 500)) * 10.0 ** rng.integers(-3, 4, size=(8, 1))).astype(dtype)
        got = _model_phase(a, x)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, a.astype(dtype) @ x)
    general = a.copy()
    general[0, 0] = 0.5
    np.testing.assert_array_equal(_model_phase(general, x), general.astype(np.float32) @ x)

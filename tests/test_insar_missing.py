"""Missing observations per pixel: a NaN interferogram is dropped for that
pixel only, checked against a per-pixel least-squares oracle on the reduced
network, through the scripts (select -> reference -> invert -> velocity)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import pipeline, with_schema_defaults

from sarstack import dates, io, synthetic, velocity
from sarstack import network as snet

fit_velocity = with_schema_defaults(velocity.velocity)

N_DATES = 20
SHAPE = (48, 64)
REF = (20, 10)
CUT_DATE = 10  # cut off from the first date in PATCH
PATCH = (slice(0, 8), slice(24, 32))


def _make(tmp_path):
    table = synthetic.make_ifg_stack(tmp_path / "s", n_dates=N_DATES, shape=SHAPE,
                                     network="nearest:3", noise_rad=0.1, seed=3)  # fmt: skip
    pairs = list(zip(table.reference_index, table.secondary_index, strict=True))
    rng = np.random.default_rng(0)
    # 30 % of the ifgs miss the right quarter; only non-sequential pairs, so
    # the sequential chain keeps every date connected there.
    long = [k for k, (i, j) in enumerate(pairs) if j - i > 1]
    quarter = rng.choice(long, size=round(0.3 * len(pairs)), replace=False)
    right = (slice(None), slice(3 * SHAPE[1] // 4, None))
    phase = {k: io.read_band(p) for k, p in enumerate(table.path)}
    for k in quarter:
        phase[k][right] = np.nan
    for k, (i, j) in enumerate(pairs):
        if CUT_DATE in (i, j):
            phase[k][PATCH] = np.nan
    grid = io.read_grid(table.path[0])
    for k, p in enumerate(table.path):
        io.write_raster(p, phase[k].astype(np.float32), grid, nodata=0.0, units="radians")
    return table, pairs, np.stack([phase[k] for k in range(len(pairs))]).astype(np.float64)


def test_missing_ifgs_dropped_per_pixel_matches_lstsq_oracle(tmp_path):
    table, pairs, phase = _make(tmp_path)
    out = pipeline(tmp_path, str(tmp_path / "s" / "ifgs" / "*.unw.tif"), "--method", "L2",
                   point=REF)
    index = pd.read_csv(out / "ts.csv")
    ts = np.stack([io.read_band(f) for f in index.path]).astype(np.float64)
    n_used = io.read_band(out / "n_ifgs_used.tif", nan_nodata=False)
    vel = io.read_band(out / "velocity.tif")

    # Oracle: per pixel, lstsq on the ifgs it has (referenced at REF), by NaN pattern.
    a = snet.incidence_matrix(pairs, N_DATES)
    b = phase - phase[:, REF[0], REF[1]][:, None, None]
    flat = b.reshape(len(pairs), -1)
    finite = np.isfinite(flat)
    want = np.full((N_DATES - 1, flat.shape[1]), np.nan)
    patterns, inverse = np.unique(finite, axis=1, return_inverse=True)
    for k, rows in enumerate(patterns.T):
        cols = np.flatnonzero(inverse.ravel() == k)
        sub = a[rows]
        keep = np.ones(N_DATES - 1, bool)
        if np.linalg.matrix_rank(sub) < sub.shape[1]:  # the patch: CUT_DATE is lost
            keep[CUT_DATE - 1] = False
        x = np.linalg.lstsq(sub[:, keep], flat[np.ix_(rows, cols)], rcond=None)[0]
        want[np.ix_(keep, cols)] = x
    want_disp = -want.reshape(N_DATES - 1, *SHAPE)
    np.testing.assert_array_equal(n_used.ravel(), finite.sum(axis=0))

    valid = np.isfinite(ts).all(axis=0)
    assert valid.mean() >= 0.99 - PATCH[0].stop * 8 / valid.size  # all but the patch
    right = np.zeros(SHAPE, bool)
    right[:, 3 * SHAPE[1] // 4 :] = True
    assert valid[right].all()
    np.testing.assert_allclose(ts, want_disp, atol=2e-5, equal_nan=True)
    # The cut-off date is nodata in the patch only; the patch's other dates are valid.
    patch = np.zeros(SHAPE, bool)
    patch[PATCH] = True
    assert np.isnan(ts[CUT_DATE - 1][patch]).all() and np.isfinite(ts[CUT_DATE - 1][~patch]).all()
    assert np.isfinite(np.delete(ts, CUT_DATE - 1, axis=0)).all()

    # Velocity against the oracle's series, float64 (the patch: its remaining dates).
    t = dates.years_since([dt for dt in pd.to_datetime(
        ["2020-01-01", *index.date]).date])  # fmt: skip
    full = np.vstack([np.zeros((1, *SHAPE)), want_disp])
    v_want = fit_velocity(full, t)[0]
    ok = ~patch
    assert np.isfinite(vel[ok]).all()
    np.testing.assert_allclose(vel[ok], v_want[ok], atol=1e-4)
    keep = np.delete(np.arange(N_DATES), CUT_DATE)
    v_patch = fit_velocity(full[keep][:, PATCH[0], PATCH[1]], t[keep])[0]
    np.testing.assert_allclose(vel[PATCH], v_patch, atol=1e-4)


@pytest.mark.parametrize("method", ["L1", "L2"])
def test_solve_block_partial_pixels_match_censored_solver(method, x64):
    """Pixels valid in every ifg keep the plain kernels' answer; a pixel missing
    ifgs gets the censored solver's answer on its remaining ifgs."""
    from sarstack import insar
    from sarstack import timeseries as ts

    pairs = snet.make_pairs(8, "nearest:3")
    a = snet.incidence_matrix(pairs, 8)
    rng = np.random.default_rng(2)
    flat = a @ rng.normal(size=(7, 40)) + rng.normal(0, 0.05, (len(pairs), 40))
    flat[3, :10] = np.nan
    flat[[0, 5], 10:15] = np.nan
    flat[:, 15] = np.nan
    kw = {"method": method, "single": False, "l1_tolerance": 1e-6, "l1_max_iterations": 200}
    x, res, n_used, _ = insar._solve_block(a, pairs, flat, None, **kw)
    plain = ts.invert(a, flat[:, 16:], method, **({"tol": 1e-6, "max_iter": 500} if method == "L1" else {}))
    np.testing.assert_allclose(x[:, 16:], plain[0], atol=1e-6)
    assert np.isnan(x[:, 15]).all() and n_used[15] == 0
    np.testing.assert_array_equal(n_used[:15], [len(pairs) - 1] * 10 + [len(pairs) - 2] * 5)
    for cols, rows in ((slice(0, 10), [3]), (slice(10, 15), [0, 5])):
        keep = np.setdiff1d(np.arange(len(pairs)), rows)
        if method == "L2":
            want = np.linalg.lstsq(a[keep], flat[keep, cols], rcond=None)[0]
            np.testing.assert_allclose(x[:, cols], want, atol=1e-9)
        else:  # L1 optimum: no lower sum of absolute residuals than the plain L1 kernel's
            ref = ts.invert(a[keep], flat[keep, cols], "L1", tol=1e-8, max_iter=500)[0]
            got = np.abs(flat[keep, cols] - a[keep] @ x[:, cols]).sum(axis=0)
            best = np.abs(flat[keep, cols] - a[keep] @ ref).sum(axis=0)
            assert np.all(got <= best * (1 + 1e-3) + 1e-9)
        assert np.isnan(res[rows, cols]).all()


def test_l1_partial_pixels_sharing_a_pattern_are_one_network_at_the_lp_optimum(x64, monkeypatch):
    """Partial pixels that share their missing ifgs (at least L1_PATTERN_MIN_PX
    of them) are the network without those ifgs, solved by the interior point:
    at the linear-programming optimum of the used ifgs' absolute residuals
    (scipy's HiGHS as the oracle), as the reweighted solver is. A pattern that
    cuts a date off, and a pattern of too few pixels, stay with the reweighting
    (cut-off dates NaN)."""
    from scipy.optimize import linprog

    from sarstack import insar
    from sarstack.insar import invert as inv

    monkeypatch.setattr(inv, "L1_PATTERN_MIN_PX", 8)
    reweighted = []
    irls = inv._irls_l1
    monkeypatch.setattr(inv, "_irls_l1", lambda a, sub, w, **kw: reweighted.append(sub.shape[1])
                        or irls(a, sub, w, **kw))  # fmt: skip
    pairs = snet.make_pairs(8, "nearest:3")
    a = snet.incidence_matrix(pairs, 8)
    m = len(pairs)
    rng = np.random.default_rng(5)
    flat = a @ rng.normal(size=(7, 60)) + rng.laplace(0, 0.2, (m, 60))
    flat[2, 10:30] = 2 * np.pi + flat[2, 10:30]  # an unwrapping error for L1 to reject
    flat[3, :30] = np.nan  # pattern A: 30 pixels, still connected
    cut = [k for k, (i, j) in enumerate(pairs) if 7 in (i, j)]
    flat[np.ix_(cut, range(30, 40))] = np.nan  # pattern B: 10 pixels, date 7 cut off
    flat[[0, 4], 40:45] = np.nan  # pattern C: 5 pixels, too few
    kw = {"method": "L1", "single": False, "l1_tolerance": 1e-6, "l1_max_iterations": 300}
    x, res, n_used, _ = insar._solve_block(a, pairs, flat, None, **kw)
    assert sorted(reweighted) == [15]  # B and C only
    assert np.isnan(res[3, :30]).all() and (n_used[:30] == m - 1).all()
    keep = np.setdiff1d(np.arange(m), [3])
    for p in range(0, 30, 3):  # the oracle: min sum|b - A x| as a linear programme
        b = flat[keep, p]
        ak = a[keep]
        c = np.r_[np.zeros(7), np.ones(2 * len(keep))]
        lp = linprog(c, A_eq=np.hstack([ak, np.eye(len(keep)), -np.eye(len(keep))]), b_eq=b,
                     bounds=[(None, None)] * 7 + [(0, None)] * (2 * len(keep)), method="highs")  # fmt: skip
        got = np.abs(b - ak @ x[:, p]).sum()
        assert lp.fun * (1 - 1e-9) <= got <= lp.fun * (1 + 1e-6) + 1e-9
    # The previous kernel for these pixels, the reweighting: the same objective within tol.
    w_a = np.isfinite(flat[:, :30]).astype(float)
    old = irls(a, flat[:, :30], w_a, l1_tolerance=1e-6, l1_max_iterations=300)[0]
    obj_old = np.abs(flat[keep, :30] - a[keep] @ old["x"]).sum(axis=0)
    obj_new = np.abs(flat[keep, :30] - a[keep] @ x[:, :30]).sum(axis=0)
    np.testing.assert_allclose(obj_new, obj_old, rtol=2e-6)
    assert np.isnan(x[6, 30:40]).all() and np.isfinite(x[:6, 30:40]).all()  # date 7 (unknown 6)
    assert np.isfinite(x[:, 40:45]).all() and (n_used[40:45] == m - 2).all()

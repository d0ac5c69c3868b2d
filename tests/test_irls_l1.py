"""The IRLS L1 of censored and weighted pixels (sarstack.network.irls_l1 with a
tolerance, through insar._irls_l1): insar.l1_tolerance means what it means for
the interior-point L1, the objective proven within a factor 1 + tol of the
optimum, here checked against scipy's linprog."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.optimize import linprog

from sarstack import network as snet
from sarstack import timeseries as ts
from sarstack.insar.invert import _irls_l1

pytestmark = pytest.mark.usefixtures("x64")

N_DATES = 12
NETWORK = "nearest:3"


def _problem(n_pix: int, seed: int, weighted: bool):
    """Phases with noise and 2 pi jumps, 20 % of the ifgs censored per pixel,
    and (``weighted``) correlation weights."""
    rng = np.random.default_rng(seed)
    a = snet.incidence_matrix(snet.make_pairs(N_DATES, NETWORK), N_DATES)
    t = np.arange(1, N_DATES) / 30.0
    x = rng.normal(0.0, 20.0, n_pix)[None] * t[:, None]
    b = a @ x + rng.normal(0.0, 0.3, (a.shape[0], n_pix))
    jump = rng.random(b.shape) < 0.05
    b[jump] += 2 * np.pi * rng.choice([-1.0, 1.0], int(jump.sum()))
    w = (rng.random(b.shape) >= 0.2).astype(np.float64)
    if weighted:
        w *= ts.correlation_weights(rng.uniform(0.2, 0.95, b.shape), 4.0, 0.0)
    return a, b, w


def _objective(w, residual):
    return np.sum(w * np.abs(np.nan_to_num(residual)), axis=0)


def _lp_optimum(a, b, w):
    """min_x sum_i w_i |b_i - (A x)_i| of each column, by linprog (HiGHS)."""
    n = a.shape[1]
    out = []
    for j in range(b.shape[1]):
        use = w[:, j] > 0
        aj, bj, wj = a[use], b[use, j], w[use, j]
        m = aj.shape[0]
        sol = linprog(np.r_[np.zeros(n), wj, wj], A_eq=np.hstack([aj, np.eye(m), -np.eye(m)]),
                      b_eq=bj, bounds=[(None, None)] * n + [(0, None)] * (2 * m),
                      method="highs")  # fmt: skip
        assert sol.status == 0
        out.append(sol.fun)
    return np.array(out)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("tol", [1e-2, 1e-4])
def test_irls_objective_within_tolerance_of_the_lp_optimum(weighted, tol):
    a, b, w = _problem(16, seed=3 + weighted, weighted=weighted)
    out, n_it = _irls_l1(a, b, w, l1_tolerance=tol, l1_max_iterations=500)
    assert 0 < n_it < 500
    best = _lp_optimum(a, b, w)
    got = _objective(w, out["residual"])
    assert np.all(got <= best * (1 + tol) + 1e-9), np.max(got / best - 1)
    # the residual is the returned solution's, pixel by pixel
    reach = np.isfinite(out["x"]).all(axis=0)
    want = np.where(w > 0, b - a @ np.nan_to_num(out["x"]), np.nan)
    np.testing.assert_allclose(out["residual"][:, reach], want[:, reach], atol=1e-9)


def test_the_tolerance_stops_each_pixel():
    """A loose tolerance stops sooner and leaves a measurable (allowed) excess
    over the optimum; a tight one goes on. Ignoring the tolerance (running
    every pixel to the cap, or stopping them all at once on a change of x)
    fails here."""
    a, b, w = _problem(16, seed=7, weighted=False)
    best = _lp_optimum(a, b, w)
    calls = []

    def solve(weights, cols):
        calls.append(cols.size)
        return ts.invert_weighted(a, b[:, cols], weights)

    loose, n_loose = snet.irls_l1(solve, w, b, floor=1e-4, max_iter=500, tol=0.05)
    solved_loose = sum(calls)
    calls.clear()
    tight, n_tight = snet.irls_l1(solve, w, b, floor=1e-4, max_iter=500, tol=1e-6)
    solved_tight = sum(calls)
    assert n_loose < n_tight < 500
    assert solved_loose < solved_tight
    excess = _objective(w, loose["residual"]) / best - 1
    assert np.all(excess <= 0.05) and np.max(excess) > 1e-6
    assert np.all(_objective(w, tight["residual"]) <= best * (1 + 1e-6) + 1e-9)
    # pixels close one by one: later solves are of the pixels still open
    assert calls[0] == b.shape[1] and calls[-1] < b.shape[1]


def test_lower_bound_is_a_lower_bound_for_any_solve_weights():
    """Weak duality: the bound of any weighted least-squares solve is at most
    the optimum, which is at most the objective."""
    a, b, w = _problem(12, seed=11, weighted=True)
    best = _lp_optimum(a, b, w)
    rng = np.random.default_rng(5)
    for u in (w, w * rng.uniform(0.01, 100.0, w.shape)):
        out = ts.invert_weighted(a, b, u)
        objective, bound, slack = snet.l1_lower_bound(b, out["residual"], w, u)
        assert np.all(bound <= best + slack + 1e-9)
        assert np.all(best <= objective + 1e-9)


def test_unproven_pixels_are_logged_and_keep_their_last_solve(caplog):
    a, b, w = _problem(8, seed=13, weighted=False)
    with caplog.at_level(logging.WARNING, logger="sarstack.network"):
        out, n_it = _irls_l1(a, b, w, l1_tolerance=1e-12, l1_max_iterations=2)
    assert n_it == 2
    assert "stopped before reaching tol=1e-12 (max_iter=2)" in caplog.text
    assert np.all(np.isfinite(out["x"]))


def test_nodata_pixels_close_at_once():
    a, b, w = _problem(4, seed=17, weighted=False)
    b[:, 1] = np.nan
    out, _ = _irls_l1(a, b, w, l1_tolerance=1e-4, l1_max_iterations=500)
    assert np.isnan(out["x"][:, 1]).all() and np.isfinite(out["x"][:, [0, 2, 3]]).all()

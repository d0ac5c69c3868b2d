"""sarstack.insar in process: one strip inverted from files by each method
(L2, L1, correlation-weighted, conncomp-censored, masked), checked against the
kernels / least squares on the same referenced phase read independently."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import with_schema_defaults

from sarstack import insar, io, synthetic
from sarstack import network as snet

SHAPE = (24, 24)
REF = (12, 3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, x64):
    d = tmp_path_factory.mktemp("insar")
    synthetic.make_ifg_stack(d / "s", n_dates=7, shape=SHAPE, network="nearest:2",
                             noise_rad=0.05, seed=1)  # fmt: skip
    ifgs, dates, pairs, grid = with_schema_defaults(insar.select_ifgs)(
        str(d / "s" / "ifgs" / "*.unw.tif"), correlation=str(d / "s" / "cor" / "*.cor.tif")
    )
    phase = np.stack([io.read_band(i.path) for i in ifgs]).astype(np.float64)
    phase -= phase[:, REF[0], REF[1]][:, None, None]
    return d, ifgs, dates, pairs, grid, phase


def _invert(stack, out, ifgs=None, **kw):
    d, ifgs0, dates, pairs, grid, _ = stack
    opts = dict(method="L2", wavelength=None, mask=None, block_shape=(10, 16), l1_tolerance=1e-6,
                l1_max_iterations=300, weighting="none", correlation_looks=4.0,
                correlation_threshold=0.0, write_residuals=True, reference_window=1)  # fmt: skip
    opts.update(kw)
    insar.invert_strip(ifgs or ifgs0, dates, pairs, REF, out, **opts)
    disp = np.stack([io.read_band(out / "timeseries.tif", band=b + 1)
                     for b in range(len(dates) - 1)]).astype(np.float64)  # fmt: skip
    n_used = io.read_band(out / "n_ifgs_used.tif", nan_nodata=False)
    return -disp, n_used  # back to phase


def test_l2_equals_least_squares(stack, tmp_path):
    _, ifgs, dates, pairs, _, phase = stack
    x, n_used = _invert(stack, tmp_path)
    a = snet.incidence_matrix(pairs, len(dates))
    full = np.isfinite(phase).all(axis=0)
    want = np.linalg.lstsq(a, phase[:, full], rcond=None)[0]
    np.testing.assert_allclose(x[:, full], want, atol=2e-5)
    assert (n_used[full] == len(ifgs)).all()


def test_l1_equals_the_l1_kernel(stack, tmp_path):
    from sarstack import timeseries as ts

    _, _, dates, pairs, _, phase = stack
    x, _ = _invert(stack, tmp_path, method="L1")
    a = snet.incidence_matrix(pairs, len(dates))
    full = np.isfinite(phase).all(axis=0)
    want = ts.invert(a, phase[:, full], "L1", tol=1e-6, max_iter=300).x
    np.testing.assert_allclose(x[:, full], want, atol=1e-4)


def test_correlation_weighted_equals_invert_weighted(stack, tmp_path):
    from sarstack import timeseries as ts

    _, ifgs, dates, pairs, _, phase = stack
    x, _ = _invert(stack, tmp_path, weighting="correlation")
    cor = np.stack([io.read_band(i.correlation) for i in ifgs]).astype(np.float64)
    a = snet.incidence_matrix(pairs, len(dates))
    want = ts.invert_weighted(a, phase, ts.correlation_weights(cor, 4.0, 0.0)).x
    np.testing.assert_allclose(x, want, atol=2e-5, equal_nan=True)
    plain, _ = _invert(stack, tmp_path / "plain")
    assert np.nanmax(np.abs(x - plain)) > 1e-4  # the weights changed something


def test_conncomp_censoring_and_mask(stack, tmp_path):
    from dataclasses import replace

    from sarstack import timeseries as ts

    d, ifgs, dates, pairs, grid, phase = stack
    cc_ifgs = []
    for k, i in enumerate(ifgs):
        lab = np.ones(SHAPE, np.uint8)
        if k == 2:
            lab[15:20, 15:20] = 0  # not unwrapped there
        p = tmp_path / f"cc{k}.tif"
        io.write_raster(p, lab, grid, nodata=None)
        cc_ifgs.append(replace(i, conncomp=p))
    mask = np.ones(SHAPE, np.uint8)
    mask[:4, 18:] = 0
    io.write_raster(tmp_path / "mask.tif", mask, grid, nodata=None)
    x, n_used = _invert(stack, tmp_path / "o", ifgs=cc_ifgs, mask=tmp_path / "mask.tif")
    a = snet.incidence_matrix(pairs, len(dates))
    w = np.ones_like(phase)
    w[2, 15:20, 15:20] = 0
    want = ts.invert_weighted(a, phase, w).x
    ok = mask == 1
    np.testing.assert_allclose(x[:, ok], want[:, ok], atol=2e-5, equal_nan=True)
    assert (n_used[15:20, 15:20] == len(ifgs) - 1).all()
    assert np.isnan(x[:, ~ok]).all() and (n_used[~ok] == insar.COUNT_NODATA).all()

"""insar.deramp (issue 26 item 1): a plane or quadratic surface per ifg,
fitted on its valid pixels and removed before the referencing and the
inversion; linear, so extra ramps added to a stack come back out exactly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import with_schema_defaults

from sarstack import deramp, insar, io, synthetic
from sarstack.errors import SarstackError

select_ifgs = with_schema_defaults(insar.select_ifgs)
invert_strip = with_schema_defaults(insar.invert_strip)
fit_ramps = with_schema_defaults(deramp.fit_ramps)

SHAPE = (40, 48)
REF = (20, 5)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory, x64):
    """The clean stack and the same ifgs with a known extra plane (or quadratic) each."""
    d = tmp_path_factory.mktemp("deramp")
    synthetic.make_ifg_stack(d / "s", n_dates=8, shape=SHAPE, network="nearest:2",
                             noise_rad=0.05, seed=2)  # fmt: skip
    ifgs, dates, pairs, _ = select_ifgs(str(d / "s" / "ifgs" / "*.unw.tif"))
    added = np.random.default_rng(5).normal(0, 3.0, (len(ifgs), 6))
    return ifgs, _with_surfaces(ifgs, added, "quadratic", d / "r"), dates, pairs, added


def _velocity(ifgs, dates, pairs, out, ramps):
    invert_strip(ifgs, dates, pairs, REF, out, method="L2", wavelength=None, mask=None,
                 block_shape=(16, 24), l1_tolerance=1e-6, l1_max_iterations=100,
                 weighting="none", correlation_looks=4.0, correlation_threshold=0.0,
                 write_residuals=False, ramps=ramps)  # fmt: skip
    return np.stack([io.read_band(out / "timeseries.tif", band=b + 1)
                     for b in range(len(dates) - 1)])  # fmt: skip


@pytest.mark.parametrize("model", ["linear", "quadratic"])
def test_added_ramps_come_back_out(stacks, tmp_path, model):
    ifgs, ramped, dates, pairs, added = stacks
    k = len(deramp.terms(model))
    if model == "linear":  # the added quadratic terms stay in: compare plane-only additions
        ramped = _with_surfaces(ifgs, added[:, :3], "linear", tmp_path / "lin")
    clean = fit_ramps(ifgs, model, block_shape=(16, 24))
    dirty = fit_ramps(ramped, model, block_shape=(16, 24))
    coef = list(deramp.terms(model))
    np.testing.assert_allclose(dirty[coef].to_numpy() - clean[coef].to_numpy(), added[:, :k],
                               atol=2e-5)  # float32 files  # fmt: skip
    np.testing.assert_allclose(dirty["residual_rms_rad"], clean["residual_rms_rad"], atol=1e-5)
    # The same ramps by blocks of another shape.
    again = fit_ramps(ifgs, model, block_shape=(7, 48))
    np.testing.assert_allclose(again[coef].to_numpy(), clean[coef].to_numpy(), atol=1e-9)
    # After deramping, the ramped stack inverts to the clean stack's time series.
    a = _velocity(ifgs, dates, pairs, tmp_path / "a", (model, clean[coef].to_numpy()))
    b = _velocity(ramped, dates, pairs, tmp_path / "b", (model, dirty[coef].to_numpy()))
    np.testing.assert_allclose(b, a, atol=1e-4)
    # Without deramping they differ by the ramps.
    c = _velocity(ramped, dates, pairs, tmp_path / "c", None)
    assert np.nanmax(np.abs(c - a)) > 0.5


def _with_surfaces(ifgs, coeffs, model, d):
    """Copies of ``ifgs`` in folder ``d`` with each one's surface of ``coeffs`` added."""
    d.mkdir()
    whole = io.Window(0, 0, SHAPE[1], SHAPE[0])
    surfaces = deramp.evaluate(coeffs, whole, SHAPE, model)
    out = []
    grid = io.read_grid(ifgs[0].path)
    for k, i in enumerate(ifgs):
        path = d / i.path.name
        io.write_raster(path, (io.read_band(i.path) + surfaces[k]).astype(np.float32), grid)
        out.append(dataclasses.replace(i, path=path))
    return out


def test_ramps_table_and_errors(stacks, tmp_path):
    ifgs = stacks[0]
    table = fit_ramps(ifgs, "linear", block_shape=(16, 24))
    assert list(table.columns) == ["key", "reference_date", "secondary_date", "model", "n_pixels",
                                   "c0", "cx", "cy", "ramp_rms_rad", "residual_rms_rad",
                                   "phase_std_rad"]  # fmt: skip
    for i, row in zip(ifgs, table.itertuples(), strict=True):
        z = io.read_band(i.path).astype(np.float64)
        assert row.n_pixels == np.isfinite(z).sum()
        assert row.phase_std_rad == pytest.approx(np.nanstd(z), rel=1e-6)
    path = tmp_path / "ramps.csv"
    io.write_csv(path, table)
    model, coeffs = deramp.read_ramps(path, ifgs[::-1])
    assert model == "linear" and np.allclose(coeffs, table[["c0", "cx", "cy"]].to_numpy()[::-1])
    io.write_csv(path, table.iloc[1:])
    with pytest.raises(SarstackError, match="no ramp for"):
        deramp.read_ramps(path, ifgs)
    with pytest.raises(SarstackError, match="insar.deramp"):
        deramp.terms("cubic")


@pytest.mark.workflow
def test_demo_with_deramp_runs_the_stage(tmp_path):
    """insar.deramp: linear through Snakemake: insar_deramp writes ramps.csv (one
    row per ifg), the inversion reads it, and the velocity stays close to the
    run without (the demo has no ramps to remove)."""
    import pandas as pd
    from test_workflow import snakemake, write_config

    outs = {}
    for mode in ("none", "linear"):
        out = tmp_path / mode
        cfg = write_config(tmp_path / f"{mode}.yaml", {
            "output_dir": str(out), "rtc": {"enabled": False}, "demo": {"enabled": True},
            "insar": {"deramp": mode, "closure_qc": {"max_loop_rms_rad": 1.5, "exclude": False}},
        })  # fmt: skip
        snakemake("insar", "--configfile", str(cfg))
        outs[mode] = io.read_band(out / "insar" / "velocity.tif")
    ramps = pd.read_csv(tmp_path / "linear" / "insar" / "ramps.csv")
    ifgs = pd.read_csv(tmp_path / "linear" / "insar" / "ifgs.csv")
    assert len(ramps) == int(ifgs["used"].sum())
    assert (ramps["model"] == "linear").all() and (ramps["n_pixels"] > 100).all()
    assert not (tmp_path / "none" / "insar" / "ramps.csv").exists()
    # insar.closure_qc (report only) through the workflow: every ifg keeps its row,
    # with its loop RMS (the demo's nearest-3 network has triangles).
    assert ifgs["used"].all() and ifgs["loop_rms_rad"].notna().all()
    ok = np.isfinite(outs["none"]) & np.isfinite(outs["linear"])
    assert ok.mean() > 0.9

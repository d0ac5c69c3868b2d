"""insar.injection (issue 25 item 3): a known Gaussian bowl added to the ifgs as
they are read, the inversion, gather and velocity fit run again, and the
recovered velocity (injected run minus the stack's own) compared with the
injected one: within the reported standard errors on a synthetic stack, exactly
zero when nothing is injected (L2)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import pipeline, run_script, schema_defaults, with_schema_defaults
from rasterio.windows import Window

from sarstack import cli, deramp, insar, io, options, summary, synthetic
from sarstack.errors import SarstackError
from sarstack.insar import injection as inj

select_ifgs = with_schema_defaults(insar.select_ifgs)
fit_ramps = with_schema_defaults(deramp.fit_ramps)

SHAPE = (32, 40)
REF = ("5", "6")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, x64):
    d = tmp_path_factory.mktemp("inj")
    synthetic.make_ifg_stack(d / "s", n_dates=10, shape=SHAPE, network="nearest:3",
                             noise_rad=0.3, seed=5)  # fmt: skip
    return d, str(d / "s" / "ifgs" / "*.unw.tif")


@pytest.fixture(scope="module")
def runs(stack):
    """The stack's own L2 and L1 runs (select, reference, invert, velocity)."""
    d, pattern = stack
    return {m: pipeline(d / m, pattern, "--method", m, point=REF) for m in ("L2", "L1")}


def _inject(out, tmp, method="L2", velocity_dir=None, **injection):
    cfg = schema_defaults()
    cfg["insar"]["method"] = method
    cfg["insar"]["injection"].update(enabled=True, **injection)
    table, error = tmp / "injection.csv", tmp / "injection_error.tif"
    cli.main(["insar_injection", *options.config_args("insar_injection", cfg),
              "--ifgs", str(out / "ifgs.csv"), "--reference", str(out / "ref.txt"),
              "--velocity-dir", str(velocity_dir or out),
              "--temporal-coherence", str(out / "temporal_coherence.tif"),
              "--out", str(table), "--out-error", str(error)])  # fmt: skip
    return pd.read_csv(table), io.read_band(error)


def test_nothing_injected_is_exactly_zero(runs, tmp_path):
    """velocity 0: the injected run is the stack's own run, byte for byte (one
    strip against the stack's, the same blocks): every error is 0; no scratch
    folder is left."""
    table, err = _inject(runs["L2"], tmp_path, velocity=0.0)
    assert list(table.columns) == inj.INJECTION_COLUMNS
    assert list(table["coherence_bin"]) == ["all", "0.0-0.5", "0.5-0.7", "0.7-0.9", "0.9-1.0"]
    row = table.iloc[0]
    assert row["n_px"] == SHAPE[0] * SHAPE[1] and row["rms_error"] == 0.0
    assert row["max_abs_error"] == 0.0 and row["within_std"] == 1.0
    assert np.all(err == 0.0)
    assert table["n_px"].iloc[1:].sum() == row["n_px"]  # every pixel in one bin
    assert sorted(p.name for p in tmp_path.iterdir()) == ["injection.csv", "injection_error.tif"]


@pytest.mark.parametrize("method", ["L2", "L1"])
def test_bowl_recovered_within_the_reported_std(runs, tmp_path, method):
    """A bowl of 20 reported standard errors (off centre, drawn from a seed)
    comes back within them: >= 95 % of pixels within 3 std, RMS error a small
    fraction of the peak. L2 is linear in the data and L1 equivariant to a
    signal the network closes on (x + d minimises |A x - (b + A d)|_1 when x
    minimises |A x - b|_1): both to float32 rounding (L1: its tolerance)."""
    out = runs[method]
    std = io.read_band(out / "velocity_std.tif")
    peak = 20 * float(np.nanmedian(std))
    table, err = _inject(out, tmp_path, method, velocity=peak, seed=4, sigma=0.2)
    row = table.iloc[0]
    assert row["injected_peak"] == pytest.approx(peak) and row["units"] == "radians/year"
    assert row["n_px"] == SHAPE[0] * SHAPE[1] and row["within_3std"] >= 0.95
    assert row["rms_error"] == pytest.approx(np.sqrt(np.nanmean(err.astype(np.float64) ** 2)),
                                             rel=1e-5)  # fmt: skip
    if method == "L2":
        assert row["rms_error"] < 1e-5 * peak and row["within_std"] == 1.0
    else:
        assert row["rms_error"] < 1e-3 * peak and row["within_std"] >= 0.68


def test_recovered_step_with_the_model_step(runs, stack, tmp_path):
    """A step on a date the velocity model fits: the velocity and the step come
    back (L2, to float32 rounding); the step rows use the step's std."""
    out = runs["L2"]
    ifgs, dates, _ = insar.read_ifg_table(out / "ifgs.csv")
    day = dates[5].isoformat()
    own = tmp_path / "own"
    own.mkdir()
    p = run_script("insar_velocity.py", "--index", out / "ts.csv", "--ifgs", out / "ifgs.csv",
                   "--out", own / "velocity.tif", "--out-std", own / "velocity_std.tif",
                   "--step", day)  # fmt: skip
    assert p.returncode == 0, p.stderr
    cfg_step = {"velocity": 5.0, "step": 2.0, "step_date": day}
    cfg = schema_defaults()
    cfg["insar"]["method"] = "L2"
    cfg["insar"]["velocity_model"]["steps"] = [day]
    cfg["insar"]["injection"].update(enabled=True, **cfg_step)
    table = tmp_path / "injection.csv"
    cli.main(["insar_injection", *options.config_args("insar_injection", cfg),
              "--ifgs", str(out / "ifgs.csv"), "--reference", str(out / "ref.txt"),
              "--velocity-dir", str(own), "--temporal-coherence", str(out / "temporal_coherence.tif"),
              "--out", str(table), "--out-error", str(tmp_path / "e.tif")])  # fmt: skip
    t = pd.read_csv(table).set_index(["quantity", "coherence_bin"])
    assert t.loc[("step", "all"), "injected_peak"] == 2.0
    assert t.loc[("step", "all"), "units"] == "radians"
    assert t.loc[("step", "all"), "rms_error"] < 1e-5 and t.loc[("velocity", "all"), "rms_error"] < 1e-4


def test_injected_phase_is_the_bowl_relative_to_the_reference_date():
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=36525 // 100 * k) for k in range(3)]
    bowl = inj.Bowl.from_config((20, 30), velocity=0.01, sigma=0.25, step=0.002,
                                step_date=dates[2].isoformat())  # fmt: skip
    assert bowl.centre == (9.5, 14.5) and bowl.sigma_px == 5.0
    phase = inj.InjectedPhase(bowl, dates, [(0, 1), (1, 2), (0, 2)], 0.0555)
    win = Window(0, 0, 30, 20)
    g = bowl.shape_at(win)
    k = -0.0555 / (4 * np.pi)  # metres per radian, positive towards the radar
    d = bowl.coefficients(dates)
    np.testing.assert_allclose(d, [0.0, 0.01 * 365 / 365.25, 0.01 * 730 / 365.25 + 0.002])
    np.testing.assert_allclose(phase.read(win)[2], d[2] * g / k)
    np.testing.assert_allclose(phase.read_one(1, win), (d[2] - d[1]) * g / k)
    assert g.max() < 1.0 and g[9, 14] == pytest.approx(np.exp(-0.5 / 50))


def test_deramp_refit_sees_the_injected_phase(stack, tmp_path):
    """The ramps refitted with the injection are those of the ifgs with the
    injected phase written into them (the deramp takes its share of the bowl)."""
    d, pattern = stack
    ifgs, dates, pairs, grid = select_ifgs(pattern)
    bowl = inj.Bowl.from_config(grid.shape, velocity=30.0, sigma=0.3, centre=(4, 30))
    phase = inj.InjectedPhase(bowl, dates, pairs, None)
    got = fit_ramps(ifgs, "linear", block_shape=(16, 40), injection=phase)
    (tmp_path / "w").mkdir()
    written = []
    for k, i in enumerate(ifgs):
        path = tmp_path / "w" / i.path.name
        full = Window(0, 0, grid.width, grid.height)
        io.write_raster(path, io.read_band(i.path).astype(np.float64) + phase.read_one(k, full), grid)
        written.append(i.__class__(**{**i.__dict__, "path": path}))
    want = fit_ramps(written, "linear", block_shape=(16, 40))
    cols = list(deramp.terms("linear"))
    np.testing.assert_allclose(got[cols], want[cols], rtol=1e-6, atol=1e-9)
    plain = fit_ramps(ifgs, "linear", block_shape=(16, 40))
    assert np.abs(got[cols].to_numpy() - plain[cols].to_numpy()).max() > 1e-3


@pytest.mark.parametrize("cfg, key", [
    ({"sigma": 0}, "insar.injection.sigma"),
    ({"sigma": 1.5}, "insar.injection.sigma"),
    ({"seed": -1}, "insar.injection.seed"),
    ({"step_date": "2020-13"}, "insar.injection.step_date"),
    ({"centre": [1]}, "insar.injection.centre"),
    ({"velocity": "fast"}, "insar.injection.velocity"),
    ({"amplitude": 1.0}, "insar.injection"),
])  # fmt: skip
def test_bad_config_is_one_line_naming_the_key(cfg, key):
    from conftest import ROOT

    from sarstack.config import load_schema, validate_config

    schema = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    with pytest.raises(SarstackError) as e:
        validate_config({"output_dir": "o", "insar": {"injection": cfg}}, schema)
    assert key in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kw, key", [
    ({"centre": (3, 4), "seed": 1}, "insar.injection: give centre or seed"),
    ({"centre": (40, 4)}, "insar.injection.centre"),
    ({"step": 1.0}, "insar.injection.step: a step needs insar.injection.step_date"),
])  # fmt: skip
def test_bad_values_the_schema_cannot_see(kw, key):
    with pytest.raises(SarstackError, match=key):
        inj.Bowl.from_config((32, 40), velocity=1.0, sigma=0.1, **kw)
    bowl = inj.Bowl.from_config((32, 40), velocity=1.0, sigma=0.1, step=1.0, step_date="2019-01-01")
    with pytest.raises(SarstackError, match="insar.injection.step_date: 2019-01-01 is not inside"):
        inj.InjectedPhase(bowl, [dt.date(2020, 1, 1), dt.date(2020, 2, 1)], [(0, 1)], None)


def test_summary_line():
    row = {"quantity": "velocity", "coherence_bin": "all", "n_px": "1280", "rms_error": "0.00012",
           "max_abs_error": "0.0009", "mean_error": "0", "within_std": "0.97", "within_3std": "1.0",
           "injected_peak": "0.01", "units": "meters/year"}  # fmt: skip
    assert summary.insar_injection_line(row) == (
        "insar injection-recovery of the velocity (bowl of peak 0.01 meters/year) over 1280"
        " pixels: RMS error 0.00012, largest 0.0009 meters/year; 97% within the reported std,"
        " 100% within 3 std")  # fmt: skip


@pytest.mark.workflow
def test_workflow_runs_the_stage_only_when_on(stack, tmp_path):
    """Through Snakemake: insar.injection on adds the insar_injection job, its
    table and raster and the terminal line; off (the default), a dry run has
    no such job."""
    from test_workflow import snakemake, write_config

    d, pattern = stack
    base = {"rtc": {"enabled": False}, "demo": {"enabled": False}}
    ins = {"method": "L2", "reference_point": [int(v) for v in REF], "unwrapped": pattern}
    out = tmp_path / "on"
    cfg = write_config(tmp_path / "on.yaml", {**base, "output_dir": str(out), "insar": {
        **ins, "injection": {"enabled": True, "velocity": 10.0}}})  # fmt: skip
    run = snakemake("insar", "--configfile", str(cfg))
    assert "rule insar_injection" in run.stdout + run.stderr
    lines = run.stderr.split("=== sarstack summary ===")[1].splitlines()
    line = next(ln for ln in lines if ln.startswith("insar injection-recovery"))
    assert line.startswith("insar injection-recovery of the velocity (bowl of peak 10 radians/year)"
                           f" over {SHAPE[0] * SHAPE[1]} pixels")  # fmt: skip
    assert "100% within the reported std" in line
    table = pd.read_csv(out / "insar" / "injection.csv")
    assert table["rms_error"].iloc[0] < 1e-4
    assert io.read_band(out / "insar" / "injection_error.tif").shape == SHAPE
    assert not list((out / "insar").glob(".injection-*"))
    cfg = write_config(tmp_path / "off.yaml", {**base, "output_dir": str(tmp_path / "off"),
                                               "insar": ins})  # fmt: skip
    dry = snakemake("insar", "-n", "--configfile", str(cfg))
    assert "insar_injection" not in dry.stdout + dry.stderr

"""insar.troposphere (issue 26 item 4): per-date delay rasters mapped to the
line of sight, converted to radians and put on the ifgs' grid; the inversion
subtracts d_sec - d_ref from each ifg. A stack with known delays added,
corrected with the same delays, inverts to the clean stack's time series."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from affine import Affine
from conftest import with_schema_defaults

from sarstack import deramp, insar, io, synthetic, troposphere
from sarstack.errors import SarstackError

select_ifgs = with_schema_defaults(insar.select_ifgs)
invert_strip = with_schema_defaults(insar.invert_strip)
fit_ramps = with_schema_defaults(deramp.fit_ramps)

SHAPE = (24, 32)
REF = (12, 5)
WAVELENGTH = 0.0555
PX, ORIGIN = 30.0, (500000.0, 4000000.0)  # make_ifg_stack's grid


def _coords(grid):
    """Pixel-centre x, y (metres) of ``grid``."""
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width] + 0.5
    x, y = grid.transform @ (cols, rows)
    return np.asarray(x), np.asarray(y)


def _zenith(k, x, y):
    """Date k's zenith delay (metres): a smooth field, linear in x and y, so the
    bilinear resampling of a coarser raster is exact inside it."""
    rng = np.random.default_rng(100 + k)
    a, b, c = rng.normal(0.0, [0.02, 2e-5, 2e-5])
    return 2.3 + a + b * (x - ORIGIN[0]) + c * (ORIGIN[1] - y)


def _incidence(x, y):
    """Incidence (degrees): 30 at the near range, growing across the scene."""
    return 30.0 + 0.01 * (x - ORIGIN[0])


@pytest.fixture(scope="module")
def stack(tmp_path_factory, x64):
    d = tmp_path_factory.mktemp("tropo")
    synthetic.make_ifg_stack(d / "s", n_dates=7, shape=SHAPE, network="nearest:2",
                             noise_rad=0.05, seed=3)  # fmt: skip
    ifgs, dates, pairs, grid = select_ifgs(str(d / "s" / "ifgs" / "*.unw.tif"))
    return d, ifgs, dates, pairs, grid


def _with_delays(ifgs, pairs, los_rad, d):
    """Copies of ``ifgs`` in folder ``d`` with ``los_rad[sec] - los_rad[ref]`` added."""
    d.mkdir()
    grid = io.read_grid(ifgs[0].path)
    out = []
    for i, (r, s) in zip(ifgs, pairs, strict=True):
        path = d / i.path.name
        phase = io.read_band(i.path).astype(np.float64) + los_rad[s] - los_rad[r]
        io.write_raster(path, phase.astype(np.float32), grid, nodata=0.0)
        out.append(dataclasses.replace(i, path=path))
    return out


def _write_dates(folder, dates, fields, grid, suffix):
    """One delay raster per date, float64: the delays the ifgs got are exactly
    those in the files (float32 keeps 2.3 m to 2e-7 m, 5e-5 rad at C band)."""
    folder.mkdir()
    for k, date in enumerate(dates):
        io.write_raster(folder / f"{date:%Y%m%d}.{suffix}.tif", np.asarray(fields[k], np.float64),
                        grid)  # fmt: skip
    return str(folder / f"*.{suffix}.tif")


def _series(ifgs, dates, pairs, out, tropo=None, ramps=None):
    invert_strip(ifgs, dates, pairs, REF, out, method="L2", wavelength=None, mask=None,
                 block_shape=(8, 32), l1_tolerance=1e-6, l1_max_iterations=100,
                 weighting="none", correlation_looks=4.0, correlation_threshold=0.0,
                 write_residuals=False, ramps=ramps, troposphere=tropo)  # fmt: skip
    return np.stack([io.read_band(out / "timeseries.tif", band=b + 1)
                     for b in range(len(dates) - 1)])  # fmt: skip


def _opts(**kw):
    base = {"kind": "los", "units": "m", "incidence": None, "incidence_deg": None,
            "wavelength": WAVELENGTH, "date_format": "%Y%m%d", "block_shape": (8, 32)}  # fmt: skip
    return {**base, **kw}


def test_added_los_delays_come_back_out(stack, tmp_path):
    """LOS delays in metres on the ifgs' grid: the corrected stack's time series is
    the clean one's; uncorrected it is not; the table says the spread went down."""
    d, ifgs, dates, pairs, grid = stack
    x, y = _coords(grid)
    los_m = np.stack([_zenith(k, x, y) for k in range(len(dates))])
    dirty = _with_delays(ifgs, pairs, los_m * 4 * np.pi / WAVELENGTH, tmp_path / "dirty")
    pattern = _write_dates(tmp_path / "delays", dates, los_m, grid, "los")
    table = troposphere.write_delays(dirty, dates, pairs, pattern, tmp_path / "tropo", **_opts())
    assert list(table.columns) == list(troposphere.COLUMNS) and len(table) == len(ifgs)
    assert sorted(p.name for p in (tmp_path / "tropo").iterdir()) == [
        f"{t:%Y%m%d}.tif" for t in dates]  # fmt: skip
    assert (table["phase_std_after_rad"] < 0.5 * table["phase_std_before_rad"]).all()
    assert (table["no_delay_px"] == 0).all()
    tropo = troposphere.IfgDelays(tmp_path / "tropo", dates, pairs, grid)
    clean = _series(ifgs, dates, pairs, tmp_path / "a")
    fixed = _series(dirty, dates, pairs, tmp_path / "b", tropo)
    np.testing.assert_allclose(fixed, clean, atol=1e-5)  # float32 ifgs
    raw = _series(dirty, dates, pairs, tmp_path / "c")
    assert np.nanmax(np.abs(raw - clean)) > 1.0
    # The sign: a delay growing from one date to the next is a range increase,
    # positive phase, which the correction takes out of the ifg.
    k = int(np.argmax(table["correction_mean_rad"].abs()))
    r, s = pairs[k]
    want = (los_m[s] - los_m[r]).mean() * 4 * np.pi / WAVELENGTH
    assert table["correction_mean_rad"].iloc[k] == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("incidence", ["raster", "constant"])
def test_zenith_delays_on_another_grid(stack, tmp_path, incidence):
    """Zenith delays (and the incidence raster) on a coarser, larger grid:
    resampled to the ifgs' grid and mapped by 1 / cos(incidence), the corrected
    time series is the clean one's."""
    d, ifgs, dates, pairs, grid = stack
    x, y = _coords(grid)
    inc = _incidence(x, y) if incidence == "raster" else np.full(SHAPE, 37.0)
    los_rad = np.stack([_zenith(k, x, y) / np.cos(np.deg2rad(inc)) for k in range(len(dates))])
    dirty = _with_delays(ifgs, pairs, los_rad, tmp_path / "dirty")
    # 45 m pixels, starting 100 m before the ifgs and ending past them.
    coarse = io.Grid(grid.crs, Affine(45.0, 0, ORIGIN[0] - 100, 0, -45.0, ORIGIN[1] + 100), 26, 20)
    cx, cy = _coords(coarse)
    zen_rad = [_zenith(k, cx, cy) for k in range(len(dates))]  # units: rad
    pattern = _write_dates(tmp_path / "delays", dates, zen_rad, coarse, "ztd")
    kw = {"incidence_deg": 37.0}
    if incidence == "raster":
        io.write_raster(tmp_path / "inc.tif", _incidence(cx, cy).astype(np.float32), coarse)
        kw = {"incidence": tmp_path / "inc.tif"}
    table = troposphere.write_delays(dirty, dates, pairs, pattern, tmp_path / "tropo",
                                     **_opts(kind="zenith", units="rad", **kw))  # fmt: skip
    assert (table["no_delay_px"] == 0).all()
    tropo = troposphere.IfgDelays(tmp_path / "tropo", dates, pairs, grid)
    np.testing.assert_allclose(io.read_band(tmp_path / "tropo" / f"{dates[3]:%Y%m%d}.tif"),
                               los_rad[3], rtol=1e-7)  # GDAL: 2e-8  # fmt: skip
    clean = _series(ifgs, dates, pairs, tmp_path / "a")
    fixed = _series(dirty, dates, pairs, tmp_path / "b", tropo)
    np.testing.assert_allclose(fixed, clean, atol=1e-5)


def test_deramp_fits_the_corrected_phase(stack, tmp_path):
    """With both corrections, the ramps are fitted to the phase minus the delays: a
    delay field that is itself a plane is removed once, not twice."""
    d, ifgs, dates, pairs, grid = stack
    x, y = _coords(grid)
    los = np.stack([_zenith(k, x, y) for k in range(len(dates))]) * 4 * np.pi / WAVELENGTH
    dirty = _with_delays(ifgs, pairs, los, tmp_path / "dirty")
    pattern = _write_dates(tmp_path / "delays", dates, los, grid, "los")
    troposphere.write_delays(dirty, dates, pairs, pattern, tmp_path / "tropo",
                             **_opts(units="rad"))  # fmt: skip
    tropo = troposphere.IfgDelays(tmp_path / "tropo", dates, pairs, grid)
    coef = list(deramp.terms("linear"))
    clean = fit_ramps(ifgs, "linear", block_shape=(8, 32))[coef].to_numpy()
    fixed = fit_ramps(dirty, "linear", block_shape=(8, 32), troposphere=tropo)
    np.testing.assert_allclose(fixed[coef].to_numpy(), clean, atol=1e-4)
    a = _series(ifgs, dates, pairs, tmp_path / "a", ramps=("linear", clean))
    b = _series(dirty, dates, pairs, tmp_path / "b", tropo, ramps=("linear", fixed[coef].to_numpy()))
    np.testing.assert_allclose(b, a, atol=1e-5)


def test_bad_input_is_named_and_leaves_nothing(stack, tmp_path):
    d, ifgs, dates, pairs, grid = stack
    fields = [np.full(SHAPE, 0.1 * k) for k in range(len(dates))]
    pattern = _write_dates(tmp_path / "delays", dates, fields, grid, "los")
    out = tmp_path / "tropo"
    (tmp_path / "delays" / f"{dates[2]:%Y%m%d}.los.tif").unlink()
    (tmp_path / "delays" / f"{dates[5]:%Y%m%d}.los.tif").unlink()
    missing = f"{dates[2].isoformat()}, {dates[5].isoformat()}"
    with pytest.raises(SarstackError, match=f"no delay raster for 2 of the 7 dates: {missing}"):
        troposphere.write_delays(ifgs, dates, pairs, pattern, out, **_opts())
    assert not out.exists() and not list(tmp_path.glob(".tropo*"))
    cases = [
        (_opts(kind="zenith"), "insar.troposphere.incidence: kind zenith needs"),
        (_opts(wavelength=None), "insar.troposphere.units: m needs insar.wavelength"),
        (_opts(kind="zenith", incidence="i.tif", incidence_deg=30.0), "both set"),
    ]
    for kw, msg in cases:
        with pytest.raises(SarstackError, match=msg):
            troposphere.write_delays(ifgs, dates, pairs, pattern, out, **kw)
    with pytest.raises(SarstackError, match="no files match"):
        troposphere.write_delays(ifgs, dates, pairs, str(tmp_path / "none*.tif"), out, **_opts())
    # Two dates in a name; an unreadable raster; an incidence out of range.
    bad = tmp_path / "delays" / f"{dates[2]:%Y%m%d}_{dates[3]:%Y%m%d}.los.tif"
    io.write_raster(bad, fields[0].astype(np.float32), grid)
    with pytest.raises(SarstackError, match="needs one date"):
        troposphere.write_delays(ifgs, dates, pairs, pattern, out, **_opts())
    bad.unlink()
    for k in (2, 5):
        (tmp_path / "delays" / f"{dates[k]:%Y%m%d}.los.tif").write_text("not a raster")
    with pytest.raises(SarstackError, match=f"{dates[2]:%Y%m%d}.los.tif: not a readable raster"):
        troposphere.write_delays(ifgs, dates, pairs, pattern, out, **_opts())
    assert not out.exists()
    for k in (2, 5):
        io.write_raster(tmp_path / "delays" / f"{dates[k]:%Y%m%d}.los.tif",
                        fields[k].astype(np.float32), grid)  # fmt: skip
    io.write_raster(tmp_path / "inc.tif", np.full(SHAPE, 95.0, np.float32), grid)
    with pytest.raises(SarstackError, match=r"inc.tif: incidence 95 is not in \[0, 90\)"):
        troposphere.write_delays(ifgs, dates, pairs, pattern, out,
                                 **_opts(kind="zenith", incidence=tmp_path / "inc.tif"))  # fmt: skip
    # A good run, then a failing one: the first run's folder stays whole.
    troposphere.write_delays(ifgs, dates, pairs, pattern, out, **_opts())
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(SarstackError, match="incidence 95"):
        troposphere.write_delays(ifgs, dates, pairs, pattern, out,
                                 **_opts(kind="zenith", incidence=tmp_path / "inc.tif"))  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == before
    # The inversion's reader names a date whose raster is gone.
    (out / f"{dates[4]:%Y%m%d}.tif").unlink()
    with pytest.raises(SarstackError, match=f"no delay raster for {dates[4].isoformat()}"):
        troposphere.IfgDelays(out, dates, pairs, grid)


def test_reference_point_without_delay_is_named(stack, tmp_path):
    d, ifgs, dates, pairs, grid = stack
    fields = [np.full(SHAPE, 0.1 * k) for k in range(len(dates))]
    fields[3][REF] = np.nan
    pattern = _write_dates(tmp_path / "delays", dates, fields, grid, "los")
    table = troposphere.write_delays(ifgs, dates, pairs, pattern, tmp_path / "tropo",
                                     **_opts(units="rad"))  # fmt: skip
    assert table["no_delay_px"].max() == 1
    tropo = troposphere.IfgDelays(tmp_path / "tropo", dates, pairs, grid)
    with pytest.raises(SarstackError, match="has no troposphere delay in .*choose insar.reference_point"):
        insar.reference_phase(ifgs, REF, 1, troposphere=tropo)


@pytest.mark.workflow
def test_workflow_corrects_to_the_clean_velocity(stack, tmp_path):
    """Through Snakemake: the clean stack, and the stack with known LOS delays
    added run with insar.troposphere on those delays, give the same velocity;
    insar_troposphere writes one raster per date and one row per ifg; the run
    without the option has no such stage and no --troposphere in its commands."""
    import pandas as pd
    from test_workflow import snakemake, write_config

    d, ifgs, dates, pairs, grid = stack
    x, y = _coords(grid)
    los_m = np.stack([_zenith(k, x, y) for k in range(len(dates))])
    _with_delays(ifgs, pairs, los_m * 4 * np.pi / WAVELENGTH, tmp_path / "dirty")
    pattern = _write_dates(tmp_path / "delays", dates, los_m, grid, "los")
    base = {"rtc": {"enabled": False}, "demo": {"enabled": False}}
    ins = {"method": "L2", "reference_point": list(REF), "wavelength": WAVELENGTH}
    runs = {
        "clean": {"unwrapped": str(d / "s" / "ifgs" / "*.unw.tif")},
        "fixed": {"unwrapped": str(tmp_path / "dirty" / "*.unw.tif"),
                  "troposphere": {"delays": pattern, "kind": "los"}},
    }  # fmt: skip
    vel = {}
    for name, extra in runs.items():
        out = tmp_path / name
        cfg = write_config(tmp_path / f"{name}.yaml",
                           {**base, "output_dir": str(out), "insar": {**ins, **extra}})  # fmt: skip
        run = snakemake("insar", "-p", "--configfile", str(cfg))
        text = run.stdout + run.stderr
        assert ("rule insar_troposphere" in text) is (name == "fixed")
        assert ("--troposphere" in text) is (name == "fixed")
        vel[name] = io.read_band(out / "insar" / "velocity.tif")
    np.testing.assert_allclose(vel["fixed"], vel["clean"], atol=1e-7)  # metres / year; 0.1 µm/yr
    table = pd.read_csv(tmp_path / "fixed" / "insar" / "troposphere.csv")
    assert len(table) == len(ifgs) and (table["no_delay_px"] == 0).all()
    assert len(list((tmp_path / "fixed" / "insar" / "troposphere").glob("*.tif"))) == len(dates)
    assert not (tmp_path / "clean" / "insar" / "troposphere.csv").exists()


def test_stage_runs_alone_and_names_missing_dates(stack, tmp_path, capsys):
    """insar_troposphere from its command line (options from a config, as the rule
    passes them): the folder and the table; a missing date is one line naming it,
    exit status 2, nothing written."""
    import pandas as pd
    from conftest import schema_defaults

    from sarstack import cli, options

    d, ifgs, dates, pairs, grid = stack
    table = tmp_path / "ifgs.csv"
    io.write_csv(table, insar.ifg_table(ifgs))
    pattern = _write_dates(tmp_path / "delays", dates, [np.full(SHAPE, 0.01 * k) for k in
                                                       range(len(dates))], grid, "ztd")  # fmt: skip
    cfg = schema_defaults()
    cfg["insar"]["wavelength"] = WAVELENGTH
    cfg["insar"]["troposphere"].update(delays=pattern, incidence_deg=35.0)
    argv = [*options.config_args("insar_troposphere", cfg), "--ifgs", str(table),
            "--out-dir", str(tmp_path / "tropo"), "--out", str(tmp_path / "troposphere.csv")]
    cli.main(["insar_troposphere", *argv])
    got = pd.read_csv(tmp_path / "troposphere.csv")
    want = 0.01 * 4 * np.pi / WAVELENGTH / np.cos(np.deg2rad(35.0))  # per step of the date index
    steps = [(s - r) for r, s in pairs]
    np.testing.assert_allclose(got["correction_mean_rad"], np.array(steps) * want, rtol=1e-9)
    (tmp_path / "delays" / f"{dates[-1]:%Y%m%d}.ztd.tif").unlink()
    argv[-4:] = ["--out-dir", str(tmp_path / "again"), "--out", str(tmp_path / "again.csv")]
    with pytest.raises(SystemExit) as e:
        cli.main(["insar_troposphere", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: insar.troposphere.delays: no delay raster for 1 of the 7 dates: "
                   f"{dates[-1].isoformat()} (glob {pattern!r})")  # fmt: skip
    assert not (tmp_path / "again").exists() and not (tmp_path / "again.csv").exists()

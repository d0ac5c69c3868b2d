"""Deformation model beyond a line (offset + velocity + annual / semiannual
sinusoids + Heaviside steps): the kernel against a per-pixel lstsq oracle,
the calendar meaning of the phase, the default staying the plain linear fit
bit for bit, synthetic truth through the scripts, and bad step dates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from conftest import run_script, schema_defaults, with_schema_defaults

from sarstack import cli, insar, io, synthetic
from sarstack import velocity as svel
from sarstack.errors import SarstackError
from sarstack.options import config_args

fit_model = with_schema_defaults(svel.fit_model)
fit_velocity = with_schema_defaults(svel.velocity)
fit_design = with_schema_defaults(svel.fit_design)
select_ifgs = with_schema_defaults(insar.select_ifgs)
velocity_files = with_schema_defaults(insar.velocity_files)

ROOT = Path(__file__).resolve().parents[1]
EPOCH = dt.date(2000, 1, 1)


# --------------------------------------------------------------------------- #
# Kernel
# --------------------------------------------------------------------------- #


def oracle_design(dates, annual, semiannual, steps):
    """The design matrix written out from the documented model, column by column."""
    t = np.array([(d - dates[0]).days / 365.25 for d in dates])
    tau = np.array([(d - EPOCH).days / 365.25 for d in dates])
    cols = [np.ones(len(dates)), t]
    if annual:
        cols += [np.cos(2 * np.pi * tau), np.sin(2 * np.pi * tau)]
    if semiannual:
        cols += [np.cos(4 * np.pi * tau), np.sin(4 * np.pi * tau)]
    cols += [np.array([1.0 if d >= s else 0.0 for d in dates]) for s in steps]
    return np.stack(cols, axis=1)


_GRID = {p: np.arange(0.0, p, 1e-5) for p in (1.0, 0.5)}
_COS_SIN = {p: (np.cos(2 * np.pi * x / p), np.sin(2 * np.pi * x / p)) for p, x in _GRID.items()}


def peak_day(a, b, period):
    """Day of year of the maximum of a cos(2 pi tau / P) + b sin(2 pi tau / P), by brute
    force on a grid of 1e-5 years (0.004 days)."""
    c, s = _COS_SIN[period]
    return 1.0 + 365.25 * _GRID[period][np.argmax(a * c + b * s)]


def amp_phase(p, period):
    """(amplitude, phase angle) of (a, b); the phase angle unwrapped near p's."""
    return np.array([np.hypot(p[0], p[1]), np.arctan2(p[1], p[0])]) * [1.0, period * 365.25 / (2 * np.pi)]


def delta_std(p, cov, period):
    """Standard errors of amplitude and peak day by a numerical Jacobian."""
    jac = np.zeros((2, 2))
    for j in range(2):
        h = 1e-6 * max(1.0, abs(p[j]))
        e = np.zeros(2)
        e[j] = h
        jac[:, j] = (amp_phase(p + e, period) - amp_phase(p - e, period)) / (2 * h)
    return np.sqrt(np.diag(jac @ cov @ jac.T))


@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_matches_lstsq_oracle(weighted):
    rng = np.random.default_rng(11)
    gaps = rng.integers(6, 48, size=29)
    dates = [dt.date(2019, 3, 10)] + [
        dt.date(2019, 3, 10) + dt.timedelta(days=int(x)) for x in np.cumsum(gaps)
    ]
    steps = [dates[8].isoformat(), "2020-07-20"]  # the first on an acquisition date
    model = svel.DeformationModel.from_config(True, True, steps)
    sdates = [dt.date.fromisoformat(s) for s in steps]
    g = oracle_design(dates, True, True, sdates)
    n, k = g.shape
    assert k == model.n_params == 8
    n_pix = 300
    truth = rng.normal(size=(k, n_pix))
    y = g @ truth + 0.3 * rng.normal(size=(n, n_pix))
    y[0] = 0.0  # the datum
    y[rng.random(y.shape) < 0.15] = np.nan
    after2 = np.array([d >= sdates[1] for d in dates])
    y[after2, 0] = np.nan  # no date after the second step: singular
    keep = rng.choice(n, size=k, replace=False)
    y[np.setdiff1d(np.arange(n), keep), 1] = np.nan  # n == k
    y[:, 2] = g @ truth[:, 2]  # exact fit: zero residuals
    w = rng.uniform(0.2, 1.0, size=y.shape) if weighted else np.ones(y.shape)
    if weighted:
        w[rng.random(y.shape) < 0.05] = 0.0

    out = fit_model(y, dates, model, weights=w if weighted else None, uncertainty="white")
    assert list(out) == model.output_names()
    assert all(v.dtype == np.float64 and v.shape == (n_pix,) for v in out.values())

    names = model.output_names()
    expect = {name: np.full(n_pix, np.nan) for name in names}
    for p in range(n_pix):
        ok = np.isfinite(y[:, p]) & (w[:, p] > 0)
        gs, ys, sw = g[ok], y[ok, p], np.sqrt(w[ok, p])
        if ok.sum() <= k or np.linalg.matrix_rank(gs) < k:
            continue
        beta, *_ = np.linalg.lstsq(gs * sw[:, None], ys * sw, rcond=None)
        rss = np.sum((sw * (ys - gs @ beta)) ** 2)
        cov = rss / (ok.sum() - k) * np.linalg.inv((gs * sw[:, None] ** 2).T @ gs)
        expect["velocity"][p], expect["velocity_std"][p] = beta[1], np.sqrt(cov[1, 1])
        for name, i, period in (("annual", 2, 1.0), ("semiannual", 4, 0.5)):
            ab, cab = beta[i : i + 2], cov[i : i + 2, i : i + 2]
            expect[f"{name}_amplitude"][p] = np.hypot(*ab)
            expect[f"{name}_phase"][p] = peak_day(*ab, period)
            expect[f"{name}_amplitude_std"][p], expect[f"{name}_phase_std"][p] = delta_std(
                ab, cab, period
            )
        for j, s in enumerate(sdates):
            expect[f"step_{s:%Y%m%d}"][p] = beta[6 + j]
            expect[f"step_{s:%Y%m%d}_std"][p] = np.sqrt(cov[6 + j, 6 + j])

    finite = np.isfinite(expect["velocity"])
    assert not finite[0] and not finite[1] and finite[2] and finite.sum() > 250
    for name in names:
        got, exp = out[name], expect[name]
        np.testing.assert_array_equal(np.isnan(got), ~finite, err_msg=name)
        if name.endswith("_phase"):
            period_days = 365.25 if name.startswith("annual") else 182.625
            d = np.mod(got[finite] - exp[finite] + period_days / 2, period_days) - period_days / 2
            assert np.max(np.abs(d)) < 0.01, name  # the oracle's grid is 0.004 days
            assert np.all((got[finite] >= 1) & (got[finite] < 1 + period_days)), name
        elif name.endswith("_phase_std") or name.endswith("_amplitude_std"):
            np.testing.assert_allclose(got[finite], exp[finite], rtol=1e-6, atol=1e-9, err_msg=name)
        else:
            np.testing.assert_allclose(got[finite], exp[finite], rtol=1e-8, atol=1e-8, err_msg=name)
    assert out["velocity_std"][2] < 1e-6  # exact data: no residual


def test_phase_is_the_calendar_day_of_the_peak():
    dates = [dt.date(2020, 1, 5) + dt.timedelta(days=12 * i) for i in range(62)]
    days = np.array([(d - dates[0]).days for d in dates], dtype=np.float64)

    def since(peak):
        return np.array([(d - peak).days for d in dates], dtype=np.float64) / 365.25

    # annual peak on 10 April (day 100), semiannual peaks on 20 August (day 233) and
    # 180 days earlier (day 52), plus a line and a step
    disp = (
        0.7 * days / 365.25
        + 2.0 * np.cos(2 * np.pi * since(dt.date(2021, 4, 10)))
        + 0.5 * np.cos(4 * np.pi * since(dt.date(2021, 8, 20)))
        + 1.5 * np.array([d >= dt.date(2020, 10, 31) for d in dates])  # on a date
    )
    disp = disp - disp[0]
    model = svel.DeformationModel.from_config(annual=True, semiannual=True, steps=["2020-10-31"])
    out = fit_model(disp[:, None], dates, model)
    assert out["annual_amplitude"][0] == pytest.approx(2.0, abs=1e-9)
    assert out["semiannual_amplitude"][0] == pytest.approx(0.5, abs=1e-9)
    assert out["velocity"][0] == pytest.approx(0.7, abs=1e-9)
    assert dt.date(2020, 10, 31) in dates
    assert out["step_20201031"][0] == pytest.approx(1.5, abs=1e-9)
    # 365.25-day years from 2000-01-01: 2021's days of year come out 0.75 d late
    assert out["annual_phase"][0] == pytest.approx(100.0, abs=1.0)
    assert out["semiannual_phase"][0] == pytest.approx(233.0 - 182.625, abs=1.0)
    assert out["velocity"].dtype == np.float64
    assert fit_model(disp[:, None].astype(np.float32), dates, model)["velocity"].dtype == np.float32


def test_linear_fit_model_agrees_with_velocity_and_skips_nan_dates():
    rng = np.random.default_rng(3)
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=12 * i) for i in range(20)]
    t = np.array([(d - dates[0]).days / 365.25 for d in dates])
    y = rng.normal(size=(20, 50)) + 3.0 * t[:, None]
    y[0] = 0.0
    y[5, 7] = np.nan
    out = fit_model(y, dates, svel.DeformationModel())
    v, s, _ = fit_velocity(y, t)
    assert np.isnan(v[7]) and np.isfinite(out["velocity"][7])
    ok = np.arange(50) != 7
    np.testing.assert_allclose(out["velocity"][ok], v[ok], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["velocity_std"][ok], s[ok], rtol=1e-10, atol=1e-12)
    keep = np.arange(20) != 5
    v7, s7, _ = fit_velocity(y[keep, 7], t[keep])
    assert out["velocity"][7] == pytest.approx(float(v7), abs=1e-12)
    assert out["velocity_std"][7] == pytest.approx(float(s7), abs=1e-12)


def test_model_checks_and_the_config_key_the_stages_add():
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=12 * i) for i in range(10)]
    bad = [
        (["2020-01-01"], "not inside"),  # the first date: no date before it
        (["2020-04-27"], "not inside"),  # after the last date (2020-04-17)
        (["2020-02-01", "2020-02-05"], "no date between"),
        (["2020-02-01", "2020-02-01"], "given twice"),
        (["2020-02-30"], "is not a date"),
    ]
    for steps, what in bad:
        with pytest.raises(SarstackError, match=r"^steps: .*" + what) as err:
            svel.DeformationModel.from_config(steps=steps).check(dates)
        assert re.match(r"^insar\.velocity_model\.steps: .*" + what, str(svel.model_error(err.value)))
    # the last date itself is a step with one date on or after it
    svel.DeformationModel.from_config(steps=["2020-04-17"]).check(dates)
    with pytest.raises(SarstackError, match=r" parameters") as err:
        svel.DeformationModel(annual=True, semiannual=True).check(dates[:6])
    assert str(svel.model_error(err.value)).startswith("insar.velocity_model: ")
    with pytest.raises(SarstackError, match="finite and non-negative"):
        fit_design(np.zeros((10, 2)), np.ones((10, 1)), np.full(10, np.inf))


# --------------------------------------------------------------------------- #
# Through files and scripts
# --------------------------------------------------------------------------- #

H = W = 64
REF = (5, 0)
STEP = "2020-08-15"


def load_script(name: str):
    """The stage module behind ``workflow/scripts/<name>`` (its main runs in this process)."""
    return importlib.import_module(f"sarstack.cli.{name.removesuffix('.py')}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """34 dates at 12 days from 1 March 2020 (1.09 years), annual amplitude 0 .. 1.5 rad
    left to right, a 2 rad step in a patch, inverted by insar_invert alone (L2)."""
    tmp = tmp_path_factory.mktemp("velmodel")
    yy, xx = np.mgrid[0:H, 0:W]
    synthetic.make_ifg_stack(
        tmp / "s", n_dates=34, shape=(H, W), start_date="2020-03-01",
        velocity_rad_per_year=5.0 * np.exp(-((yy - 32) ** 2 + (xx - 40) ** 2) / 200.0),
        annual_amplitude_rad=1.5 * xx / (W - 1),
        steps=[(STEP, np.where((yy > 20) & (xx > 10), 2.0, 0.0))], seed=2,
    )  # fmt: skip
    out = tmp / "out"
    ifgs, _, _, _ = select_ifgs(
        str(tmp / "s" / "ifgs" / "*.unw.tif"), correlation=str(tmp / "s" / "cor" / "*.cor.tif")
    )
    io.write_csv(out / "ifgs.csv", insar.ifg_table(ifgs))
    (out / "ref.txt").write_text(f"{REF[0]},{REF[1]}\n")
    p = run_script("insar_invert.py", "--ifgs", out / "ifgs.csv", "--reference", out / "ref.txt",
                   "--out-dir", out, "--index", out / "ts.csv", "--method", "L2")  # fmt: skip
    assert p.returncode == 0, p.stderr
    common = ["--index", out / "ts.csv", "--ifgs", out / "ifgs.csv", "--block", 512, 512,
              "--uncertainty", "correlated"]  # fmt: skip
    # the script in this process (its start-up is seconds); test_bad_step runs it alone
    script = load_script("insar_velocity.py")
    _run(script, list(map(str, common + ["--out", out / "lin" / "velocity.tif",
                                         "--out-std", out / "lin" / "velocity_std.tif"])))
    _run(script, list(map(str, common + [
        "--out", out / "mod" / "velocity.tif", "--out-std", out / "mod" / "velocity_std.tif",
        "--annual", "--step", STEP, "--out-dir", out / "extra", "--block", "40", "48"])))
    return tmp


def _run(script, argv: list[str]) -> None:
    """The stage in this process, its other config options at the schema's defaults."""
    cli.run(script.main, argv + config_args("insar_velocity", schema_defaults(), given=argv))


def truth(tmp: Path, name: str) -> np.ndarray:
    """A truth raster relative to the reference pixel (the series are referenced there)."""
    x = io.read_band(tmp / "s" / f"truth_{name}.tif").astype(np.float64)
    return x - x[REF]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.nanmean(np.square(x))))


def test_model_recovers_synthetic_truth(stack):
    out = stack / "out"
    extra = out / "extra"
    step = f"step_{STEP.replace('-', '')}"
    expected = {"annual_amplitude", "annual_phase", step}
    assert {p.name for p in extra.iterdir()} == {f"{n}{s}.tif" for n in expected for s in ("", "_std")}
    assert sorted(p.name for p in (out / "mod").iterdir()) == ["velocity.tif", "velocity_std.tif"]

    amp = io.read_band(extra / "annual_amplitude.tif")
    assert rms(amp - truth(stack, "annual_amplitude")) < 0.3
    stp = io.read_band(extra / f"{step}.tif")
    assert rms(stp - truth(stack, step)) < 0.3
    assert np.nanmax(np.abs(truth(stack, step))) == pytest.approx(2.0)  # a real step to find

    tv = truth(stack, "velocity")
    err_model = rms(io.read_band(out / "mod" / "velocity.tif") - tv)
    err_linear = rms(io.read_band(out / "lin" / "velocity.tif") - tv)
    assert err_model < 0.5 * err_linear, (err_model, err_linear)

    # the peak day: the truth's (-a sin(2 pi t) from 1 March 2020 peaks 0.75 y later)
    phase = io.read_band(extra / "annual_phase.tif").astype(np.float64)
    tphase = io.read_band(stack / "s" / "truth_annual_phase.tif")
    big = io.read_band(stack / "s" / "truth_annual_amplitude.tif") > 0.5
    assert np.nanmedian(tphase[big]) == pytest.approx(335.2, abs=1.0)
    d = np.mod(phase - tphase + 182.625, 365.25) - 182.625
    assert np.nanmedian(np.abs(d[big])) < 15.0

    for name in ["velocity_std"] + [f"{n}_std" for n in expected]:
        s = io.read_band((out / "mod" if name == "velocity_std" else extra) / f"{name}.tif")
        assert np.nanmedian(s) > 0 and np.mean(np.isfinite(s)) > 0.99, name
    units = {"annual_amplitude": "radians", "annual_amplitude_std": "radians",
             "annual_phase": "day of year", "annual_phase_std": "days",
             step: "radians", f"{step}_std": "radians"}  # fmt: skip
    for name, u in units.items():
        with rasterio.open(extra / f"{name}.tif") as ds:
            assert ds.units == (u,), name
            assert ds.tags()["start_date"] == "2020-03-01"
            assert "annual" in ds.tags()["model"] and "step 2020-08-15" in ds.tags()["model"]
    with rasterio.open(out / "mod" / "velocity.tif") as ds:
        assert ds.units == ("radians/year",)


def series(stack: Path) -> tuple[np.ndarray, np.ndarray, list[dt.date]]:
    ts = pd.read_csv(stack / "out" / "ts.csv", dtype=str)
    dates = [dt.date(2020, 3, 1)] + [dt.date.fromisoformat(d) for d in ts["date"]]
    y = np.stack([np.zeros((H, W))] + [io.read_band(p).astype(np.float64) for p in ts["path"]])
    return y, np.array([(d - dates[0]).days / 365.25 for d in dates]), dates


def test_default_is_the_linear_velocity_bit_for_bit(stack, tmp_path):
    y, t, dates = series(stack)
    v, s, _ = fit_velocity(y.reshape(len(t), -1), t)
    lin = stack / "out" / "lin"
    for name, exp in (("velocity", v), ("velocity_std", s)):
        got = io.read_band(lin / f"{name}.tif")
        np.testing.assert_array_equal(got, exp.reshape(H, W).astype(np.float32))
    # A date missing in a patch (as where a date is cut off from the network):
    # the default (also given explicitly) fits the patch on its other dates,
    # like the general model.
    index = pd.read_csv(stack / "out" / "ts.csv", dtype=str)
    band = y[12].astype(np.float32)
    band[30:40, 20:30] = np.nan
    io.write_raster(tmp_path / "ts12.tif", band, io.read_grid(index["path"].iloc[0]), units="radians")
    index.loc[11, "path"] = str(tmp_path / "ts12.tif")
    y[12, 30:40, 20:30] = np.nan
    v, s, _ = fit_velocity(y.reshape(len(t), -1), t)
    keep = np.delete(np.arange(len(t)), 12)
    vp, sp, _ = fit_velocity(y[keep][:, 30:40, 20:30], t[keep])
    v, s = v.reshape(H, W), s.reshape(H, W)
    v[30:40, 20:30], s[30:40, 20:30] = vp, sp
    for model in (None, svel.DeformationModel()):
        velocity_files(index, dates[0], tmp_path / "v.tif", tmp_path / "s.tif",
                       model=model, block_shape=(40, 48))  # fmt: skip
        np.testing.assert_allclose(io.read_band(tmp_path / "v.tif"), v.astype(np.float32),
                                   rtol=1e-6, atol=1e-6)  # fmt: skip
        np.testing.assert_allclose(io.read_band(tmp_path / "s.tif"), s.astype(np.float32),
                                   rtol=1e-5, atol=1e-7)  # fmt: skip
    assert {p.name for p in tmp_path.iterdir()} == {"ts12.tif", "v.tif", "s.tif"}
    assert np.all(np.isfinite(io.read_band(tmp_path / "v.tif")[30:40, 20:30]))
    velocity_files(index, dates[0], tmp_path / "v.tif", tmp_path / "s.tif",
                   model=svel.DeformationModel(annual=True))  # fmt: skip
    assert np.all(np.isfinite(io.read_band(tmp_path / "v.tif")[30:40, 20:30]))


def test_threaded_linear_fit_is_the_one_thread_fit(stack, tmp_path):
    """Blocks fitted side by side (``threads``), weighted and with the network
    noise (reads on the read-ahead thread): the one-thread rasters, bit for bit."""
    ifgs, _, pairs = insar.read_ifg_table(stack / "out" / "ifgs.csv")
    index = pd.read_csv(stack / "out" / "ts.csv", dtype=str)
    first = series(stack)[2][0]
    noise = tmp_path / "noise.tif"
    grid = io.read_grid(index["path"].iloc[0])
    io.write_raster(noise, np.random.default_rng(2).uniform(0.1, 0.5, (H, W)).astype(np.float32),
                    grid)  # fmt: skip
    for weight in (None, ifgs):
        got = {}
        for threads in (1, 3):
            d = tmp_path / f"w{weight is not None}t{threads}"
            velocity_files(index, first, d / "v.tif", d / "s.tif", block_shape=(8, 16),
                           weight_ifgs=weight, uncertainty="correlated",
                           ifg_noise=(pairs, noise), threads=threads)  # fmt: skip
            got[threads] = [io.read_band(d / n) for n in ("v.tif", "s.tif")]
        for a, b in zip(got[1], got[3], strict=True):
            assert np.isfinite(a).mean() > 0.9
            np.testing.assert_array_equal(a, b)


def test_weighted_model_uses_mean_correlation_per_date(stack, tmp_path):
    y, _, dates = series(stack)
    ifgs, _, _ = insar.read_ifg_table(stack / "out" / "ifgs.csv")
    # the synthetic correlation hardly changes from date to date: give the ifgs
    # of two dates a low correlation in the left half
    low = {dates[15], dates[16]}
    for k, i in enumerate(ifgs):
        if low & {i.reference, i.secondary}:
            cor = io.read_band(i.correlation)
            cor[:, : W // 2] = 0.05
            io.write_raster(tmp_path / f"cor{k}.tif", cor, io.read_grid(i.correlation), units="1")
            ifgs[k] = dataclasses.replace(i, correlation=tmp_path / f"cor{k}.tif")
    index = pd.read_csv(stack / "out" / "ts.csv", dtype=str)
    model = svel.DeformationModel.from_config(annual=True, steps=[STEP])
    velocity_files(index, dates[0], tmp_path / "v.tif", tmp_path / "s.tif",
                   weight_ifgs=ifgs, model=model, block_shape=(40, 48))  # fmt: skip
    acc, cnt = np.zeros(y.shape), np.zeros(len(dates))
    pos = {d: k for k, d in enumerate(dates)}
    for i in ifgs:
        cor = np.nan_to_num(io.read_band(i.correlation).astype(np.float64), nan=0.0)
        for d in (i.reference, i.secondary):
            acc[pos[d]] += cor
            cnt[pos[d]] += 1
    exp = fit_model(y, dates, model, weights=acc / cnt[:, None, None])
    unweighted = fit_model(y, dates, model)
    for name in ("velocity", "annual_amplitude", "annual_phase_std", "step_20200815"):
        got = io.read_band(tmp_path / ("v.tif" if name == "velocity" else f"{name}.tif"))
        np.testing.assert_array_equal(got, exp[name].astype(np.float32), err_msg=name)
        assert np.nanmedian(np.abs(got - unweighted[name])[:, : W // 2]) > 1e-3, name


def test_bad_step_is_a_one_line_error(stack, capsys):
    out = stack / "out"
    common = ["--index", out / "ts.csv", "--ifgs", out / "ifgs.csv",
              "--out", out / "bad" / "velocity.tif", "--out-std", out / "bad" / "velocity_std.tif",
              "--block", 512, 512, "--uncertainty", "correlated"]  # fmt: skip
    p = run_script("insar_velocity.py", *common, "--annual", "--step", "2019-01-01")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0] == (
        "error: insar.velocity_model.steps: 2019-01-01 is not inside the time series"
        " 2020-03-01..2021-04-01 (a step needs a date before it and one on or after it)"
    )
    script = load_script("insar_velocity.py")
    for steps, what in ((["2020-08-15", "2020-08-15"], "given twice"), (["2020-8-15x"], "not a date")):
        with pytest.raises(SystemExit) as e:
            _run(script, list(map(str, common)) + [a for s in steps for a in ("--step", s)])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: insar.velocity_model.steps: ") and what in err[0]
    assert not (out / "bad").exists()


def _calibration(amp: float, noise: str, uncertainty: str, seed: int = 0) -> tuple[float, float]:
    """(fraction of pixels within 3 std of the truth, median std) of the linear velocity of
    a 64 x 64 x 30-date stack (12 days apart, nearest-3, L2), 0.3 rad of noise per date
    or per ifg, with an unmodelled annual term of ``amp`` rad (left edge; half on the right)."""
    from sarstack import dates as sd
    from sarstack import network as snet
    from sarstack import synthetic, timeseries

    sim = synthetic.simulate_ifg_stack(n_dates=30, shape=(64, 64), seasonal_amp_rad=amp,
                                       noise_rad=0.3 if noise == "ifg" else 0.0, seed=seed,
                                       nodata_value=np.nan)  # fmt: skip
    n, pairs = len(sim.dates), sim.pairs
    a = snet.incidence_matrix(pairs, n)
    if noise == "date":
        rng = np.random.default_rng(seed + 1)
        ph = sim.phase + np.concatenate([np.zeros((1, 64, 64)), rng.normal(0, 0.3, (n - 1, 64, 64))])
        ifgs = np.stack([ph[j] - ph[i] for i, j in pairs]).reshape(len(pairs), -1)
    else:
        ifgs = sim.ifgs.reshape(len(pairs), -1).astype(np.float64)
    ok = np.isfinite(ifgs).all(axis=0)
    x, res = (np.asarray(o) for o in timeseries.invert_l2(a, ifgs[:, ok]))
    disp = -np.concatenate([np.zeros((1, x.shape[1])), x])
    net = svel.NetworkNoise(np.linalg.inv(a.T @ a), insar.ifg_residual_std(res, n) ** 2)
    v, s, _ = fit_velocity(disp, sd.years_since(sim.dates), uncertainty=uncertainty, network=net)
    z = np.abs(v - sim.velocity.reshape(-1)[ok]) / s
    return float(np.mean(z <= 3)), float(np.median(s))


def test_velocity_std_stays_honest_when_the_model_is_incomplete():
    """Issue 25's calibration targets on synthetic truth: >= 97 % of pixels within
    3 std when the model matches (std at most 1.5x the textbook one there), >= 90 %
    with an unmodelled annual term of 2 rad; the textbook ('white') std fails the
    latter, and, with noise per interferogram, even the former."""
    w_match, s_white = _calibration(0.0, "date", "white")
    c_match, s_corr = _calibration(0.0, "date", "correlated")
    assert w_match >= 0.97 and c_match >= 0.97
    assert s_corr <= 1.5 * s_white
    assert _calibration(2.0, "date", "correlated")[0] >= 0.90
    assert _calibration(2.0, "date", "white")[0] < 0.5
    assert _calibration(0.0, "ifg", "correlated")[0] >= 0.97
    assert _calibration(0.0, "ifg", "white")[0] < 0.7


def test_network_variance_matches_monte_carlo():
    """The interferograms' noise through the network: the slope's variance from
    NetworkNoise equals the empirical variance of L2-inverted pure-noise stacks."""
    from sarstack import dates as sd
    from sarstack import network as snet
    from sarstack import timeseries

    rng = np.random.default_rng(4)
    dates = [dt.date(2020, 1, 1) + dt.timedelta(days=12 * i) for i in range(16)]
    pairs = snet.make_pairs(len(dates), "nearest:3")
    a = snet.incidence_matrix(pairs, len(dates))
    noise = rng.normal(0, 0.3, (len(pairs), 40000))
    x = np.asarray(timeseries.invert_l2(a, noise)[0])
    disp = np.concatenate([np.zeros((1, x.shape[1])), x])
    t = sd.years_since(dates)
    v = fit_velocity(disp, t, uncertainty="white")[0]
    tc = t - t.mean()
    net = svel.NetworkNoise(np.linalg.inv(a.T @ a), np.full(1, 0.09))
    expect = svel.network_variance(tc / (tc @ tc), net)[0]
    assert np.var(v) == pytest.approx(expect, rel=0.03)
    # The model's covariance carries the same term for its velocity.
    cov = fit_design(disp[:, :5], svel.design_matrix(dates, svel.DeformationModel()),
                     network=net._replace(noise_var=np.full(5, 0.09)))[1]  # fmt: skip
    white = fit_design(disp[:, :5], svel.design_matrix(dates, svel.DeformationModel()),
                       uncertainty="white")[1]  # fmt: skip
    assert np.all(cov[1, 1] >= white[1, 1] + 0.999 * expect)


def test_ar1_variance_factor():
    """White residuals keep the textbook error (factor near 1, never below); AR(1)
    residuals with rho = 0.6 get about (1 + rho) / (1 - rho) = 4."""
    rng = np.random.default_rng(9)
    n, p = 60, 4000
    white = rng.normal(size=(n, p))
    f = svel.ar1_variance_factor(white, np.ones((n, p), bool))
    assert f.min() >= 1.0 and np.median(f) < 1.15
    e = rng.normal(size=(n, p))
    ar = np.empty((n, p))
    ar[0] = e[0]
    for k in range(1, n):
        ar[k] = 0.6 * ar[k - 1] + np.sqrt(1 - 0.36) * e[k]
    ar -= ar.mean(axis=0)
    assert np.median(svel.ar1_variance_factor(ar, np.ones((n, p), bool))) == pytest.approx(4.0, rel=0.15)
    with pytest.raises(SarstackError, match="insar.velocity_uncertainty"):
        fit_velocity(white, np.arange(n) / 30.0, uncertainty="hac")


def _velocity_before(disp, t, network=None):
    """svel.velocity as it was before 2026-12-05 (the previous kernel): the
    line fit with correlated uncertainty, step by step."""
    from sarstack.velocity.linear import ar1_variance_factor, network_variance

    y = disp.reshape(t.size, -1).astype(np.float64)
    bad = np.any(np.isnan(y), axis=0)
    y[:, bad] = 0.0
    tc = t - t.mean()
    sxx = float(tc @ tc)
    ym = y.mean(axis=0)
    slope = (tc @ (y - ym)) / sxx
    intercept = ym - slope * t.mean()
    r = y - (intercept + slope * t[:, None])
    std = np.sqrt(np.sum(r**2, axis=0) / (t.size - 2) / sxx)
    var = std * std * ar1_variance_factor(r, np.ones(r.shape, bool))
    if network is not None:
        var = var + network_variance(tc / sxx, network)
    dtype = np.float64 if disp.dtype == np.float64 else np.float32
    return [np.where(bad, np.nan, o).astype(dtype).reshape(disp.shape[1:])
            for o in (slope, np.sqrt(var), intercept)]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_line_fit_is_the_previous_kernel_bit_for_bit(dtype):
    rng = np.random.default_rng(8)
    t = np.sort(rng.uniform(0, 3, 40))
    disp = (rng.normal(0, 1, (40, 30, 50)) + np.cumsum(rng.normal(0, 0.3, (40, 1, 1)), 0))
    disp = disp.astype(dtype)
    disp[0] = 0.0
    disp[5, 3, 4] = np.nan
    disp[:, 7, 8] = np.nan
    before = disp.copy()
    noise = svel.NetworkNoise(np.eye(40)[1:, 1:] * 0.5, rng.uniform(0.1, 2, 30 * 50))
    for net in (None, noise):
        got = svel.velocity(disp, t, uncertainty="correlated", network=net)
        want = _velocity_before(disp, t, net)
        for g, w in zip((got.velocity, got.std, got.intercept), want, strict=True):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(disp, before)  # the caller's array untouched


def test_linear_fit_residual_sums_are_the_residual_arrays_bit_for_bit():
    """The plain fit's one pass over the dates gives the residual array's
    sums bit for bit: its squares' sum (the white standard error) and the
    lag-1 sum of the AR(1) factor (the fits against the previous kernel:
    test_line_fit_is_the_previous_kernel_bit_for_bit)."""
    from sarstack.velocity import linear

    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0.0, 4.0, 25))
    y, slope, intercept = rng.normal(size=(25, 300)), rng.normal(size=300), rng.normal(size=300)
    r = y - (t[:, None] * slope + intercept)
    ss, lag1 = linear._residual_sums(y, t, slope, intercept)
    np.testing.assert_array_equal(ss, np.sum(np.square(r), axis=0))
    np.testing.assert_array_equal(lag1, np.einsum("tp,tp->p", r[1:], r[:-1]))
    disp = y - y[:1]
    fit = svel.velocity(disp, t, uncertainty="white")
    tc = t - t.mean()
    sxx = float(tc @ tc)
    ym = disp.mean(axis=0)
    v = (tc @ (disp - ym)) / sxx
    res = disp - (t[:, None] * v + (ym - v * t.mean()))
    np.testing.assert_array_equal(fit.std, np.sqrt(np.sum(np.square(res), axis=0) / 23 / sxx))

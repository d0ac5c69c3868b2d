"""Synthetic unwrapped-interferogram stacks, and the time-series kernels on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import invert_options, with_schema_defaults

from sarstack import dates
from sarstack import network as snet
from sarstack import timeseries as ts
from sarstack.errors import SarstackError
from sarstack.io import raster_tags, read_band, read_grid
from sarstack.synthetic import make_ifg_stack, simulate_ifg_stack

parse_pair_dates = with_schema_defaults(dates.parse_pair_dates)
fit_velocity = with_schema_defaults(ts.velocity)

pytestmark = pytest.mark.usefixtures("x64")


def _read_stack(df: pd.DataFrame, col: str = "path") -> np.ndarray:
    return np.stack([read_band(p).astype(np.float64) for p in df[col]])


@pytest.mark.parametrize("nodata", [0.0, np.nan])
def test_files_names_and_nodata(tmp_path, nodata):
    df = make_ifg_stack(tmp_path, n_dates=5, shape=(32, 24), nodata_value=nodata, seed=1)
    pairs = snet.make_pairs(5, "nearest:3")
    assert list(zip(df.reference_index, df.secondary_index, strict=True)) == pairs
    for row in df.itertuples():
        d1, d2 = parse_pair_dates(row.path)
        assert (d1.isoformat(), d2.isoformat()) == (row.reference_date, row.secondary_date)
        assert parse_pair_dates(row.cor_path) == (d1, d2)
        assert row.path.endswith(f"ifgs/{d1:%Y%m%d}_{d2:%Y%m%d}.unw.tif")
    grid = read_grid(df.path[0])
    assert grid.shape == (32, 24) and grid.crs.to_epsg() == 32611
    assert raster_tags(df.path[0])["units"] == "radians"
    ifg, cor = _read_stack(df), _read_stack(df, "cor_path")
    # One 2 x 1 nodata block in the corner of interferogram 1, nowhere else.
    assert df.n_nodata.tolist() == [0, 2] + [0] * 7
    assert np.isnan(ifg).sum() == 2 and np.all(np.isnan(ifg[1, :2, :1]))
    assert np.array_equal(np.isnan(cor), np.isnan(ifg))
    assert np.nanmin(cor) >= 0.05 and np.nanmax(cor) <= 1.0
    assert (tmp_path / "truth_velocity.tif").exists() and (tmp_path / "truth.csv").exists()


def test_values_match_truth(tmp_path):
    n = 6
    df = make_ifg_stack(tmp_path / "a", n_dates=n, noise_rad=0.2, seed=2)
    truth = np.stack([read_band(tmp_path / "a" / "truth_phase.tif", band=b + 1) for b in range(n)])
    truth = truth.astype(np.float64)
    ifg = _read_stack(df)
    model = np.stack([truth[j] - truth[i] for i, j in snet.make_pairs(n, "nearest:3")])
    diff = ifg - model
    assert np.nanstd(diff) == pytest.approx(0.2, rel=0.05)
    assert abs(np.nanmean(diff)) < 0.01
    assert np.all(truth[0] == 0.0)
    # truth.csv: centre pixel, t in years, displacement = -phase.
    csv = pd.read_csv(tmp_path / "a" / "truth.csv")
    assert list(csv.date) == sorted(set(df.reference_date) | set(df.secondary_date))
    np.testing.assert_allclose(csv.phase_center_rad, truth[:, 32, 32], atol=1e-5)
    np.testing.assert_allclose(csv.displacement_center, -csv.phase_center_rad)
    np.testing.assert_allclose(csv.t_years[1], 12 / 365.25)
    # Default velocity: +6 rad/yr of phase at the centre, i.e. -6 rad/yr of displacement.
    vel = read_band(tmp_path / "a" / "truth_velocity.tif")
    assert vel[32, 32] == pytest.approx(-6.0, abs=0.05)
    assert raster_tags(tmp_path / "a" / "truth_velocity.tif")["units"] == "radians/year"

    # Noise-free: exactly the truth differences (to float32); same seed, same files.
    df0 = make_ifg_stack(tmp_path / "b", n_dates=n, noise_rad=0.0, seed=2)
    ifg0 = _read_stack(df0)
    assert np.isnan(ifg0).sum() == 16  # the 4 x 4 corner block of interferogram 1
    np.testing.assert_allclose(ifg0[np.isfinite(ifg0)], model[np.isfinite(ifg0)], atol=1e-5)
    df2 = make_ifg_stack(tmp_path / "c", n_dates=n, noise_rad=0.2, seed=2)
    np.testing.assert_array_equal(_read_stack(df2), ifg)


def test_wavelength_units_and_jump_patch(tmp_path):
    wl = 0.0555
    v = np.full((16, 16), 4.0)
    kw = dict(n_dates=4, shape=(16, 16), velocity_rad_per_year=v, seed=3)
    df = make_ifg_stack(tmp_path / "a", wavelength=wl, **kw)
    vel = read_band(tmp_path / "a" / "truth_velocity.tif")
    np.testing.assert_allclose(vel, -4.0 * wl / (4 * np.pi), rtol=1e-6)
    assert raster_tags(tmp_path / "a" / "truth_velocity.tif")["units"] == "meters/year"
    jumped = make_ifg_stack(
        tmp_path / "b", jump_patch=(2, slice(4, 8), slice(5, 9)), wavelength=wl, **kw
    )
    d = _read_stack(jumped) - _read_stack(df)
    np.testing.assert_allclose(d[2, 4:8, 5:9], 2 * np.pi, atol=1e-5)
    d[2, 4:8, 5:9] = 0.0
    assert np.nanmax(np.abs(d)) == 0.0
    with pytest.raises(SarstackError, match="jump_patch"):
        make_ifg_stack(tmp_path / "c", jump_patch=(99, slice(0, 1), slice(0, 1)), **kw)
    with pytest.raises(SarstackError, match="velocity_rad_per_year"):
        make_ifg_stack(tmp_path / "d", n_dates=4, shape=(16, 16), velocity_rad_per_year=v[:3])


def test_end_to_end_velocity_and_unwrapping_error(tmp_path):
    """Files -> inversion -> reference -> displacement -> velocity, against the truth."""
    n, shape = 13, (48, 48)
    jump = (16, slice(30, 40), slice(8, 20))  # ifg (5, 7) of nearest:3
    df = make_ifg_stack(
        tmp_path, n_dates=n, shape=shape, noise_rad=0.05, seasonal_amp_rad=0.0,
        jump_patch=jump, seed=4, interval_days=24,
    )  # fmt: skip
    pairs = list(zip(df.reference_index, df.secondary_index, strict=True))
    assert pairs[16] == (5, 7)
    ifg, cor = _read_stack(df), _read_stack(df, "cor_path")
    valid = np.all(np.isfinite(ifg), axis=0)
    ref = ts.select_reference_point(valid, np.nanmean(cor, axis=0), threshold=0.5)
    assert valid[ref]
    a = snet.incidence_matrix(pairs, n)
    all_dates = sorted(set(df.reference_date) | set(df.secondary_date))
    t = dates.years_since([pd.Timestamp(d).date() for d in all_dates])
    truth_vel = read_band(tmp_path / "truth_velocity.tif").astype(np.float64)
    truth_vel = truth_vel - truth_vel[ref]
    errs = {}
    for method in ("L1", "L2"):
        x, _, _ = ts.invert(a, ifg, method, **invert_options(method))
        series = ts.reference(np.concatenate([np.zeros((1, *shape)), x]), ref)
        disp, units = ts.phase_to_displacement(series, None)
        vel, _, _ = fit_velocity(disp, t)
        assert units == "radians"
        assert np.isnan(vel[0, 0]) and np.isfinite(vel[20, 20])
        errs[method] = np.abs(vel - truth_vel)
    outside = np.ones(shape, dtype=bool)
    outside[jump[1], jump[2]] = False
    outside &= valid
    # Away from the unwrapping error both recover the velocity (peak -6 rad/yr);
    # measured: rms 0.07 (L2) and 0.09 (L1), max 0.21 and 0.29 rad/yr.
    for method in ("L1", "L2"):
        assert np.sqrt(np.mean(errs[method][outside] ** 2)) < 0.15
        assert np.max(errs[method][outside]) < 0.6
    # In the patch L2 is biased by the 2 pi error (1.45-1.75 rad/yr), L1 is not (<= 0.23).
    assert np.min(errs["L2"][jump[1], jump[2]]) > 0.8
    assert np.max(errs["L1"][jump[1], jump[2]]) < 0.5


def _no_io(*args, **kwargs):
    raise AssertionError("the simulation must not write files")


def test_simulation_matches_files(tmp_path, monkeypatch):
    """simulate_ifg_stack alone (no I/O) gives exactly what make_ifg_stack writes."""
    kw = dict(n_dates=5, shape=(24, 20), seed=2, wavelength=0.0555, annual_amplitude_rad=0.5,
              steps=[("2020-01-25", 1.0)], jump_patch=(2, slice(0, 4), slice(5, 9)))  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr("sarstack.synthetic.insar.write_raster", _no_io)
        m.setattr("sarstack.synthetic.insar.write_csv", _no_io)
        sim = simulate_ifg_stack(**kw)
    df = make_ifg_stack(tmp_path, **kw)
    n_ifg = len(df)
    assert sim.ifgs.shape == sim.cor.shape == (n_ifg, 24, 20) and sim.ifgs.dtype == np.float32
    assert sim.pairs == list(zip(df.reference_index, df.secondary_index, strict=True))
    assert sim.n_nodata == df.n_nodata.tolist() and sum(sim.n_nodata) == 1
    assert [d.isoformat() for d in sim.dates] == list(sim.truth.date)
    assert sim.units == "meters"

    def read(path, band=1):
        return read_band(path, band=band, nan_nodata=False)

    for k in range(n_ifg):
        np.testing.assert_array_equal(read(df.path[k]), sim.ifgs[k], strict=True)
        np.testing.assert_array_equal(read(df.cor_path[k]), sim.cor[k], strict=True)
        assert read_grid(df.path[k]) == sim.grid
    phase = np.stack([read(tmp_path / "truth_phase.tif", b + 1) for b in range(5)])
    np.testing.assert_array_equal(phase, sim.phase.astype(np.float32))
    for name, want in [
        ("truth_velocity", sim.velocity),
        ("truth_annual_amplitude", sim.annual_amplitude),
        ("truth_annual_phase", sim.annual_peak_doy),
        ("truth_step_20200125", sim.steps[0][1]),
    ]:
        np.testing.assert_array_equal(read(tmp_path / f"{name}.tif"), want.astype(np.float32))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "truth.csv"), sim.truth)

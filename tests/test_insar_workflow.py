"""InSAR branch through its scripts and Snakemake: demo truth,
reference-point rules, sign and units, and bad input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from affine import Affine
from conftest import SNAKEMAKE, pipeline, run_script
from rasterio.crs import CRS

from sarstack import io, synthetic

pytestmark = pytest.mark.workflow

ROOT = Path(__file__).resolve().parents[1]




def snakemake(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([*SNAKEMAKE, "--cores", "2", *args], cwd=ROOT,
                       capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def one_line_error(p: subprocess.CompletedProcess, expect: str) -> None:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], p.stderr


def test_uplift_bump_is_positive_metres(tmp_path):
    """Uplift (towards the radar) = phase decreasing with time -> positive
    displacement and velocity; metres = -phase * wavelength / (4 pi)."""
    wl = 0.0555
    yy, xx = np.mgrid[0:32, 0:32]
    v_phase = -8.0 * np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 40.0)  # uplift bump
    synthetic.make_ifg_stack(tmp_path / "s", n_dates=6, shape=(32, 32), velocity_rad_per_year=v_phase,
                             seasonal_amp_rad=0.0, noise_rad=0.0, seed=1)
    out = pipeline(tmp_path, str(tmp_path / "s" / "ifgs" / "*.unw.tif"), "--wavelength", str(wl),
                   "--method", "L2", point=(31, 31))
    vel = io.read_band(out / "velocity.tif")
    with rasterio.open(out / "velocity.tif") as ds:
        assert ds.units == ("meters/year",)
        assert ds.tags()["start_date"] == "2020-01-01" and ds.tags()["end_date"] == "2020-03-01"
    expected = (8.0 - 8.0 * np.exp(-((15) ** 2 + 15**2) / 40.0)) * wl / (4 * np.pi)
    assert vel[16, 16] > 0
    assert vel[16, 16] == pytest.approx(expected, rel=1e-4)
    ts = pd.read_csv(out / "ts.csv")
    last = io.read_band(ts["path"].iloc[-1])
    assert last[16, 16] > 0 and ts["units"].iloc[0] == "meters"


def test_demo_and_reference_rules_via_snakemake(tmp_path):
    out = tmp_path / "res"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"output_dir": str(out), "rtc": {"enabled": False},
                                   "demo": {"enabled": True},
                                   "insar": {"extra_reference_date": "2020-02-10"}}))
    snakemake("insar", "--configfile", str(cfg))
    acc = pd.read_csv(out / "demo" / "insar_accuracy.csv").iloc[0]
    # Noise is 0.1 rad per ifg: the inversion must come back to that level.
    assert acc["displacement_rmse"] < 0.2
    assert acc["velocity_rmse"] < 0.5  # rad/yr, for velocities up to ~6 rad/yr over 0.46 yr
    ref = (out / "insar" / "reference_point.txt").read_text().strip()
    r, c = map(int, ref.split(","))
    valid = np.ones((128, 128), bool)
    for f in (out / "demo" / "insar" / "ifgs").glob("*.tif"):
        valid &= np.isfinite(io.read_band(f))
    assert valid[r, c]
    for png in ("velocity", "timeseries", "network"):
        assert (out / "insar" / "plots" / f"{png}.png").stat().st_size > 1000
    # A pixel missing in one ifg (the demo's corner block) is solved without that ifg.
    vel = io.read_band(out / "insar" / "velocity.tif")
    n_used = io.read_band(out / "insar" / "n_ifgs_used.tif")
    n_ifg = len(pd.read_csv(out / "insar" / "ifgs.csv"))
    assert n_used[0, 0] == n_ifg - 1 and n_used[64, 64] == n_ifg
    assert np.isfinite(vel[0, 0]) and np.isfinite(vel[64, 64])
    for name in ("temporal_coherence", "n_ifgs_used", "velocity_std", "correlation_mean"):
        with rasterio.open(out / "insar" / f"{name}.tif") as ds:
            assert ds.units[0] and ds.overviews(1) is not None
    # The per-date rasters are tiled COGs without overviews (read block-wise),
    # uncompressed unless insar.compress_series.
    first = pd.read_csv(out / "insar" / "timeseries.csv")["path"].iloc[0]
    with rasterio.open(first) as ds:
        assert ds.overviews(1) == [] and ds.compression is None and ds.block_shapes[0][0] > 1
    # Extra reference date: nearest acquisition to 2020-02-10 is 2020-02-06.
    ts = pd.read_csv(out / "insar" / "timeseries.csv")
    re = pd.read_csv(out / "insar" / "timeseries_rereferenced.csv")
    assert re["path"].iloc[0].endswith("20200206_20200218.tif")
    base = io.read_band(ts.loc[ts.date == "2020-02-06", "path"].iloc[0])
    later = io.read_band(ts.loc[ts.date == "2020-02-18", "path"].iloc[0])
    np.testing.assert_allclose(io.read_band(re["path"].iloc[0]), later - base, atol=1e-6)

    # A config change of the reference point re-selects it (no stale point).
    cfg.write_text(yaml.safe_dump({"output_dir": str(out), "rtc": {"enabled": False},
                                   "demo": {"enabled": True},
                                   "insar": {"reference_point": [40, 50],
                                             "extra_reference_date": "2020-02-10"}}))
    plan = snakemake("-n", "insar", "--configfile", str(cfg))
    # a small stack's chain is one job (insar_small), which the change reruns
    assert "insar_small" in plan.stdout and "insar_select" not in plan.stdout
    snakemake("insar", "--configfile", str(cfg))
    assert (out / "insar" / "reference_point.txt").read_text().strip() == "40,50"
    vel = io.read_band(out / "insar" / "velocity.tif")
    assert vel[40, 50] == 0.0


def _ifg(path: Path, value: float = 1.0, x0: float = 0.0, shape=(16, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_raster(path, np.full(shape, value, np.float32),
                    io.Grid(CRS.from_epsg(32611), Affine(30, 0, x0, 0, -30, 0), shape[1], shape[0]))


@pytest.mark.parametrize(
    ("files", "expect"),
    [
        ({"20200101_20200113.unw.tif": {}}, "only one interferogram"),
        ({"20200101_20200113.unw.tif": {}, "x_20200125.unw.tif": {}}, "x_20200125.unw.tif: needs two dates"),
        ({"20200101_20200113.unw.tif": {}, "20200113_20200125.unw.tif": {"x0": 30.0}},
         "20200113_20200125.unw.tif: not on the grid"),
        ({"20200101_20200113.unw.tif": {}, "20200125_20200206.unw.tif": {}}, "disconnected"),
    ],
)
def test_select_bad_input(tmp_path, files, expect):
    for name, kw in files.items():
        _ifg(tmp_path / "d" / name, **kw)
    p = run_script("insar_select.py", "--unwrapped", tmp_path / "d" / "*.tif",
                   "--out", tmp_path / "o" / "ifgs.csv")
    one_line_error(p, expect)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_select_no_files(tmp_path):
    p = run_script("insar_select.py", "--unwrapped", tmp_path / "none*.tif", "--out", tmp_path / "o.csv")
    one_line_error(p, "insar.unwrapped: no files match")


def test_reference_point_outside_raster(tmp_path):
    _ifg(tmp_path / "d" / "20200101_20200113.unw.tif")
    _ifg(tmp_path / "d" / "20200113_20200125.unw.tif")
    assert run_script("insar_select.py", "--unwrapped", tmp_path / "d" / "*.tif",
                      "--out", tmp_path / "ifgs.csv").returncode == 0
    p = run_script("insar_reference.py", "--ifgs", tmp_path / "ifgs.csv", "--point", 20, 3,
                   "--out", tmp_path / "o" / "ref.txt")
    one_line_error(p, "insar.reference_point")
    assert "outside" in p.stderr
    assert not (tmp_path / "o" / "ref.txt").exists()


def test_reference_point_on_nodata_rejected(tmp_path):
    _ifg(tmp_path / "d" / "20200101_20200113.unw.tif")
    data = np.ones((16, 16), np.float32)
    data[3, 4] = 0.0  # nodata 0
    io.write_raster(tmp_path / "d" / "20200113_20200125.unw.tif", data,
                    io.Grid(CRS.from_epsg(32611), Affine(30, 0, 0, 0, -30, 0), 16, 16), nodata=0.0)
    assert run_script("insar_select.py", "--unwrapped", tmp_path / "d" / "*.tif",
                      "--out", tmp_path / "ifgs.csv").returncode == 0
    p = run_script("insar_reference.py", "--ifgs", tmp_path / "ifgs.csv", "--point", 3, 4,
                   "--out", tmp_path / "ref.txt")
    one_line_error(p, "insar.reference_point")
    # Automatic selection never lands there.
    p = run_script("insar_reference.py", "--ifgs", tmp_path / "ifgs.csv", "--out", tmp_path / "ref.txt")
    assert p.returncode == 0
    assert (tmp_path / "ref.txt").read_text().strip() != "3,4"


def _jump_stack(tmp_path: Path, conncomp: bool):
    """Noise-free stack with a 2π unwrapping error in one ifg, optionally
    marked by conncomp label 0 there."""
    jump = (4, slice(10, 20), slice(10, 20))
    ifgs = synthetic.make_ifg_stack(tmp_path / "s", n_dates=8, shape=(32, 32), noise_rad=0.0,
                                    seasonal_amp_rad=0.0, seed=2, jump_patch=jump)
    if conncomp:
        for k, row in ifgs.iterrows():
            lab = np.ones((32, 32), np.float32)
            if k == jump[0]:
                lab[jump[1], jump[2]] = 0
            name = Path(row["path"]).name.replace(".unw.tif", ".conncomp.tif")
            io.write_raster(tmp_path / "s" / "cc" / name, lab, io.read_grid(row["path"]), nodata=None)
    return jump


@pytest.mark.parametrize("method", ["L2", "L1"])
def test_conncomp_censoring_stops_unwrapping_error_leak(tmp_path, method):
    jump = _jump_stack(tmp_path, conncomp=True)
    unw = str(tmp_path / "s" / "ifgs" / "*.unw.tif")
    out = tmp_path / "out"
    assert run_script("insar_select.py", "--unwrapped", unw, "--conncomp",
                      tmp_path / "s" / "cc" / "*.tif", "--out", out / "ifgs.csv").returncode == 0
    (out / "ref.txt").write_text("31,31\n")
    p = run_script("insar_invert.py", "--ifgs", out / "ifgs.csv", "--reference", out / "ref.txt",
                   "--out-dir", out, "--index", out / "ts.csv", "--method", method,
                   "--write-residuals")
    assert p.returncode == 0, p.stderr
    # Plain (uncensored) inversion of the same ifgs, for comparison.
    plain = tmp_path / "plain"
    assert run_script("insar_select.py", "--unwrapped", unw, "--out", plain / "ifgs.csv").returncode == 0
    (plain / "ref.txt").write_text("31,31\n")
    assert run_script("insar_invert.py", "--ifgs", plain / "ifgs.csv", "--reference", plain / "ref.txt",
                      "--out-dir", plain, "--index", plain / "ts.csv", "--method", "L2").returncode == 0
    with rasterio.open(tmp_path / "s" / "truth_phase.tif") as ds:
        truth = -(ds.read() - ds.read()[:, 31:, 31:])  # displacement referenced at (31, 31)
    r, c = jump[1], jump[2]
    cens = np.stack([io.read_band(f) for f in pd.read_csv(out / "ts.csv")["path"]])
    leak = np.stack([io.read_band(f) for f in pd.read_csv(plain / "ts.csv")["path"]])
    assert np.abs(cens[:, r, c] - truth[1:, r, c]).max() < 1e-3  # no leak
    assert np.abs(leak[:, r, c] - truth[1:, r, c]).max() > 0.5  # plain L2 leaks
    n_used = io.read_band(out / "n_ifgs_used.tif")
    n_ifg = len(pd.read_csv(out / "ifgs.csv"))
    assert n_used[15, 15] == n_ifg - 1 and n_used[0, 30] == n_ifg
    tc = io.read_band(out / "temporal_coherence.tif")
    tc_plain = io.read_band(plain / "temporal_coherence.tif")
    assert tc[15, 15] > 0.999 and tc_plain[15, 15] < 0.9
    res = io.read_band(next((out / "residuals").glob("*.tif")))
    assert np.isfinite(res[5, 5])


def test_correlation_weighted_pipeline(tmp_path):
    synthetic.make_ifg_stack(tmp_path / "s", n_dates=10, shape=(24, 24), seed=5, noise_rad=0.05)
    out = pipeline(tmp_path, str(tmp_path / "s" / "ifgs" / "*.unw.tif"), "--method", "L2",
                   "--weighting", "correlation", "--correlation-looks", "5",
                   point=(20, 20), cor_glob=str(tmp_path / "s" / "cor" / "*.cor.tif"))
    p = run_script("insar_velocity.py", "--index", out / "ts.csv", "--ifgs", out / "ifgs.csv",
                   "--out", out / "vw.tif", "--out-std", out / "vw_std.tif",
                   "--velocity-weighting", "correlation")
    assert p.returncode == 0, p.stderr
    with rasterio.open(tmp_path / "s" / "truth_phase.tif") as ds:
        ph = ds.read()
    truth = -(ph - ph[:, 20:21, 20:21])
    disp = np.stack([io.read_band(f) for f in pd.read_csv(out / "ts.csv")["path"]])
    ok = np.isfinite(disp[0])
    assert ok.sum() > 500
    assert np.sqrt(np.mean((disp[:, ok] - truth[1:, ok]) ** 2)) < 0.1
    vw = io.read_band(out / "vw.tif")
    v = io.read_band(out / "velocity.tif")
    assert np.isfinite(vw[ok]).all()
    assert np.nanmax(np.abs(vw - v)) < 1.0 and "weighted" in io.raster_tags(out / "vw.tif")["quantity"]


def test_mask_applies_to_every_output(tmp_path):
    synthetic.make_ifg_stack(tmp_path / "s", n_dates=6, shape=(32, 32), seed=7)
    grid = io.read_grid(next((tmp_path / "s" / "ifgs").glob("*.tif")))
    mask = np.ones((32, 32), np.float32)
    mask[20:30, 5:15] = 0
    io.write_raster(tmp_path / "mask.tif", mask, grid, nodata=None)
    out = tmp_path / "res"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "output_dir": str(out), "rtc": {"enabled": False},
        "insar": {"unwrapped": str(tmp_path / "s" / "ifgs" / "*.unw.tif"),
                  "correlation": str(tmp_path / "s" / "cor" / "*.cor.tif"),
                  "mask": str(tmp_path / "mask.tif"), "method": "L2"},
    }))
    snakemake("insar", "--configfile", str(cfg))
    ins = out / "insar"
    r, c = map(int, (ins / "reference_point.txt").read_text().strip().split(","))
    assert mask[r, c] == 1
    rasters = ["velocity", "velocity_std", "temporal_coherence", "residual_sum", "correlation_mean"]
    rasters += [f"timeseries/{p.stem}" for p in (ins / "timeseries").glob("*.tif")]
    for name in rasters:
        v = io.read_band(ins / f"{name}.tif")
        assert np.isnan(v[20:30, 5:15]).all(), name
        assert np.isfinite(v[10, 20]), name
    with rasterio.open(ins / "n_ifgs_used.tif") as ds:
        n = ds.read(1)
        assert ds.nodata == 65535 and (n[20:30, 5:15] == 65535).all() and n[10, 20] > 0

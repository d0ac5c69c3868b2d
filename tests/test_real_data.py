"""The workflow on the real data in ../shared/data (each test skips with its
reason when it is absent): a dry-run on the OPERA land burst and the InSAR
branch on PyRate's cropA stack. The other real-data tests: test_rtc_stacks,
test_gross_shift, test_insar_reference and test_docs_commands (the example
configs)."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, SNAKEMAKE

from sarstack import io

pytestmark = pytest.mark.workflow


def snakemake(*args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([*SNAKEMAKE, "--cores", "2", *args], cwd=ROOT,
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 0, f"snakemake failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def test_dry_run_real_data_dag(tmp_path, land_burst):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "output_dir": str(tmp_path / "out"),
        "rtc": {"inputs": f"{land_burst}/**/*_VV.tif", "tiles": [4, 4]},
    }))
    p = snakemake("-n", "--configfile", str(cfg))
    out = p.stdout + p.stderr
    assert "rtc_batch_1" in out and "demo_rtc_stack" not in out


def test_real_pyrate_crop(tmp_path, pyrate_crop):
    g = pyrate_crop / "geotiffs"
    out = tmp_path / "res"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "output_dir": str(out), "rtc": {"enabled": False},
        "insar": {"unwrapped": f"{g}/cropA_*_unw.tif", "correlation": f"{g}/cropA_*_cc.tif",
                  "quality": str(pyrate_crop / "coherence_stats" / "coh_mean.tif"),
                  "wavelength": 0.0555, "write_residuals": True},
    }))
    p = snakemake("insar", "--configfile", str(cfg))
    # An own-data run ends with its summary on the terminal (issue 20 item 3).
    tail = p.stderr[p.stderr.index("=== sarstack summary ==="):]
    assert "insar: reference point row" in tail and f"{out}/insar/plots" in tail, tail
    ifgs = pd.read_csv(out / "insar" / "ifgs.csv")
    assert len(ifgs) == 30
    index = pd.read_csv(out / "insar" / "timeseries.csv")
    assert len(index) == 12 and (index["units"] == "meters").all()
    finite = np.stack([np.isfinite(io.read_band(f)) for f in ifgs["path"]])
    valid, none = finite.all(axis=0), ~finite.any(axis=0)
    r, c = map(int, (out / "insar" / "reference_point.txt").read_text().strip().split(","))
    assert valid[r, c]
    vel = io.read_band(out / "insar" / "velocity.tif")
    assert np.isfinite(vel[valid]).all() and np.isnan(vel[none]).all()
    # Pixels missing some ifgs are solved without them (issue 11): n_ifgs_used says how many.
    n_used = io.read_band(out / "insar" / "n_ifgs_used.tif", nan_nodata=False)
    np.testing.assert_array_equal(n_used[~none], finite.sum(axis=0)[~none])
    partial = ~valid & ~none
    assert partial.any() and np.isfinite(vel[partial]).mean() > 0.5
    # The time series satisfy the network: residuals are small for most pixels.
    res = np.stack([io.read_band(f) for f in sorted((out / "insar" / "residuals").glob("*.tif"))])
    assert np.nanmedian(np.abs(res)) < 0.2  # radians
    # Mexico City subsides: the fastest pixels move away from the radar.
    assert np.nanpercentile(vel, 1) < -0.05  # m/yr


# ----------------------------------------------------------------- bad input

"""Issue 10: a geolocation checker never passes what it could not measure.
A scene mislocated by 10 or 50 px is measured (coarse-to-fine) and fails; an
unmeasurable scene makes the verdict incomplete."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from conftest import SNAKEMAKE, with_schema_defaults

from sarstack import rtc

coarse_offset = with_schema_defaults(rtc.coarse_offset)

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow  # the real-data tests are marked by their fixture (conftest)


def test_coarse_offset_finds_a_rolled_scene(tmp_path):
    from affine import Affine

    from sarstack import io

    rng = np.random.default_rng(3)
    base = rng.gamma(4.0, 0.25, (300, 260)).astype(np.float32)
    g = io.Grid(None, Affine(30, 0, 0, 0, -30, 0), 260, 300)
    io.write_raster(tmp_path / "a.tif", base, g)
    io.write_raster(tmp_path / "b.tif", np.roll(base, (-7, 23), axis=(0, 1)), g)
    d_row, d_col, snr = coarse_offset(tmp_path / "a.tif", tmp_path / "b.tif")
    assert (d_row, d_col) == (-7, 23) and snr > 10
    io.write_raster(tmp_path / "c.tif", rng.gamma(4.0, 0.25, (300, 260)).astype(np.float32), g)
    assert coarse_offset(tmp_path / "a.tif", tmp_path / "c.tif")[:2] == (0, 0)


def _stack(land: Path, dst: Path, edit=None) -> str:
    """The first four VV scenes of the land burst; ``edit(k, ds_profile, data)`` alters scene k."""
    dst.mkdir(parents=True)
    files = sorted(land.glob("**/*_VV.tif"))[:4]
    for k, f in enumerate(files):
        out = dst / f.name
        shutil.copy(f, out)
        if edit is not None:
            with rasterio.open(out, "r+") as ds:
                edit(k, ds)
    return f"{dst}/*_VV.tif"


def _run(tmp_path: Path, name: str, pattern: str) -> tuple[pd.DataFrame, pd.Series]:
    out = tmp_path / f"out_{name}"
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({"output_dir": str(out), "rtc": {
        "inputs": pattern, "tiles": [4, 4], "requirement_m": 10.0,
        "pairs": "sequential"}}))  # the pairs are indexed below
    p = subprocess.run([*SNAKEMAKE, "rtc", "--cores", "2",
                        "--configfile", str(cfg)], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert p.returncode == 0, p.stderr[-3000:]
    return (pd.read_csv(out / "rtc" / "pairs.csv"),
            pd.read_csv(out / "rtc" / "summary.csv").iloc[0])


@pytest.fixture(scope="module")
def base_pairs(tmp_path_factory, land_burst):
    tmp = tmp_path_factory.mktemp("base")
    pairs, summary = _run(tmp, "base", _stack(land_burst, tmp / "data"))
    assert summary["verdict"] == "pass"
    return pairs


@pytest.mark.parametrize("shift_px", [10, 50])
def test_mislocated_scene_is_measured_and_fails(tmp_path, land_burst, base_pairs, shift_px):
    def edit(k, ds):
        if k == 2:  # the third scene placed shift_px pixels further east
            t = ds.transform
            ds.transform = rasterio.Affine(t.a, t.b, t.c + shift_px * t.a, t.d, t.e, t.f)

    pairs, summary = _run(tmp_path, "shifted", _stack(land_burst, tmp_path / "d", edit))
    assert summary["verdict"] == "fail"
    px = 30.0
    into, out_of = pairs.iloc[1], pairs.iloc[2]  # scene 2 as secondary, then as reference
    assert into["status"] == "ok" and out_of["status"] == "ok"
    assert abs(into["east_m"] - (base_pairs.iloc[1]["east_m"] + shift_px * px)) < 0.2 * px
    assert abs(out_of["east_m"] - (base_pairs.iloc[2]["east_m"] - shift_px * px)) < 0.2 * px
    assert abs(into["north_m"] - base_pairs.iloc[1]["north_m"]) < 0.2 * px
    # The pair without the shifted scene is unaffected.
    assert abs(pairs.iloc[0]["east_m"] - base_pairs.iloc[0]["east_m"]) < 0.2 * px


def test_unmeasurable_scene_makes_verdict_incomplete(tmp_path, land_burst):
    rng = np.random.default_rng(0)

    def edit(k, ds):
        if k == 3:  # the last scene replaced by unrelated speckle
            ds.write(rng.gamma(4.0, 0.05, (ds.height, ds.width)).astype(ds.dtypes[0]), 1)

    pairs, summary = _run(tmp_path, "noise", _stack(land_burst, tmp_path / "d", edit))
    assert pairs.iloc[2]["status"] == "unreliable"
    assert summary["verdict"] == "incomplete"
    assert pairs.iloc[2]["reference_date"] in summary["unmeasured_pairs"]

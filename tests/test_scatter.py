"""Scatter-gather: every number of chunk jobs gives identical outputs."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sarstack import dates, io

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow


def test_chunk_slices_cover_items_once():
    for n_items in range(1, 12):
        for n in range(1, 15):
            s = dates.chunk_slices(n_items, n)
            assert len(s) == min(n, n_items)
            assert [i for a, b in s for i in range(a, b)] == list(range(n_items))
            sizes = [b - a for a, b in s]
            assert max(sizes) - min(sizes) <= 1
    assert dates.chunk_items(list("abcdefg"), "2-of-3") == list("de")  # sizes 3, 2, 2
    with pytest.raises(dates.SarstackError):
        dates.parse_chunk("4-of-3")


def _run(tmp_path: Path, name: str, scatter: int) -> Path:
    out = tmp_path / name
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({
        "output_dir": str(out), "scatter": scatter, "demo": {
            "enabled": True, "rtc_dates": 5, "rtc_shape": [192, 192],
            "insar_dates": 8, "insar_shape": [64, 64]},
        "rtc": {"tiles": [3, 3], "pairs": "nearest:2"},
        "insar": {"block_shape": [16, 64], "method": "L1", "write_residuals": True},
    }))
    p = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(cfg)],
                       cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_every_scatter_gives_identical_outputs(tmp_path):
    one, three = _run(tmp_path, "n1", 1), _run(tmp_path, "n3", 3)
    # The chunk jobs really were 1 and 3 (7 pairs, 4 strips of 16 rows).
    assert sorted(p.name for p in (three / "rtc" / "xcorr").glob("*.csv")) == [
        "1-of-3.csv", "2-of-3.csv", "3-of-3.csv"]
    assert len(list((three / "benchmarks" / "insar").glob("invert_*-of-3.tsv"))) == 3
    assert [p.name for p in (one / "rtc" / "xcorr").glob("*.csv")] == ["1-of-1.csv"]
    for f in ("offsets.csv", "pairs.csv", "tiles.csv", "summary.csv", "dates.csv",
              "dates_tiles.csv", "tiles.geojson"):
        assert filecmp.cmp(one / "rtc" / f, three / "rtc" / f, shallow=False), f
    rasters = sorted(p.relative_to(one / "insar") for p in (one / "insar").rglob("*.tif"))
    assert len(rasters) > 20 and any("residuals" in str(p) for p in rasters)
    for rel in rasters:
        a, b = io.read_band(one / "insar" / rel), io.read_band(three / "insar" / rel)
        np.testing.assert_array_equal(a, b, err_msg=str(rel))
    assert filecmp.cmp(one / "insar" / "reference_point.txt", three / "insar" / "reference_point.txt")

"""The end-of-run terminal summary (sarstack.summary) and the small-tile warning."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sarstack import summary


def _grid(path: Path, height: int, width: int) -> Path:
    path.write_text(json.dumps({"height": height, "width": width}))
    return path


def _stack(d: Path, verdict: str, n_ok: int, n: int, max_m: float, req: str = "10.0") -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.csv").write_text(
        "n_pairs,n_pairs_ok,max_offset_m,requirement_m,verdict\n"
        f"{n},{n_ok},{max_m},{req},{verdict}\n"
    )


def _raster(path: Path, data: np.ndarray, units: str) -> None:
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1],
                       count=1, dtype="float32", nodata=np.nan,
                       transform=from_origin(0, 0, 30, 30)) as ds:
        ds.write(data.astype("float32"), 1)
        ds.set_band_unit(1, units)


@pytest.mark.parametrize(("shape", "tiles", "warned"), [
    ((100, 100), (8, 8), True),     # 12 px tiles: the case
    ((100, 100), (3, 3), False),    # 33 px
    ((256, 4096), (8, 8), False),   # 32 px rows exactly
    ((255, 4096), (8, 8), True),    # 31 px rows
])
def test_tile_size_warning_names_the_key_and_a_fix(tmp_path, shape, tiles, warned):
    w = summary.tile_size_warning(_grid(tmp_path / "g.json", *shape), tiles)
    assert (w is not None) == warned
    if warned:
        assert w.startswith("warning: rtc.tiles") and "set rtc.tiles to" in w
        # The suggested grid gives tiles of at least MIN_TILE_PX.
        rows, cols = json.loads(w.split("set rtc.tiles to ")[1].split(" or")[0])
        assert shape[0] // rows >= summary.MIN_TILE_PX and shape[1] // cols >= summary.MIN_TILE_PX


def test_rtc_lines_one_per_stack_with_verdict_pairs_offset_and_requirement(tmp_path):
    rtc = tmp_path / "rtc"
    _stack(rtc / "land", "pass", 19, 20, 1.17)
    _stack(rtc / "sea", "not_measurable", 0, 20, float("nan"), req="")
    _grid(rtc / "sea" / "grid.json", 100, 100)
    lines = summary.rtc_lines(rtc, {"land/": "land", "sea/": "sea"}, (8, 8), since=None)
    assert lines[0] == ("rtc land: verdict pass; 19/20 pairs measured; max offset 1.17 m"
                        " (requirement 10 m)")
    assert lines[1].startswith("rtc sea: verdict not_measurable; 0/20 pairs measured;"
                               " max offset n/a (no requirement set")
    assert lines[2].strip().startswith("warning: rtc.tiles [8, 8]")  # the sea stack's 12 px tiles
    assert lines[-1].startswith(f"rtc tables: {rtc}/stacks_summary.csv")


def test_only_results_written_by_this_run_are_summarised(tmp_path):
    rtc = tmp_path / "rtc"
    _stack(rtc, "pass", 5, 5, 1.0)
    old = time.time() - 3600
    os.utime(rtc / "summary.csv", (old, old))
    assert summary.run_summary(tmp_path, {"": ""}, (8, 8), insar=False, since=time.time()) == []
    lines = summary.run_summary(tmp_path, {"": ""}, (8, 8), insar=False, since=old - 10)
    assert "=== sarstack summary ===" in lines and any(ln.startswith("rtc: verdict pass")
                                                       for ln in lines)


def test_insar_lines_quote_well_constrained_pixels_only(tmp_path):
    d = tmp_path / "insar"
    d.mkdir()
    vel = np.linspace(-10, 10, 100 * 100).reshape(100, 100)
    std = np.full_like(vel, 0.5)
    vel[0, :5] = 500.0          # a weak pixel with an extreme velocity and no std
    std[0, :5] = np.nan
    vel[1, 0] = np.nan          # nodata
    _raster(d / "velocity.tif", vel, "mm/year")
    _raster(d / "velocity_std.tif", std, "mm/year")
    (d / "reference_point.txt").write_text("12,34\n")
    (d / "ifgs.csv").write_text(
        "reference_date,secondary_date,path,used\n"
        "2020-01-01,2020-01-13,a,True\n2020-01-13,2020-01-25,b,True\n"
        "2020-01-01,2020-01-25,c,False\n"
    )
    lines = summary.insar_lines(d, since=None)
    assert lines[0] == "insar: reference point row 12, col 34; 3 dates, 2 of 3 interferograms used"
    good = np.isfinite(vel) & np.isfinite(std)
    lo, hi = np.percentile(vel[good], summary.VELOCITY_PERCENTILES)
    assert f"{lo:.3g} to {hi:.3g} mm/year" in lines[1]
    assert "500" not in lines[1] and "5 pixels with too few dates" in lines[1]
    assert f"{good.sum()} well-constrained pixels" in lines[1]

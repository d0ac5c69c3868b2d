"""Bad input the workflow once took silently (issue items 1, 3 and 4): an input
raster changed in place (same name) left every result stale; a date-like group
of a file name that is not a date was skipped for the next one (a processing
date); a scene with a wrong geotransform made a union grid of 100 x 33,434 px
(or 9 GiB chunk jobs) instead of being named. Runs are small (3 scenes of
96 x 96 px, 5 dates of 24 x 24 px) in tmp dirs."""

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
from affine import Affine
from conftest import SNAKEMAKE

from sarstack import io, rtc, synthetic
from sarstack.errors import SarstackError
from sarstack.io import Grid

ROOT = Path(__file__).resolve().parents[1]

# The test stacks are small: their whole chain is one rtc_batch_1 job.
RTC_RULES = ("rtc_batch_1",)
INSAR_RULES = ("insar_reference", "insar_invert", "insar_gather",
               "insar_velocity")
MASK_RULES = ("insar_reference", "insar_invert", "insar_velocity")
NOTHING = "Nothing to be done"


def _files(top: Path) -> set[Path]:
    return {p for p in top.rglob("*") if p.is_file()}


def smk(box: Path, cfg: dict, *targets: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """snakemake on ``cfg`` (written into ``box``); nothing may land outside output_dir."""
    path = box / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = _files(box)
    p = subprocess.run(
        [*SNAKEMAKE, *targets, "--cores", "2", f"--configfile={path}", *extra],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    out = Path(cfg["output_dir"]).resolve()
    outside = [f for f in _files(box) - before if out not in f.resolve().parents]
    assert not outside, f"written outside output_dir: {outside[:5]}"
    return p


def ok(p: subprocess.CompletedProcess) -> str:
    text = p.stdout + p.stderr
    assert p.returncode == 0, text[-3000:]
    return text


def ran(text: str) -> set[str]:
    """The rules (and checkpoints) a Snakemake run executed."""
    return {ln.split()[1].rstrip(":") for ln in text.splitlines()
            if ln.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint "))}


def one_error(p: subprocess.CompletedProcess, *expect: str) -> str:
    """Non-zero exit, no traceback, an ``error:`` line on the terminal holding every ``expect``."""
    text = p.stdout + p.stderr
    assert p.returncode != 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    hits = [ln for ln in p.stderr.splitlines()
            if ln.startswith("error:") and all(e in ln for e in expect)]
    assert hits, f"no error line with {expect}:\n{p.stderr[-3000:]}"
    return hits[0]


def _rewrite(path: Path, fn, mtime: float | None = None) -> None:
    """Rewrite a raster in place (same name, grid, nodata) with ``fn`` of its values;
    ``mtime``: then set its modification time (e.g. older than every output)."""
    with rasterio.open(path) as ds:
        data, nodata = ds.read(1), ds.nodata
    io.write_raster(path, fn(data).astype(np.float32), io.read_grid(path), nodata=nodata)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


# ------------------------------------------------------------------ item 1: inputs changed in place


def _rtc_stack(box: Path) -> list[Path]:
    synthetic.make_rtc_stack(box / "data", n_dates=3, shape=(96, 96), frame_jitter_px=0,
                             nan_edge=False, seed=1)
    return sorted((box / "data").glob("*/*_VV.tif"))


def _rtc_cfg(box: Path, **rtc_cfg) -> dict:
    return {"output_dir": str(box / "out"), "insar": {"enabled": False}, "scatter": 1,
            "rtc": {"inputs": f"{box}/data/**/*_VV.tif", "tiles": [2, 2], "requirement_m": 10.0,
                    **rtc_cfg}}


def _pairs(box: Path) -> pd.DataFrame:
    return pd.read_csv(box / "out" / "rtc" / "pairs.csv")


@pytest.mark.workflow
def test_rtc_scene_changed_in_place_reruns_every_stage_that_reads_it(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    scenes = _rtc_stack(box)
    cfg = _rtc_cfg(box)
    ok(smk(box, cfg, "rtc"))
    first = _pairs(box)
    assert NOTHING in ok(smk(box, cfg, "rtc"))

    # The middle scene shifted 5 px (150 m) east, same name: every stage after select
    # reruns, and the first pair measures the shift (stale results would not).
    _rewrite(scenes[1], lambda a: np.roll(a, 5, axis=1))
    text = ok(smk(box, cfg, "rtc"))
    assert set(RTC_RULES) <= ran(text), sorted(ran(text))
    shifted = _pairs(box)
    assert first["status"][0] == shifted["status"][0] == "ok"
    assert abs(shifted["east_m"][0] - first["east_m"][0] - 150.0) < 15.0
    assert NOTHING in ok(smk(box, cfg, "rtc"))


@pytest.mark.workflow
@pytest.mark.parametrize("fuse", [False, True], ids=["per-stage", "insar_small"])
def test_insar_ifg_changed_in_place_reruns_every_stage_that_reads_it(tmp_path, fuse):
    """Per-stage jobs (insar.fuse_small_stack: false) and the small stack's one
    job (insar_small, the default here) alike."""
    select, rules, masked = ("insar_select", INSAR_RULES, MASK_RULES) if not fuse else (
        "insar_small", (), ("insar_small",))
    box = tmp_path / "box"
    synthetic.make_ifg_stack(box / "s", n_dates=5, shape=(24, 24), seed=1)
    mask = box / "s" / "mask.tif"
    grid = io.read_grid(box / "s" / "ifgs" / "20200101_20200113.unw.tif")
    io.write_raster(mask, np.ones((24, 24), np.float32), grid, nodata=None)
    cfg = {"output_dir": str(box / "out"), "rtc": {"enabled": False}, "scatter": 1,
           "insar": {"unwrapped": f"{box}/s/ifgs/*.unw.tif", "mask": str(mask),
                     "fuse_small_stack": fuse}}
    ok(smk(box, cfg, "insar"))
    velocity = box / "out" / "insar" / "velocity.tif"
    before = io.read_band(velocity)
    assert NOTHING in ok(smk(box, cfg, "insar"))

    # A ramp of 0..6 rad added to one ifg in place, its mtime set back before the
    # run's outputs (as cp -p or rsync -t leave it): the velocity is recomputed.
    ifg = box / "s" / "ifgs" / "20200113_20200125.unw.tif"
    _rewrite(ifg, lambda a: a + np.linspace(0.0, 6.0, a.shape[1])[None, :], mtime=1e9)
    text = ok(smk(box, cfg, "insar"))
    assert {select, *rules} <= ran(text), sorted(ran(text))
    after = io.read_band(velocity)
    assert np.nanmax(np.abs(after - before)) > 0.1
    assert NOTHING in ok(smk(box, cfg, "insar"))

    # The mask (a direct input, not in ifgs.csv) replaced by an older file: the
    # rules that read it rerun and the newly masked corner is NaN.
    _rewrite(mask, lambda a: np.where(np.arange(24)[:, None] + np.arange(24) < 8, 0.0, a),
             mtime=1e9)
    text = ok(smk(box, cfg, "insar"))
    assert set(masked) <= ran(text), sorted(ran(text))
    assert np.isnan(io.read_band(velocity)[:3, :3]).all()
    assert NOTHING in ok(smk(box, cfg, "insar"))


def test_select_tables_carry_each_input_files_size_and_mtime(tmp_path):
    f = tmp_path / "a.tif"
    f.write_bytes(b"1234")
    os.utime(f, ns=(5, 123456789))
    assert io.file_fingerprint(f, None, "") == "4:123456789 - -"
    with pytest.raises(SarstackError, match="missing.tif: cannot stat"):
        io.file_fingerprint(tmp_path / "missing.tif")


# ------------------------------------------------------------------ item 3: invalid dates


@pytest.mark.workflow
def test_rtc_invalid_date_in_a_name_is_an_error_naming_the_file(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    scenes = _rtc_stack(box)
    # Month 13; the next 8-digit group (the processing date) must not be taken instead.
    bad = ("OPERA_L2_RTC-S1_T137-292318-IW1_20211341T015854Z_20250830T120333Z_S1A_30_v1.0"
           "_VV.tif")
    shutil.copy(scenes[0], box / "data" / bad)
    p = smk(box, _rtc_cfg(box), "rtc")
    one_error(p, bad, "'20211341' is not a valid date")
    assert not (box / "out" / "rtc" / "scenes.csv").exists()
    assert not (box / "out" / "rtc" / "summary.csv").exists()


@pytest.mark.workflow
def test_insar_invalid_date_in_a_name_is_an_error_naming_the_file(tmp_path):
    box = tmp_path / "box"
    synthetic.make_ifg_stack(box / "s", n_dates=4, shape=(24, 24), seed=1)
    bad = box / "s" / "ifgs" / "20200101_20201301.unw.tif"
    shutil.copy(sorted((box / "s" / "ifgs").glob("*.tif"))[0], bad)
    p = smk(box, {"output_dir": str(box / "out"), "rtc": {"enabled": False},
                  "insar": {"unwrapped": f"{box}/s/ifgs/*.unw.tif"}}, "insar")
    one_error(p, bad.name, "'20201301' is not a valid date")
    assert not (box / "out" / "insar" / "ifgs.csv").exists()


# ------------------------------------------------------------------ item 4: a misplaced scene


def _move(path: Path, dx: float) -> None:
    """Shift a raster's geotransform ``dx`` metres east (its pixels untouched)."""
    g = io.read_grid(path)
    with rasterio.open(path) as ds:
        data, nodata = ds.read(1), ds.nodata
    io.write_raster(path, data, Grid(g.crs, Affine.translation(dx, 0) @ g.transform, g.width,
                                     g.height), nodata=nodata)


def _grid(x0: float, y0: float = 4_000_000.0, n: int = 100, crs: str = "EPSG:32611") -> Grid:
    from rasterio.crs import CRS

    return Grid(CRS.from_string(crs), Affine(30, 0, x0, 0, -30, y0), n, n)


def test_misplaced_scene_is_found_before_any_union_grid():
    grids = [_grid(500_000), _grid(500_300), _grid(1_500_000), _grid(499_700)]
    assert rtc.misplaced_scenes(grids, ["a", "b", "c", "d"]) == [2]
    # 3,000 km off and first in date order: still the one named, never a good scene.
    grids = [_grid(3_500_000), _grid(500_000), _grid(500_300)]
    assert rtc.misplaced_scenes(grids, ["a", "b", "c"]) == [0]
    assert "1000 km from the stack's centre" in rtc.misplaced_message(
        _grid(1_500_000), "c.tif", [_grid(500_000), _grid(500_000), _grid(1_500_000)])
    # Two scenes apart: no majority, so which one is wrong cannot be told; both named.
    with pytest.raises(SarstackError, match="a.tif and b.tif do not overlap"):
        rtc.misplaced_scenes([_grid(500_000), _grid(1_500_000)], ["a.tif", "b.tif"])
    # Partly overlapping scenes belong to the stack.
    assert rtc.misplaced_scenes([_grid(500_000), _grid(502_000), _grid(504_000)], "abc") == []


def test_union_grid_is_bounded_by_the_largest_scene():
    grids = [_grid(500_000), _grid(500_000 + 30 * 350)]
    union = rtc.union_grid(grids)
    assert union.width == 450
    with pytest.raises(SarstackError, match=r"100 x 450 px, 4\.5 times as wide .* a.tif and b.tif"):
        rtc.check_union_size(union, grids, ["a.tif", "b.tif"])
    rtc.check_union_size(union, grids, ["a.tif", "b.tif"], factor=5.0)
    near = [_grid(500_000), _grid(500_000 + 30 * 50)]
    rtc.check_union_size(rtc.union_grid(near), near, ["a.tif", "b.tif"])


@pytest.mark.workflow
def test_rtc_misplaced_scene_is_refused_naming_it(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    scenes = _rtc_stack(box)
    _move(scenes[0], 1_000_000.0)  # the first date: the union grid's lattice would be its
    p = smk(box, _rtc_cfg(box), "rtc")
    line = one_error(p, scenes[0].name, "rtc.misplaced")
    assert all(s.name not in line for s in scenes[1:])
    assert not (box / "out" / "rtc" / "scenes.csv").exists()
    assert not (box / "out" / "rtc" / "superset").exists()


@pytest.mark.workflow
def test_rtc_misplaced_scene_dropped_with_a_warning(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    scenes = _rtc_stack(box)
    _move(scenes[1], 3_000_000.0)
    cfg = _rtc_cfg(box, misplaced="drop")
    text = ok(smk(box, cfg, str(box / "out" / "rtc" / "scenes.csv")))
    warnings = [ln for ln in text.splitlines() if "WARNING" in ln and scenes[1].name in ln]
    assert warnings and "left out (rtc.misplaced: drop)" in warnings[0], text[-3000:]
    table = pd.read_csv(box / "out" / "rtc" / "scenes.csv")
    assert list(table["path"]) == [str(scenes[0]), str(scenes[2])]
    grid = io.grid_from_dict(io.read_json(box / "out" / "rtc" / "grid.json"))
    assert grid.shape == (96, 96)

"""Bad input, continued (issue items 2, 5, 6, 7): undeclared fill values,
raw exceptions turned into one line naming the culprit, silent config
mistakes made errors, and user files in ``output_dir`` left alone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from conftest import run_script, schema_defaults
from test_bad_input import _files, _rtc_tif, one_error, run_case

from sarstack import io, rtc, runlock, synthetic
from sarstack.errors import SarstackError
from sarstack.options import config_args

FILL = -9999.0


# ------------------------------------------------------------------ item 2: fill values


def _fill_stack(top: Path, declared: bool) -> Path:
    """3 dates of 128 x 128 px with known shifts and a -9999 border on the left
    that grows from 20 % to 45 % of the width (moves between dates), the
    nodata tag set to -9999 (``declared``) or absent."""
    sim = synthetic.simulate_rtc_stack(n_dates=3, shape=(128, 128), seed=3, max_shift_px=0.6,
                                       frame_jitter_px=4, nan_edge=False, looks=20.0)
    for k, (img, grid) in enumerate(zip(sim.images, sim.grids, strict=True)):
        a = img.copy()
        a[:, : int(128 * (0.20 + 0.125 * k))] = FILL
        a[:4] = FILL
        path = top / f"s_{sim.dates[k]:%Y%m%d}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=128, height=128, count=1,
                           dtype="float32", crs=grid.crs, transform=grid.transform,
                           nodata=FILL if declared else None) as ds:
            ds.write(a, 1)
    return top


def _stage(name: str, *argv: object) -> None:
    import importlib

    args = [str(a) for a in argv]
    args += config_args(name, schema_defaults(), given=args)
    importlib.import_module(f"sarstack.cli.{name}").main(args)


def _offsets(data: Path, out: Path, *superset_extra: object) -> pd.DataFrame:
    """select -> superset -> flatten -> tiles -> xcorr through the stages, in process."""
    block = (512, 512)
    _stage("rtc_select", "--inputs", f"{data}/*.tif", "--scenes", out / "scenes.csv",
           "--grid", out / "grid.json", "--tiles", 2, 2)
    _stage("rtc_superset", "--scenes", out / "scenes.csv", "--grid", out / "grid.json",
           "--chunk", "1-of-1", "--out-dir", out / "sup", "--resampling", "bilinear",
           "--block", *block, *superset_extra)
    _stage("rtc_flatten", "--superset", out / "sup" / "index.csv", "--grid", out / "grid.json",
           "--tiles", 2, 2, "--percentiles", 1, 99, "--block", *block, "--scale", "power",
           "--out", out / "flat.json")
    _stage("rtc_tiles", "--grid", out / "grid.json", "--tiles", 2, 2,
           "--out", out / "layout.geojson", out / "flat.json")
    _stage("rtc_xcorr", "--flat", out / "flat.json", "--grid", out / "grid.json", "--tiles", 2, 2,
           "--pairs", "sequential", "--chunk", "1-of-1", "--out", out / "xcorr.csv",
           "--upsample-factor", 10, "--max-nan-fraction", 0.5, "--preprocess", "default",
           "--refine-iterations", 1, "--min-quality", 2.0, "--block", *block)
    return pd.read_csv(out / "xcorr.csv")


def test_detect_fill_values(tmp_path):
    rng = np.random.default_rng(0)
    clean = rng.gamma(4.0, 0.05, (64, 64)).astype(np.float32)
    cases = [  # (border value, scale, nodata tag, expected fill)
        (-9999.0, "power", None, -9999.0),
        (0.0, "power", None, 0.0),
        (0.0, "amplitude", None, 0.0),
        (-9999.0, "db", None, -9999.0),
        (0.0, "db", None, None),        # 0 dB is backscatter
        (-9999.0, "power", -9999.0, None),  # declared: nothing to detect
        (None, "power", None, None),     # continuous values: no fill
    ]  # fmt: skip
    for k, (value, scale, tag, expect) in enumerate(cases):
        a = clean.copy() if scale != "db" else (10 * np.log10(clean)).astype(np.float32)
        if value is not None:
            a[:, :6] = value
        path = tmp_path / f"c{k}.tif"
        _rtc_tif(path, a, nodata=tag)
        got, fraction = rtc.detect_fill(path, scale)
        assert got == expect, (k, value, scale, tag, got)
        if expect is not None:
            assert fraction == pytest.approx(6 / 64)
    # An integer fill value of an int16 file.
    ints = np.full((64, 64), 300, np.int16) + rng.integers(0, 200, (64, 64)).astype(np.int16)
    ints[:10] = -32768
    with rasterio.open(tmp_path / "i.tif", "w", driver="GTiff", width=64, height=64, count=1,
                       dtype="int16", transform=rasterio.Affine(30, 0, 0, 0, -30, 0)) as ds:
        ds.write(ints, 1)
    assert rtc.detect_fill(tmp_path / "i.tif", "amplitude")[0] == -32768.0


def test_undeclared_fill_offsets_equal_declared(tmp_path, caplog):
    """A -9999 border without a nodata tag (moving between dates, up to 45 % of
    a scene) gives the same per-pair, per-tile offsets as the same border
    declared as nodata, and as rtc.nodata: -9999; the warning names file and value."""
    runs = {}
    for name, declared, extra in (("declared", True, ()), ("undeclared", False, ()),
                                  ("rtc_nodata", False, ("--nodata", FILL))):
        data = tmp_path / name / "data"
        data.mkdir(parents=True)
        _fill_stack(data, declared)
        caplog.clear()
        runs[name] = _offsets(data, tmp_path / name / "out", *extra)
        warned = [r.getMessage() for r in caplog.records if "undeclared fill" in r.getMessage()]
        if name == "undeclared":
            assert len(warned) == 3, warned
            assert all("s_20" in w and "value -9999" in w for w in warned), warned
        else:
            assert not warned, warned
        index = pd.read_csv(tmp_path / name / "out" / "sup" / "index.csv", dtype=str,
                            keep_default_na=False)
        assert set(index["fill"]) == ({""} if declared else {"-9999.0"})
    cols = ["reference_date", "secondary_date", "tile_row", "tile_col", "east_m", "north_m",
            "status"]
    ref = runs["declared"][cols]
    assert (ref["status"] == "ok").sum() >= 4, ref
    pd.testing.assert_frame_equal(runs["undeclared"][cols], ref)
    pd.testing.assert_frame_equal(runs["rtc_nodata"][cols], ref)


# ------------------------------------------------------------------ items 2, 5, 7 through the workflow


def _holder() -> subprocess.Popen:
    """A live process that looks like a Snakemake run (its command line says so)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "snakemake"])


@pytest.mark.workflow
def test_workflow_fill_lock_and_user_files(tmp_path):
    """One small RTC stack with an undeclared -9999 border through the workflow:
    a stale lock (its run is gone) is taken over and removed at the end; the
    superset log warns about the fill value; ``--forcerun rtc_aggregate``
    leaves a user's ``rtc/.summary.csv.mynotes`` alone; a run while another
    live run holds the output_dir is refused with one line."""
    box = tmp_path / "box"
    data = box / "data"
    data.mkdir(parents=True)
    _fill_stack(data, declared=False)
    out = box / "out"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = out / runlock.LOCK_NAME
    lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "cwd": "/x",
                                "started": "earlier"}))
    cfg = {"output_dir": str(out), "rtc": {"inputs": f"{data}/*.tif", "tiles": [2, 2],
                                           "max_nan_fraction": 0.5, "pairs": "sequential"}}
    p = run_case(box, cfg, "rtc")
    assert p.returncode == 0, p.stderr[-3000:]
    assert not lock.exists()
    # the superset's warnings: in flatten_*.log, or stack.log for a stack run as one job
    log = "".join(f.read_text() for f in (out / "logs" / "rtc").glob("*.log")
                  if f.name.startswith(("flatten_", "stack")))  # fmt: skip
    assert log.count("value -9999") == 3 and "s_20210127.tif: value -9999" in log, log

    notes = out / "rtc" / ".summary.csv.mynotes"
    notes.write_text("my notes\n")
    p = run_case(box, cfg, "rtc", extra=("--forcerun", "rtc_aggregate", "rtc_batch_1"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert notes.read_text() == "my notes\n"
    assert not lock.exists()

    holder = _holder()
    try:
        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                    "cwd": "/elsewhere", "started": "now"}))
        before = _files(out)
        summary = (out / "rtc" / "summary.csv").stat().st_mtime_ns
        p = run_case(box, cfg, "rtc", extra=("--forcerun", "rtc_aggregate", "rtc_batch_1"))
        one_error(p, 2, str(lock), "in use by another run", f"pid {holder.pid}")
        assert lock.exists() and json.loads(lock.read_text())["pid"] == holder.pid
        assert (out / "rtc" / "summary.csv").stat().st_mtime_ns == summary
        assert _files(out) - before <= {f for f in _files(out) if "logs" in f.parts}
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait()


def test_runlock_takes_over_stale_and_releases_only_its_own(tmp_path):
    holder = _holder()
    try:
        lock = runlock.lock_path(tmp_path)
        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        with pytest.raises(SarstackError, match="in use by another run"):
            runlock.acquire(tmp_path)
        runlock.release(tmp_path)  # not ours: kept
        assert lock.exists()
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait()
    assert runlock.acquire(tmp_path) == lock  # its process is gone: stale, taken over
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    runlock.release(tmp_path)
    assert not lock.exists()


# ------------------------------------------------------------------ item 7: staging marker


def test_stale_staging_cleanup_keeps_user_files(tmp_path):
    target = tmp_path / "summary.csv"
    mine = tmp_path / ".summary.csv.mynotes"
    mine.write_text("keep\n")
    stale = tmp_path / f"{io.staging_prefix(target)}abc123.csv"
    stale.write_text("partial")
    io.write_text(target, "a,b\n")
    assert mine.read_text() == "keep\n"
    assert not stale.exists()
    assert target.read_text() == "a,b\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".summary.csv.mynotes", "summary.csv"]


# ------------------------------------------------------------------ item 5: one-line errors


def test_disk_full_during_gather_is_named(tmp_path, monkeypatch, capsys):
    """GDAL reports a full disk as ``CPLE_AppDefinedError ... TIFFReadDirectory``;
    insar_gather says "no space left on device" and names the file (the full
    disk is simulated: the COG copy fails that way and statvfs says 40 KiB)."""
    import rasterio.shutil
    from rasterio._err import CPLE_AppDefinedError

    from sarstack import cli
    from sarstack.cli import insar_gather

    synthetic.make_ifg_stack(tmp_path / "s", n_dates=4, shape=(24, 24), seed=1)
    out = tmp_path / "out"
    p = run_script("insar_select.py", "--unwrapped", f"{tmp_path}/s/ifgs/*.unw.tif",
                   "--out", out / "ifgs.csv")
    assert p.returncode == 0, p.stderr
    p = run_script("insar_reference.py", "--ifgs", out / "ifgs.csv", "--out", out / "ref.txt")
    assert p.returncode == 0, p.stderr
    p = run_script("insar_invert.py", "--ifgs", out / "ifgs.csv", "--reference", out / "ref.txt",
                   "--out-dir", out / "strip", "--strip", "1-of-1", "--method", "L2")
    assert p.returncode == 0, p.stderr

    def full(*a, **k):
        raise CPLE_AppDefinedError(1, 1, "TIFFReadDirectory:Failed to read directory at offset 0")

    monkeypatch.setattr(rasterio.shutil, "copy", full)
    from sarstack import cog

    monkeypatch.setattr(cog, "free_bytes", lambda folder: 40 * 1024)
    argv = [str(out / "strip"), "--ifgs", str(out / "ifgs.csv"), "--reference",
            str(out / "ref.txt"), "--out-dir", str(out / "final"), "--index",
            str(out / "ts.csv"), "--method", "L2", "--weighting", "none", "--block", "16", "24",
            "--threads", "1", "--no-compress-series"]
    with pytest.raises(SystemExit) as e:
        cli.run(insar_gather.main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("error: ")
    assert "no space left on device" in err[-1] and str(out / "final") in err[-1], err
    assert "TIFFReadDirectory" not in err[-1]
    assert not (out / "ts.csv").exists()
    assert not [f for f in (out / "final").rglob("*") if f.is_file()]


def test_other_write_errors_name_the_file(tmp_path, monkeypatch):
    """With space left, a failed COG write is ``cannot write (GDAL's first line)``."""
    import rasterio.shutil
    from rasterio._err import CPLE_AppDefinedError

    def broken(*a, **k):
        raise CPLE_AppDefinedError(1, 1, "TIFFWriteDirectory: broken")

    monkeypatch.setattr(rasterio.shutil, "copy", broken)
    grid = io.Grid(None, rasterio.Affine(30, 0, 0, 0, -30, 0), 16, 16)
    with pytest.raises(SarstackError, match=r"a\.tif: cannot write \(.*TIFFWriteDirectory"):
        io.write_raster(tmp_path / "a.tif", np.zeros((16, 16), np.float32), grid)
    assert list(tmp_path.iterdir()) == []


def _check(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "my.yaml"
    cfg.write_text(text)
    return subprocess.run([sys.executable, "-m", "sarstack.config", str(cfg)],
                          capture_output=True, text=True, cwd=tmp_path)


def test_impossible_unquoted_date_named_by_the_checker(tmp_path):
    p = _check(tmp_path, f"output_dir: {tmp_path / 'out'}\ninsar:\n  exclude_dates: [2020-02-30]\n")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip() == "error: config insar.exclude_dates: '2020-02-30' is not a calendar date"
    ok = _check(tmp_path, f"output_dir: {tmp_path / 'out'}\ninsar:\n  exclude_dates: [2020-02-28]\n")
    assert ok.returncode == 0, ok.stderr


def _cfg_cases(tmp_path: Path) -> list[tuple[dict, str, str]]:
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    return [
        ({"jax_cache_dir": str(afile)}, "config jax_cache_dir", "not a folder"),
        ({"jax_cache_dir": str(afile / "jax")}, "config jax_cache_dir", "not a folder"),
        ({"output_dir": str(tmp_path / "out{ace}")}, "config output_dir", "wildcard"),
        ({"rtc": {"tiles": [2, 2], "min_ok_tiles": 5}}, "config rtc.min_ok_tiles", "4 tiles"),
        ({"rtc": {"tiles": [1, 1]}}, "config rtc.tiles", "single tile"),
    ]


CASE_IDS = ["jax_cache_file", "jax_cache_under_file", "output_dir_braces", "min_ok_tiles",
            "one_tile"]


@pytest.mark.parametrize("k", range(len(CASE_IDS)), ids=CASE_IDS)
def test_config_mistakes_checker(tmp_path, k):
    cfg, key, words = _cfg_cases(tmp_path)[k]
    cfg = {"output_dir": str(tmp_path / "out"), **cfg}
    p = _check(tmp_path, yaml.safe_dump(cfg))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    line = p.stderr.strip()
    assert line.startswith(f"error: {key}:") and words in line and "\n" not in line, line


@pytest.mark.workflow
@pytest.mark.parametrize("k", range(len(CASE_IDS)), ids=CASE_IDS)
def test_config_mistakes_workflow(tmp_path, k):
    box = tmp_path / "box"
    box.mkdir()
    cfg, key, words = _cfg_cases(box)[k]
    cfg = {"output_dir": str(box / "out"), "demo": {"enabled": True}, **cfg}
    before = _files(box)
    p = run_case(box, cfg)
    line = one_error(p, 2, key, words)
    assert line.count("error:") == 1
    assert _files(box) - before == {box / "config.yaml"}
    assert not [d for d in box.iterdir() if d.name.startswith("out")]


# ------------------------------------------------------------------ items 5, 6: InSAR stages


def _insar_run(tmp_path: Path, **insar_cfg) -> tuple[subprocess.CompletedProcess, Path]:
    box = tmp_path / "box"
    s = box / "s"
    synthetic.make_ifg_stack(s, n_dates=5, shape=(24, 24), seed=1)
    extra = {k: (v(s) if callable(v) else v) for k, v in insar_cfg.items()}
    cfg = {"output_dir": str(box / "out"), "rtc": {"enabled": False},
           "insar": {"unwrapped": f"{s}/ifgs/*.unw.tif", **extra}}
    return run_case(box, cfg, "insar"), box / "out"


def _bad_mask(s: Path) -> str:
    g = io.read_grid(sorted((s / "ifgs").glob("*.tif"))[0])
    io.write_raster(s / "mask.tif", np.ones((20, 24), np.float32),
                    io.Grid(g.crs, g.transform, 24, 20), nodata=None)
    return str(s / "mask.tif")


@pytest.mark.workflow
def test_wrong_shape_mask_with_correlation(tmp_path):
    p, out = _insar_run(tmp_path, mask=_bad_mask, correlation=lambda s: f"{s}/cor/*.cor.tif")
    one_error(p, 1, "mask.tif", "insar.mask", "not on the grid")
    assert "IndexError" not in p.stderr
    assert not (out / "insar" / "correlation_mean.tif").exists()


@pytest.mark.workflow
def test_reference_window_larger_than_the_scene(tmp_path):
    p, out = _insar_run(tmp_path, reference_window=25)
    one_error(p, 1, "insar.reference_window", "25", "24 x 24")
    assert not (out / "insar" / "velocity.tif").exists()


def test_flatten_threads_give_the_same_json(tmp_path):
    """rtc_flatten spreads a chunk's scenes over its threads: same JSON, same order."""
    (tmp_path / "data").mkdir()
    (out := tmp_path / "out").mkdir()
    _offsets(_fill_stack(tmp_path / "data", declared=True), out)
    one = (out / "flat.json").read_text()
    _stage("rtc_flatten", "--superset", out / "sup" / "index.csv", "--grid", out / "grid.json",
           "--tiles", 2, 2, "--percentiles", 1, 99, "--block", 512, 512, "--scale", "power",
           "--threads", 3, "--out", out / "flat3.json")
    assert (out / "flat3.json").read_text() == one
    assert len(json.loads(one)["scenes"]) == 3

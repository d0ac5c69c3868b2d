"""Bad and awkward input through the whole workflow, as a hostile user would
give it (issue 10). Every case asserts the exit status, one line on the
terminal naming the key or file, no traceback, and that nothing is written
outside ``output_dir`` (for config errors: nothing at all)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from conftest import SNAKEMAKE, with_schema_defaults
from rasterio.crs import CRS

from sarstack import io, synthetic

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow


def _files(top: Path) -> set[Path]:
    return {p for p in top.rglob("*") if p.is_file()}


def run_case(
    box: Path, cfg: dict | None, *targets: str, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Run snakemake on a config inside ``box``; check nothing lands outside output_dir."""
    box.mkdir(parents=True, exist_ok=True)
    cfg_path = box / "config.yaml"
    if cfg is not None:
        cfg_path.write_text(yaml.safe_dump(cfg))
    before = _files(box)
    p = subprocess.run(
        [*SNAKEMAKE, *targets, "--cores", "2",
         f"--configfile={cfg_path}", *extra],
        cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    out = Path(str((cfg or {}).get("output_dir", box / "out")))
    new = _files(box) - before
    outside = [f for f in new if out.is_absolute() and out.resolve() not in f.resolve().parents]
    assert not outside, f"written outside output_dir: {outside[:5]}"
    return p


def one_error(p: subprocess.CompletedProcess, rc: int, *expect: str) -> str:
    """Exit status ``rc``, no traceback, and an ``error:`` line containing every ``expect``."""
    text = p.stdout + p.stderr
    assert p.returncode == rc, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    hits = [ln for ln in lines if all(e in ln for e in expect)]
    assert hits, f"no error line with {expect}:\n" + "\n".join(lines) + "\n" + p.stderr[-2000:]
    return hits[0]


# ------------------------------------------------------------------ config errors


CONFIG_CASES = [
    ({"output_dir": ""}, "output_dir"),
    ({"output_dir": "/"}, "output_dir"),
    ({"unknown_key": 1}, "unknown_key"),
    ({"rtc": {"tile": [4, 4]}}, "rtc.tile"),
    ({"rtc": {"tiles": [0, 4]}}, "rtc.tiles"),
    ({"rtc": {"max_nan_fraction": 1.5}}, "rtc.max_nan_fraction"),
    ({"rtc": {"percentiles": [99, 1]}}, "rtc.percentiles"),
    ({"rtc": {"percentiles": [1, 101]}}, "rtc.percentiles"),
    ({"rtc": {"upsample_factor": 0}}, "rtc.upsample_factor"),
    ({"rtc": {"pairs": "nearest:0"}}, "rtc.pairs"),
    ({"rtc": {"preprocess": "fancy"}}, "rtc.preprocess"),
    ({"rtc": {"requirement_m": -1}}, "rtc.requirement_m"),
    ({"rtc": {"scale": "linear"}}, "rtc.scale"),
    ({"insar": {"method": "L3"}}, "insar.method"),
    ({"insar": {"extra_reference_date": "2020-02-30"}}, "insar.extra_reference_date"),
    ({"insar": {"extra_reference_date": "20200210"}}, "insar.extra_reference_date"),
    ({"insar": {"reference_point": [1]}}, "insar.reference_point"),
    ({"insar": {"correlation_threshold": 2}}, "insar.correlation_threshold"),
    ({"scatter": 0}, "scatter"),
    ({"scatter": "many"}, "scatter"),
    ({"block_shape": [8, 8]}, "block_shape"),
    ({"demo": {"enabled": "maybe"}}, "demo.enabled"),
]


@pytest.mark.parametrize(("cfg", "key"), CONFIG_CASES, ids=[c[1] + str(i) for i, c in
                                                             enumerate(CONFIG_CASES)])
def test_config_error_one_line_nothing_written(tmp_path, cfg, key):
    box = tmp_path / "box"
    full = {"output_dir": str(box / "out"), **cfg}
    p = run_case(box, full)
    line = one_error(p, 2, f"config {key}")
    assert line.count("error:") == 1
    assert not (box / "out").exists()
    assert _files(box) == {box / "config.yaml"}


def test_config_output_dir_is_a_file(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    (box / "afile").write_text("keep me\n")
    p = run_case(box, {"output_dir": str(box / "afile")})
    one_error(p, 2, "config output_dir", "not a folder")
    assert (box / "afile").read_text() == "keep me\n"


@pytest.mark.parametrize("target", ["rtc", "insar"])
def test_branch_target_without_inputs(tmp_path, target):
    key = {"rtc": "rtc.inputs", "insar": "insar.unwrapped"}[target]
    box = tmp_path / "box"
    p = run_case(box, {"output_dir": str(box / "out")}, target)
    one_error(p, 2, f"config {key}")
    assert not (box / "out").exists()


def test_nested_override_from_command_line_is_coerced_or_named(tmp_path):
    box = tmp_path / "box"
    ok = run_case(box, {"output_dir": str(box / "out"), "demo": {"enabled": True}},
                  extra=("-n", "--config", 'rtc={"upsample_factor": 20}'))
    assert ok.returncode == 0, ok.stderr[-2000:]
    bad = run_case(box, {"output_dir": str(box / "out"), "demo": {"enabled": True}},
                   extra=("-n", "--config", 'rtc={"upsample_factor": "x"}'))
    one_error(bad, 2, "config rtc.upsample_factor")


# ------------------------------------------------------------------ RTC input errors


def _rtc_tif(path: Path, data: np.ndarray | None = None, crs: str | None = "EPSG:32611",
             nodata: float | None = None, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.random.default_rng(seed).gamma(4.0, 0.05, (64, 64)).astype(np.float32)
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                   dtype="float32", transform=Affine(30, 0, 500000, 0, -30, 4000000),
                   nodata=nodata)
    if crs:
        profile["crs"] = CRS.from_string(crs)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(np.float32), 1)


def _rtc_case(tmp_path: Path, make, expect: tuple[str, ...], rc: int = 1, **rtc_cfg) -> None:
    box = tmp_path / "box"
    data = box / "data"
    data.mkdir(parents=True)
    make(data)
    cfg = {"output_dir": str(box / "out"),
           "rtc": {"inputs": f"{data}/*.tif", "tiles": [2, 2], **rtc_cfg}}
    p = run_case(box, cfg, "rtc")
    one_error(p, rc, *expect)
    assert not (box / "out" / "rtc" / "summary.csv").exists()


def _two(data: Path) -> None:
    _rtc_tif(data / "a_20200101.tif", seed=1)
    _rtc_tif(data / "b_20200113.tif", seed=2)


RTC_CASES = {
    "no_files": (lambda d: None, ("rtc.inputs", "no files match")),
    "one_scene": (lambda d: _rtc_tif(d / "a_20200101.tif"), ("only one scene",)),
    "undated": (lambda d: (_two(d), _rtc_tif(d / "nodate.tif")), ("nodate.tif", "no date")),
    "same_date": (lambda d: (_two(d), _rtc_tif(d / "c_20200101T120000.tif")),
                  ("c_20200101T120000.tif", "same date")),
    "garbage": (lambda d: (_two(d), (d / "c_20200125.tif").write_bytes(b"II*\x00junk")),
                ("c_20200125.tif", "not a readable raster")),
    "truncated": (lambda d: (_two(d), shutil.copy(d / "a_20200101.tif", d / "t_20200125.tif"),
                             os.truncate(d / "t_20200125.tif", 600)),
                  ("t_20200125.tif",)),
    "no_crs": (lambda d: (_two(d), _rtc_tif(d / "c_20200125.tif", crs=None)),
               ("c_20200125.tif", "no CRS")),
    "db_values": (lambda d: (_rtc_tif(d / "a_20200101.tif", np.full((64, 64), -12.0)),
                             _rtc_tif(d / "b_20200113.tif", np.full((64, 64), -11.0))),
                  ("negative", "rtc.scale")),
    "all_nan": (lambda d: (_two(d), _rtc_tif(d / "c_20200125.tif", np.full((64, 64), np.nan))),
                ("c_20200125.tif", "no valid pixel")),
    "two_bands": (lambda d: (_two(d), io.write_raster(
        d / "c_20200125.tif", np.ones((2, 64, 64), np.float32), io.read_grid(d / "a_20200101.tif"))),
                  ("c_20200125.tif", "2 bands")),
    "all_nodata": (lambda d: (_two(d), _rtc_tif(d / "c_20200125.tif", np.zeros((64, 64)),
                                                nodata=0.0)),
                   ("c_20200125.tif", "no valid pixel")),
}


@pytest.mark.parametrize("case", sorted(RTC_CASES))
def test_rtc_bad_input(tmp_path, case):
    make, expect = RTC_CASES[case]
    _rtc_case(tmp_path, make, expect)


def test_job_error_printed_once_without_workflowerror(tmp_path):
    """A failed job's one-line error is on the terminal exactly once (after
    Snakemake's report of the job, with its log), and Snakemake's closing bare
    ``WorkflowError:`` is not; the exit status stays 1."""
    box = tmp_path / "box"
    data = box / "data"
    _two(data)
    (data / "c_20200125.tif").write_bytes(b"II*\x00junk")
    p = run_case(box, {"output_dir": str(box / "out"),
                       "rtc": {"inputs": f"{data}/*.tif", "tiles": [2, 2]}}, "rtc")
    text = p.stdout + p.stderr
    assert p.returncode == 1, text[-3000:]
    hits = [ln for ln in text.splitlines() if "not a readable raster" in ln]
    log = box / "out" / "logs" / "rtc" / "select.log"
    assert hits == [ln for ln in p.stderr.splitlines() if ln.startswith("error:")], text[-3000:]
    assert len(hits) == 1 and hits[0].startswith(f"error: {data / 'c_20200125.tif'}: "), hits
    assert hits[0].endswith(f"  [log: {log}]") and "Error in rule rtc_batch_1" in text
    assert "WorkflowError" not in text and "did not complete successfully" not in text
    assert "Traceback" not in text


def test_rtc_too_many_tiles_fails_at_select(tmp_path):
    box = tmp_path / "box"
    _two(box / "data")
    p = run_case(box, {"output_dir": str(box / "out"),
                       "rtc": {"inputs": f"{box}/data/*.tif", "tiles": [40, 40]}}, "rtc")
    one_error(p, 1, "rtc.tiles")
    assert not (box / "out" / "rtc" / "scenes.csv").exists()
    assert not (box / "out" / "rtc" / "superset").exists()


# ------------------------------------------------------------------ InSAR input errors


def _stack(box: Path, **kw) -> Path:
    synthetic.make_ifg_stack(box / "s", n_dates=6, shape=(24, 24), seed=1, **kw)
    return box / "s"


def _insar_case(tmp_path: Path, edit, expect: tuple[str, ...], rc: int = 1, **insar_cfg) -> None:
    box = tmp_path / "box"
    s = _stack(box)
    extra = edit(s) or {}
    cfg = {"output_dir": str(box / "out"), "rtc": {"enabled": False},
           "insar": {"unwrapped": f"{s}/ifgs/*.unw.tif", **insar_cfg, **extra}}
    p = run_case(box, cfg, "insar")
    one_error(p, rc, *expect)
    assert not (box / "out" / "insar" / "velocity.tif").exists()


def _first(s: Path, sub: str = "ifgs") -> Path:
    return sorted((s / sub).glob("*.tif"))[0]


def _rewrite(path: Path, fn) -> None:
    """Rewrite a (COG) raster with ``fn`` applied to its values, same grid and nodata."""
    with rasterio.open(path) as ds:
        data, nodata = ds.read(1), ds.nodata
    io.write_raster(path, fn(data).astype(np.float32), io.read_grid(path), nodata=nodata)


def _crop(path: Path) -> None:
    """Rewrite a raster 4 rows shorter (off the stack's grid)."""
    g = io.read_grid(path)
    io.write_raster(path, io.read_band(path)[:-4], io.Grid(g.crs, g.transform, g.width, g.height - 4))


def _mask(s: Path, value: float, shape=(24, 24)) -> dict:
    g = io.read_grid(_first(s))
    if shape != (24, 24):
        g = io.Grid(g.crs, g.transform, shape[1], shape[0])
    io.write_raster(s / "mask.tif", np.full(shape, value, np.float32), g, nodata=None)
    return {"mask": str(s / "mask.tif")}


def _conncomp_zero(s: Path) -> dict:
    for f in (s / "ifgs").glob("*.unw.tif"):
        lab = np.ones((24, 24), np.float32)
        if f == _first(s):
            lab[:] = 0
        io.write_raster(s / "cc" / f.name.replace(".unw.tif", ".cc.tif"), lab,
                        io.read_grid(f), nodata=None)
    return {"conncomp": f"{s}/cc/*.cc.tif"}


def _copy(src: Path, dst: Path) -> None:
    shutil.copy(src, dst)


def _cut_network(s: Path) -> None:
    """Remove every ifg linking the first three dates to the last three (nearest:3, 6 dates)."""
    for name in ("20200101_20200206", "20200113_20200206", "20200113_20200218",
                 "20200125_20200206", "20200125_20200218", "20200125_20200301"):
        (s / "ifgs" / f"{name}.unw.tif").unlink()


INSAR_CASES = {
    "one_date_name": (lambda s: _copy(_first(s), s / "ifgs" / "x_20200125.unw.tif"),
                      ("x_20200125.unw.tif", "needs two dates")),
    "three_date_name": (lambda s: _copy(_first(s), s / "ifgs" /
                                        "20200101_20200113_20200125.unw.tif"),
                        ("20200101_20200113_20200125.unw.tif", "ambiguous")),
    "correlation_above_one": (
        lambda s: (_rewrite(_first(s, "cor"), lambda a: a * 0 + 1.5),
                   {"correlation": f"{s}/cor/*.cor.tif"})[1],
        ("cor.tif", "outside [0, 1]")),
    "all_nan_ifg": (lambda s: _rewrite(_first(s), lambda a: a * np.nan),
                    ("unw.tif", "no valid pixel")),
    "all_zero_mask": (lambda s: _mask(s, 0.0), ("mask.tif", "0 everywhere")),
    "mask_wrong_shape": (lambda s: _mask(s, 1.0, (20, 24)), ("mask.tif", "grid")),
    "all_zero_conncomp": (_conncomp_zero, (".cc.tif", "0 (unreliable) everywhere")),
    "two_band_ifg": (lambda s: _rewrite(_first(s), lambda a: np.stack([a, a])),
                     ("unw.tif", "2 bands")),
    "first_ifg_off_grid": (lambda s: (_crop(_first(s)), {"correlation": f"{s}/cor/*.cor.tif"})[1],
                           (".unw.tif", "not on the grid")),
    "reference_outside": (lambda s: {"reference_point": [50, 3]},
                          ("insar.reference_point", "outside")),
    "disconnected": (lambda s: _cut_network(s), ("disconnected",)),
    "exclude_date_not_in_stack": (lambda s: {"exclude_dates": ["2020-01-14"]},
                                  ("insar.exclude_dates", "2020-01-14", "nearest: 2020-01-13")),
    "lonlat_outside": (lambda s: {"reference_lonlat": [10.0, 45.0]},
                       ("insar.reference_lonlat", "outside the rasters")),
}


@pytest.mark.parametrize("case", sorted(INSAR_CASES))
def test_insar_bad_input(tmp_path, case):
    edit, expect = INSAR_CASES[case]
    _insar_case(tmp_path, edit, expect)


# ------------------------------------------------------------------ awkward but valid


def test_output_dir_with_spaces_quotes_and_non_ascii(tmp_path):
    box = tmp_path / "box"
    _two(box / "data")
    _rtc_tif(box / "data" / "c_20200125.tif", seed=3)
    out = box / "my out's \"résultats\" ü"
    p = run_case(box, {"output_dir": str(out),
                       "rtc": {"inputs": f"{box}/data/*.tif", "tiles": [2, 2],
                               "requirement_m": 10.0}}, "rtc")
    assert p.returncode == 0, p.stderr[-3000:]
    assert (out / "rtc" / "summary.csv").exists()
    # Unrelated speckle: nothing measurable, and said so.
    assert "not_measurable" in (out / "rtc" / "summary.csv").read_text()


def test_outputs_honour_the_umask(tmp_path):
    box = tmp_path / "box"
    _two(box / "data")
    old = os.umask(0o022)
    try:
        p = run_case(box, {"output_dir": str(box / "out"),
                           "rtc": {"inputs": f"{box}/data/*.tif", "tiles": [2, 2]}}, "rtc")
    finally:
        os.umask(old)
    assert p.returncode == 0, p.stderr[-3000:]
    for f in ("scenes.csv", "summary.csv", "tiles.geojson"):
        assert (box / "out" / "rtc" / f).stat().st_mode & 0o777 == 0o644, f
    staging = [f for f in (box / "out").rglob(".*")
               if f.is_file() and f.name != ".snakemake_timestamp"]  # Snakemake's own marker
    assert not staging


def test_undeclared_fill_value_is_nodata(tmp_path):
    """A 3.4e38 border without a nodata tag is read as nodata, not as backscatter."""
    from sarstack import rtc

    flatten_stats = with_schema_defaults(rtc.flatten_stats)

    rng = np.random.default_rng(0)
    a = rng.gamma(4.0, 0.05, (64, 64)).astype(np.float32)
    a[:, :8] = np.float32(3.4e38)
    _rtc_tif(tmp_path / "a_20200101.tif", a)
    layout = rtc.tile_layout((64, 64), (2, 2))
    lo, hi, valid = flatten_stats(tmp_path / "a_20200101.tif", (0, 100), layout)
    assert hi < 10 and valid[:, 0].max() < 0.80 and valid[:, 1].min() > 0.99


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    """Snakemake rejects a broken --configfile itself (exit 1, its own words);
    ``python -m sarstack.config`` names the file, line and column (README)."""
    box = tmp_path / "box"
    box.mkdir()
    cfg = box / "config.yaml"
    cfg.write_text(f"output_dir: {box / 'out'}\nrtc:\n  tiles: [4, 4\n  inputs: x\n")
    p = run_case(box, None)
    assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr
    assert not (box / "out").exists()
    q = subprocess.run([sys.executable, "-m", "sarstack.config", str(cfg)],
                       capture_output=True, text=True)
    assert q.returncode == 2 and "Traceback" not in q.stderr
    assert q.stderr.strip() == f"error: {cfg}:4:9: not valid YAML (expected ',' or ']', but got ':')"

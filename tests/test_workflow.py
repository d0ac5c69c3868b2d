"""The Snakemake workflow end to end: lint, dry-runs, the demo against its
truth, reruns after a config change, and bad input."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import SNAKEMAKE, schema_defaults

from sarstack import rtc
from sarstack.options import config_args

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow

SCRIPTS = ROOT / "workflow" / "scripts"


def snakemake(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args], cwd=ROOT, capture_output=True, text=True, env=env
    )
    if check and p.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_lint_clean():
    p = snakemake("--lint")
    assert "Congratulations" in p.stdout + p.stderr


def test_dry_run_demo_dag(tmp_path):
    p = snakemake("-n", "--config", f"output_dir={tmp_path}")
    out = p.stdout + p.stderr
    # The demo's RTC stack is small: its whole chain is one rtc_batch_1 job.
    for rule in ("demo_rtc_stack", "rtc_batch_1"):
        assert rule in out


def test_bad_config_value_one_line_error(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", {"output_dir": str(tmp_path / "o"),
                                             "rtc": {"max_nan_fraction": 1.5}})
    p = snakemake("-n", "--configfile", str(cfg), check=False)
    assert p.returncode != 0
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert errors == ["error: config rtc.max_nan_fraction: 1.5 is greater than the maximum of 1"]
    assert not (tmp_path / "o").exists()


def test_demo_end_to_end_matches_truth(tmp_path):
    out = tmp_path / "res"
    # One job per stage (fuse_small_stacks: false), to check below that a
    # changed option reruns its stage and what follows, not what precedes.
    base = {"output_dir": str(out), "rtc": {"pairs": "nearest:2", "requirement_m": 10.0,
                                            "fuse_small_stacks": False},
            "insar": {"enabled": False}, "demo": {"enabled": True}}
    cfg0 = write_config(tmp_path / "c0.yaml", base)
    run = snakemake("--configfile", str(cfg0))
    # The run ends with its summary on the terminal (verdict, pairs, max offset, requirement).
    tail = run.stderr[run.stderr.index("=== sarstack summary ==="):].splitlines()
    assert tail[1].startswith("rtc: verdict ") and "(requirement 10 m)" in tail[1]
    assert f"{out}/rtc/summary.csv" in run.stderr.split("=== sarstack summary ===")[1]
    # Chunk jobs follow the work, not --cores: another core count plans nothing.
    p = subprocess.run([*SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(cfg0)], cwd=ROOT,
                       capture_output=True, text=True)
    assert "Nothing to be done" in p.stdout + p.stderr, p.stdout[-2000:]
    # ... and a run that did nothing repeats no summary.
    p = subprocess.run([*SNAKEMAKE, "--cores", "3", "--configfile", str(cfg0)], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0 and "sarstack summary" not in p.stdout + p.stderr
    acc = pd.read_csv(out / "demo" / "rtc_accuracy.csv")
    assert len(acc) == 9 and (acc["status"] == "ok").all()
    # Sign and axes: measured offsets agree with the truth, both axes, within 0.05 px.
    assert np.abs(acc[["err_east_px", "err_north_px"]].to_numpy()).max() < 0.05
    assert (np.sign(acc["east_m"]) == np.sign(acc["true_east_m"])).all()
    rtc_dir = out / "rtc"
    offsets = pd.read_csv(rtc_dir / "offsets.csv")
    assert {"reference_date", "secondary_date", "tile_row", "tile_col", "east_m", "north_m",
            "status", "peak_corr", "snr"} <= set(offsets.columns)
    assert (offsets["status"] == "too_many_nan").any()  # moving frames + NaN edges are exercised
    assert offsets.loc[offsets.status == "too_many_nan", "east_m"].isna().all()
    for png in ("pair_offsets", "tile_mean_offsets", "offsets_vs_time", "tile_quiver",
                "absolute_offsets"):
        assert (rtc_dir / "plots" / f"{png}.png").stat().st_size > 1000
    # Absolute geolocation at the demo's point targets: each date's known shift within 0.1 px.
    absolute = pd.read_csv(out / "demo" / "rtc_absolute_accuracy.csv")
    assert len(absolute) == 6 and (absolute["n_ok"] >= 5).all() and absolute["passes"].all()
    assert np.abs(absolute[["err_east_px", "err_north_px"]].to_numpy()).max() < 0.1
    assert (np.sign(absolute["east_m"]) == np.sign(absolute["true_east_m"])).all()
    summary = pd.read_csv(rtc_dir / "summary.csv").iloc[0]
    expected = "pass" if summary["max_offset_m"] <= summary["requirement_m"] else "fail"
    assert summary["verdict"] == expected
    for rule in ("rtc_select", "rtc_xcorr", "rtc_aggregate"):
        assert any((out / "benchmarks" / "rtc").glob(f"{rule.split('_', 1)[1]}*.tsv"))

    # Per-date offsets from the nearest:2 network match the per-date truth
    # (relative to the first date) within 0.05 px.
    truth = pd.read_csv(out / "demo" / "rtc" / "truth.csv")
    per_date = pd.read_csv(out / "rtc" / "dates.csv")
    assert list(per_date["date"]) == list(truth["date"])
    for comp in ("east", "north"):
        true_rel = truth[f"{comp}_m"] - truth[f"{comp}_m"].iloc[0]
        assert np.abs(per_date[f"{comp}_m"] - true_rel).max() < 0.05 * 30.0
    assert (out / "rtc" / "plots" / "date_offsets.png").stat().st_size > 1000

    # A changed stage parameter reruns that stage and what follows, not what precedes.
    cfg = write_config(tmp_path / "c.yaml", {**base, "rtc": {**base["rtc"],
                                                             "upsample_factor": 20}})
    p = snakemake("-n", "--configfile", str(cfg))
    plan = p.stdout + p.stderr
    assert "rtc_xcorr" in plan and "rtc_aggregate" in plan
    assert "rtc_flatten" not in plan and "demo_rtc_stack" not in plan
    # Nothing to do when nothing changed.
    p = snakemake("-n", "--configfile", str(cfg0))
    assert "Nothing to be done" in p.stdout + p.stderr

    # The HTML report holds the verdict table (summary.csv) and the pair table.
    snakemake("--configfile", str(cfg0), "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text()
    tables = [
        base64.b64decode(m.group(1)).decode()
        for m in re.finditer(r"data:text/csv[^,\"]*;base64,([A-Za-z0-9+/=]+)", html)
    ]
    verdicts = [t for t in tables if t.startswith("n_pairs,") and ",verdict" in t]
    assert len(verdicts) == 1 and f",{summary['verdict']}," in verdicts[0]
    assert any(t.startswith("reference_date,secondary_date,east_m,north_m,east_spread_m")
               for t in tables)


# The two real bursts (land: pass; sea: not measurable) run as two stacks of one
# run in test_rtc_stacks.py.


# ----------------------------------------------------------------- bad input


def _select(tmp_path: Path, pattern: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "rtc_select.py"), "--inputs", pattern,
         "--scenes", str(tmp_path / "out" / "scenes.csv"), "--grid", str(tmp_path / "out" / "grid.json"),
         *config_args("rtc_select", schema_defaults())],
        capture_output=True, text=True,
    )


def _tif(path: Path, value: float = 1.0) -> None:
    from affine import Affine
    from rasterio.crs import CRS

    from sarstack import io

    io.write_raster(path, np.full((16, 16), value, np.float32),
                    io.Grid(CRS.from_epsg(32611), Affine(30, 0, 0, 0, -30, 0), 16, 16))


def test_demo_injection_recovery_in_both_layouts(tmp_path):
    """rtc.injection on the demo: injection.csv and the summary's injection_*
    columns, the terminal line, and the same table from the batched job
    (rtc_batch_1) and from the per-stage jobs."""
    tables = []
    for fuse in (True, False):
        out = tmp_path / f"res{int(fuse)}"
        cfg = write_config(tmp_path / f"c{int(fuse)}.yaml", {
            "output_dir": str(out), "insar": {"enabled": False}, "demo": {"enabled": True},
            "rtc": {"injection": {"enabled": True, "max_shift_px": 0.4, "seed": 3},
                    "fuse_small_stacks": fuse, "requirement_m": 10.0},
        })  # fmt: skip
        run = snakemake("--configfile", str(cfg))
        line = run.stderr.split("=== sarstack summary ===")[1].splitlines()[1]
        assert re.search(r"injection-recovery over 5 dates: RMS error 0\.0[0-4]\d px", line), line
        assert "100% of dates within the requirement" in line
        inj = pd.read_csv(out / "rtc" / "injection.csv")
        assert list(inj.columns) == rtc.INJECTION_COLUMNS and len(inj) == 6
        assert inj["error_m"].iloc[0] == 0.0 and np.abs(inj["injected_north_m"]).max() > 3.0
        summary = pd.read_csv(out / "rtc" / "summary.csv").iloc[0]
        assert summary["injection_rms_px"] <= 0.05 and summary["injection_n_dates"] == 5
        tables.append(inj)
    pd.testing.assert_frame_equal(tables[0], tables[1])



@pytest.mark.parametrize(
    ("files", "expect"),
    [
        ([], "no files match"),
        (["a_20200101.tif"], "only one scene"),
        (["a_20200101.tif", "nodate.tif"], "nodate.tif: no date"),
        (["a_20200101.tif", "b_20200101T000001.tif"], "same date 2020-01-01"),
        (["a_20200101.tif", "broken_20200113.tif"], "broken_20200113.tif: not a readable raster"),
    ],
)
def test_select_bad_input_one_line_error_nothing_written(tmp_path, files, expect):
    data = tmp_path / "data"
    data.mkdir()
    for name in files:
        if name.startswith("broken"):
            (data / name).write_bytes(b"II*\x00garbage")
        else:
            _tif(data / name)
    p = _select(tmp_path, str(data / "**" / "*.tif"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0], p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_scripts_have_help():
    """Every stage's shim is the one line that runs it, and every stage has a
    --help (parsers built in-process; two shims run for real as a check that
    the line works: each process start costs a second)."""
    import importlib

    from sarstack.cli import STAGES

    shims = sorted(SCRIPTS.glob("*.py"))
    assert sorted(p.stem for p in shims) == sorted(STAGES)
    line = shims[0].read_text()
    assert all(p.read_text() == line for p in shims), "shims differ"
    for stage in STAGES:
        help_text = importlib.import_module(f"sarstack.cli.{stage}").create_parser().format_help()
        assert help_text.startswith("usage:"), stage
    for script in (SCRIPTS / "rtc_select.py", SCRIPTS / "insar_invert.py"):
        p = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
        assert p.returncode == 0 and "usage:" in p.stdout, script.name


def test_workflow_failure_leaves_no_partial_output(tmp_path):
    """A job that fails (unreadable scene) leaves nothing behind for that rule."""
    data = tmp_path / "data"
    data.mkdir()
    _tif(data / "a_20200101.tif")
    shutil.copy(data / "a_20200101.tif", data / "b_20200113.tif")
    (data / "c_20200125.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "res"
    cfg = write_config(tmp_path / "c.yaml", {"output_dir": str(out),
                                             "rtc": {"inputs": f"{data}/*.tif", "tiles": [2, 2]}})
    p = snakemake("rtc", "--configfile", str(cfg), check=False)
    assert p.returncode != 0
    assert not (out / "rtc" / "scenes.csv").exists()
    log = (out / "logs" / "rtc" / "select.log").read_text()
    assert "c_20200125.tif: not a readable raster" in log


def test_slurm_profile_parses(tmp_path):
    """profiles/slurm is a valid workflow profile (the executor swapped for a dry run).

    The plugin's own settings (``slurm-*`` keys) are options only where
    snakemake-executor-plugin-slurm is installed (``.[slurm]``); without it they
    are left out of a copy of the profile and every other key is checked.
    (tests/test_slurm.py runs the profile as it is on a real cluster.)"""
    import importlib.util

    import yaml

    profile = ROOT / "profiles" / "slurm"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        settings = yaml.safe_load((profile / "config.yaml").read_text())
        assert any(k.startswith("slurm-") for k in settings)
        profile = tmp_path / "profile"
        profile.mkdir()
        (profile / "config.yaml").write_text(yaml.safe_dump(
            {k: v for k, v in settings.items() if not k.startswith("slurm-")}))  # fmt: skip
    p = snakemake("-n", "--workflow-profile", str(profile), "--executor", "dryrun",
                  "--config", f"output_dir={tmp_path / 'o'}")
    assert "rtc_batch_1" in p.stdout + p.stderr


def test_slurm_profile_groups_every_chain_rule_and_no_local_rule():
    """Each rule after the selects runs in its branch's group job on SLURM (one
    submission per stack), and no localrule is in a group (a group sends its
    rules to the scheduler: a demo check after the RTC batch was one more
    round trip)."""
    import yaml

    groups = dict(g.split("=") for g in
                  yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())["groups"])  # fmt: skip
    snakefile = (ROOT / "Snakefile").read_text()
    local = set(re.findall(r"^\s+(\w+),$", snakefile.split("localrules:")[1].split("rule all")[0],
                           re.M))  # fmt: skip
    assert {"rtc_select", "insar_select", "demo_rtc_check", "quality_dates"} <= local
    assert not local & set(groups), local & set(groups)
    rules = set()
    for smk in ("rtc.smk", "insar.smk", "demo.smk"):
        rules |= set(re.findall(r"^(?:rule|checkpoint) (\w+):", (ROOT / "workflow/rules" / smk).read_text(),
                                re.M))  # fmt: skip
    chain = {r for r in rules if r.startswith(("rtc_", "insar_")) and r not in local
             and r != "rtc_batch"}  # fmt: skip
    assert "insar_invert" in chain and "rtc_xcorr" in chain
    assert chain <= set(groups), sorted(chain - set(groups))


def test_params_serializer_without_pandas_gives_snakemakes_records(monkeypatch):
    """common.smk's `_params_without_pandas`: Snakemake's rerun check no longer
    imports pandas to serialize params, with the same records as Snakemake's
    own serializer (and Snakemake's own once pandas is imported)."""
    from snakemake.persistence import PersistenceBase

    own = PersistenceBase._serialize_param_pandas
    assert hasattr(PersistenceBase, "_serialize_param_builtin")  # what the tweak relies on
    text = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    src = text[text.index("def _params_without_pandas"):text.index("\n_params_without_pandas()")]
    ns: dict = {"sys": sys}
    exec(src, ns)  # noqa: S102 - the workflow's own code
    monkeypatch.setattr(PersistenceBase, "_serialize_param_pandas", own)
    ns["_params_without_pandas"]()
    tweaked = PersistenceBase._serialize_param_pandas
    assert tweaked is not own
    ns["_params_without_pandas"]()  # applied once
    assert PersistenceBase._serialize_param_pandas is tweaked
    p = type("P", (), {"_serialize_param_builtin": PersistenceBase._serialize_param_builtin})()
    values = ["--method L2 --block 64 512", 3, 2.5, None, ["a", 1], {"k": (1, 2)}, Path("x")]
    want = [own(p, v) for v in values]
    with monkeypatch.context() as m:
        m.delitem(sys.modules, "pandas")
        m.setattr("builtins.__import__", _no_pandas_import(__import__))
        assert [tweaked(p, v) for v in values] == want
    frame = pd.DataFrame({"a": [1, 2]})
    assert tweaked(p, frame) == own(p, frame) != own(p, [1, 2])


def _no_pandas_import(real):
    def imp(name, *a, **k):
        if name.split(".")[0] == "pandas":
            raise AssertionError("pandas imported")
        return real(name, *a, **k)

    return imp

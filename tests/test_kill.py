"""``kill -9`` at every stage, then the rerun README documents (the same command
with ``--unlock`` once, then with ``--rerun-incomplete``): outputs identical to an uninterrupted run and no
staging file left behind (issue 10)."""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import small_workflow_config

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow

# Per branch target, one job log per stage in DAG order: the run is killed as soon
# as that job has started (one branch at a time, else the other branch's jobs
# finish in the background of the first's). rtc_reflectors needs only the scene
# table, so the scheduler may run it before or after the whole chain: its own
# output is its target (a path under output_dir), else a loaded machine can run
# everything else first and leave no later stage to kill.
STAGES = [
    ("rtc", "demo/rtc_stack"), ("rtc", "rtc/select"), ("rtc/reflectors.csv", "rtc/reflectors"),
    ("rtc", "rtc/flatten_"), ("rtc", "rtc/xcorr_"),
    ("rtc", "rtc/aggregate"),
    # three strips: select and reference run as one insar_head job, gather,
    # velocity and plots as one insar_tail job
    ("insar", "demo/insar_stack"), ("insar", "insar/head"), ("insar", "insar/invert_"),
    ("insar", "insar/tail"),
]


def _snakemake(cfg: Path, target: str = "all") -> list[str]:
    # Its own working directory (Snakemake's .snakemake, locks included, beside the
    # config): the unlocks below must not remove the locks of runs of other tests.
    return [sys.executable, "-m", "snakemake", target, "--cores", "2", "--configfile", str(cfg),
            "--rerun-incomplete", "--snakefile", str(ROOT / "Snakefile"),
            "--directory", str(cfg.parent)]


def _unlock(workdir: Path) -> None:
    """What ``snakemake --unlock`` does, without starting Snakemake (about 2 s a
    time): remove the locks a killed run left. The documented ``--unlock`` runs
    once, before the final rerun."""
    for lock in (workdir / ".snakemake" / "locks").glob("*.lock"):
        lock.unlink(missing_ok=True)


def _kill_when_started(cmd: list[str], logs: Path, stage: str) -> bool:
    """Unlock (a killed run leaves Snakemake's lock), run ``cmd``, SIGKILL its
    whole process group once a log of ``stage`` is (re)written. False when the
    run ended without reaching the stage."""
    _unlock(Path(cmd[cmd.index("--directory") + 1]))
    t0 = time.time()
    err = logs.parent.parent / f"kill-{stage.replace('/', '-')}.txt"  # for a failure's message
    with open(err, "w") as f:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    folder, prefix = (logs / stage).parent, (logs / stage).name
    while p.poll() is None:
        if folder.is_dir() and any(f.name.startswith(prefix) and f.stat().st_mtime >= t0
                                   for f in folder.iterdir()):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return True
        time.sleep(0.01)
    return False


def _results(out: Path) -> list[Path]:
    skip = {"logs", "benchmarks"}
    # Snakemake's directory(...) markers are its bookkeeping, not results.
    return sorted(p.relative_to(out) for p in out.rglob("*")
                  if p.is_file() and p.name != ".snakemake_timestamp"
                  and not skip & set(p.relative_to(out).parts))


def _without_fingerprints(rel: Path, text: str) -> str:
    """The text without the select stages' ``fingerprint`` bookkeeping (each input
    file's size and mtime: the two runs generate their demo inputs at other times)."""
    import csv
    import io
    import json

    if rel.suffix == ".json":
        data = json.loads(text)
        for scene in data.get("scenes", []) if isinstance(data, dict) else []:
            scene.pop("fingerprint", None)
        return json.dumps(data)
    rows = list(csv.reader(io.StringIO(text)))
    if rel.suffix != ".csv" or not rows or "fingerprint" not in rows[0]:
        return text
    k = rows[0].index("fingerprint")
    return "\n".join(",".join(r[:k] + r[k + 1:]) for r in rows)


def _same(clean: Path, out: Path, rel: Path) -> bool:
    """Byte-identical, except that text files name their own output folder and
    the select stages' tables record when their inputs were written."""
    a, b = clean / rel, out / rel
    if filecmp.cmp(a, b, shallow=False):
        return True
    if a.suffix in {".csv", ".json", ".vrt", ".geojson", ".txt"}:
        ta, tb = a.read_text().replace(str(clean), str(out)), b.read_text()
        return ta == tb or _without_fingerprints(rel, ta) == _without_fingerprints(rel, tb)
    return False


def test_kill_at_every_stage_then_rerun_gives_identical_outputs(tmp_path, small_workflow_run):
    clean = small_workflow_run(3)  # the uninterrupted reference (also used by test_scatter)
    out = tmp_path / "killed"
    cfg_b = small_workflow_config(tmp_path / "killed.yaml", out, scatter=3)
    killed, why = [], {}
    for target, stage in STAGES:
        # A second try when a run ended before the stage: a rerun that itself
        # failed is reported below with its output (one CI run saw that once).
        for _ in range(2):
            goal = str(out / target) if "/" in target else target
            if _kill_when_started(_snakemake(cfg_b, goal), out / "logs", stage):
                killed.append(stage)
                break
            why[stage] = (tmp_path / f"kill-{stage.replace('/', '-')}.txt").read_text()[-1500:]
    assert len(killed) >= len(STAGES) - 2, f"not killed at {sorted(set(why) - set(killed))}: {why}"
    subprocess.run([*_snakemake(cfg_b), "--unlock"], cwd=ROOT, capture_output=True, check=True)
    p = subprocess.run(_snakemake(cfg_b), cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]

    # Hidden files other than Snakemake's directory(...) markers are staging files.
    staging = [f for f in out.rglob(".*") if f.is_file() and f.name != ".snakemake_timestamp"]
    assert not staging, f"staging files left: {staging[:5]}"
    files = _results(clean)
    assert len(files) > 30 and _results(out) == files
    differ = [str(f) for f in files if f.suffix != ".png" and not _same(clean, out, f)]
    assert not differ, f"differ after kill -9 and rerun: {differ}"

"""Every command README's "Your own data" block and each example config's
header show, run exactly as written (as dry-runs; the report command for real
on an empty output folder), so the documentation cannot drift from the CLI."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SNAKEMAKE

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.workflow, pytest.mark.xdist_group("readme_my_yaml")]  # one my.yaml


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def _commands(script: str) -> list[str]:
    out = []
    for line in script.splitlines():
        cmd = line.split("#", 1)[0].strip()
        if cmd.startswith(("snakemake", ".venv/bin/snakemake")):
            out.append(cmd)
    return out


def _run(cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    args = shlex.split(cmd)
    args = [*SNAKEMAKE, *args[1:]]  # + --nolock (tests run in parallel, see conftest)
    if "--report" not in args:
        args.append("-n")  # a dry-run: the data paths need not exist
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True)


README = (ROOT / "README.md").read_text()
OWN = _section(README, "Your own data")
OWN_COMMANDS = _commands("\n".join(_blocks(OWN, "bash")))


def test_readme_own_data_block_has_commands():
    assert len(OWN_COMMANDS) >= 5 and len(_blocks(OWN, "yaml")) == 1


@pytest.fixture(scope="module")
def my_yaml(tmp_path_factory):
    """README's my.yaml, its data paths pointed at a small synthetic stack (the
    README's /data/... stands for the user's own files)."""
    from sarstack import synthetic

    data = tmp_path_factory.mktemp("my_data")
    synthetic.make_rtc_stack(data / "rtc", n_dates=3, shape=(128, 128), seed=1)
    synthetic.make_ifg_stack(data / "ifgs", n_dates=5, shape=(32, 32), seed=1)
    text = _blocks(OWN, "yaml")[0]
    text = text.replace("/data/my_burst/**/*_VV.tif", f"{data}/rtc/**/*_VV.tif")
    text = text.replace("/data/ifgs/*.unw.tif", f"{data}/ifgs/ifgs/*.unw.tif")
    text = text.replace("/data/ifgs/*.cor.tif", f"{data}/ifgs/cor/*.cor.tif")
    assert str(data) in text
    # One holder of my.yaml (and results/my_burst) at a time, whichever test process
    # (pytest-xdist worker) sets this fixture up; held until its teardown.
    import fcntl

    (ROOT / ".snakemake").mkdir(exist_ok=True)  # git-ignored
    with open(ROOT / ".snakemake" / "test-my-yaml.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = ROOT / "my.yaml"
        assert not path.exists(), "tests/test_docs_commands.py would overwrite my.yaml"
        path.write_text(text)
        out = ROOT / "results" / "my_burst"
        shutil.rmtree(out, ignore_errors=True)
        try:
            yield path
        finally:
            path.unlink()
            (ROOT / "report.html").unlink(missing_ok=True)
            shutil.rmtree(out, ignore_errors=True)


def _needs_finished_run(cmd: str) -> bool:
    """A report, and a stage's command printed for a rerun, need a finished run."""
    return "--report" in cmd or "--forcerun" in cmd and "-p" in shlex.split(cmd)


@pytest.mark.parametrize("cmd", OWN_COMMANDS)
def test_readme_own_data_command_runs_as_written(cmd, my_yaml):
    if _needs_finished_run(cmd):  # the README's first command, for real
        first = shlex.split(OWN_COMMANDS[0])
        done = subprocess.run([*SNAKEMAKE, *first[1:]], cwd=ROOT,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    p = _run(cmd)
    assert p.returncode == 0, f"{cmd}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    assert "Traceback" not in p.stderr
    if "--report" in cmd:
        assert (ROOT / "report.html").stat().st_size > 10_000
    elif _needs_finished_run(cmd):
        _rerun_printed_stage_by_hand(cmd, p.stdout + p.stderr)
    else:
        out = p.stdout + p.stderr
        assert "demo_" not in out  # a user's config never runs the demo
        if "rtc" in shlex.split(cmd):
            assert "insar_" not in out


def _project_requirements() -> list:
    """pyproject.toml's [project] dependencies: what README command 1 installs
    (the ``test`` extra is command 2's)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_report_dependencies_come_with_command_1():
    """README's --report line works after command 1 (``pip install -e .``): every
    package Snakemake's HTML report needs (its ``reports`` extra) is a dependency."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    report_needs = set()
    for r in map(Requirement, requires("snakemake") or []):
        if r.marker is not None and r.marker.evaluate({"extra": "reports"}) \
                and not r.marker.evaluate({"extra": ""}):  # fmt: skip
            report_needs.add(r.name.lower())
    assert "pygments" in report_needs  # "Python package pygments must be installed ..."
    deps = _project_requirements()
    names = {r.name.lower() for r in deps}
    snakemake = next(r for r in deps if r.name.lower() == "snakemake")
    missing = sorted(n for n in report_needs if n not in names and "reports" not in snakemake.extras)
    assert not missing, f"--report needs {missing}: not in pyproject's [project] dependencies"
    assert "--report" in " ".join(OWN_COMMANDS)


def _rerun_printed_stage_by_hand(cmd: str, out: str) -> None:
    """README's rerun-by-hand recipe: the dry-run plans only the forced stage and
    prints its command; that command, run by hand as README says (in the
    virtualenv, up to ``|| sarstack_fail``), rewrites the stage's outputs as they were."""
    stage = shlex.split(cmd)[shlex.split(cmd).index("--forcerun") + 1]
    planned = set(re.findall(r"^(\w+)\s+1$", out, flags=re.M)) - {"total"}
    assert planned == {stage}, out[-3000:]
    printed = [ln.split(": ", 1)[1] for ln in out.splitlines() if ln.startswith("Shell command:")]
    first = {"insar_small": "insar_select"}.get(stage, stage)  # a chain's first stage
    assert len(printed) == 1 and printed[0].startswith(f"python -m sarstack {first} "), out[-3000:]
    by_hand = printed[0].split(" || sarstack_fail")[0]
    pairs = ROOT / "results" / "my_burst" / {"insar_velocity": "insar/velocity.tif",
                                             "insar_small": "insar/velocity.tif",
                                             "rtc_aggregate": "rtc/pairs.csv"}[stage]
    before = pairs.read_bytes()
    pairs.unlink()
    venv = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run(["bash", "-c", by_hand], cwd=ROOT, env=venv, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert pairs.read_bytes() == before


EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.yaml"))


def _shared_datasets(example: Path) -> list[str]:
    """The ``../shared/data/<name>`` datasets an example config reads (relative to
    the checkout, where its header command runs: SARSTACK_SHARED_DATA cannot move them)."""
    return sorted(set(re.findall(r"\.\./shared/data/([^/\"'\s]+)", example.read_text())))


@pytest.mark.parametrize("example", [
    pytest.param(p, marks=[pytest.mark.realdata] if _shared_datasets(p) else [])
    for p in EXAMPLES], ids=lambda p: p.name)  # fmt: skip
def test_example_config_header_command_runs_as_written(example):
    missing = [n for n in _shared_datasets(example)
               if not (ROOT.parent / "shared" / "data" / n).is_dir()]  # fmt: skip
    if missing:  # a clone without ../shared beside it: a user outside the team
        pytest.skip(f"{example.name} reads ../shared/data/{missing[0]}, absent beside "
                    f"this checkout ({ROOT.parent / 'shared' / 'data'})")
    header = [ln for ln in example.read_text().splitlines() if ln.startswith("#")]
    cmds = [m.group(1).strip() for ln in header if (m := re.search(r"Run: (snakemake .*)", ln))]
    assert cmds, f"{example.name}: no '# Run: snakemake ...' line in its header"
    for cmd in cmds:
        p = _run(cmd)
        assert p.returncode == 0, f"{cmd}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
        assert "demo_" not in p.stdout + p.stderr


def test_rtc_only_user_config_runs_no_insar_and_no_demo():
    """An RTC-only config (no insar.unwrapped) plans no InSAR job and no demo, even for `all`."""
    p = subprocess.run([*SNAKEMAKE, "-n", "--cores", "2",
                        "--configfile", "config/examples/opera_sea.yaml",
                        "--config", "output_dir=results/rtc_only_dry"],
                       cwd=ROOT, capture_output=True, text=True)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-2000:]
    # rtc_batch_1 where the burst's files are there (a small stack), else the select
    assert ("rtc_batch_1" in out or "rtc_select" in out) and "insar_" not in out
    assert "demo_" not in out
    assert "note: insar branch skipped" in p.stderr


def test_shipped_config_still_runs_both_demos():
    p = subprocess.run([*SNAKEMAKE, "-n", "--cores", "2",
                        "--config", "output_dir=results/demo_dry"],
                       cwd=ROOT, capture_output=True, text=True)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-2000:]
    assert "demo_rtc_stack" in out and "demo_insar_stack" in out

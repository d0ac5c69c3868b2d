"""The ``sarstack`` command, its stages, the one-line shims and a moved checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SNAKEMAKE

from sarstack import cli

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_stage_and_each_stage_has_help(capsys):
    cli.main(["--help"])
    listing = capsys.readouterr().out
    modules = sorted(p.stem for p in (ROOT / "src/sarstack/cli").glob("*.py")
                     if p.stem != "__init__")  # fmt: skip
    assert sorted(cli.STAGES) == modules
    for stage in cli.STAGES:
        assert f"  {stage} " in listing
        with pytest.raises(SystemExit) as e:
            cli.main([stage, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: sarstack {stage}") and "--verbose" in out, stage
    cli.main(["--version"])
    assert capsys.readouterr().out.strip() == "sarstack 0.1.0"
    with pytest.raises(SystemExit) as e:
        cli.main(["no_such_stage"])
    assert e.value.code == 2 and "unknown stage" in capsys.readouterr().err


def test_shims_are_one_line_and_no_sys_path_edits():
    shims = sorted((ROOT / "workflow/scripts").glob("*.py"))
    assert sorted(p.stem for p in shims) == sorted(cli.STAGES)
    for p in shims:
        assert len(p.read_text().splitlines()) == 1, p
    for top in ("src", "workflow", "tests"):
        for p in (ROOT / top).rglob("*.py"):
            assert "sys.path.insert" not in p.read_text() or p.name == "test_cli.py", p
    for p in (ROOT / "workflow/rules").glob("*.smk"):
        text = p.read_text()
        assert "workflow/scripts" not in text and "{input.script" not in text, p


def test_console_entry_and_module_run_a_stage(tmp_path):
    p = subprocess.run([sys.executable, "-m", "sarstack", "insar_select", "--unwrapped",
                        str(tmp_path / "none*.tif"), "--out", str(tmp_path / "x.csv"),
                        "--date-format", "%Y%m%d", "--block", "512", "512",
                        "--loop-exclude"],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 2 and p.stderr.startswith("error: insar.unwrapped: no files match")


@pytest.mark.workflow
def test_moved_checkout_has_nothing_to_do(small_workflow_run, tmp_path):
    """Job inputs, params and commands hold no path of the checkout: a finished
    run, its checkout copied elsewhere (with .snakemake), is still complete."""
    out = small_workflow_run(1)
    moved = tmp_path / "elsewhere" / "sarstack"
    skip = {".venv", ".git", "results", ".ci-results", ".pytest_cache", ".ruff_cache"}
    shutil.copytree(ROOT, moved, symlinks=True,
                    ignore=lambda d, names: [n for n in names if Path(d) == ROOT and n in skip])
    cfg = out.parent / "config.yaml"
    p = subprocess.run([*SNAKEMAKE, "-n", "--cores", "2",
                        "--configfile", str(cfg)], cwd=moved, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONWARNINGS="ignore"))  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Nothing to be done" in p.stdout + p.stderr, (p.stdout + p.stderr)[-3000:]


@pytest.mark.workflow
def test_no_input_hashes_in_job_metadata(small_workflow_run):
    """profiles/default (max-checksum-file-size: 0) is applied to a plain run:
    Snakemake's record of a finished job holds no SHA-256 of its inputs (it
    hashed each small input once per output file of every job); profiles/slurm
    sets the same."""
    import base64
    import json

    import yaml

    out = small_workflow_run(1)
    target = out / "insar" / "velocity.tif"
    key = base64.urlsafe_b64encode(str(target).encode()).decode()
    max_len = os.pathconf(ROOT, "PC_NAME_MAX") - 1
    parts = [key[i : i + max_len] for i in range(0, len(key), max_len)]
    record = ROOT / ".snakemake" / "metadata" / Path(*["@" + s for s in parts[:-1]], parts[-1])
    meta = json.loads(record.read_text())
    small_inputs = [f for f in meta["input"] if Path(f).is_file() and Path(f).stat().st_size < 10**6]
    assert small_inputs, meta["input"]  # inputs Snakemake would have hashed
    assert meta["input_checksums"] == {}
    for profile in ("default", "slurm"):
        settings = yaml.safe_load((ROOT / "profiles" / profile / "config.yaml").read_text())
        assert settings["max-checksum-file-size"] == 0


def test_every_stage_option_has_help():
    """``sarstack <stage> --help`` explains every option and positional argument."""
    import argparse
    import importlib

    missing = []
    for stage in cli.STAGES:
        parser = importlib.import_module(f"sarstack.cli.{stage}").create_parser()
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS or not action.help.strip():
                missing.append(f"{stage} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "options without help: " + ", ".join(missing)


def test_each_rule_runs_the_stage_of_its_name():
    """A rule and the stage it runs have one name (``rule X`` runs ``sarstack X``)."""
    import re

    seen: dict[str, list[str]] = {}
    optional: set[str] = set()
    for path in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        # Command fragments shared by rules (RTC_*_CMD = (...)), put in place.
        for name, body in re.findall(r"^(\w+_CMD) = \(\n(.*?)\n\)", text, re.S | re.M):
            frag = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', body))
            text = text.replace("{" + name + "}", frag)
            # A fragment that a rule's chain gets only when an option is on
            # (RTC_INJECTION_CMD, through common.smk): its stage has a rule too.
            optional |= set(re.findall(r"^(\w+) ", frag))
        text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("#"))
        for m in re.finditer(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)", text, re.S | re.M):
            # "python -m sarstack A ... :: B ...": a rule may chain stages.
            stages = re.findall(r"(?:python -m sarstack|\s::) (\w+)", m.group(2))
            if stages:
                seen[m.group(1)] = stages
    assert len(seen) >= 15, seen
    # A rule is named after one of the stages it runs, and every stage has a
    # rule (rtc_batch_N, small stacks' whole chains, runs the RTC rules' commands).
    assert {r: s for r, s in seen.items() if r not in s} == {}
    assert {s for stages in seen.values() for s in stages} | optional == set(cli.STAGES)


def test_chained_stages_run_in_turn_and_stop_at_the_first_failure(tmp_path):
    """``sarstack A ... :: B ...``: an unknown stage anywhere is refused before
    anything runs; a failing stage stops the chain with its one-line error."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "sarstack", "rtc_tiles", "--help", "::", "nope"],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 2 and "unknown stage 'nope'" in p.stderr and not p.stdout
    missing = tmp_path / "missing.json"
    out = tmp_path / "layout.geojson"
    p = subprocess.run(
        [sys.executable, "-m", "sarstack", "rtc_tiles", "--grid", str(missing), "--tiles", "2",
         "2", "--out", str(out), str(missing), "::", "rtc_tiles", "--help"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "usage:" not in p.stdout  # the second stage never ran
    assert not out.exists()


def test_chain_log_part_sends_what_follows_to_its_file(tmp_path):
    """``:: --log PATH ::`` sends the following stages' logs and errors to PATH
    (one job, several stacks, one log each); a malformed one is refused."""
    import subprocess
    import sys

    missing = tmp_path / "missing.json"
    first, second = tmp_path / "a" / "one.log", tmp_path / "two.log"
    stage = ["rtc_tiles", "--grid", str(missing), "--tiles", "2", "2", "--out",
             str(tmp_path / "layout.geojson"), str(missing)]  # fmt: skip
    p = subprocess.run(
        [sys.executable, "-m", "sarstack", "--log", str(first), "::", "--log", str(second),
         "::", *stage],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 2 and p.stderr == "" and first.read_text() == ""
    assert second.read_text().strip().splitlines()[-1].startswith(f"error: {missing}")
    p = subprocess.run([sys.executable, "-m", "sarstack", "--log", "::", "rtc_tiles"],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 2 and "--log takes one path" in p.stderr


def test_stages_keep_freed_memory_on_glibc():
    """Every stage asks glibc to keep large freed arrays (fewer page faults per
    block); where the C library is not glibc it says so instead of failing."""
    import platform

    from sarstack import cli

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    assert cli.keep_freed_memory() is True


def test_stage_processes_run_one_blas_thread():
    """Snakemake sets OPENBLAS_NUM_THREADS (and the others) to a job's threads;
    a stage process sets them to one before NumPy is first imported, or to
    SARSTACK_BLAS_THREADS."""
    code = (
        "import os, sys\n"
        "from sarstack import cli\n"
        "assert 'numpy' not in sys.modules\n"
        "try:\n    cli.main(['rtc_dates', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(os.environ[v] for v in cli.BLAS_THREAD_VARS))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SARSTACK_BLAS_THREADS"}
    env.update({v: "4" for v in cli.BLAS_THREAD_VARS})
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[-len(cli.BLAS_THREAD_VARS):] == ["1"] * len(cli.BLAS_THREAD_VARS)
    env["SARSTACK_BLAS_THREADS"] = "3"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.stdout.split()[-len(cli.BLAS_THREAD_VARS):] == ["3"] * len(cli.BLAS_THREAD_VARS)


def test_stage_processes_turn_transparent_huge_pages_off_on_linux():
    """A stage (and what it forks) maps its arrays in small pages
    (PR_GET_THP_DISABLE reads 1 when it starts), unless SARSTACK_THP=1."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux's prctl only")
    code = (
        "import ctypes\n"
        "ctypes.CDLL('libc.so.6').prctl(41, 0, 0, 0, 0)\n"  # as a fresh process (not inherited)
        "from sarstack import cli\n"
        "import sarstack.cli.rtc_dates as stage\n"
        "stage.main = lambda argv: print('thp-disabled', ctypes.CDLL('libc.so.6').prctl(42, 0, 0, 0, 0))\n"
        "cli.main(['rtc_dates'])\n"
        "cli.huge_pages(True)\n"  # as the inversion's JAX solvers
        "print('thp-disabled', ctypes.CDLL('libc.so.6').prctl(42, 0, 0, 0, 0))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SARSTACK_THP"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[-4:] == ["thp-disabled", "1", "thp-disabled", "0"]
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**env, "SARSTACK_THP": "1"})  # fmt: skip
    assert p.stdout.split()[-4:] == ["thp-disabled", "0", "thp-disabled", "0"]


def test_chained_stages_hand_freed_memory_back_on_glibc():
    import platform

    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    import numpy as np

    a = np.ones(64 << 20, np.uint8)  # 64 MiB from the heap (keep_freed_memory), then freed
    del a
    cli.keep_freed_memory()
    b = np.ones(64 << 20, np.uint8)
    del b
    assert cli.release_freed_memory() is True


def test_flatten_bounds_gdal_cache_unless_the_user_set_it(monkeypatch):
    """rtc_flatten reads each scene twice through one open dataset; GDAL's
    block cache is bounded for it (memory follows the chunk, not the scene),
    and a user's own GDAL_CACHEMAX wins."""
    from sarstack import cli

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    cli.bound_gdal_cache()
    assert os.environ["GDAL_CACHEMAX"] == str(cli.FLATTEN_GDAL_CACHE_MB)
    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    cli.bound_gdal_cache()
    assert os.environ["GDAL_CACHEMAX"] == "64"


def test_one_malloc_arena_sets_the_limit_and_gives_it_back(monkeypatch):
    """Inside, glibc's M_ARENA_MAX is 1; on the way out (even on an error) it
    is glibc's own 8 a CPU again; off, nothing is set."""
    import ctypes

    from sarstack import cli

    calls: list[tuple[int, int]] = []

    class FakeLibc:
        def mallopt(self, key: int, value: int) -> int:
            calls.append((key, value))
            return 1

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    with pytest.raises(RuntimeError), cli.one_malloc_arena():
        assert calls == [(-8, 1)]
        raise RuntimeError
    assert calls == [(-8, 1), (-8, 8 * (os.cpu_count() or 1))]
    calls.clear()
    with cli.one_malloc_arena(False):
        pass
    assert calls == []


def test_insar_chain_runs_without_pandas(tmp_path):
    """Every stage of the default InSAR chain (insar_small's, and the head,
    strip and tail jobs' stages) runs with pandas unimportable: importing it
    took 0.4-0.5 s of each job. Its tables are the text pandas wrote
    (tests/test_io.py's write_columns test)."""
    from conftest import schema_defaults

    from sarstack import synthetic
    from sarstack.options import config_args

    synthetic.make_ifg_stack(tmp_path / "s", n_dates=8, shape=(24, 20), network="nearest:3",
                             noise_rad=0.1, seed=2)  # fmt: skip
    o = tmp_path / "out"
    stages = [
        ("insar_select", "--unwrapped", f"{tmp_path}/s/ifgs/*.unw.tif", "--out", o / "ifgs.csv"),
        ("insar_reference", "--ifgs", o / "ifgs.csv", "--out", o / "ref.txt"),
        ("insar_invert", "--ifgs", o / "ifgs.csv", "--reference", o / "ref.txt", "--strip",
         "1-of-1", "--out-dir", o / "strip", "--threads", 2),
        ("insar_gather", o / "strip", "--ifgs", o / "ifgs.csv", "--reference", o / "ref.txt",
         "--out-dir", o, "--index", o / "timeseries.csv", "--threads", 2),
        ("insar_velocity", "--index", o / "timeseries.csv", "--ifgs", o / "ifgs.csv", "--out",
         o / "velocity.tif", "--out-std", o / "velocity_std.tif", "--ifg-residual-std",
         o / "ifg_residual_std.tif", "--out-dir", o, "--threads", 2),
        ("insar_plots", "--velocity", o / "velocity.tif", "--std", o / "velocity_std.tif",
         "--index", o / "timeseries.csv", "--ifgs", o / "ifgs.csv", "--reference", o / "ref.txt",
         "--temporal-coherence", o / "temporal_coherence.tif", "--out-velocity", o / "v.png",
         "--out-series", o / "s.png", "--out-network", o / "n.png", "--threads", 2),
    ]  # fmt: skip
    argv: list[str] = []
    for stage, *args in stages:
        given = [str(a) for a in args]
        argv += ["::"] * bool(argv) + [stage, *given, *config_args(stage, schema_defaults(), given=given)]
    code = ("import sys; sys.modules['pandas'] = None; from sarstack import cli; "
            "cli.main(sys.argv[1:])")  # fmt: skip
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (o / "v.png").stat().st_size > 0 and (o / "n.png").stat().st_size > 0
    # and the check can fail: a stage that needs pandas fails under it
    p = subprocess.run([sys.executable, "-c", code.replace("cli.main", "import pandas; cli.main"),
                        "insar_select", "--help"], capture_output=True, text=True)  # fmt: skip
    assert p.returncode != 0 and "pandas" in p.stderr

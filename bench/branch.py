"""Whole-branch side-by-side benchmark: sarstack's Snakemake branches vs the anchor tools.

Each case runs the *whole* sarstack branch as a user would (``python -m snakemake
--cores N rtc|insar --configfile=...`` in a fresh process, from --repo as the working
directory) and the anchor tool on the same inputs with the same number of cores, and
times both processes end to end (wall time, and the peak RSS of the largest single
process in each tree from ``/usr/bin/time -v``). When --cores is below the machine's
CPU count, both run under ``taskset`` on the first N CPUs.

modes and cases
  rtc    sarstack ``rtc`` vs ``../shared/anchors/notebook_procedure.py INPUT_GLOB WORKDIR
         --workers N`` (the cal/val notebook's procedure: always an 8 x 8 tile grid).
           rtc-land    the real OPERA burst ../shared/data/opera_rtc_T137-292319-IW2,
                       21 dates of 100 x 100 px; sarstack with rtc.tiles [4, 4]
                       (config/examples/opera_land.yaml; 25 px tiles, the notebook's
                       8 x 8 grid gives 12 px tiles).
           rtc-synth   6 synthetic scenes of 3072² (sarstack.synthetic.make_rtc_stack
                       as the demo writes them), rtc.tiles [8, 8] like the notebook.
           rtc-bursts  both real OPERA bursts (land and sea, 21 x 100² each) as two
                       stacks of one sarstack run (rtc.stacks, with stacks_summary.csv)
                       vs the notebook run once per burst, one after the other.
           rtc-4096x24 24 synthetic scenes of 4096², rtc.tiles [8, 8] (real size).
           rtc-many    12 stacks in one run (both real bursts and 10 synthetic stacks
                       of 21 x 128², seeds 1-10) vs the notebook once per stack.
  insar  sarstack ``insar`` (insar.unwrapped only, rtc.enabled false) vs dolphin 0.42.9's
         timeseries.run via ``DOLPHIN_PY ../shared/anchors/dolphin_timeseries.py UNW_GLOB
         OUTDIR L1|L2 ROW COL``, both with the same reference pixel (the centre; the
         synthetic nodata block is top-left). Synthetic stacks from
         sarstack.synthetic.make_ifg_stack, nearest:3 network (3 ifgs per date):
           insar-1024x60-L1, insar-1024x60-L2 (1024² x 174 ifgs, real size),
           insar-512x24-L1, insar-256x60-L1, insar-256x60-L2, insar-256x120-L1, and with
           --big insar-2048x36-L1 (2048² x 102 ifgs, ~3.5 GB of inputs) and
           insar-2048x60-L2 (2048² x 174 ifgs, ~6 GB).
         Skipped, with a message, when no working dolphin python is found
         (--dolphin-python, default $SARSTACK_DOLPHIN_PYTHON or /work/dolphin-env/bin/python;
         build one with ../shared/anchors/make_dolphin_env.sh DIR).

protocol per case
  Inputs are generated once under --workdir/inputs and reused by later runs. sarstack
  gets a JAX persistent compilation cache of its own (--workdir/runs/CASE/jax-cache),
  emptied at the start of the case: the first sarstack run is reported as "cold" and
  warms the cache; the anchor gets one untimed warm-up run. Then --repeats timed rounds,
  alternating which tool goes first; each run starts from an empty output folder
  (nothing is cached by Snakemake), after `sync` and --settle seconds of rest (default
  10, both tools alike: the last run's writes and heat are not charged to the next). Reported: median and min–max wall time, the ratio
  anchor / sarstack of the min walls (issue 22's measure, judged against its target:
  on a shared VM other load only adds time) and of the medians, peak RSS, and per
  rule of the last sarstack run
  (Snakemake's benchmarks/*.tsv): jobs, summed and longest wall time, largest max_rss.

examples (from the repository root)
  .venv/bin/python bench/branch.py rtc
  .venv/bin/python bench/branch.py insar --cases insar-512x24-L1,insar-256x60-L1
  .venv/bin/python bench/branch.py all --repeats 5 --workdir /scratch/branch
  .venv/bin/python bench/branch.py insar --big --cases insar-2048x36-L1 --repeats 1

The markdown goes to stdout and bench/out/branch.md. Timings on a machine shared with
other work are noisy: each case's table says how much CPU other processes took.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import ForeignLoad, Table, fmt

HERE = Path(__file__).resolve().parent
DEFAULT_REPO = HERE.parent
OUT_MD = HERE / "out" / "branch.md"
DEFAULT_DOLPHIN = os.environ.get("SARSTACK_DOLPHIN_PYTHON", "/work/dolphin-env/bin/python")
LAND_DATA = "data/opera_rtc_T137-292319-IW2"
SEA_DATA = "data/opera_rtc_T137-292318-IW1"
#: Issue 22's targets (wall time, anchor / sarstack) for the real-size cases.
TARGETS = {"rtc-4096x24": 5.0, "rtc-many": 3.0, "insar-1024x60-L1": 3.0,
           "insar-1024x60-L2": 2.0, "insar-2048x36-L1": 3.0, "insar-2048x60-L2": 3.0}


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One side-by-side comparison."""

    name: str
    branch: str  # "rtc" or "insar"
    description: str
    tiles: tuple[int, int] = (8, 8)  # rtc: sarstack's rtc.tiles
    shape: tuple[int, int] = (0, 0)  # synthetic scene / ifg size
    n_dates: int = 0
    method: str = "L1"  # insar
    real: bool = False  # rtc: the real land burst instead of a synthetic stack
    stacks: tuple[str, ...] = ()  # rtc: real bursts (under shared/), one stack each
    synthetic_stacks: int = 0  # rtc: and this many synthetic stacks of n_dates x shape
    big: bool = False  # only with --big (or named in --cases)


CASES: tuple[Case, ...] = (
    Case(
        "rtc-land",
        "rtc",
        "real OPERA land burst, 21 x 100² (sarstack tiles 4x4, notebook 8x8)",
        tiles=(4, 4),
        real=True,
    ),
    Case(
        "rtc-synth",
        "rtc",
        "synthetic, 6 x 3072² (tiles 8x8 both)",
        tiles=(8, 8),
        shape=(3072, 3072),
        n_dates=6,
    ),
    Case(
        "rtc-bursts",
        "rtc",
        "both real OPERA bursts (land, sea) in one run, 21 x 100² each (tiles 4x4 / 8x8)",
        tiles=(4, 4),
        stacks=(LAND_DATA, SEA_DATA),
    ),
    Case(
        "rtc-4096x24",
        "rtc",
        "synthetic, 24 x 4096² (tiles 8x8 both)",
        tiles=(8, 8),
        shape=(4096, 4096),
        n_dates=24,
    ),
    Case(
        "rtc-many",
        "rtc",
        "12 stacks in one run: both real bursts (21 x 100²) and 10 synthetic (21 x 128²)",
        tiles=(4, 4),
        stacks=(LAND_DATA, SEA_DATA),
        synthetic_stacks=10,
        shape=(128, 128),
        n_dates=21,
    ),
    Case(
        "insar-1024x60-L1",
        "insar",
        "1024² x 60 dates, nearest:3, L1",
        shape=(1024, 1024),
        n_dates=60,
    ),
    Case(
        "insar-1024x60-L2",
        "insar",
        "1024² x 60 dates, nearest:3, L2",
        shape=(1024, 1024),
        n_dates=60,
        method="L2",
    ),
    Case(
        "insar-512x24-L1", "insar", "512² x 24 dates, nearest:3, L1", shape=(512, 512), n_dates=24
    ),
    Case(
        "insar-256x60-L1", "insar", "256² x 60 dates, nearest:3, L1", shape=(256, 256), n_dates=60
    ),
    Case(
        "insar-256x60-L2",
        "insar",
        "256² x 60 dates, nearest:3, L2",
        shape=(256, 256),
        n_dates=60,
        method="L2",
    ),
    Case(
        "insar-256x120-L1",
        "insar",
        "256² x 120 dates, nearest:3, L1",
        shape=(256, 256),
        n_dates=120,
    ),
    Case(
        "insar-2048x36-L1",
        "insar",
        "2048² x 36 dates (102 ifgs), nearest:3, L1",
        shape=(2048, 2048),
        n_dates=36,
        big=True,
    ),
    Case(
        "insar-2048x60-L2",
        "insar",
        "2048² x 60 dates (~174 ifgs), nearest:3, L2",
        shape=(2048, 2048),
        n_dates=60,
        method="L2",
        big=True,
    ),
)


# --------------------------------------------------------------------------- measuring


@dataclass
class Run:
    wall_s: float
    peak_rss_mb: float | None
    cpu_s: float | None = None  # user + system of the whole process tree


@dataclass
class Series:
    """Timed runs of one tool on one case."""

    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(r.wall_s for r in self.runs) if self.runs else None

    @property
    def min(self) -> float | None:
        return min(r.wall_s for r in self.runs) if self.runs else None

    def spread(self) -> str:
        if not self.runs:
            return "–"
        walls = [r.wall_s for r in self.runs]
        if len(walls) == 1:
            return fmt(walls[0])
        return f"{fmt(self.median)} ({fmt(min(walls))}–{fmt(max(walls))})"

    def cpu(self) -> float | None:
        cpu = [r.cpu_s for r in self.runs if r.cpu_s is not None]
        return statistics.median(cpu) if cpu else None

    def peak_rss(self) -> float | None:
        rss = [r.peak_rss_mb for r in self.runs if r.peak_rss_mb is not None]
        return max(rss) if rss else None


_RSS_RE = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")
_CPU_RE = re.compile(r"(?:User|System) time \(seconds\):\s*([\d.]+)")


def cpu_prefix(cores: int) -> list[str]:
    """``taskset`` on the first ``cores`` CPUs when that is fewer than this process may use."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not allowed or cores >= len(allowed) or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", ",".join(str(c) for c in allowed[:cores])]


def run_timed(cmd: list[str], cwd: Path, log: Path, prefix: list[str]) -> Run:
    """Run ``cmd`` once in a fresh process; its wall time and peak RSS.

    stdout and stderr go to ``log``. Raises with the log's tail on a non-zero exit.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    stats = log.with_suffix(".time")
    timer = ["/usr/bin/time", "-v", "-o", str(stats)] if Path("/usr/bin/time").exists() else []
    with log.open("w") as f:
        f.write("$ " + " ".join(cmd) + f"\n# cwd {cwd}\n")
        f.flush()
        t0 = time.perf_counter()
        proc = subprocess.run([*prefix, *timer, *cmd], cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
    rss = cpu = None
    if timer and stats.exists():
        text = stats.read_text()
        m = _RSS_RE.search(text)
        rss = int(m.group(1)) / 1024.0 if m else None
        cpu = sum(float(v) for v in _CPU_RE.findall(text)) or None
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-20:])
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)}\n(log {log})\n{tail}")
    return Run(wall, rss, cpu)


def settle(seconds: float) -> None:
    """Before a timed run: the disk caches written out (``sync``), then ``seconds``
    of rest, so that neither tool pays for the previous run's writes or heat."""
    if seconds > 0:
        subprocess.run(["sync"], check=False)
        time.sleep(seconds)


def fresh(path: Path) -> Path:
    """Remove ``path`` if present; return it (the tool creates it)."""
    if path.exists():
        shutil.rmtree(path)
    return path


# --------------------------------------------------------------------------- inputs


def generated(folder: Path, make: Callable[[Path], None]) -> Path:
    """``folder`` with generated inputs, made once (a ``.complete`` marker) and then reused."""
    marker = folder / ".complete"
    if not marker.exists():
        if folder.exists():
            shutil.rmtree(folder)
        print(f"  generating {folder} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        make(folder)
        marker.write_text(f"generated in {time.perf_counter() - t0:.0f} s\n")
    return folder


def stack_inputs(case: Case, shared: Path, inputs: Path) -> dict[str, str]:
    """{stack name: recursive glob} of a many-stack case: the real bursts (their
    folder names) and ``case.synthetic_stacks`` synthetic ones (seeds 1, 2, ...)."""
    out = {}
    for rel in case.stacks:
        root = shared / rel
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is missing (a real burst)")
        out[root.name.replace("opera_rtc_", "")] = str(root / "**" / "*_VV.tif")
    for seed in range(1, case.synthetic_stacks + 1):

        def make(folder: Path, seed: int = seed) -> None:
            from sarstack import synthetic

            synthetic.make_rtc_stack(folder, n_dates=case.n_dates, shape=case.shape, seed=seed,
                                     looks=20)  # fmt: skip

        name = f"rtc-{case.shape[0]}x{case.shape[1]}x{case.n_dates}-seed{seed}"
        out[f"synth{seed:02d}"] = str(generated(inputs / name, make) / "**" / "*_VV.tif")
    return out


def rtc_inputs(case: Case, shared: Path, inputs: Path) -> str:
    """Recursive glob of the case's ``*_VV.tif`` scenes."""
    if case.real:
        root = shared / LAND_DATA
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is missing (the real land burst)")
        return str(root / "**" / "*_VV.tif")

    def make(folder: Path) -> None:
        from sarstack import synthetic

        # As workflow/scripts/demo_rtc_stack.py writes the demo (seed 0, looks 20).
        synthetic.make_rtc_stack(folder, n_dates=case.n_dates, shape=case.shape, seed=0, looks=20)

    name = f"rtc-{case.shape[0]}x{case.shape[1]}x{case.n_dates}"
    return str(generated(inputs / name, make) / "**" / "*_VV.tif")


def ifg_inputs(case: Case, inputs: Path) -> str:
    """Glob of the case's ``YYYYMMDD_YYYYMMDD.unw.tif`` interferograms."""

    def make(folder: Path) -> None:
        from sarstack import synthetic

        synthetic.make_ifg_stack(
            folder, n_dates=case.n_dates, shape=case.shape, network="nearest:3", seed=0
        )

    name = f"ifg-{case.shape[0]}x{case.shape[1]}x{case.n_dates}"
    return str(generated(inputs / name, make) / "ifgs" / "*.unw.tif")


# --------------------------------------------------------------------------- one case


@dataclass
class Outcome:
    """Everything reported for one case."""

    case: Case
    anchor: str
    anchor_runs: Series = field(default_factory=Series)
    sarstack_runs: Series = field(default_factory=Series)
    cold: Run | None = None
    rules: Table | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False


@dataclass
class Settings:
    """Command-line choices shared by every case."""

    python: str
    repo: Path
    shared: Path
    workdir: Path
    cores: int
    repeats: int
    dolphin: str | None
    settle: float = 0.0


def sarstack_config(
    case: Case, data_glob: str, out: Path, cache: Path, stacks: dict[str, str] | None = None
) -> dict:
    """The case's config (merged by Snakemake over config/config.yaml)."""
    cfg: dict = {"output_dir": str(out), "jax_cache_dir": str(cache)}
    # pairs: the notebook's nearest-date pairs, so both measure the same pairs
    if stacks:
        cfg["rtc"] = {"enabled": True, "stacks": stacks, "tiles": list(case.tiles),
                      "pairs": "sequential"}  # fmt: skip
        cfg["insar"] = {"enabled": False}
    elif case.branch == "rtc":
        cfg["rtc"] = {"enabled": True, "inputs": data_glob, "tiles": list(case.tiles),
                      "pairs": "sequential"}  # fmt: skip
        cfg["insar"] = {"enabled": False}
    else:
        cfg["rtc"] = {"enabled": False}
        cfg["insar"] = {
            "enabled": True,
            "unwrapped": data_glob,
            "method": case.method,
            "reference_point": list(reference_pixel(case)),
        }
    return cfg


def reference_pixel(case: Case) -> tuple[int, int]:
    """The centre pixel: given to both tools (the synthetic nodata block is top-left)."""
    return case.shape[0] // 2, case.shape[1] // 2


def run_case(case: Case, s: Settings) -> Outcome:
    """Cold sarstack run, anchor warm-up, then ``s.repeats`` alternating timed rounds."""
    run_dir = s.workdir / "runs" / case.name
    run_dir.mkdir(parents=True, exist_ok=True)
    out, anchor_out, cache = run_dir / "sarstack", run_dir / "anchor", run_dir / "jax-cache"
    logs = run_dir / "logs"
    prefix = cpu_prefix(s.cores)
    anchors = s.shared / "anchors"

    stacks = stack_inputs(case, s.shared, s.workdir / "inputs") if case.stacks else None
    if stacks:
        data_glob = ""
        # A user of the notebook runs it once per burst, one after the other.
        runs = [
            " ".join(shlex.quote(a) for a in (s.python, str(anchors / "notebook_procedure.py"),
                                              glob, str(anchor_out / name), "--workers",
                                              str(s.cores)))
            for name, glob in stacks.items()
        ]  # fmt: skip
        anchor_cmd = ["bash", "-c", " && ".join(runs)]
        anchor_name = f"notebook_procedure.py x {len(stacks)}"
        extra = (f"sarstack: {len(stacks)} stacks in one run (rtc.stacks); the notebook once "
                 f"per burst, sequentially; it always tiles 8 x 8, sarstack rtc.tiles "
                 f"{list(case.tiles)}")  # fmt: skip
    elif case.branch == "rtc":
        data_glob = rtc_inputs(case, s.shared, s.workdir / "inputs")
        anchor_cmd = [
            s.python,
            str(anchors / "notebook_procedure.py"),
            data_glob,
            str(anchor_out),
            "--workers",
            str(s.cores),
        ]
        anchor_name = "notebook_procedure.py"
        extra = f"the notebook always tiles 8 x 8; sarstack rtc.tiles {list(case.tiles)}"
    else:
        data_glob = ifg_inputs(case, s.workdir / "inputs")
        row, col = reference_pixel(case)
        anchor_cmd = [
            str(s.dolphin),
            str(anchors / "dolphin_timeseries.py"),
            data_glob,
            str(anchor_out),
            case.method,
            str(row),
            str(col),
        ]
        anchor_name = "dolphin timeseries.run"
        extra = "dolphin_timeseries.py fixes num_threads=2 (blocks of 256² in parallel)"
        if s.cores != 2:
            extra += f", not --cores {s.cores}"

    config = run_dir / "config.yaml"  # JSON is YAML; kept beside the runs to rerun by hand
    cfg = sarstack_config(case, data_glob, out, cache, stacks)
    config.write_text(json.dumps(cfg, indent=2) + "\n")
    sar_cmd = [
        s.python,
        "-m",
        "snakemake",
        "--cores",
        str(s.cores),
        case.branch,
        f"--configfile={config}",
    ]
    res = Outcome(case, anchor_name)
    cd = f"cd {s.repo} && " if s.repo != Path.cwd() else ""
    res.notes.append(f"sarstack: `{cd}{' '.join(prefix + sar_cmd)}`")
    res.notes.append(f"anchor: `{' '.join(prefix + anchor_cmd)}`")
    res.notes.append(extra)

    def sarstack(tag: str) -> Run:
        settle(s.settle)
        return run_timed(sar_cmd, s.repo, logs / f"sarstack-{tag}.log", prefix)

    def anchor(tag: str) -> Run:
        fresh(anchor_out)
        settle(s.settle)
        return run_timed(anchor_cmd, s.repo, logs / f"anchor-{tag}.log", prefix)

    fresh(cache)
    fresh(out)
    res.cold = sarstack("cold")
    fresh(out)  # before the anchor's warm-up, so the disk holds what it holds in the rounds
    anchor("warmup")
    for k in range(s.repeats):
        order = ("anchor", "sarstack") if k % 2 == 0 else ("sarstack", "anchor")
        for who in order:
            if who == "anchor":
                res.anchor_runs.runs.append(anchor(str(k)))
            else:
                fresh(out)
                res.sarstack_runs.runs.append(sarstack(str(k)))

    res.rules = rule_table(
        out / "benchmarks", res.sarstack_runs.runs[-1].wall_s, s.cores, startup_seconds(s.python)
    )
    if case.branch == "insar":
        res.notes += insar_checks(case, out, anchor_out)
    else:
        res.notes += rtc_checks(out, anchor_out)
    return res


# --------------------------------------------------------------------------- reports


def rule_table(bench_dir: Path, wall_s: float, cores: int, startup_s: float | None) -> Table:
    """Per rule of one sarstack run: jobs, summed / longest wall s, largest max_rss."""
    groups: dict[str, list[dict[str, float]]] = {}
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        rel = tsv.relative_to(bench_dir).with_suffix("").as_posix()
        rule = re.sub(r"_\d{8}(_\d{8})?$", "", rel)
        with tsv.open() as f:
            for row in csv.DictReader(f, delimiter="\t"):
                groups.setdefault(rule, []).append(
                    {k: float(v) for k, v in row.items() if k in ("s", "max_rss", "cpu_time")}
                )
    t = Table(
        "rules of the last sarstack run (Snakemake benchmark/*.tsv)",
        ["rule", "jobs", "sum s", "max s", "share of job s", "sum cpu s", "max_rss MB"],
    )
    total = sum(r["s"] for rows in groups.values() for r in rows)
    for rule, rows in sorted(groups.items(), key=lambda kv: -sum(r["s"] for r in kv[1])):
        job_s = sum(r["s"] for r in rows)
        t.add(
            rule,
            len(rows),
            job_s,
            max(r["s"] for r in rows),
            f"{100 * job_s / total:.0f} %" if total else "–",
            sum(r.get("cpu_time", float("nan")) for r in rows),
            max(r.get("max_rss", float("nan")) for r in rows),
        )
    t.notes.append("max_rss is Snakemake's sampled value and can miss short peaks")
    n_jobs = sum(len(rows) for rows in groups.values())
    t.notes.append(
        f"{n_jobs} jobs; their wall times sum to {fmt(total)} s ({fmt(total / cores)} s per core "
        f"on {cores} cores) against {fmt(wall_s)} s of whole-run wall time; wall time beyond "
        "the per-core sum is Snakemake itself (start-up, DAG, checkpoint re-evaluation, "
        "scheduling) or cores left idle by the DAG"
    )
    if startup_s is not None:
        t.notes.append(
            f"each job is a fresh Python process: importing what the scripts import takes "
            f"{fmt(startup_s)} s (fastest of 3, measured now), {fmt(startup_s * n_jobs)} s "
            f"over the {n_jobs} jobs ({fmt(startup_s * n_jobs / cores)} s per core)"
        )
    return t


def startup_seconds(python: str, repeats: int = 3) -> float | None:
    """Fastest wall time of a fresh ``python`` importing what the workflow scripts import."""
    code = (
        "import jax.numpy as jnp, pandas, rasterio;"
        "import sarstack.insar, sarstack.rtc, sarstack.xcorr, sarstack.timeseries;"
        "jnp.zeros(1).block_until_ready()"
    )
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        if subprocess.run([python, "-c", code], capture_output=True).returncode != 0:
            return None
        took = time.perf_counter() - t0
        best = took if best is None else min(best, took)
    return best


def rtc_checks(out: Path, anchor_out: Path) -> list[str]:
    """What each tool produced, in one line (a fast but empty run would show here)."""
    notes = []
    stacks = out / "rtc" / "stacks_summary.csv"
    if stacks.exists():
        with stacks.open() as f:
            for r in csv.DictReader(f):
                notes.append(f"sarstack stack {r['stack']}: {r['status']}, {r['n_pairs_ok']} of "
                             f"{r['n_pairs']} pairs ok, verdict {r['verdict']}")  # fmt: skip
        for sub in sorted(p for p in anchor_out.iterdir() if p.is_dir()):
            notes += [f"{sub.name}: {n}" for n in rtc_checks(out / "none", sub)]
        return notes
    summary = out / "rtc" / "pairs.csv"
    if summary.exists():
        with summary.open() as f:
            rows = list(csv.DictReader(f))
        status = [r.get("status", "?") for r in rows]
        counts = {k: status.count(k) for k in sorted(set(status))}
        notes.append(f"sarstack pairs.csv: {len(rows)} pairs, status {counts}")
    jsons = list((anchor_out / "correlation").glob("*.json"))
    if jsons:
        nan = sum("message" in json.loads(p.read_text()) for p in jsons)
        notes.append(f"notebook: {len(jsons)} tile pairs, {nan} 'Too many NaNs'")
    return notes


def insar_checks(case: Case, out: Path, anchor_out: Path) -> list[str]:
    """Same reference pixel on both sides, and how far apart the two velocity maps are."""
    notes = []
    ref_txt = out / "insar" / "reference_point.txt"
    if ref_txt.exists():
        ref = tuple(int(v) for v in ref_txt.read_text().strip().split(","))
        same = ref == reference_pixel(case)
        notes.append(
            f"reference pixel {ref} on both sides"
            if same
            else f"WARNING: sarstack used {ref}, dolphin {reference_pixel(case)}"
        )
    ours, theirs = out / "insar" / "velocity.tif", anchor_out / "velocity.tif"
    if ours.exists() and theirs.exists():
        try:
            import numpy as np
            import rasterio

            with rasterio.open(ours) as a, rasterio.open(theirs) as b:
                va, vb = (
                    a.read(1, masked=True).filled(np.nan),
                    b.read(1, masked=True).filled(np.nan),
                )
            ok = np.isfinite(va) & np.isfinite(vb)
            if ok.any():
                same, flipped = np.abs(va[ok] - vb[ok]), np.abs(va[ok] + vb[ok])
                sign = "" if np.median(same) <= np.median(flipped) else " (opposite signs)"
                d = same if not sign else flipped
                notes.append(
                    f"velocity, sarstack vs dolphin{sign}: median |diff| {np.median(d):.3g}, "
                    f"max {d.max():.3g} rad/yr over {int(ok.sum())} px (sarstack range "
                    f"{np.nanmin(va):.3g}..{np.nanmax(va):.3g})"
                )
        except Exception as e:  # noqa: BLE001 - a diagnostic only
            notes.append(f"velocity comparison failed: {type(e).__name__}: {e}")
    return notes


def machine_line(cores: int) -> str:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return f"machine: `nproc` {nproc}, {model}; --cores {cores}; load average at start {load}"


def main_table(outcomes: list[Outcome]) -> Table:
    t = Table(
        "whole branch, anchor vs sarstack (wall s: median (min–max) of the timed runs;"
        " the target judged on the min walls, as issue 22 sets it)",
        [
            "case",
            "anchor",
            "anchor s",
            "sarstack s",
            "ratio of min walls",
            "ratio of medians",
            "target (min walls)",
            "sarstack cold s",
            "CPU s anchor / sarstack",
            "anchor peak RSS MB",
            "sarstack peak RSS MB",
        ],
    )
    for o in outcomes:
        if o.error:
            verdict = "skipped" if o.skipped else "FAILED"
            t.add(o.case.name, o.anchor, "–", "–", verdict, "–", "–", "–", "–", "–", "–")
            continue
        a, b = o.anchor_runs.median, o.sarstack_runs.median
        r = a / b if a and b else None
        am, bm = o.anchor_runs.min, o.sarstack_runs.min
        rm = am / bm if am and bm else None
        target = "–"
        goal = TARGETS.get(o.case.name)
        if goal is not None and rm is not None:
            target = f"≥ {goal:g}× {'PASS' if rm >= goal else 'MISS'}"
        t.add(
            o.case.name,
            o.anchor,
            o.anchor_runs.spread(),
            o.sarstack_runs.spread(),
            f"{fmt(rm)}×" if rm else "–",
            f"{fmt(r)}×" if r else "–",
            target,
            o.cold.wall_s if o.cold else None,
            f"{fmt(o.anchor_runs.cpu())} / {fmt(o.sarstack_runs.cpu())}",
            o.anchor_runs.peak_rss(),
            o.sarstack_runs.peak_rss(),
        )
    t.notes.append(
        "peak RSS: the largest single process of each tree (/usr/bin/time -v), "
        "not the sum over processes"
    )
    t.notes.append(
        "CPU s: median user + system seconds of the whole process tree (/usr/bin/time -v); "
        "less sensitive than wall time to other load on the machine"
    )
    t.notes.append(
        "cold: the first sarstack run with an empty JAX compilation cache "
        "(it also warms the cache for the timed runs)"
    )
    return t


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/branch.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("mode", choices=["rtc", "insar", "all"], help="which branch(es)")
    p.add_argument(
        "--cases",
        default=None,
        help="comma-separated case names (default: every case of the mode,\n"
        "the big one only with --big)",
    )
    p.add_argument("--big", action="store_true", help="add the big cases (insar-2048x36-L1, insar-2048x60-L2)")
    p.add_argument("--cores", type=int, default=2, help="cores for both tools (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds of rest (after sync) before every run, both tools (default 10)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=HERE / "out" / "branch-work",
        help="inputs (generated once, reused) and run folders\n(default bench/out/branch-work)",
    )
    p.add_argument(
        "--repo",
        type=Path,
        default=DEFAULT_REPO,
        help="sarstack repository to run Snakemake in (default: this one)",
    )
    p.add_argument(
        "--shared",
        type=Path,
        default=None,
        help="the shared/ folder with anchors/ and data/ (default REPO/../shared)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="python with sarstack, snakemake, skimage (default: this one)",
    )
    p.add_argument(
        "--dolphin-python",
        default=DEFAULT_DOLPHIN,
        help=f"python of a dolphin 0.42.9 venv (default {DEFAULT_DOLPHIN})",
    )
    p.add_argument("--out", type=Path, default=OUT_MD, help=f"markdown output (default {OUT_MD})")
    return p.parse_args(argv)


def select_cases(a: argparse.Namespace) -> list[Case]:
    in_mode = [c for c in CASES if a.mode == "all" or c.branch == a.mode]
    if a.cases is None:
        return [c for c in in_mode if a.big or not c.big]
    names = [n.strip() for n in a.cases.split(",") if n.strip()]
    by_name = {c.name: c for c in in_mode}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        sys.exit(
            f"error: --cases: unknown for mode {a.mode}: {', '.join(unknown)} "
            f"(choose from {', '.join(by_name)})"
        )
    return [by_name[n] for n in names]


def dolphin_python(path: str | None) -> tuple[str | None, str]:
    """The dolphin python if ``import dolphin.timeseries`` works there, else why not."""
    if not path or not Path(path).exists():
        return None, f"no dolphin python at {path!r} (--dolphin-python)"
    proc = subprocess.run(
        [path, "-c", "import dolphin; print(dolphin.__version__)"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None, f"{path}: import dolphin failed: {proc.stderr.strip().splitlines()[-1:]}"
    return path, f"dolphin {proc.stdout.strip()} ({path})"


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    cases = select_cases(a)
    repo = a.repo.resolve()
    shared = (a.shared or repo.parent / "shared").resolve()
    workdir = a.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    dolphin, dolphin_note = dolphin_python(a.dolphin_python)
    s = Settings(a.python, repo, shared, workdir, a.cores, a.repeats, dolphin, a.settle)

    head = (
        f"## sarstack whole-branch benchmark\n\n{dt.datetime.now():%Y-%m-%d %H:%M}, "
        f"{platform.node()}; {machine_line(a.cores)}; repo {repo} "
        f"(HEAD {git_head(repo)}); {a.repeats} timed rounds, {a.settle:g} s of rest before each run; anchors in {shared / 'anchors'}; "
        f"{dolphin_note}\n"
    )
    print(head, flush=True)
    outcomes: list[Outcome] = []
    details: list[str] = []
    for case in cases:
        if case.branch == "insar" and dolphin is None:
            msg = f"{case.name}: SKIPPED, {dolphin_note}"
            print(msg, file=sys.stderr, flush=True)
            details.append(f"- {msg}\n")
            outcomes.append(Outcome(case, "dolphin", error=msg, skipped=True))
            continue
        print(f"[{case.name}] {case.description} ...", file=sys.stderr, flush=True)
        load, t0 = ForeignLoad(), time.perf_counter()
        try:
            o = run_case(case, s)
        except Exception as e:  # noqa: BLE001 - one failing case must not hide the others
            o = Outcome(case, "?", error=f"{type(e).__name__}: {e}")
            print(o.error, file=sys.stderr, flush=True)
        o.notes.append(f"case took {time.perf_counter() - t0:.0f} s; {load.note()}")
        outcomes.append(o)
        text = f"### {case.name}: {case.description}\n\n"
        if o.error:
            text += f"FAILED:\n\n```\n{o.error}\n```\n\n"
        text += "".join(f"- {n}\n" for n in o.notes)
        if o.rules is not None:
            text += "\n" + o.rules.markdown()
        print(text, flush=True)
        details.append(text)
    table = main_table(outcomes).markdown()
    print(table, flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join([head, table, *details]))
    print(f"written to {a.out}", file=sys.stderr)


def git_head(repo: Path) -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True
    )
    return proc.stdout.strip() or "?"


if __name__ == "__main__":
    main()

"""Shared plumbing of the benchmark harness: timing, subprocess measurement, tables."""

from __future__ import annotations

import functools
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Environment of the job subprocesses: the caller's, before run.py limits BLAS threads.
CHILD_ENV: dict[str, str] = dict(os.environ)
#: Variables that set the thread count of OpenBLAS / MKL / OpenMP.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
SCRIPTS = REPO / "workflow" / "scripts"
PYTHON = sys.executable


# --------------------------------------------------------------------------- results


@dataclass
class Table:
    """One markdown table of a case: a title, column names, rows and notes below it."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in self.rows]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"


@dataclass
class Target:
    """One target of the issue: a measured ratio against a goal, PASS / MISS / n/a."""

    name: str
    goal: str
    measured: float | None
    passed: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


@dataclass
class CaseResult:
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)


def fmt(v: Any) -> str:
    """Compact cell text: 3 significant digits for floats, '–' for None/NaN."""
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:  # NaN
            return "–"
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 1e5 or a < 1e-3:
            return f"{v:.3g}"
        if a >= 100:
            return f"{v:,.0f}"
        return f"{v:.3g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return num / den


# --------------------------------------------------------------------------- timing


def time_call(
    fn: Callable[[], Any],
    repeats: int = 5,
    budget_s: float = 30.0,
    warmup: Callable[[], Any] | None = None,
) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` after one untimed warm-up call (compiles kernels).

    ``fn`` must block until its result is ready (``block_until_ready`` for JAX).
    ``warmup`` replaces the warm-up call, e.g. by the same kernel on a smaller
    input of the same compiled shape. At most ``repeats`` timed calls; once they
    add up to ``budget_s`` it stops early, but never before 3 calls.
    """
    (warmup or fn)()
    times: list[float] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 3 and sum(times) > budget_s:
            break
    return statistics.median(times), times


def time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int = 5) -> dict[str, float]:
    """Median wall time of each function, timed in rounds (A B C, A B C, ...).

    Interleaving makes the ratios robust to slow phases of a shared machine,
    which would otherwise hit one contender's repeats and not the other's.
    Each function is called once untimed first (compilation, caches).
    """
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(max(1, repeats)):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# --------------------------------------------------------------------------- subprocesses


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float | None
    returncode: int
    stderr: str


_RSS_RE = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")
_RUSAGE_WRAPPER = (
    "import resource, subprocess, sys;"
    "rc = subprocess.run(sys.argv[1:]).returncode;"
    "print('BENCH_MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
    " file=sys.stderr); sys.exit(rc)"
)


def run_measured(
    cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run ``cmd`` in a fresh process; wall time and peak RSS of that process.

    Peak RSS comes from ``/usr/bin/time -v`` when present, else from
    ``getrusage(RUSAGE_CHILDREN)`` in a small wrapper process (one per run, so
    the maximum is that of this command only). Raises on a non-zero exit.
    """
    full_env = {**CHILD_ENV, **(env or {})}
    if Path("/usr/bin/time").exists():
        wrapped = ["/usr/bin/time", "-v", *cmd]
    else:
        wrapped = [PYTHON, "-c", _RUSAGE_WRAPPER, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(
        wrapped, env=full_env, cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    m = _RSS_RE.search(proc.stderr) or re.search(r"BENCH_MAXRSS_KB (\d+)", proc.stderr)
    rss = int(m.group(1)) / 1024.0 if m else None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return Measured(wall, rss, proc.returncode, proc.stderr)


def script(name: str) -> str:
    return str(SCRIPTS / name)


@functools.lru_cache(maxsize=1)
def schema_config() -> dict[str, Any]:
    """The config at the schema's defaults (validated and resolved)."""
    from sarstack.config import load_schema, validate_config

    schema = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    return validate_config({"output_dir": "results"}, schema)


def schema_kwargs(*keys: str) -> dict[str, Any]:
    """Library keyword arguments at the schema's defaults: each dotted key's
    value under its last part (the library repeats no default)."""
    from sarstack.options import config_value

    return {k.rsplit(".", 1)[-1]: config_value(schema_config(), k) for k in keys}


def stage_args(name: str, given: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The config-driven options of stage ``name`` at the schema's defaults
    (the stages have no defaults of their own), except those ``given``."""
    from sarstack.options import config_args

    return config_args(Path(name).stem, schema_config(), given=given)


def startup_seconds(repeats: int = 5) -> float:
    """Wall time of a fresh interpreter importing what the workflow scripts import.

    The fastest of ``repeats`` runs: the fixed cost, without the noise.
    """
    code = (
        "import jax.numpy as jnp, pandas, rasterio;"
        "import sarstack.insar, sarstack.rtc, sarstack.xcorr, sarstack.timeseries;"
        "jnp.zeros(1).block_until_ready()"
    )
    return min(run_measured([PYTHON, "-c", code]).wall_s for _ in range(repeats))


# --------------------------------------------------------------------------- other load


class ForeignLoad:
    """CPU time other processes used while a case ran (they skew its timings).

    Busy time of the whole machine (``/proc/stat``) minus this process's and its
    waited-for children's CPU time (``getrusage``); Linux only, else unknown.
    """

    def __init__(self) -> None:
        self.start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]
        except OSError:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(ticks) - ticks[3] - ticks[4]) / hz  # minus idle and iowait
        own = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            ru = resource.getrusage(who)
            own += ru.ru_utime + ru.ru_stime
        return busy, own, time.monotonic()

    def note(self) -> str:
        end = self._snapshot()
        if self.start is None or end is None:
            return "other load unknown"
        foreign = (end[0] - self.start[0]) - (end[1] - self.start[1])
        share = max(foreign, 0.0) / ((end[2] - self.start[2]) * (os.cpu_count() or 1))
        text = f"other processes used {100 * share:.0f} % of the CPUs"
        return text + (" — timings unreliable" if share > 0.10 else "")

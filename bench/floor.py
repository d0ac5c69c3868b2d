"""Snakemake's floor: the wall time of a chain of jobs that do nothing.

Each sarstack stage is a rule whose job is a fresh Python process, and the
stages of a branch run one after another (select -> superset -> flatten ->
tiles -> xcorr -> aggregate -> dates/plots). Whatever the kernels do, a
branch cannot finish faster than Snakemake needs to run that many chained
jobs. This measures that floor on this machine: a throw-away workflow of K
chained rules, each job running ``python -c 'import numpy, rasterio'`` (what
every sarstack script imports at least), from an empty folder, plus
``snakemake -n`` alone (start-up and DAG only).

    .venv/bin/python bench/floor.py                 # K = 8 (the RTC chain), 3 repeats
    .venv/bin/python bench/floor.py --jobs 6 --repeats 5

Prints the median wall time of the chain, of the dry run, and per job.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAKEFILE = """
rule all:
    input: "s{k}"

for i in range(1, {k} + 1):
    rule:
        name: f"s{{i}}"
        input: [] if i == 1 else f"s{{i - 1}}"
        output: f"s{{i}}"
        shell: "{python} -c 'import numpy, rasterio' && touch {{output:q}}"
"""


def _time(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=8, help="chained jobs (default 8, the RTC chain)")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sarstack-floor-"))
    try:
        (work / "Snakefile").write_text(SNAKEFILE.format(k=a.jobs, python=shlex.quote(sys.executable)))
        smk = [sys.executable, "-m", "snakemake", "--cores", str(a.cores), "-q"]
        chain, dry = [], []
        for _ in range(a.repeats):
            for f in work.glob("s[0-9]*"):
                f.unlink()
            shutil.rmtree(work / ".snakemake", ignore_errors=True)
            dry.append(_time([*smk, "-n"], work))
            chain.append(_time(smk, work))
        c, d = statistics.median(chain), statistics.median(dry)
        print(f"{a.jobs} chained no-op jobs, --cores {a.cores}, median of {a.repeats}:")
        print(f"  whole run      {c:6.2f} s")
        print(f"  snakemake -n   {d:6.2f} s (start-up and DAG)")
        print(f"  per job        {(c - d) / a.jobs:6.2f} s (process start, imports, bookkeeping)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

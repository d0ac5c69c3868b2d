"""How run time and job count follow the number of RTC stacks (issue 24 item 2).

For each N in --stacks: N tiny synthetic stacks (--dates scenes of --size² px,
``sarstack.synthetic.make_rtc_stack`` with seeds 1..N, generated once under
--workdir/inputs) in one run (``rtc.stacks``, ``rtc.tiles [2, 2]``), and

* ``snakemake -n rtc``: the jobs it plans before the checkpoints and how long
  planning takes (the DAG time);
* with N <= --run-max, the real run (``snakemake --cores C rtc``): wall time and
  the jobs it ran (Snakemake's "N of N steps" line), and that
  ``stacks_summary.csv`` has N rows.

Example (from the repository root):
  .venv/bin/python bench/stacks.py --stacks 10,100,500 --run-max 100

The markdown table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def make_inputs(root: Path, n: int, dates: int, size: int) -> dict[str, str]:
    """{stack name: glob} of n stacks, generated once (a marker file per stack)."""
    from sarstack import synthetic

    out = {}
    for k in range(1, n + 1):
        folder = root / f"s{k:04d}"
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            synthetic.make_rtc_stack(folder, n_dates=dates, shape=(size, size), seed=k,
                                     frame_jitter_px=1)  # fmt: skip
            (folder / ".complete").touch()
        out[f"s{k:04d}"] = str(folder / "**" / "*_VV.tif")
    return out


def snakemake(args: list[str], log: Path) -> tuple[float, str]:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=REPO,
                       capture_output=True, text=True)  # fmt: skip
    wall = time.monotonic() - t0
    log.write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed, see {log}")
    return wall, p.stdout + p.stderr


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--stacks", default="10,100,500", help="comma-separated stack counts")
    ap.add_argument("--dates", type=int, default=30, help="scenes per stack")
    ap.add_argument("--size", type=int, default=32, help="scene side in pixels")
    ap.add_argument("--cores", type=int, default=2, help="snakemake --cores of the real runs")
    ap.add_argument("--run-max", type=int, default=100,
                    help="run for real only up to this many stacks (else plan only)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sarstack-stacks"),
                    help="inputs, configs and outputs")
    a = ap.parse_args(argv)
    rows = []
    for n in [int(x) for x in a.stacks.split(",") if x.strip()]:
        stacks = make_inputs(a.workdir / "inputs", n, a.dates, a.size)
        run = a.workdir / f"n{n}"
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        cfg = run / "config.yaml"  # JSON is YAML
        cfg.write_text(json.dumps({"output_dir": str(run / "out"), "insar": {"enabled": False},
                                   "rtc": {"stacks": stacks, "tiles": [2, 2]}}))  # fmt: skip
        common = ["rtc", "--configfile", str(cfg), "--directory", str(run)]
        dag_s, out = snakemake(["-n", "--cores", str(a.cores), *common], run / "dry.log")
        m = re.search(r"^total\s+(\d+)", out, re.M)
        planned = int(m.group(1)) if m else None
        wall = ran = rows_ok = None
        if n <= a.run_max:
            wall, out = snakemake(["--cores", str(a.cores), *common], run / "run.log")
            steps = re.findall(r"(\d+) of (\d+) steps", out)
            ran = int(steps[-1][1]) if steps else None
            summary = pd.read_csv(run / "out" / "rtc" / "stacks_summary.csv")
            rows_ok = len(summary) == n
        rows.append((n, planned, f"{dag_s:.1f}", ran, "–" if wall is None else f"{wall:.0f}",
                     "–" if rows_ok is None else ("yes" if rows_ok else "NO")))  # fmt: skip
        print(f"{n} stacks: planned {planned} jobs in {dag_s:.1f} s; ran {ran}; wall {wall}",
              file=sys.stderr)  # fmt: skip
    print(f"| stacks ({a.dates} dates of {a.size}² px) | jobs planned before checkpoints | "
          f"`snakemake -n` s | jobs run | wall s (--cores {a.cores}) | stacks_summary rows = N |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join("–" if v is None else str(v) for v in r) + " |")


if __name__ == "__main__":
    main()

"""sarstack benchmark harness: our kernels and workflow rules side by side with references.

Generates every input on the spot, runs the selected cases in one process (rule
jobs as subprocesses, as Snakemake runs them) and prints markdown tables of
medians and ratios, then the issue's targets with PASS / MISS. The same text is
written to bench/out/results.md.

cases
  xcorr    batched sarstack.xcorr.phase_correlate vs a Python loop of
           skimage.registration.phase_cross_correlation(normalization=None) on the
           same tiles, and vs a jitted FFT-only lower bound (rfft2 x2, irfft2,
           argmax); tiles/s, speed-up, ratio to the bound, kernel stage times.
  invert   px/s of L2, correlation-weighted L2, conncomp-censored L2 and L1
           inversions on one block, vs NumPy/SciPy oracles (lstsq, per-pixel lstsq
           loops, per-pixel linprog/HiGHS; loops on a subsample, extrapolated), the
           L1 objective of both, and dolphin's invert_stack / censored_lstsq /
           invert_stack_l1 when `import dolphin` works.
  rules    workflow/scripts/insar_invert.py and rtc_xcorr.py as subprocesses on
           generated stacks: wall time vs the bare rasterio read of their inputs,
           peak RSS at 1x and 4x scene size, and a cProfile stage breakdown.
  compile  each of those scripts in a fresh process with an empty, then the same
           (warm), then no persistent compilation cache: wall and compile time.

sizes (default / --quick / --big)
  xcorr    16 tiles of 256², 512², 1024² / 4 tiles of 256² / as default
  invert   256² px, 84 ifgs over 30 dates / 64² px / as default (--invert-side)
  rules    insar 512² (and 1024² for RSS) x 30 ifgs, L1 (L2 too, for comparison),
           rtc 4 scenes of 1024² (and 2 of 2048² for RSS) / insar 256², 512² x 12
           ifgs (L2), rtc 512², 1024² /
           insar 2048² x 100 ifgs (RSS at 1024² and 2048²), rtc 10 scenes of 4096²
           (RSS at 2048² and 4096²)
  compile  insar 256² x 30 ifgs, rtc 2 scenes of 512² / smaller / as default

The default run takes about 3 minutes on 2 cores, --quick under a minute;
--big needs about 10 GiB of disk under --workdir and much longer.

examples
  .venv/bin/python bench/run.py
  .venv/bin/python bench/run.py --quick
  .venv/bin/python bench/run.py --cases xcorr,invert --repeats 7
  .venv/bin/python bench/run.py --cases rules --big --workdir /scratch/bench
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import _common
from _common import CaseResult, ForeignLoad, Table, Target, fmt

CASES = ("xcorr", "invert", "rules", "compile")
OUT = _common.REPO / "bench" / "out" / "results.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated subset of {','.join(CASES)} (default: all)",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small smoke run (< 1 min)")
    size.add_argument(
        "--big",
        action="store_true",
        help="the issue's big rule sizes (2048² x 100 ifgs, 10 scenes of 4096²)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed repeats per in-process measurement, median reported (default 5)",
    )
    p.add_argument("--xcorr-sizes", default=None, help="tile sizes, e.g. 256,512,1024")
    p.add_argument("--xcorr-batch", type=int, default=None, help="tiles per call (default 16)")
    p.add_argument("--upsample", type=int, default=10, help="upsample factor (default 10)")
    p.add_argument(
        "--invert-side", type=int, default=None, help="invert block side in px (default 256)"
    )
    p.add_argument("--invert-dates", type=int, default=30, help="dates (default 30)")
    p.add_argument(
        "--invert-network",
        default="nearest:3",
        help="pair network as network.make_pairs (default nearest:3: 84 ifgs)",
    )
    p.add_argument(
        "--oracle-pixels",
        type=int,
        default=None,
        help="subsample for per-pixel lstsq oracles (default 2000)",
    )
    p.add_argument(
        "--l1-oracle-pixels",
        type=int,
        default=None,
        help="subsample for the per-pixel linprog oracle (default 200)",
    )
    p.add_argument(
        "--insar-method",
        choices=["L1", "L2"],
        default=None,
        help="insar_invert.py --method for rules and compile (default L1)",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="OpenBLAS/MKL threads of the in-process NumPy, SciPy and skimage\n"
        "references (default 1: their idle threads spin and, next to XLA's,\n"
        "made the skimage loop 30 %% slower and erratic on 2 cores; 1 thread\n"
        "is also the faster setting for the per-pixel loops). 0 = leave as is.\n"
        "Rule jobs always run with the caller's environment.",
    )
    p.add_argument("--no-profile", action="store_true", help="skip the rules' cProfile runs")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where generated stacks go (default: a temporary folder, removed)",
    )
    p.add_argument("--out", type=Path, default=OUT, help=f"markdown output (default {OUT})")
    return p.parse_args(argv)


def settings(a: argparse.Namespace) -> dict:
    """Sizes per mode; explicit flags override them."""
    if a.quick:
        s = dict(
            xcorr_sizes=[256],
            batch=4,
            side=64,
            sub=200,
            sub_l1=40,
            method="L2",
            insar=(256, 512),
            n_ifgs=10,
            rtc=(512, 1024),
            scenes=2,
            tiles=(4, 4),
            timing=0,
            c_insar=128,
            c_ifgs=10,
            c_rtc=256,
            profile=False,
        )
    else:
        s = dict(
            xcorr_sizes=[256, 512, 1024],
            batch=16,
            side=256,
            sub=2000,
            sub_l1=200,
            method="L1",
            insar=(512, 1024),
            n_ifgs=30,
            rtc=(1024, 2048),
            scenes=4,
            tiles=(8, 8),
            timing=0,
            c_insar=256,
            c_ifgs=30,
            c_rtc=512,
            profile=not a.no_profile,
        )
        if a.big:
            s.update(insar=(1024, 2048), n_ifgs=100, rtc=(2048, 4096), scenes=10, timing=1)
    if a.xcorr_sizes:
        s["xcorr_sizes"] = [int(v) for v in a.xcorr_sizes.split(",")]
    for key, flag in (
        ("batch", "xcorr_batch"),
        ("side", "invert_side"),
        ("sub", "oracle_pixels"),
        ("sub_l1", "l1_oracle_pixels"),
        ("method", "insar_method"),
    ):
        if getattr(a, flag) is not None:
            s[key] = getattr(a, flag)
    return s


def run_case(name: str, a: argparse.Namespace, s: dict, work: Path) -> CaseResult:
    if name == "xcorr":
        import case_xcorr

        return case_xcorr.run(s["xcorr_sizes"], s["batch"], a.upsample, a.repeats)
    if name == "invert":
        import case_invert

        return case_invert.run(
            s["side"], a.invert_dates, a.invert_network, a.repeats, s["sub"], s["sub_l1"]
        )
    if name == "rules":
        import case_rules

        return case_rules.run(
            work,
            s["insar"],
            s["n_ifgs"],
            s["rtc"],
            s["scenes"],
            s["tiles"],
            s["method"],
            s["timing"],
            s["profile"],
        )
    import case_compile

    return case_compile.run(work, s["c_insar"], s["c_ifgs"], s["c_rtc"], s["tiles"], s["method"])


def summary(targets: list[Target]) -> str:
    t = Table("targets", ["target", "goal", "measured", "verdict", "note"])
    if not targets:
        t.notes.append("no target is measured by the selected cases and sizes")
    for g in targets:
        measured = None if g.measured is None else float(g.measured)
        shown = f"{100 * measured:.1f} %" if measured is not None and "%" in g.goal else measured
        if isinstance(shown, float):
            shown = f"{fmt(shown)}×"
        t.add(g.name, g.goal, shown, f"**{g.verdict}**", g.note)
    return t.markdown()


def source_state() -> str:
    """HEAD commit and a hash of src/sarstack/*.py: which code the numbers are for."""
    import hashlib
    import subprocess

    digest = hashlib.sha1()
    for path in sorted((_common.REPO / "src" / "sarstack").glob("*.py")):
        digest.update(path.read_bytes())
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=_common.REPO, capture_output=True, text=True
    ).stdout.strip()
    return f"HEAD {head or '?'}, src/sarstack sha1 {digest.hexdigest()[:10]}"


def header(a: argparse.Namespace) -> str:
    import jax

    mode = "quick" if a.quick else ("big" if a.big else "default")
    return (
        f"## sarstack benchmarks ({mode})\n\n"
        f"{dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}), cases: {a.cases}, NumPy/SciPy BLAS threads: "
        f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; {source_state()}\n"
    )


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    names = [c.strip() for c in a.cases.split(",") if c.strip()]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        sys.exit(f"error: --cases: unknown {', '.join(unknown)} (choose from {', '.join(CASES)})")
    s = settings(a)
    if a.blas_threads > 0:  # before NumPy loads (the case modules import it)
        if "numpy" in sys.modules:
            print("warning: NumPy already loaded; --blas-threads has no effect", file=sys.stderr)
        for var in _common.BLAS_THREAD_VARS:
            os.environ[var] = str(a.blas_threads)

    from sarstack.jaxcfg import configure_jax

    configure_jax(cache_dir="")  # in-process cases warm up explicitly; no cache side effects

    parts = [header(a)]
    print(parts[0], flush=True)
    targets: list[Target] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sarstack-bench-") as tmp:
        work = a.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in names:
            t0, load = time.perf_counter(), ForeignLoad()
            print(f"[{name}] running ...", file=sys.stderr, flush=True)
            try:
                res = run_case(name, a, s, work / name)
            except Exception as e:  # noqa: BLE001 - one failing case must not hide the others
                traceback.print_exc()
                res = CaseResult(
                    [Table(f"{name}: FAILED", ["error"], [[f"{type(e).__name__}: {e}"]])]
                )
            took = time.perf_counter() - t0
            text = f"## {name} ({took:.0f} s, {load.note()})\n\n"
            text += "\n".join(t.markdown() for t in res.tables)
            print(text, flush=True)
            parts.append(text)
            targets += res.targets
    text = summary(targets) + f"\nTotal {time.perf_counter() - t_start:.0f} s.\n"
    print(text, flush=True)
    parts.append(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(parts))
    print(f"written to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

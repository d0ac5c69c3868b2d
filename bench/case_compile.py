"""compile: per-job compile time with a cold, a warm and no persistent compilation cache."""

from __future__ import annotations

import json
from pathlib import Path

import _inputs
from _common import PYTHON, REPO, CaseResult, Table, Target, run_measured, script, stage_args

MAX_WARM_SHARE = 0.10
HOOK = str(REPO / "bench" / "_jax_hook.py")


def run(
    work: Path, insar_side: int, n_ifgs: int, rtc_side: int, tiles: tuple[int, int], method: str
) -> CaseResult:
    ifg = _inputs.ifg_stack(work / "compile_insar", (insar_side, insar_side), n_ifgs)
    rtc = _inputs.rtc_stack(work / "compile_rtc", (rtc_side, rtc_side), 2, tiles)
    jobs = {
        f"insar_invert ({method}) {insar_side}² × {len(ifg.rasters)} ifgs": [
            script("insar_invert.py"),
            "--ifgs",
            str(ifg.table),
            "--reference",
            str(ifg.reference),
            "--out-dir",
            str(work / "compile_insar" / "out"),
            "--index",
            str(work / "compile_insar" / "out" / "ts.csv"),
            "--method",
            method,
            *stage_args("insar_invert"),
        ],
        f"rtc_xcorr {rtc_side}², {tiles[0]}×{tiles[1]} tiles": [
            script("rtc_xcorr.py"),
            "--reference",
            str(rtc.flats[0]),
            "--secondary",
            str(rtc.flats[1]),
            "--tiles",
            str(rtc.tiles),
            "--out",
            str(work / "compile_rtc" / "pair.csv"),
        ],
    }
    table = Table(
        "compile: one job in a fresh process, persistent compilation cache cold / warm / off",
        [
            "job",
            "cache",
            "wall s",
            "compile s",
            "compile share",
            "compiles",
            "cache hits",
            "trace s",
            "lower s",
            "backend s",
        ],
    )
    table.notes += [
        "compile s: union of the time JAX spends tracing, lowering to MLIR and in backend "
        "compilation (which, on a cache hit, is loading the executable), from "
        "`jax.monitoring` events recorded by `bench/_jax_hook.py` around the script.",
        'cold: an empty cache folder; warm: the same folder again; off: `--jax-cache ""`.',
    ]
    result = CaseResult([table])
    for k, (label, cmd) in enumerate(jobs.items()):
        cache = work / f"compile_cache_{k}"
        for state, cache_arg in (("cold", str(cache)), ("warm", str(cache)), ("off", "")):
            report = work / f"compile_{k}_{state}.json"
            m = run_measured([PYTHON, HOOK, str(report), *cmd, "--jax-cache", cache_arg])
            r = json.loads(report.read_text())
            share = r["compile_s"] / m.wall_s
            table.add(
                label,
                state,
                m.wall_s,
                r["compile_s"],
                f"{100 * share:.0f} %",
                r["n_compiles"],
                r["cache_hits"],
                r["trace_s"],
                r["lower_s"],
                r["backend_s"],
            )
            if state == "warm":
                result.targets.append(
                    Target(
                        f"{label.split()[0]}: compile share, warm cache",
                        f"≤ {100 * MAX_WARM_SHARE:.0f} % of wall",
                        share,
                        share <= MAX_WARM_SHARE,
                        f"{label}: {r['compile_s']:.2f} s of {m.wall_s:.2f} s",
                    )
                )
    return result

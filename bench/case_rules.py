"""rules: wall time and peak RSS of insar_invert.py and rtc_xcorr.py vs the bare read time."""

from __future__ import annotations

import functools
import json
import pstats
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import _inputs
import rasterio
from _common import (
    PYTHON,
    REPO,
    CaseResult,
    Measured,
    Table,
    Target,
    ratio,
    run_measured,
    script,
    stage_args,
    startup_seconds,
    time_call,
)

from sarstack import io

MAX_WALL_TO_READ = 1.5
MAX_RSS_GROWTH = 1.2
INSAR_BLOCK = 256  # insar_invert.py --block (its default)
HOOK = str(REPO / "bench" / "_jax_hook.py")

# Functions whose cumulative time the profile table shows: (label, file suffix, name).
PROFILE_FUNCS = {
    "insar_invert.py": [
        ("read inputs (`io.read_band`)", "sarstack/io.py", "read_band"),
        ("inversion (`insar._solve_block`)", "sarstack/insar/invert.py", "_solve_block"),
        ("temporal coherence", "sarstack/timeseries/_coherence.py", "temporal_coherence"),
        ("write blocks (`RasterWriter.write`)", "sarstack/io.py", "write"),
        ("finish COGs (`RasterWriter.__exit__`)", "sarstack/io.py", "__exit__"),
        ("XLA compile / cache load", "jax/_src/compiler.py", "compile_or_get_cached"),
        ("imports", "<frozen importlib._bootstrap>", "_find_and_load"),
    ],
    "rtc_xcorr.py": [
        ("read inputs (`io.read_band`)", "sarstack/io.py", "read_band"),
        ("tile preparation (`xcorr.prepare_tiles`)", "sarstack/xcorr/tiles.py", "prepare_tiles"),
        ("phase correlation (`xcorr.phase_correlate`)", "sarstack/xcorr/register.py", "phase_correlate"),
        ("re-centring shift (`xcorr._fourier_shift`)", "sarstack/xcorr/register.py", "_fourier_shift"),
        ("XLA compile / cache load", "jax/_src/compiler.py", "compile_or_get_cached"),
        ("imports", "<frozen importlib._bootstrap>", "_find_and_load"),
    ],
}


def flags(**kw: object) -> list[str]:
    """``flags(out_dir=p)`` → ``["--out-dir", "p"]``."""
    return [v for k, val in kw.items() for v in (f"--{k.replace('_', '-')}", str(val))]


@dataclass
class RuleRun:
    """One rule at one scene size: what each job reads and runs, and the measurements."""

    name: str  # script file name
    label: str
    inputs: list[list[Path]]  # files each job reads
    args: list[list[str]]  # script arguments of each job (rtc_xcorr: one job per pair)
    out_dir: Path
    runs: list[Measured] = field(default_factory=list)
    compile_s: list[float] = field(default_factory=list)
    read_s: float | None = None
    write_s: float | None = None

    def command(self, k: int) -> list[str]:
        return [PYTHON, script(self.name), *self.args[k], *stage_args(self.name, self.args[k])]

    @property
    def wall_s(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def rss_mb(self) -> float | None:
        vals = [r.peak_rss_mb for r in self.runs if r.peak_rss_mb is not None]
        return max(vals) if vals else None


@functools.cache
def ifg_inputs(root: Path, side: int, n_ifgs: int) -> _inputs.IfgInputs:
    return _inputs.ifg_stack(root, (side, side), n_ifgs)


def insar_run(work: Path, side: int, n_ifgs: int, method: str) -> RuleRun:
    root = work / f"insar_{side}"
    inp = ifg_inputs(root, side, n_ifgs)
    out = root / f"out_{method}"
    args = flags(
        ifgs=inp.table,
        reference=inp.reference,
        out_dir=out,
        index=out / "timeseries.csv",
        method=method,
        jax_cache=work / "jax_cache",
    )
    args += ["--block", str(INSAR_BLOCK), str(INSAR_BLOCK)]
    label = f"insar_invert ({method}) {side}² × {len(inp.rasters)} ifgs"
    return RuleRun("insar_invert.py", label, [inp.rasters], [args], out)


def rtc_run(work: Path, side: int, n_scenes: int, tiles: tuple[int, int]) -> RuleRun:
    root = work / f"rtc_{side}"
    inp = _inputs.rtc_stack(root, (side, side), n_scenes, tiles)
    pairs = list(zip(inp.flats[:-1], inp.flats[1:], strict=True))
    args = [
        flags(
            reference=ref,
            secondary=sec,
            tiles=inp.tiles,
            out=root / "xcorr" / f"{k}.csv",
            jax_cache=work / "jax_cache",
        )
        for k, (ref, sec) in enumerate(pairs)
    ]
    label = f"rtc_xcorr {side}², {tiles[0]}×{tiles[1]} tiles of {side // tiles[0]}², per pair"
    return RuleRun("rtc_xcorr.py", label, [list(p) for p in pairs], args, root / "xcorr")


def rewrite_seconds(out_dir: Path, scratch: Path) -> float:
    """Time to write the job's raster outputs again as COGs with ``sarstack.io``.

    The floor for a job that must produce those files, next to the read floor.
    """
    total = 0.0
    for k, path in enumerate(sorted(out_dir.rglob("*.tif"))):
        with rasterio.open(path) as ds:
            data, nodata = ds.read(1), ds.nodata
        grid = io.read_grid(path)
        t0 = time.perf_counter()
        io.write_raster(scratch / f"{k}.tif", data, grid, nodata=nodata)
        total += time.perf_counter() - t0
        (scratch / f"{k}.tif").unlink()
    return total


def measure(rule: RuleRun, work: Path, warm_up: bool = True) -> RuleRun:
    """Warm the compilation cache with the first job, then time every job once.

    ``warm_up=False`` skips the warm-up run when an earlier run compiled the same
    kernel shapes (insar_invert's shapes follow its block, not the scene). Each
    timed job runs under ``_jax_hook.py`` to record its compile time. The bare
    read time is the median over jobs of reading that job's inputs fully once
    with rasterio, in this process, page cache warm (as for the job, whose
    inputs were just written).
    """
    if warm_up:
        run_measured(rule.command(0))  # fills the persistent cache for these shapes
    for k in range(len(rule.args)):
        report = work / "hook.json"
        rule.runs.append(run_measured([PYTHON, HOOK, str(report), *rule.command(k)[1:]]))
        rule.compile_s.append(json.loads(report.read_text())["compile_s"])
    rule.read_s = statistics.median(
        time_call(lambda files=files: _inputs.read_all(files), 3)[0] for files in rule.inputs
    )
    rule.write_s = rewrite_seconds(rule.out_dir, work) / len(rule.args)
    return rule


def profile(rule: RuleRun, work: Path) -> Table:
    """Cumulative time of the main stages of one job, from a cProfile run (warm cache)."""
    out = work / f"{rule.name}.prof"
    run_measured([PYTHON, "-m", "cProfile", "-o", str(out), *rule.command(0)[1:]])
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    total = max(v[3] for v in stats.values())
    table = Table(
        f"where {rule.name} spends its time: {rule.label} (cProfile, warm cache)",
        ["stage (cumulative, may nest)", "s", "share of job"],
    )
    for label, suffix, func in PROFILE_FUNCS[rule.name]:
        ct = sum(v[3] for (f, _, fn), v in stats.items() if fn == func and f.endswith(suffix))
        table.add(label, ct, f"{100 * ct / total:.0f} %")
    table.add("whole job under cProfile", total, "100 %")
    return table


def run(
    work: Path,
    insar_sides: tuple[int, int],
    n_ifgs: int,
    rtc_sides: tuple[int, int],
    n_scenes: int,
    tiles: tuple[int, int],
    method: str,
    timing_index: int,
    with_profile: bool,
) -> CaseResult:
    """``*_sides`` are the (1×, 4×) scene sizes; ``timing_index`` picks the one timed."""
    startup = startup_seconds()
    # insar_invert's kernel shapes follow its block: a second size whose blocks are all
    # full reuses the first size's compiled kernels and needs no warm-up run of its own.
    full_blocks = all(s % INSAR_BLOCK == 0 for s in insar_sides)
    jobs = {
        "insar_invert.py": [
            measure(insar_run(work, side, n_ifgs, method), work, warm_up=k == 0 or not full_blocks)
            for k, side in enumerate(insar_sides)
        ],
        "rtc_xcorr.py": [
            measure(rtc_run(work, side, n_scenes if k == timing_index else 2, tiles), work)
            for k, side in enumerate(rtc_sides)
        ],
    }
    wall = Table(
        "rules: one job vs the bare I/O of its inputs and outputs (warm cache)",
        ["job", "read s", "write s", "job wall s", "compile s", "wall / read",
         "wall / (read + write)", "(wall − start-up) / read"],
    )  # fmt: skip
    wall.notes += [
        "job wall: the script as a fresh subprocess (as Snakemake runs it) after one run "
        "that fills the persistent compilation cache; rtc_xcorr: median over the pairs.",
        "read: every input band read fully once with rasterio, in-process, page cache warm.",
        "write: the job's raster outputs written again as COGs by `sarstack.io.write_raster` "
        "(rtc_xcorr writes one CSV).",
        "compile: JAX trace + lower + compile/cache load inside the job (`_jax_hook.py`).",
        f"start-up: a fresh interpreter importing jax, rasterio, pandas and sarstack = "
        f"{startup:.2f} s, paid by every job whatever its size.",
    ]
    mem = Table(
        "rules: peak RSS at 1× and 4× scene size (twice the rows and cols)",
        ["rule", "1× scene", "peak RSS 1× MB", "4× scene", "peak RSS 4× MB", "4× / 1×"],
    )
    mem.notes.append("Peak RSS of the job process (`/usr/bin/time -v`, else getrusage).")
    result = CaseResult([wall, mem])

    def wall_row(rule: RuleRun) -> tuple[float | None, float | None]:
        r = ratio(rule.wall_s, rule.read_s)
        net = ratio(max(rule.wall_s - startup, 0.0), rule.read_s)
        wall.add(rule.label, rule.read_s, rule.write_s, rule.wall_s,
                 statistics.median(rule.compile_s), r,
                 ratio(rule.wall_s, rule.read_s + rule.write_s), net)  # fmt: skip
        return r, net

    if method == "L1":  # the other method too, for comparison (no target)
        side = insar_sides[timing_index]
        wall_row(measure(insar_run(work, side, n_ifgs, "L2"), work))
    for name, (small, large) in jobs.items():
        timed = (small, large)[timing_index]
        r, net = wall_row(timed)
        result.targets.append(
            Target(
                f"{name}: job wall / bare read",
                f"≤ {MAX_WALL_TO_READ}×",
                r,
                r is not None and r <= MAX_WALL_TO_READ,
                f"{timed.label}; net of start-up {net:.1f}×",
            )  # fmt: skip
        )
        growth = ratio(large.rss_mb, small.rss_mb)
        mem.add(name, small.label, small.rss_mb, large.label, large.rss_mb, growth)
        result.targets.append(
            Target(
                f"{name}: peak RSS 4× / 1× scene",
                f"≤ {MAX_RSS_GROWTH}×",
                growth,
                None if growth is None else growth <= MAX_RSS_GROWTH,
            )  # fmt: skip
        )
        if with_profile:
            result.tables.append(profile(timed, work))
    return result

"""The ``sarstack`` command: one subcommand per workflow stage.

``sarstack <stage> [options]`` (or ``python -m sarstack <stage>``) runs the
stage's ``main`` from ``sarstack.cli.<stage>``; ``sarstack --help`` lists the
stages with the first line of each module's docstring, read without importing
it (stage modules import NumPy, rasterio and, for the inversion, JAX). The
files under ``workflow/scripts/`` are one-line shims onto the same stages.
This module also holds the stages' shared plumbing: logging, the parser and
one-line errors with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from sarstack.errors import SarstackError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # JAX logs its search for TPU/GPU plugins at INFO; keep job logs readable.
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    # rasterio repeats GDAL's errors at INFO; our error message already names the file.
    if not verbose:
        logging.getLogger("rasterio._env").setLevel(logging.WARNING)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


#: GDAL's block cache per job, in MB, unless the user set GDAL_CACHEMAX. GDAL's
#: default is 5 % of the machine's memory (1.2 GB here, 13 GB on a 256 GB node):
#: memory would follow the machine, not the block size. Too small a cache is
#: slow instead: inversion blocks (64 rows) are shorter than the inputs' tiles
#: (256), so a tile must stay cached until every block over it is read, else it
#: is decompressed once per block. The stages that read a stack block by block
#: go band by band of its tiles (``process_blocks(band_rows=...)``): one column
#: of tiles of every file then suffices (174 ifgs x two 256² float32 tiles:
#: 89 MB), not two rows of them (2 x 365 MB at 2048 columns, which 384 MB did
#: not hold). Measured 2026-12-05 on a 2048² x 174-ifg L2 strip: row by row
#: with 384 MB 6.3 s (9.9 s CPU, 889 MiB peak); band by band with 128 MB 4.4 s
#: (7.2 s CPU, 612 MiB), the same files. The inversion sets it from what its
#: stack needs (:func:`set_gdal_cache`, :func:`sarstack.io.band_cache_mb`).
GDAL_CACHE_MB = 128

#: Whether the user set GDAL_CACHEMAX (then sarstack leaves it alone).
_USER_GDAL_CACHE = "GDAL_CACHEMAX" in os.environ


def set_gdal_cache(mb: int) -> None:
    """This job's GDAL block cache, ``mb`` MB (instead of :data:`GDAL_CACHE_MB`),
    unless the user set GDAL_CACHEMAX. Call before the first read (GDAL reads
    the setting once)."""
    if not _USER_GDAL_CACHE:
        os.environ["GDAL_CACHEMAX"] = str(max(1, int(mb)))


#: glibc's malloc returns every large array (above 128 kB-32 MB, its moving
#: threshold) to the system when freed, so each block of a stage's loop maps
#: fresh pages and the kernel zeroes them: in the 1024^2 x 60-date L2 inversion
#: 3-4 s of each strip's 5 s were system time. Large arrays from the heap,
#: kept after they are freed, make the next block reuse the same pages: strips
#: 6.0-6.3 -> 4.6-5.1 s, the branch 15.2-16.4 -> 13.8-14.0 s (profile runs).
#: The cost is memory a job holds after freeing it: peaks rose a little
#: (L1 strips 1.30-1.41 -> 1.43-1.45 GB, velocity 518 -> 586 MB).
MALLOC_MMAP_THRESHOLD = 1 << 30
MALLOC_TRIM_THRESHOLD = (1 << 31) - 1


def keep_freed_memory() -> bool:
    """Ask glibc's malloc (Linux) to serve large arrays from its heap and keep
    them when freed (see :data:`MALLOC_MMAP_THRESHOLD`); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)) and bool(
            libc.mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc (e.g. musl): its own defaults
        return False


@contextlib.contextmanager
def one_malloc_arena(on: bool = True) -> Iterator[None]:
    """Threads started inside share glibc's main malloc arena (Linux and ``on``;
    otherwise nothing changes). Worker threads otherwise get arenas of their own, whose
    heaps hold at most 64 MB: a solved block's 45 MB arrays were mapped fresh
    and shrunk away again block after block. The 1024^2 x 174-ifg L2 strip
    solved by two threads: 1.5 -> 0.5 s of system time, 4.3 -> 3.8 s
    (2026-12-05). Only around such loops: the gather's threads, many small
    allocations, took 0.1 s longer on one arena. glibc's own limit (8 arenas
    a CPU) is set back on the way out."""
    m_arena_max = -8  # <malloc.h>
    libc = None
    if on and sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(m_arena_max, 1)
        except (OSError, AttributeError):
            libc = None
    try:
        yield
    finally:
        if libc is not None:
            libc.mallopt(m_arena_max, 8 * (os.cpu_count() or 1))


#: The BLAS libraries' thread variables (OpenBLAS, OpenMP, MKL, Accelerate).
#: Snakemake sets them to a job's threads; the stages spend their threads
#: themselves (blocks solved side by side, scenes, read-ahead, figures), and a
#: BLAS pool beside them spins on the same cores: a 1024² x 174-ifg L2 strip
#: of 512 rows alone, 3.1 s and 5.0 CPU s with two OpenBLAS threads, 2.7 s and
#: 3.1 CPU s with one (2026-12-05). One thread also keeps every product's
#: summation order, so results never follow the job's thread count.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "GOTO_NUM_THREADS")  # fmt: skip


def one_blas_thread() -> None:
    """One BLAS thread in this process (:data:`BLAS_THREAD_VARS`), or
    ``SARSTACK_BLAS_THREADS``. Takes effect before NumPy's first import only."""
    n = os.environ.get("SARSTACK_BLAS_THREADS", "1")
    for var in BLAS_THREAD_VARS:
        os.environ[var] = n


def huge_pages(on: bool) -> bool:
    """Transparent huge pages on or off for what this process maps from now on
    and for the processes it starts (Linux ``prctl(PR_SET_THP_DISABLE)``);
    ``SARSTACK_THP=1`` keeps them on throughout. Every stage starts with them
    off: where the system's mode is ``always``, each first touch of a 2 MB
    stretch of freshly mapped memory zeroes a whole 2 MB page, and the stages
    free and map their blocks again and again and fork the figures' processes
    (a 2048² tail chain, gather :: velocity :: plots: 8.8-10.0 s with them,
    3.3-4.3 s of it in the kernel; 6.7-8.2 s, 2.1-2.5 s, without). The
    inversion's JAX solvers turn them on again (a 1024² L1 branch ran 0-3 s
    slower without). True when the setting was made."""
    if os.environ.get("SARSTACK_THP") == "1" or not sys.platform.startswith("linux"):
        return False
    import ctypes

    pr_set_thp_disable = 41  # <linux/prctl.h>
    try:
        return ctypes.CDLL("libc.so.6").prctl(pr_set_thp_disable, int(not on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


#: Resident memory (bytes) below which :func:`release_freed_memory` leaves the
#: heap alone (a small stack's chain: 0.14 s of its 2.7 s went to trimming).
TRIM_MIN_RSS = 512 << 20


def release_freed_memory(min_rss: int = 0) -> bool:
    """Hand the memory this process freed back to the system (glibc's
    ``malloc_trim``): between the stages of a chain, and before the figures'
    forks. :func:`keep_freed_memory` keeps it for a stage's own next block,
    and a next stage's arrays, shaped otherwise, would grow the heap beside it
    (the fused 1024² x 174-ifg L2 chain peaked at 1,287 MiB in its velocity
    stage, holding the inversion's freed blocks). Nothing is done while the
    process holds less than ``min_rss`` bytes. False where there is no glibc
    or nothing was trimmed."""
    if not sys.platform.startswith("linux"):
        return False
    if min_rss > 0:
        try:
            with open("/proc/self/statm") as f:
                if int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") < min_rss:
                    return False
        except (OSError, ValueError, IndexError):
            pass
    import ctypes
    import gc

    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)``; a SarstackError becomes ``error: ...`` and exit status 2."""
    os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))
    keep_freed_memory()
    from sarstack.storage import configure_gdal_s3

    configure_gdal_s3()
    try:
        main(argv)
    except SarstackError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        # A system error on an output (no space left, read-only, permissions),
        # e.g. from a CSV writer: one line naming the file, not a traceback.
        if e.filename is None or e.strerror is None:
            raise
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        sys.exit(2)


#: Stages, in pipeline order (each a module ``sarstack.cli.<stage>`` with ``main``).
STAGES = (
    "rtc_select", "rtc_superset", "rtc_flatten", "rtc_tiles", "rtc_xcorr", "rtc_dates",
    "rtc_aggregate", "rtc_injection", "rtc_terrain", "rtc_reflectors", "rtc_plots",
    "rtc_stacks_summary",
    "insar_select", "insar_correlation_mean", "insar_conncomp_count", "insar_troposphere",
    "insar_unwrap_correction", "insar_deramp", "insar_reference",
    "insar_invert", "insar_gather", "insar_velocity", "insar_injection",
    "insar_reference_sensitivity", "insar_rereference",
    "insar_plots", "quality_dates",
    "demo_rtc_stack", "demo_rtc_check", "demo_insar_stack", "demo_insar_check",
)  # fmt: skip


def _summary(stage: str) -> str:
    """First sentence of a stage module's docstring, without importing it."""
    import ast

    source = (Path(__file__).parent / f"{stage}.py").read_text()
    doc = ast.get_docstring(ast.parse(source)) or ""
    import textwrap

    text = " ".join(doc.split()).split(". ")[0].rstrip(".").split(": ")[0]
    return textwrap.shorten(text, 72, placeholder=" ...")


def _stage_main(stage: str) -> Callable[[Sequence[str] | None], None]:
    import importlib

    return importlib.import_module(f"sarstack.cli.{stage}").main


#: Separates the stages of one command line: ``sarstack A <args> :: B <args>``.
CHAIN = "::"


#: GDAL's block cache for the stages that read a scene twice through one open
#: dataset (rtc_flatten), MB: the second pass finds the decompressed blocks
#: there (64 MB for a 4096² float32 scene, 256 MB for 8192²); a bound of its
#: own keeps memory from following the scene (GDAL's default is 5 % of the RAM).
FLATTEN_GDAL_CACHE_MB = 512


def bound_gdal_cache(mb: int = FLATTEN_GDAL_CACHE_MB) -> None:
    """Set GDAL_CACHEMAX to ``mb`` for this process unless the user set it.
    Call before the first read (GDAL reads the setting once)."""
    import os

    os.environ.setdefault("GDAL_CACHEMAX", str(int(mb)))


def main(argv: Sequence[str] | None = None) -> None:
    """``sarstack <stage> ...``: dispatch to a stage (see ``sarstack --help``), or to
    several in turn, separated by ``::``."""
    from sarstack import __version__

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        width = max(map(len, STAGES))
        lines = [f"  {s:<{width}}  {_summary(s)}" for s in STAGES]
        print(
            "usage: sarstack <stage> [options] [:: <stage> [options] ...]\n"
            "       (sarstack <stage> --help for its options; '::' runs stages in turn,\n"
            "       ':: --log PATH ::' logs the stages after it to PATH)\n\n"
            "RTC geolocation stability and InSAR time series for SAR image stacks;\n"
            "each stage reads files and writes files (the Snakemake workflow chains them).\n\n"
            "stages:\n" + "\n".join(lines) + "\n\noptions:\n  -h, --help  this list\n"
            "  --version   the version"
        )
        if not args:
            sys.exit(2)
        return
    if args[0] == "--version":
        print(f"sarstack {__version__}")
        return
    # "sarstack A ... :: B ...": the stages one after the other in this process
    # (a rule that chains small stages pays Python's start-up and the imports
    # once); the first failure stops the chain.
    # A part "--log PATH" sends what follows (the stages' logs, their errors)
    # to PATH: one job running several stacks keeps one log per stack.
    chain: list[list[str]] = [[]]
    for arg in args:
        if arg == CHAIN:
            chain.append([])
        else:
            chain[-1].append(arg)
    one_blas_thread()  # before a stage imports NumPy
    if any(part[:1] == ["rtc_flatten"] for part in chain):
        bound_gdal_cache()
    for part in chain:
        if part[:1] == [LOG_TO]:
            if len(part) != 2:
                print(f"error: sarstack: {LOG_TO} takes one path", file=sys.stderr)
                sys.exit(2)
            continue
        stage = part[0].replace("-", "_") if part else ""
        if stage not in STAGES:
            print(f"error: sarstack: unknown stage {stage or CHAIN!r} (sarstack --help lists"
                  " them)", file=sys.stderr)  # fmt: skip
            sys.exit(2)
    from sarstack import openpool

    # A chain's stages hand their inputs on open (sarstack.openpool): the
    # next stage finds them with the tiles GDAL still caches.
    with openpool.keep_open() if len(chain) > 1 else contextlib.nullcontext():
        for part in chain:
            if part[0] == LOG_TO:
                log_to(part[1])
                continue
            stage = part[0].replace("-", "_")
            sys.argv[0] = f"sarstack {stage}"
            huge_pages(False)  # before the stage maps its arrays
            run(_stage_main(stage), part[1:])
            if len(chain) > 1:
                release_freed_memory(TRIM_MIN_RSS)


#: A chain part ``--log PATH``: what follows is logged to PATH (see :func:`log_to`).
LOG_TO = "--log"


def log_to(path: str) -> None:
    """Send this process's standard error (file descriptor 2: Python's logging
    and errors, and GDAL's) to ``path``, created or emptied."""
    sys.stderr.flush()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def run_script(path: str) -> None:
    """Entry of the shims in ``workflow/scripts/``: run the stage named like the file."""
    stage = Path(path).stem
    sys.argv[0] = f"sarstack {stage}"
    one_blas_thread()
    run(_stage_main(stage), sys.argv[1:])

"""JAX set-up shared by every script: CPU-friendly defaults and the persistent cache.

Many small Snakemake jobs each start a fresh Python process; the persistent
compilation cache lets them reuse compiled kernels instead of paying for XLA
compilation every time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sarstack" / "jax"


#: Environment variable that sets the threads of XLA's CPU compute pool in
#: sarstack's processes (default :data:`DEFAULT_THREADS`), read when the
#: backend starts (:func:`start_backend`).
THREADS_ENV = "SARSTACK_JAX_THREADS"
#: One thread: the kernels are batches of small operations whose intra-op
#: parallelism costs more CPU than it saves, and jobs run side by side (see
#: :func:`start_backend`).
DEFAULT_THREADS = 1


def configure_jax(x64: bool = False, cache_dir: str | Path | None = None) -> None:
    """Configure JAX before first use.

    Parameters
    ----------
    x64
        Enable float64 (only where the maths needs it, e.g. network inversion).
    cache_dir
        Persistent compilation cache folder; default ``$SARSTACK_JAX_CACHE`` or
        ``~/.cache/sarstack/jax``. An empty string disables the cache.
    """
    if cache_dir is None:
        cache_dir = os.environ.get("SARSTACK_JAX_CACHE", str(DEFAULT_CACHE))
    settings: dict[str, object] = {"jax_enable_x64": bool(x64)}
    if str(cache_dir):
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        settings.update(
            jax_compilation_cache_dir=str(cache_dir),
            jax_persistent_cache_min_compile_time_secs=0.0,
            jax_persistent_cache_min_entry_size_bytes=0,
        )
    jax = sys.modules.get("jax")
    if jax is None:
        # Not imported yet (importing it costs ~1.3 s and ~150 MB): JAX reads
        # each setting from its upper-case environment variable when a stage
        # that solves with it imports it; a stage that never does pays nothing.
        for key, value in settings.items():
            os.environ[key.upper()] = str(int(value) if isinstance(value, bool) else value)
        return
    for key, value in settings.items():
        jax.config.update(key, value)


def x64_enabled() -> bool:
    """Whether float64 kernels are on (:func:`configure_jax` ``x64``), without importing JAX."""
    jax = sys.modules.get("jax")
    if jax is not None:
        return bool(jax.config.read("jax_enable_x64"))
    return os.environ.get("JAX_ENABLE_X64", "").strip().lower() in ("1", "true", "yes", "on")


def start_backend() -> None:
    """Start JAX's CPU backend with a compute pool of ``$SARSTACK_JAX_THREADS``
    threads (default :data:`DEFAULT_THREADS`).

    XLA sizes its CPU thread pool to the CPUs the starting thread may run on
    (the only control JAX has: its scheduling affinity), so a job had a pool
    as large as the machine whatever its share of it. Measured on the 2-core
    VM: two 1024^2 x 174-ifg L1 inversion strips side by side took 30 and 33 s
    with pools of two, 22 and 25 s with pools of one; one strip alone ran as
    fast with one thread as with two (20-22 s) at two thirds of the CPU time;
    the 512^2 x 24-date L1 stack in one job took 7.1-7.4 s against 7.9-8.1 s,
    at 680 against 820-935 MB. A fixed pool also makes the results the same
    on every machine and for every chunk count: XLA's multi-threaded products
    sum in an order that follows the pool's size (L1 displacement up to 2e-3
    rad apart between pools of one and two, each within its certified
    tolerance). So the backend starts while this thread may run on that many
    of its CPUs only; every thread started meanwhile (the pool's) then gets
    this thread's full set back, so the pool runs on any CPU. Linux only (a
    no-op elsewhere, and where the pool would cover every CPU anyway); called
    by the JAX kernel modules on import, before any computation.
    """
    import jax

    try:
        n = max(1, int(os.environ.get(THREADS_ENV, DEFAULT_THREADS)))
    except ValueError:
        n = DEFAULT_THREADS
    if not hasattr(os, "sched_getaffinity") or not Path("/proc/self/task").is_dir():
        return
    full = os.sched_getaffinity(0)
    if n >= len(full):
        return
    before = set(os.listdir("/proc/self/task"))
    os.sched_setaffinity(0, set(sorted(full)[:n]))
    try:
        jax.devices("cpu")  # creates the CPU client and its thread pool
    finally:
        os.sched_setaffinity(0, full)
        for tid in set(os.listdir("/proc/self/task")) - before:
            try:
                os.sched_setaffinity(int(tid), full)
            except OSError:  # a thread that has ended meanwhile
                pass

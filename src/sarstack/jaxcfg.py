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

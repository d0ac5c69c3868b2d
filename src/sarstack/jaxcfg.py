"""JAX set-up shared by every script: CPU-friendly defaults and the persistent cache.

Many small Snakemake jobs each start a fresh Python process; the persistent
compilation cache lets them reuse compiled kernels instead of paying for XLA
compilation every time.
"""

from __future__ import annotations

import os
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
    import jax

    jax.config.update("jax_enable_x64", bool(x64))
    if cache_dir is None:
        cache_dir = os.environ.get("SARSTACK_JAX_CACHE", str(DEFAULT_CACHE))
    if str(cache_dir):
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

"""Run a workflow script and record where JAX spent its compile time.

    python bench/_jax_hook.py OUT.json SCRIPT [ARGS...]

Registers JAX monitoring listeners, runs ``SCRIPT`` as ``__main__`` with ``ARGS``,
and writes to ``OUT.json`` the seconds spent tracing, lowering and compiling
(backend compile includes loading from the persistent cache on a hit), the
number of persistent-cache hits and the script's own wall time.
"""

from __future__ import annotations

import collections
import json
import runpy
import sys
import time

from jax import monitoring

EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
    "/jax/core/compile/backend_compile_duration": "backend_s",
}


def union_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of time spans (nested jit traces are counted once)."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(spans):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def main() -> None:
    out_path, script, *args = sys.argv[1:]
    spans: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    hits = 0

    def on_span(event: str, start: float, end: float, **_: object) -> None:
        if event in EVENTS:
            spans[EVENTS[event]].append((start, end))

    def on_event(event: str, **_: object) -> None:
        nonlocal hits
        if event == "/jax/compilation_cache/cache_hits":
            hits += 1

    monitoring.register_event_time_span_listener(on_span)
    monitoring.register_event_listener(on_event)
    sys.argv = [script, *args]
    t0 = time.perf_counter()
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    report = {k: union_seconds(spans[k]) for k in EVENTS.values()}
    report |= {
        "compile_s": union_seconds([s for v in spans.values() for s in v]),
        "n_compiles": len(spans["backend_s"]),
        "cache_hits": hits,
        "script_s": time.perf_counter() - t0,
    }
    with open(out_path, "w") as f:
        json.dump(report, f)
    sys.exit(code)


if __name__ == "__main__":
    main()

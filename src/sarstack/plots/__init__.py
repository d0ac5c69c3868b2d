"""Matplotlib figures for both branches (headless, Agg backend).

Each function takes tidy DataFrames, writes one PNG atomically and returns the
(closed) Figure, so that callers and tests can inspect what was drawn. When
nothing was measured the RTC figures say "not measurable" in the figure
instead of drawing empty axes.

The names below are imported from their module on first use (PEP 562): the
InSAR figures' job then imports neither the RTC figures nor pandas (0.4-0.5 s).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module that defines it.
_HOME = {
    **dict.fromkeys(("NOT_MEASURABLE", "PAIR_OFFSET", "default_min_ok_pairs", "draw_figures"),
                    "common"),
    **dict.fromkeys(("ramp_peak_to_peak", "ramps", "troposphere", "unwrap_correction"),
                    "corrections"),
    **dict.fromkeys(("MASKED_COLOUR", "NO_STD_COLOUR", "NODATA_COLOUR", "mask_map", "network",
                     "point_series", "raster_map", "velocity_map"), "maps"),
    **dict.fromkeys(("absolute_offsets", "date_offsets", "offsets_vs_time", "pair_offsets",
                     "stack_style", "stacks_summary", "tile_mean_maps", "tile_quiver"), "rtc"),
}  # fmt: skip

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))

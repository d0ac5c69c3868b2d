"""Matplotlib figures for both branches (headless, Agg backend).

Each function takes tidy DataFrames, writes one PNG atomically and returns the
(closed) Figure, so that callers and tests can inspect what was drawn. When
nothing was measured the RTC figures say "not measurable" in the figure
instead of drawing empty axes.
"""

from sarstack.plots.common import (  # noqa: F401
    NOT_MEASURABLE,
    PAIR_OFFSET,
    default_min_ok_pairs,
    draw_figures,
)
from sarstack.plots.corrections import (  # noqa: F401
    ramp_peak_to_peak,
    ramps,
    troposphere,
    unwrap_correction,
)
from sarstack.plots.maps import (  # noqa: F401
    MASKED_COLOUR,
    NO_STD_COLOUR,
    NODATA_COLOUR,
    mask_map,
    network,
    point_series,
    raster_map,
    velocity_map,
)
from sarstack.plots.rtc import (  # noqa: F401
    absolute_offsets,
    date_offsets,
    offsets_vs_time,
    pair_offsets,
    stack_style,
    stacks_summary,
    tile_mean_maps,
    tile_quiver,
)

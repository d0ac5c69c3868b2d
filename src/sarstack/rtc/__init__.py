"""RTC geolocation-stability kernels: scene selection, the union grid, outlier
flattening, the tile layout, per-tile offsets in metres and their aggregates.

Everything here is pure (arrays and small records in, arrays and DataFrames
out) except :func:`superset_scene` and :func:`flatten_scene`, which stream a
raster block by block through :mod:`sarstack.io`.
"""

from sarstack.rtc.aggregate import (  # noqa: F401
    CRITERIA,
    MIN_NEIGHBOURS,
    MIN_OUTLIER_TILES,
    REJECTED_STATUSES,
    STATUS_LARGE,
    STATUS_LOWCORR,
    STATUS_NAN,
    STATUS_OK,
    STATUS_OUT_CONSENSUS,
    STATUS_OUT_NEIGHBOURS,
    TileStatus,
    aggregate_pairs,
    aggregate_tiles,
    classify_tiles,
    combine_verdicts,
    judge_dates,
    mark_outliers,
    outlier_tiles,
    robust_stats,
    summarize,
    verdict,
)
from sarstack.rtc.correlate import (  # noqa: F401
    _strided_scene,
    chance_peak_corr,
    coarse_offset,
    measure_pair,
    measure_pairs,
)
from sarstack.rtc.flatten import (  # noqa: F401
    DB_FLOOR,
    FILL_ABS,
    FILL_MIN_FRACTION,
    FILL_READ_SIDE,
    SCALES,
    coarse_cache_path,
    coarse_stride,
    detect_fill,
    flatten_block,
    flatten_scene,
    flatten_stats,
    percentile_bounds,
    read_scene,
    sample_valid,
    scene_fill,
    to_power,
)
from sarstack.rtc.injection import (  # noqa: F401
    INJECTION_COLUMNS,
    injected_shift,
    injection_recovery,
)
from sarstack.rtc.per_date import (  # noqa: F401
    date_offsets,
    invert_dates,
)
from sarstack.rtc.select import (  # noqa: F401
    MAX_UNION_FACTOR,
    Scene,
    check_union_size,
    find_scenes,
    grid_offset,
    misplaced_message,
    misplaced_scenes,
    select_scenes,
    union_grid,
)
from sarstack.rtc.stacks import (  # noqa: F401
    StackOutcome,
    StackResult,
    summarize_stacks,
)
from sarstack.rtc.superset import (  # noqa: F401
    superset_scene,
    superset_vrt,
    vrt_possible,
)
from sarstack.rtc.tiles import (  # noqa: F401
    TileLayout,
    fast_tile_size,
    layout_from_geojson,
    shifts_to_map,
    tile_layout,
    tile_stack,
    tile_vectors_geojson,
    tiles_geojson,
    tiles_offsets_geojson,
)

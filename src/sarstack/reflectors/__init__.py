"""Absolute geolocation against point targets (corner reflectors, transponders).

The kernel behind an absolute-geolocation check of an RTC backscatter stack:
where each surveyed point target *should* appear in a raster
(:func:`expected_positions`), where its bright return *does* appear
(:func:`locate_peak`), and the difference for one scene
(:func:`measure_scene`), and a per-scene / stack summary of those differences
(:func:`summarize_offsets`). Two functions touch files:
:func:`read_reflectors` (the target list) and :func:`measure_scene_file`, which
reads only a small window around each target (:func:`target_window`) and hands
it to the same kernel, so that memory follows the chip size, not the scene
size, and the numbers equal :func:`measure_scene` on the whole image.

Conventions
-----------
Pixel positions
    Fractional ``(row, col)`` in the **pixel-is-area** convention of GeoTIFF
    affine transforms (rasterio, GDAL): ``transform @ (col, row)`` is a map
    coordinate, and array element ``image[r, c]`` covers ``[c, c + 1) x
    [r, r + 1)`` of that space, so its centre is ``(r + 0.5, c + 0.5)``. A
    target centred on element ``image[10, 20]`` has ``row = 10.5, col = 20.5``.
Offsets
    **Measured minus expected.** ``col_px`` / ``row_px`` in pixels;
    ``east_m`` / ``north_m`` in metres along +x / +y of the raster's map CRS,
    obtained by passing the pixel offset through the linear part of the affine
    transform (so a north-up grid, whose y pixel size is negative, turns a
    positive ``row_px`` into a negative ``north_m``). Positive ``east_m``: the
    scene is displaced to the east of where it should be (the targets appear
    east of their surveyed positions); positive ``north_m``: displaced north.
"""

from sarstack.reflectors.inputs import (  # noqa: F401
    REFLECTOR_COLUMNS,
    expected_positions,
    read_reflectors,
)
from sarstack.reflectors.measure import (  # noqa: F401
    PeakResult,
    ReflectorStatus,
    locate_peak,
    measure_scene,
    measure_scene_file,
    target_window,
)
from sarstack.reflectors.summary import (  # noqa: F401
    ABSOLUTE_COLUMNS,
    summarize_offsets,
)

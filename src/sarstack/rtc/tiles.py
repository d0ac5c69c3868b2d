"""The tile layout (fast FFT sizes, centred), tiles as GeoJSON and shifts in
metres on the map."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine
from rasterio.windows import Window

from sarstack.errors import SarstackError
from sarstack.io import (
    Grid,
)

if TYPE_CHECKING:  # pandas is imported where tables are built: stages without tables start faster
    import pandas as pd

log = logging.getLogger(__package__)


@dataclass(frozen=True)
class TileLayout:
    """Equal-size tiles centred on the grid (leftover margin split evenly)."""

    n_rows: int
    n_cols: int
    tile_height: int
    tile_width: int
    row0: int
    col0: int

    def window(self, r: int, c: int) -> Window:
        return Window(
            self.col0 + c * self.tile_width,
            self.row0 + r * self.tile_height,
            self.tile_width,
            self.tile_height,
        )

    def band_window(self, r: int) -> Window:
        """The window covering tile row ``r`` (all tile columns)."""
        return Window(
            self.col0, self.row0 + r * self.tile_height, self.n_cols * self.tile_width, self.tile_height
        )


def fast_tile_size(n: int) -> int:
    """The largest length ``<= n`` whose only prime factors are 2, 3 and 5.

    Real FFTs of such lengths are several times faster than of lengths with a
    large prime factor (a 514 x 515 px tile, 2 x 257 by 5 x 103, costs 3.7x a
    512 x 512 one in pocketfft); these lengths are dense enough that a tile
    loses at most a few pixels (514 -> 512, 1029 -> 1024, 97 -> 96).
    """
    import scipy.fft as sfft

    m = int(n)
    while m > 1 and sfft.next_fast_len(m, real=True) != m:
        m -= 1
    return m


def tile_layout(shape: tuple[int, int], tiles: Sequence[int], min_size: int = 8) -> TileLayout:
    """Split a (rows, cols) grid into ``tiles = [n_rows, n_cols]`` equal tiles.

    Each tile side is the largest FFT-friendly length (:func:`fast_tile_size`)
    that fits ``tiles`` in the grid; the tiles are centred and the leftover
    margin, split evenly, is not measured.
    """
    n_r, n_c = int(tiles[0]), int(tiles[1])
    if n_r < 1 or n_c < 1:
        raise SarstackError(f"rtc.tiles: {list(tiles)} must be two positive integers")
    th, tw = shape[0] // n_r, shape[1] // n_c
    if th < min_size or tw < min_size:
        raise SarstackError(
            f"rtc.tiles: {list(tiles)} gives {th}x{tw} px tiles on a {shape[0]}x{shape[1]} grid; "
            f"tiles must be at least {min_size} px"
        )
    th, tw = fast_tile_size(th), fast_tile_size(tw)
    return TileLayout(n_r, n_c, th, tw, (shape[0] - n_r * th) // 2, (shape[1] - n_c * tw) // 2)


def tile_stack(band: np.ndarray, layout: TileLayout) -> np.ndarray:
    """Cut one tile-row band ``(tile_height, n_cols*tile_width)`` into ``(n_cols, th, tw)``."""
    th, tw = layout.tile_height, layout.tile_width
    return band.reshape(th, layout.n_cols, tw).transpose(1, 0, 2)


def tiles_geojson(
    layout: TileLayout, grid: Grid, valid: dict[str, np.ndarray] | None = None
) -> dict:
    """Tile polygons in the grid's CRS, with row/col, pixel window and valid fractions."""
    feats = []
    for r in range(layout.n_rows):
        for c in range(layout.n_cols):
            w = layout.window(r, c)
            c0, r0 = int(w.col_off), int(w.row_off)
            c1, r1 = c0 + int(w.width), r0 + int(w.height)
            ring = [grid.transform @ xy for xy in [(c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0)]]
            props: dict[str, object] = {
                "tile_row": r,
                "tile_col": c,
                "row_off": r0,
                "col_off": c0,
                "height": int(w.height),
                "width": int(w.width),
            }
            for d, arr in (valid or {}).items():
                props[f"valid_{d}"] = round(float(arr[r, c]), 4)
            feats.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
                    "properties": props,
                }
            )
    fc: dict[str, object] = {"type": "FeatureCollection", "name": "rtc_tiles", "features": feats}
    epsg = grid.crs.to_epsg() if grid.crs else None
    if epsg:
        fc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
    return fc


def _json_number(value: object) -> object:
    """A CSV value as GeoJSON wants it: NaN becomes null, numpy scalars plain Python."""
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _direction(east: float, north: float) -> tuple[float | None, float | None]:
    """Length (m) and azimuth (degrees clockwise from north, 0-360) of an offset."""
    if not (math.isfinite(east) and math.isfinite(north)):
        return None, None
    return math.hypot(east, north), math.degrees(math.atan2(east, north)) % 360.0


def tiles_offsets_geojson(layout_fc: dict, tiles: pd.DataFrame) -> dict:
    """The tile polygons of :func:`tiles_geojson` with each tile's offsets over time.

    Every column of ``tiles`` (from :func:`aggregate_tiles`: temporal mean,
    robust mean, spread and count of ok pairs, anomaly) becomes a property
    of its tile, plus ``offset_m`` and ``azimuth_deg`` (clockwise from north,
    the direction the scene is displaced) of the mean offset, so a GIS can
    style the map directly. NaN (a tile never ok) is null.
    """
    by_tile = {(int(r.tile_row), int(r.tile_col)): r for r in tiles.itertuples(index=False)}
    feats = []
    for f in layout_fc["features"]:
        props = dict(f["properties"])
        row = by_tile.get((int(props["tile_row"]), int(props["tile_col"])))
        if row is not None:
            for k, v in row._asdict().items():
                props[k] = _json_number(v)
            length, azimuth = _direction(float(row.east_mean_m), float(row.north_mean_m))
            props["offset_m"], props["azimuth_deg"] = length, azimuth
        feats.append({**f, "properties": props})
    return {**layout_fc, "name": "rtc_tile_offsets", "features": feats}


def tile_vectors_geojson(layout_fc: dict, offsets: pd.DataFrame) -> dict:
    """One point per tile and pair at the tile's centre, with that pair's offset.

    Properties: every column of ``offsets`` (dates, ``east_m``, ``north_m``,
    status, correlation quality) plus ``offset_m`` and ``azimuth_deg``
    (clockwise from north); NaN is null. In a GIS, an arrow symbol rotated by
    ``azimuth_deg`` and scaled by ``offset_m`` draws the vector field of a pair.
    """
    centres = {}
    for f in layout_fc["features"]:
        ring = f["geometry"]["coordinates"][0][:4]
        key = (int(f["properties"]["tile_row"]), int(f["properties"]["tile_col"]))
        centres[key] = [sum(p[0] for p in ring) / 4.0, sum(p[1] for p in ring) / 4.0]
    feats = []
    for r in offsets.itertuples(index=False):
        props = {k: _json_number(v) for k, v in r._asdict().items()}
        props["offset_m"], props["azimuth_deg"] = _direction(float(r.east_m), float(r.north_m))
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": centres[(int(r.tile_row), int(r.tile_col))]},
                "properties": props,
            }
        )
    out = {k: v for k, v in layout_fc.items() if k != "features"}
    return {**out, "name": "rtc_tile_vectors", "features": feats}


def layout_from_geojson(fc: dict) -> TileLayout:
    """Recover the :class:`TileLayout` written by :func:`tiles_geojson`."""
    props = [f["properties"] for f in fc["features"]]
    n_r = 1 + max(p["tile_row"] for p in props)
    n_c = 1 + max(p["tile_col"] for p in props)
    p0 = next(p for p in props if p["tile_row"] == 0 and p["tile_col"] == 0)
    return TileLayout(n_r, n_c, p0["height"], p0["width"], p0["row_off"], p0["col_off"])


def shifts_to_map(shift_rc: np.ndarray, transform: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Convert phase-correlation shifts to map offsets of secondary vs reference.

    ``shift_rc`` is skimage's (row, col) shift that registers the secondary
    onto the reference, i.e. minus the displacement of the features. The
    displacement (drow, dcol) = −shift is mapped through the geotransform's
    linear part, so a feature 1 px further east in the secondary gives
    ``east_m = +pixel width`` and 1 px further north ``north_m = +pixel height``
    (whatever the sign of the transform's ``e``).
    """
    d_row = -np.asarray(shift_rc)[..., 0]
    d_col = -np.asarray(shift_rc)[..., 1]
    east = transform.a * d_col + transform.b * d_row
    north = transform.d * d_col + transform.e * d_row
    return east, north

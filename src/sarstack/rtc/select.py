"""rtc_select: the scenes of a stack, their dates, and the union grid they
are all resampled to."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine

from sarstack import dates as sdates
from sarstack.errors import SarstackError
from sarstack.io import (
    Grid,
)

log = logging.getLogger(__package__)

#: The date in RTC file names (OPERA, HyP3: ``..._20210103T...``). Not a config
#: key: insar.date_format is the interferograms'.
SCENE_DATE_FORMAT = "%Y%m%d"


@dataclass(frozen=True)
class Scene:
    """One acquisition: its date and file."""

    date: dt.date
    path: Path


def find_scenes(pattern: str) -> list[Path]:
    """Files matching a recursive glob (``**`` allowed), sorted by path."""
    from sarstack import storage

    return [Path(p) for p in storage.glob_files(pattern)]


def select_scenes(paths: Sequence[str | Path], pattern: str = "") -> list[Scene]:
    """Date every file, sort chronologically (as dates, never as strings).
    ``pattern`` (the glob the paths came from) is named in the errors.

    Raises
    ------
    SarstackError
        No files, a single file, an undated name or two scenes of one date.
    """
    if not paths:
        raise SarstackError(f"no files match {pattern!r}")
    scenes = [Scene(sdates.parse_scene_date(p, SCENE_DATE_FORMAT), Path(p)) for p in paths]
    sdates.check_unique([s.date for s in scenes], [s.path for s in scenes])
    scenes.sort(key=lambda s: s.date)
    if len(scenes) < 2:
        raise SarstackError(
            f"only one scene ({scenes[0].path}) matches {pattern!r}; need at least 2"
        )
    return scenes


def _bounds_in(grids: Sequence[Grid], crs: object) -> np.ndarray:
    """``(n, 4)`` left, bottom, right, top of each grid in ``crs``; NaN where the
    bounds cannot be transformed (e.g. far outside the CRS's area of use)."""
    out = np.full((len(grids), 4), np.nan)
    for k, g in enumerate(grids):
        b = g.bounds
        if g.crs != crs:
            try:
                b = rasterio.warp.transform_bounds(g.crs, crs, *b, densify_pts=21)
            except Exception:  # noqa: BLE001 - any failure: the footprint cannot be placed
                continue
        out[k] = b
    out[~np.isfinite(out).all(axis=1)] = np.nan
    return out


def misplaced_scenes(grids: Sequence[Grid], names: Sequence[str | Path]) -> list[int]:
    """Indices of the scenes whose footprint lies off the stack's majority footprint.

    A scene belongs to the stack when its bounds overlap (with a positive
    area) those of more than half of the scenes, itself included; the others
    are misplaced (e.g. a wrong geotransform that puts the scene 1,000 km
    away). Bounds are compared in the CRS most scenes share. Nothing is read
    but the grids: this runs before any union grid is built.

    Raises
    ------
    SarstackError
        No scene overlaps more than half of the stack (no majority footprint,
        e.g. two scenes that do not overlap), naming two scenes apart.
    """
    n = len(grids)
    crs_counts: dict[object, int] = {}
    for g in grids:
        crs_counts[g.crs] = crs_counts.get(g.crs, 0) + 1
    crs = max(crs_counts, key=lambda c: crs_counts[c])
    b = _bounds_in(grids, crs)
    left, bottom, right, top = (b[:, k] for k in range(4))
    with np.errstate(invalid="ignore"):
        overlap = (
            (np.minimum(right[:, None], right[None, :]) > np.maximum(left[:, None], left[None, :]))
            & (np.minimum(top[:, None], top[None, :]) > np.maximum(bottom[:, None], bottom[None, :]))
        )
    count = overlap.sum(axis=1)
    good = 2 * count > n
    if not good.any():
        i = int(np.argmax(count))
        j = int(np.flatnonzero(~overlap[i])[0])
        raise SarstackError(
            f"{names[i]} and {names[j]} do not overlap, and no footprint is shared by more "
            f"than half of the {n} scenes: a stack's scenes must cover the same area"
        )
    return [int(k) for k in np.flatnonzero(~good)]


def misplaced_message(grid: Grid, name: str | Path, grids: Sequence[Grid]) -> str:
    """One line on a misplaced scene: its bounds and how far it lies from the stack."""
    b = grid.bounds
    others = _bounds_in(grids, grid.crs)
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    ox = np.nanmedian((others[:, 0] + others[:, 2]) / 2)
    oy = np.nanmedian((others[:, 1] + others[:, 3]) / 2)
    far = (f", {math.hypot(cx - ox, cy - oy) / 1000:.0f} km from the stack's centre"
           if np.isfinite(ox) and np.isfinite(oy) and grid.crs is not None
           and grid.crs.is_projected else "")  # fmt: skip
    return (
        f"{name}: footprint ({b[0]:.10g}, {b[1]:.10g}, {b[2]:.10g}, {b[3]:.10g}) does not overlap "
        f"the footprint most scenes of the stack share{far} (a wrong geotransform?)"
    )


#: The union grid may be at most this many times the largest scene in each
#: dimension. Scenes that each overlap most of the stack stay within 3 times.
MAX_UNION_FACTOR = 4.0


def check_union_size(
    union: Grid, grids: Sequence[Grid], names: Sequence[str | Path], factor: float = MAX_UNION_FACTOR
) -> None:
    """Raise, naming the scenes at its far edges, when the union grid is more than
    ``factor`` times the largest scene (in the union's pixels) in either dimension."""
    b = _bounds_in(grids, union.crs)
    px, py = union.pixel_size
    widths, heights = (b[:, 2] - b[:, 0]) / px, (b[:, 3] - b[:, 1]) / py
    for size, largest, lo, hi, what in (
        (union.width, np.nanmax(widths), b[:, 0], b[:, 2], "wide"),
        (union.height, np.nanmax(heights), b[:, 1], b[:, 3], "tall"),
    ):
        if size > factor * largest:
            a, z = int(np.nanargmin(lo)), int(np.nanargmax(hi))
            raise SarstackError(
                f"the union grid would be {union.height} x {union.width} px, {size / largest:.1f} "
                f"times as {what} as the largest scene (at most {factor:g}): {names[a]} and "
                f"{names[z]} lie that far apart (a wrong geotransform?)"
            )


def union_grid(grids: Sequence[Grid]) -> Grid:
    """Union of all scenes' bounds on the first scene's pixel grid and CRS.

    The first grid's origin and pixel size define the lattice; the union box
    is snapped outwards to it. Grids in another CRS contribute their bounds
    transformed into the first CRS.
    """
    first = grids[0]
    t = first.transform
    if t.b != 0 or t.d != 0:
        raise SarstackError("superset: rotated geotransforms are not supported")
    lefts, bottoms, rights, tops = [], [], [], []
    for g in grids:
        b = g.bounds
        if g.crs != first.crs:
            b = rasterio.warp.transform_bounds(g.crs, first.crs, *b, densify_pts=21)
        lefts.append(b[0])
        bottoms.append(b[1])
        rights.append(b[2])
        tops.append(b[3])
    # Column/row indices of the union box on the first lattice (snap outwards).
    eps = 1e-6
    c0 = math.floor((min(lefts) - t.c) / t.a + eps)
    c1 = math.ceil((max(rights) - t.c) / t.a - eps)
    if t.e < 0:
        r0 = math.floor((max(tops) - t.f) / t.e + eps)
        r1 = math.ceil((min(bottoms) - t.f) / t.e - eps)
    else:
        r0 = math.floor((min(bottoms) - t.f) / t.e + eps)
        r1 = math.ceil((max(tops) - t.f) / t.e - eps)
    transform = t @ Affine.translation(c0, r0)
    return Grid(first.crs, transform, int(c1 - c0), int(r1 - r0))


def grid_offset(src: Grid, dst: Grid, tol: float = 1e-3) -> tuple[int, int] | None:
    """Integer (row, col) position of ``src``'s origin on ``dst``'s lattice.

    None when ``src`` is not on that lattice (other CRS, pixel size, rotation
    or a fractional origin offset), in which case it must be resampled.
    """
    if src.crs != dst.crs:
        return None
    s, d = src.transform, dst.transform
    if not np.allclose([s.a, s.b, s.d, s.e], [d.a, d.b, d.d, d.e], rtol=1e-9, atol=1e-12):
        return None
    col = (s.c - d.c) / d.a
    row = (s.f - d.f) / d.e
    if abs(col - round(col)) > tol or abs(row - round(row)) > tol:
        return None
    return int(round(row)), int(round(col))

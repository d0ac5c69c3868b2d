"""Terrain vs timing in RTC geolocation offsets (issue 27 item 2).

A DEM error dh displaces a terrain-corrected pixel along ground range by
about ``dh cot(theta)`` (theta: the local incidence angle), so offsets caused
by the terrain grow with ``h cot(theta)`` across a scene, while a timing or
orbit error shifts the whole scene by one constant. Per pair, the ok tiles'
offsets are regressed on the tiles' terrain term ``x`` plus a constant:

    offset_tile = timing + coef * x_tile   (east and north separately)

``timing`` is the part no terrain explains (the offset where ``x = 0``);
``coef * mean(x)`` the terrain-explained part of the pair's mean offset.
OPERA's geolocation requirement excludes DEM errors: the timing part is what
it judges. Per date, both parts are inverted over the pair network like the
offsets themselves (first date = 0).

The term: ``h cot(theta)`` (m) with a DEM and an incidence raster;
``h`` (m) with the DEM alone; ``cot(theta)`` with the incidence alone. The
rasters are read warped onto the stack's union grid, tile by tile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sarstack.errors import SarstackError
from sarstack.io import Grid

#: Columns of terrain_split.csv.
COLUMNS = ["scope", "reference_date", "secondary_date", "n_tiles", "east_timing_m",
           "north_timing_m", "east_terrain_m", "north_terrain_m", "east_coef", "north_coef",
           "term_units"]  # fmt: skip


def _warped_tile_means(path: str | Path, grid: Grid, layout, key: str) -> np.ndarray:
    """Mean of ``path`` over each tile of ``layout``, read warped onto ``grid`` (bilinear)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    out = np.full((layout.n_rows, layout.n_cols), np.nan)
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise SarstackError(f"{key}: {path}: not a readable raster ({e})") from None
    with src, WarpedVRT(src, crs=grid.crs or src.crs, transform=grid.transform,
                        width=grid.width, height=grid.height,
                        resampling=Resampling.bilinear) as vrt:  # fmt: skip
        nodata = src.nodata
        for r in range(layout.n_rows):
            for c in range(layout.n_cols):
                a = vrt.read(1, window=layout.window(r, c), masked=True).astype(float)
                v = a.filled(np.nan)
                if nodata is not None:
                    v[v == nodata] = np.nan
                if np.isfinite(v).any():
                    out[r, c] = float(np.nanmean(v))
    return out


def tile_terrain_term(
    grid: Grid, layout, *, dem: str | Path | None, incidence: str | Path | None
) -> tuple[np.ndarray, str]:
    """Per tile, the terrain term and its units: ``h cot(theta)`` ("m") with
    both rasters, ``h`` ("m") with the DEM only, ``cot(theta)`` ("1") with the
    incidence only (degrees)."""
    if dem is None and incidence is None:
        raise SarstackError("rtc.dem or rtc.incidence: give at least one for the terrain split")
    h = _warped_tile_means(dem, grid, layout, "rtc.dem") if dem is not None else None
    cot = None
    if incidence is not None:
        theta = _warped_tile_means(incidence, grid, layout, "rtc.incidence")
        lo, hi = float(np.nanmin(theta)), float(np.nanmax(theta))
        # all under pi/2 (1.57): radians, not degrees (no real scene is that steep-on)
        if hi > 90.0 or lo <= 0.0 or hi <= np.pi / 2:
            raise SarstackError(f"rtc.incidence: {incidence}: values must be angles in degrees in"
                                f" (0, 90] (radians are at most 1.57), got {lo:.3g}..{hi:.3g}")  # fmt: skip
        cot = 1.0 / np.tan(np.deg2rad(theta))
    if h is not None and cot is not None:
        return h * cot, "m"
    return (h, "m") if h is not None else (cot, "1")  # type: ignore[return-value]


def split_pairs(offsets: pd.DataFrame, term: np.ndarray, units: str) -> pd.DataFrame:
    """Per pair (``scope = pair``): the timing part, the terrain-explained part
    of the mean offset and the coefficient, from the ok tiles with a term
    (at least 3, and the term must vary across them; else NaN)."""
    rows = []
    for (ref, sec), g in offsets.groupby(["reference_date", "secondary_date"], sort=True):
        ok = g[g["status"] == "ok"]
        x = term[ok["tile_row"].to_numpy(int), ok["tile_col"].to_numpy(int)]
        row: dict[str, object] = {"scope": "pair", "reference_date": ref, "secondary_date": sec}
        use = np.isfinite(x)
        row["n_tiles"] = int(use.sum())
        for comp in ("east", "north"):
            y = ok[f"{comp}_m"].to_numpy(float)[use]
            xs = x[use]
            good = np.isfinite(y)
            xs, y = xs[good], y[good]
            if len(y) >= 3 and np.ptp(xs) > 0:
                a = np.column_stack([np.ones_like(xs), xs])
                (c0, k), *_ = np.linalg.lstsq(a, y, rcond=None)
                row[f"{comp}_timing_m"], row[f"{comp}_coef"] = float(c0), float(k)
                row[f"{comp}_terrain_m"] = float(k * xs.mean())
            else:
                row[f"{comp}_timing_m"] = row[f"{comp}_coef"] = row[f"{comp}_terrain_m"] = np.nan
        row["term_units"] = units
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def split_pairs_and_dates(pair_rows: pd.DataFrame) -> pd.DataFrame:
    """terrain_split.csv: the pair rows, then the date rows (:func:`split_dates`)."""
    return pd.concat([pair_rows, split_dates(pair_rows)], ignore_index=True)


def split_dates(pair_rows: pd.DataFrame) -> pd.DataFrame:
    """Per date (``scope = date``, ``reference_date`` = the first date): the
    pairs' timing and terrain parts inverted over the network (unit weights;
    pairs with NaN parts left out; dates they cut off are NaN)."""
    from sarstack.rtc import invert_dates

    dates = sorted(set(pair_rows["reference_date"]) | set(pair_rows["secondary_date"]))
    idx = {d: k for k, d in enumerate(dates)}
    pairs = [(idx[r], idx[s]) for r, s in zip(pair_rows["reference_date"],
                                               pair_rows["secondary_date"], strict=True)]  # fmt: skip
    cols = ["east_timing_m", "north_timing_m", "east_terrain_m", "north_terrain_m"]
    vals = pair_rows[cols].to_numpy(float)
    x, _, _ = invert_dates(vals, np.isfinite(vals), pairs, len(dates))
    out = pd.DataFrame(x, columns=cols)
    out.insert(0, "secondary_date", dates)
    out.insert(0, "reference_date", dates[0])
    out.insert(0, "scope", "date")
    out["n_tiles"] = np.nan
    out["east_coef"] = out["north_coef"] = np.nan
    out["term_units"] = pair_rows["term_units"].iloc[0] if len(pair_rows) else ""
    return out[COLUMNS]

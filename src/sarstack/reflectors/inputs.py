"""The reflector table (CSV, GeoJSON) and the targets' expected positions on a
scene's grid at its date."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
from rasterio.crs import CRS
from rasterio.errors import CRSError

from sarstack.dates import DAYS_PER_YEAR
from sarstack.errors import SarstackError
from sarstack.io import Grid

#: Columns of the frame :func:`read_reflectors` returns (and the other
#: functions accept): coordinates ``x, y`` in ``crs`` (``EPSG:4326`` with
#: ``x = lon, y = lat`` for lon/lat input), velocities in metres per year
#: (0 where not given) and ``epoch`` (a ``datetime.date`` or None).
REFLECTOR_COLUMNS = ("id", "x", "y", "crs", "east_velocity_m_yr", "north_velocity_m_yr", "epoch")


_WGS84 = "EPSG:4326"


_WGS84_A = 6378137.0


_WGS84_E2 = 6.69437999014e-3


def read_reflectors(path: str | Path) -> pd.DataFrame:
    """Read a point-target list from CSV.

    Columns: ``id`` and either ``lon``, ``lat`` (WGS84 degrees) or ``x``,
    ``y``, ``crs`` (any CRS string rasterio accepts, e.g. ``EPSG:32611``; one
    per row, rows may differ). Optional plate motion: ``east_velocity_m_yr``,
    ``north_velocity_m_yr`` (metres per year; both or neither; an empty cell
    means 0) and ``epoch`` (``YYYY-MM-DD``, the date the coordinates refer
    to; required on every row with a non-zero velocity).

    Parameters
    ----------
    path
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        One row per target with :data:`REFLECTOR_COLUMNS`: ``id`` (str),
        ``x``, ``y`` (float; lon, lat for lon/lat input), ``crs`` (str;
        ``EPSG:4326`` for lon/lat input), the two velocities (float, 0 where
        not given) and ``epoch`` (``datetime.date`` or None).

    Raises
    ------
    SarstackError
        One line naming the file and, where it applies, the line (the header
        is line 1) and column: unreadable or empty file, missing columns,
        both lon/lat and x/y given, empty or duplicate id, a coordinate or
        velocity that is not a finite number, latitude outside [-90, 90] or
        longitude outside [-180, 360], an unknown CRS, a bad epoch.
    """
    p = Path(path)
    raw = _read_raw(p)
    cols = set(raw.columns)
    need = _coordinate_columns(p, raw)
    ids = raw["id"]
    _check_ids(p, ids)
    if need[0] == "lon":
        x, y = _numbers(p, raw, "lon"), _numbers(p, raw, "lat")
        for i in range(len(raw)):
            if not -90.0 <= y[i] <= 90.0:
                raise SarstackError(
                    f"{p}: line {_line(i)}, column lat: {y[i]:g} is outside [-90, 90]"
                )
            if not -180.0 <= x[i] <= 360.0:
                raise SarstackError(
                    f"{p}: line {_line(i)}, column lon: {x[i]:g} is outside [-180, 360]"
                )
        crs = [_WGS84] * len(raw)
    else:
        x, y = _numbers(p, raw, "x"), _numbers(p, raw, "y")
        crs = list(raw["crs"])
        checked: dict[str, str | None] = {}
        for i, c in enumerate(crs):
            if c not in checked:
                checked[c] = _crs_problem(c)
            if checked[c] is not None:
                raise SarstackError(f"{p}: line {_line(i)}, column crs: {checked[c]}")

    vel_cols = ("east_velocity_m_yr", "north_velocity_m_yr")
    given = [c for c in vel_cols if c in cols]
    if len(given) == 1:
        other = vel_cols[1 - vel_cols.index(given[0])]
        raise SarstackError(f"{p}: column {given[0]} without {other} (give both or neither)")
    ve = _numbers(p, raw, vel_cols[0], empty=0.0) if given else np.zeros(len(raw))
    vn = _numbers(p, raw, vel_cols[1], empty=0.0) if given else np.zeros(len(raw))
    epochs = _epochs(p, raw, ve, vn)
    return pd.DataFrame(
        {
            "id": ids.astype(str).to_numpy(),
            "x": x,
            "y": y,
            "crs": crs,
            "east_velocity_m_yr": ve,
            "north_velocity_m_yr": vn,
            "epoch": pd.Series(epochs, dtype=object),
        }
    )


def _line(i: int) -> int:
    """The file's line of data row ``i``."""
    return i + 2  # header is line 1


def _read_raw(p: Path) -> pd.DataFrame:
    """The reflector CSV as text, column names and cells stripped."""
    if not p.is_file():
        raise SarstackError(f"{p}: no such file")
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise SarstackError(f"{p}: empty file (expected a header with id and lon, lat)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else "unparsable"
        raise SarstackError(f"{p}: not a readable CSV ({msg})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    return raw.apply(lambda s: s.str.strip())


def _coordinate_columns(p: Path, raw: pd.DataFrame) -> tuple[str, ...]:
    """``("lon", "lat")`` or ``("x", "y", "crs")``, whichever the table has (and an
    ``id``), or raise; also raises on a table without rows."""
    cols = set(raw.columns)
    if "id" not in cols:
        raise SarstackError(f"{p}: no 'id' column (columns: {', '.join(raw.columns)})")
    has_ll = bool({"lon", "lat"} & cols)
    has_xy = bool({"x", "y", "crs"} & cols)
    if has_ll and has_xy:
        raise SarstackError(f"{p}: give either lon, lat or x, y, crs columns, not both")
    need = ("lon", "lat") if has_ll or not has_xy else ("x", "y", "crs")
    missing = [c for c in need if c not in cols]
    if missing:
        raise SarstackError(
            f"{p}: missing column(s) {', '.join(missing)} (need id and either lon, lat "
            "or x, y, crs)"
        )
    if raw.empty:
        raise SarstackError(f"{p}: no reflectors (header only)")
    return need


def _check_ids(p: Path, ids: pd.Series) -> None:
    """Raise on an empty or a repeated id."""
    for i, v in enumerate(ids):
        if v == "":
            raise SarstackError(f"{p}: line {_line(i)}, column id: empty id")
    dup = ids[ids.duplicated(keep="first")]
    if not dup.empty:
        i = int(dup.index[0])
        first = int(ids[ids == dup.iloc[0]].index[0])
        raise SarstackError(
            f"{p}: line {_line(i)}, column id: duplicate id {dup.iloc[0]!r} "
            f"(first on line {_line(first)})"
        )


def _numbers(p: Path, raw: pd.DataFrame, col: str, empty: float | None = None) -> np.ndarray:
    """Column ``col`` as finite floats (an empty cell is ``empty`` where given), or raise."""
    out = np.empty(len(raw))
    for i, v in enumerate(raw[col]):
        if v == "" and empty is not None:
            out[i] = empty
            continue
        try:
            out[i] = float(v)
        except ValueError:
            out[i] = np.nan
        if not np.isfinite(out[i]):
            raise SarstackError(f"{p}: line {_line(i)}, column {col}: {v!r} is not a number")
    return out


def _epochs(p: Path, raw: pd.DataFrame, ve: np.ndarray, vn: np.ndarray) -> list[dt.date | None]:
    """Each row's epoch (None where empty), required where a velocity is not zero."""
    epochs: list[dt.date | None] = [None] * len(raw)
    if "epoch" in raw.columns:
        for i, v in enumerate(raw["epoch"]):
            if v == "":
                continue
            try:
                epochs[i] = dt.date.fromisoformat(v)
            except ValueError:
                raise SarstackError(
                    f"{p}: line {_line(i)}, column epoch: {v!r} is not a date YYYY-MM-DD"
                ) from None
    for i in range(len(raw)):
        if (ve[i] != 0.0 or vn[i] != 0.0) and epochs[i] is None:
            raise SarstackError(
                f"{p}: line {_line(i)}, column epoch: a velocity is given but no epoch "
                "(the date the coordinates refer to, YYYY-MM-DD)"
            )
    return epochs


def _crs_problem(text: str) -> str | None:
    """None if ``text`` is a CRS rasterio understands, else why not."""
    if text == "":
        return "empty CRS"
    try:
        CRS.from_user_input(text)
    except CRSError:
        return f"{text!r} is not a CRS rasterio understands (e.g. EPSG:32611)"
    return None


def _as_date(date: dt.date | str) -> dt.date:
    if isinstance(date, dt.datetime):
        return date.date()
    if isinstance(date, dt.date):
        return date
    try:
        return dt.date.fromisoformat(str(date))
    except ValueError:
        raise SarstackError(f"date {date!r} is not YYYY-MM-DD") from None


def _metres_per_unit(crs: CRS, lat_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres per CRS unit along x and y: the linear unit for a projected CRS
    (ignoring the projection's scale factor, < 0.1 % for UTM), the WGS84
    ellipsoid's local radii for a geographic one (at ``lat_deg``)."""
    lat = np.asarray(lat_deg, dtype=float)
    if crs.is_geographic:
        s2 = np.sin(np.radians(lat)) ** 2
        n = _WGS84_A / np.sqrt(1.0 - _WGS84_E2 * s2)  # prime-vertical radius
        m = _WGS84_A * (1.0 - _WGS84_E2) / (1.0 - _WGS84_E2 * s2) ** 1.5  # meridional
        return n * np.cos(np.radians(lat)) * math.pi / 180.0, m * math.pi / 180.0
    factor = 1.0
    try:
        factor = float(crs.linear_units_factor[1])
    except CRSError:
        pass
    return np.full(lat.shape, factor), np.full(lat.shape, factor)


def expected_positions(
    reflectors: pd.DataFrame,
    grid: Grid,
    date: dt.date | str,
    *,
    pixel_is_point: bool,
) -> pd.DataFrame:
    """Where each target should appear in ``grid`` on ``date``.

    Parameters
    ----------
    reflectors
        As from :func:`read_reflectors`: ``id``, ``x``, ``y``, ``crs`` and
        optionally the velocity and ``epoch`` columns. A frame with ``lon``,
        ``lat`` instead of ``x``, ``y``, ``crs`` is accepted too.
    grid
        The raster's grid (CRS, affine transform, size).
    date
        Acquisition date (``datetime.date`` or ``YYYY-MM-DD``).
    pixel_is_point
        The transform's origin is the *centre* of pixel (0, 0), not its
        corner. GeoTIFF's pixel-is-area convention (the default, and what
        rasterio/GDAL transforms mean) puts ``transform @ (0, 0)`` at the
        upper-left *corner* of the first pixel, whose centre is then
        ``transform @ (0.5, 0.5)``. A raster tagged ``AREA_OR_POINT=Point``
        (GeoTIFF ``RasterPixelIsPoint``) ties its coordinates to pixel
        centres; GDAL normally converts such a file's georeferencing to the
        area convention on reading, so pass True only for a transform that
        still refers to pixel centres (e.g. read with
        ``GTIFF_POINT_GEO_IGNORE=TRUE``, or written by software that labels
        centre coordinates as area). It adds exactly 0.5 to ``row`` and
        ``col``: a half-pixel (15 m at 30 m) geolocation error if wrong.

    Returns
    -------
    pandas.DataFrame
        ``id``; ``x``, ``y``: expected map position in the *raster's* CRS
        (via ``rasterio.warp.transform``), after plate motion; ``col``,
        ``row``: fractional pixel position, pixel-is-area (the centre of
        ``image[r, c]`` is ``(r + 0.5, c + 0.5)``), possibly outside the grid.

    Notes
    -----
    Plate motion: with non-zero velocities, the position is moved by
    ``velocity * (date - epoch)`` (years of 365.25 days), *after*
    transforming to the raster CRS. For a projected CRS the east / north
    displacement in metres is added to x / y directly (converted by the CRS's
    linear unit): this assumes grid north is true north and the projection's
    scale factor is 1, errors of order ``|v dt|`` times the meridian
    convergence (< 3 degrees inside a UTM zone) or times 4e-4, i.e. well
    under a millimetre for centimetre-per-year motion over a decade. For a
    geographic raster CRS it is converted to degrees with the WGS84
    ellipsoid's local radii.

    Raises
    ------
    SarstackError
        The grid has no CRS, required columns are missing, or the date is bad.
    """
    from rasterio.warp import transform as warp

    if grid.crs is None:
        raise SarstackError("the raster has no CRS to place the reflectors with")
    day = _as_date(date)
    refl = reflectors
    if "crs" not in refl.columns and {"lon", "lat"} <= set(refl.columns):
        refl = refl.rename(columns={"lon": "x", "lat": "y"}).assign(crs=_WGS84)
    missing = [c for c in ("id", "x", "y", "crs") if c not in refl.columns]
    if missing:
        raise SarstackError(f"reflectors: missing column(s) {', '.join(missing)}")

    n = len(refl)
    xs = np.full(n, np.nan)
    ys = np.full(n, np.nan)
    src_crs = refl["crs"].astype(str).to_numpy()
    for c in pd.unique(src_crs):
        sel = src_crs == c
        tx, ty = warp(
            c,
            grid.crs,
            refl["x"].to_numpy(float)[sel].tolist(),
            refl["y"].to_numpy(float)[sel].tolist(),
        )
        xs[sel], ys[sel] = tx, ty

    ve = _column(refl, "east_velocity_m_yr")
    vn = _column(refl, "north_velocity_m_yr")
    if np.any(ve != 0.0) or np.any(vn != 0.0):
        years = np.array(
            [
                0.0 if e is None or pd.isna(e) else (day - _as_date(e)).days / DAYS_PER_YEAR
                for e in (refl["epoch"] if "epoch" in refl.columns else [None] * n)
            ]
        )
        mx, my = _metres_per_unit(grid.crs, ys)
        xs = xs + ve * years / mx
        ys = ys + vn * years / my

    inv = ~grid.transform
    col = inv.a * xs + inv.b * ys + inv.c
    row = inv.d * xs + inv.e * ys + inv.f
    if pixel_is_point:
        col = col + 0.5
        row = row + 0.5
    return pd.DataFrame(
        {"id": refl["id"].astype(str).to_numpy(), "x": xs, "y": ys, "col": col, "row": row}
    )


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.zeros(len(frame))
    return np.nan_to_num(frame[name].to_numpy(float), nan=0.0)

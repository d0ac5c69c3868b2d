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

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import NamedTuple

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


class ReflectorStatus(str, Enum):
    """Outcome of one point-target measurement (the value is what a CSV holds)."""

    OK = "ok"
    OUTSIDE = "outside"  # the expected position is not in the image
    NEAR_EDGE = "near_edge"  # within edge_px of the image edge or of nodata
    LOW_CONTRAST = "low_contrast"  # peak-to-clutter ratio below min_pcr_db


class PeakResult(NamedTuple):
    """A located peak: ``row``, ``col`` (pixel-is-area, fractional; NaN unless
    ``status`` is ``ok``), peak-to-clutter ratio in dB (NaN when not measured)
    and the status."""

    row: float
    col: float
    pcr_db: float
    status: ReflectorStatus


# --------------------------------------------------------------------------- #
# The one reader
# --------------------------------------------------------------------------- #


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
    raw = raw.apply(lambda s: s.str.strip())
    cols = set(raw.columns)

    def line(i: int) -> int:
        return i + 2  # header is line 1

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

    ids = raw["id"]
    for i, v in enumerate(ids):
        if v == "":
            raise SarstackError(f"{p}: line {line(i)}, column id: empty id")
    dup = ids[ids.duplicated(keep="first")]
    if not dup.empty:
        i = int(dup.index[0])
        first = int(ids[ids == dup.iloc[0]].index[0])
        raise SarstackError(
            f"{p}: line {line(i)}, column id: duplicate id {dup.iloc[0]!r} "
            f"(first on line {line(first)})"
        )

    def numbers(col: str, empty: float | None = None) -> np.ndarray:
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
                raise SarstackError(f"{p}: line {line(i)}, column {col}: {v!r} is not a number")
        return out

    if need[0] == "lon":
        x, y = numbers("lon"), numbers("lat")
        for i in range(len(raw)):
            if not -90.0 <= y[i] <= 90.0:
                raise SarstackError(
                    f"{p}: line {line(i)}, column lat: {y[i]:g} is outside [-90, 90]"
                )
            if not -180.0 <= x[i] <= 360.0:
                raise SarstackError(
                    f"{p}: line {line(i)}, column lon: {x[i]:g} is outside [-180, 360]"
                )
        crs = [_WGS84] * len(raw)
    else:
        x, y = numbers("x"), numbers("y")
        crs = list(raw["crs"])
        checked: dict[str, str | None] = {}
        for i, c in enumerate(crs):
            if c not in checked:
                checked[c] = _crs_problem(c)
            if checked[c] is not None:
                raise SarstackError(f"{p}: line {line(i)}, column crs: {checked[c]}")

    vel_cols = ("east_velocity_m_yr", "north_velocity_m_yr")
    given = [c for c in vel_cols if c in cols]
    if len(given) == 1:
        other = vel_cols[1 - vel_cols.index(given[0])]
        raise SarstackError(f"{p}: column {given[0]} without {other} (give both or neither)")
    ve = numbers(vel_cols[0], empty=0.0) if given else np.zeros(len(raw))
    vn = numbers(vel_cols[1], empty=0.0) if given else np.zeros(len(raw))

    epochs: list[dt.date | None] = [None] * len(raw)
    if "epoch" in cols:
        for i, v in enumerate(raw["epoch"]):
            if v == "":
                continue
            try:
                epochs[i] = dt.date.fromisoformat(v)
            except ValueError:
                raise SarstackError(
                    f"{p}: line {line(i)}, column epoch: {v!r} is not a date YYYY-MM-DD"
                ) from None
    for i in range(len(raw)):
        if (ve[i] != 0.0 or vn[i] != 0.0) and epochs[i] is None:
            raise SarstackError(
                f"{p}: line {line(i)}, column epoch: a velocity is given but no epoch "
                "(the date the coordinates refer to, YYYY-MM-DD)"
            )

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


def _crs_problem(text: str) -> str | None:
    """None if ``text`` is a CRS rasterio understands, else why not."""
    if text == "":
        return "empty CRS"
    try:
        CRS.from_user_input(text)
    except CRSError:
        return f"{text!r} is not a CRS rasterio understands (e.g. EPSG:32611)"
    return None


# --------------------------------------------------------------------------- #
# Kernels (no file I/O in this section)
# --------------------------------------------------------------------------- #


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
    pixel_is_point: bool = False,
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


def _nan_result(status: ReflectorStatus, pcr_db: float = math.nan) -> PeakResult:
    return PeakResult(math.nan, math.nan, pcr_db, status)


def _near_invalid(
    image: np.ndarray,
    r: int,
    c: int,
    edge_px: int,
    origin: tuple[int, int],
    shape: tuple[int, int],
) -> bool:
    """Raster pixel (r, c) is within ``edge_px`` of the raster edge (``shape``)
    or of a NaN; ``image`` is the part of the raster from raster pixel
    ``origin`` on, and must hold the ``2 edge_px + 1`` square around (r, c)."""
    h, w = shape
    if r < edge_px or c < edge_px or r >= h - edge_px or c >= w - edge_px:
        return True
    i, j = r - origin[0], c - origin[1]
    win = image[i - edge_px : i + edge_px + 1, j - edge_px : j + edge_px + 1]
    return bool(np.isnan(win).any())


def _fft_oversample(chip: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited interpolation of ``chip`` by zero-padding its 2-D spectrum
    ``factor`` times: element ``[i, j]`` of the result is the chip's value at
    chip coordinate ``(i / factor, j / factor)`` (element centres at integers).
    Even-length Nyquist bins are kept on the negative side and the real part is
    taken, which equals splitting them symmetrically."""
    n0, n1 = chip.shape
    spec = np.fft.fftshift(np.fft.fft2(chip))
    big = np.zeros((n0 * factor, n1 * factor), dtype=complex)
    o0 = (n0 * factor) // 2 - n0 // 2
    o1 = (n1 * factor) // 2 - n1 // 2
    big[o0 : o0 + n0, o1 : o1 + n1] = spec
    return np.real(np.fft.ifft2(np.fft.ifftshift(big))) * (factor * factor)


def _parabola_vertex(m: float, z: float, p: float) -> float:
    """Offset (in samples, within [-0.5, 0.5]) of the vertex of the parabola
    through (-1, m), (0, z), (1, p); 0 when it is not a maximum."""
    den = m - 2.0 * z + p
    if not den < 0.0:
        return 0.0
    return float(np.clip(0.5 * (m - p) / den, -0.5, 0.5))


def locate_peak(
    image: np.ndarray,
    row: float,
    col: float,
    *,
    chip: int = 32,
    search_px: float = 4.0,
    oversample: int = 32,
    clutter_ring: tuple[float, float] = (4.0, 16.0),
    edge_px: int = 3,
    min_pcr_db: float = 15.0,
    origin: tuple[int, int] = (0, 0),
    raster_shape: tuple[int, int] | None = None,
) -> PeakResult:
    """Measure the position of the bright point target nearest ``(row, col)``.

    A ``chip`` x ``chip`` window centred on the pixel that contains the
    expected position is cut out (NaN where it leaves the image or is nodata),
    its background (median) is removed and nodata set to 0, and it is
    oversampled ``oversample`` times by zero-padding its FFT. The largest
    oversampled value gives the peak to ``1 / oversample`` px; a parabola
    through it and its neighbours along each axis refines it further.

    Parameters
    ----------
    image
        2-D linear power (not dB), NaN = nodata.
    row, col
        Expected fractional position, pixel-is-area (the centre of
        ``image[r, c]`` is ``(r + 0.5, c + 0.5)``), e.g. from
        :func:`expected_positions`.
    chip
        Chip size in pixels (>= 8): the area oversampled and in which the
        clutter is measured.
    search_px
        The peak is searched within this radius (px, > 0) of the expected
        position only, so that a brighter scatterer elsewhere in the chip is
        never taken for the target; it should exceed the expected geolocation
        error. A maximum on the rim of that disc (the flank of something
        outside it, not a peak) is ``low_contrast``.
    oversample
        FFT oversampling factor (>= 1).
    clutter_ring
        ``(inner, outer)`` radius in pixels around the measured peak: the
        clutter is the mean power of the chip's valid pixels at a distance in
        ``[inner, outer]`` (the window inside ``inner`` holds the target's
        main lobe and is left out).
    edge_px
        A position within this many pixels of the image edge or of nodata (in
        rows or columns) is ``near_edge``: its chip would be incomplete.
    min_pcr_db
        Below this peak-to-clutter ratio the status is ``low_contrast``.
    origin, raster_shape
        ``image`` may be a window of a larger raster of ``raster_shape``
        (default: ``image.shape``) whose element ``[0, 0]`` is raster element
        ``origin``; ``row``, ``col``, the edge test and the result are then
        in raster coordinates. The window must hold everything the
        measurement looks at, :func:`target_window` (clipped to the raster);
        anything else of the raster is never read. The result is the same,
        to the bit, as with the whole raster.

    Returns
    -------
    PeakResult
        ``row``, ``col``: measured position (same convention as the input);
        ``pcr_db``: 10 log10(interpolated peak power / clutter mean power);
        ``status``. Positions are NaN unless the status is ``ok`` (``pcr_db``
        is kept for ``low_contrast``, NaN for ``outside`` and ``near_edge``).

    Raises
    ------
    SarstackError
        ``image`` is not 2-D, or a parameter is out of range.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise SarstackError(f"locate_peak: image must be 2-D, got shape {img.shape}")
    if chip < 8 or oversample < 1 or edge_px < 0 or not search_px > 0:
        raise SarstackError(
            f"locate_peak: need chip >= 8, search_px > 0, oversample >= 1, edge_px >= 0 "
            f"(got {chip}, {search_px}, {oversample}, {edge_px})"
        )
    inner, outer = (float(v) for v in clutter_ring)
    if not 0.0 <= inner < outer:
        raise SarstackError(f"locate_peak: clutter_ring {clutter_ring} needs 0 <= inner < outer")
    shape = (int(img.shape[0]), int(img.shape[1])) if raster_shape is None else raster_shape
    h, w = shape
    o0, o1 = int(origin[0]), int(origin[1])
    if not (np.isfinite(row) and np.isfinite(col) and 0.0 <= row < h and 0.0 <= col < w):
        return _nan_result(ReflectorStatus.OUTSIDE)
    r, c = math.floor(row), math.floor(col)
    if _near_invalid(img, r, c, edge_px, (o0, o1), shape):
        return _nan_result(ReflectorStatus.NEAR_EDGE)

    # The chip, NaN outside the image (window) held.
    r0, c0 = r - chip // 2, c - chip // 2
    sub = np.full((chip, chip), np.nan)
    ra, rb = max(r0, o0), min(r0 + chip, o0 + img.shape[0])
    ca, cb = max(c0, o1), min(c0 + chip, o1 + img.shape[1])
    sub[ra - r0 : rb - r0, ca - c0 : cb - c0] = img[ra - o0 : rb - o0, ca - o1 : cb - o1]
    valid = np.isfinite(sub)
    background = float(np.median(sub[valid]))
    work = np.where(valid, sub - background, 0.0)

    up = _fft_oversample(work, oversample)
    n0, n1 = up.shape
    # Only within search_px of the expected position (chip coordinates, element
    # centres at integers), and a true local maximum there.
    er, ec = row - r0 - 0.5, col - c0 - 0.5
    ui = np.arange(n0)[:, None] / oversample - er
    uj = np.arange(n1)[None, :] / oversample - ec
    disc = np.hypot(ui, uj) <= search_px
    if not disc.any():
        return _nan_result(ReflectorStatus.LOW_CONTRAST)
    i, j = np.unravel_index(int(np.argmax(np.where(disc, up, -np.inf))), up.shape)
    around = up[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
    if up[i, j] < around.max():  # the flank of a brighter return outside the disc
        return _nan_result(ReflectorStatus.LOW_CONTRAST)
    di = _parabola_vertex(up[(i - 1) % n0, j], up[i, j], up[(i + 1) % n0, j])
    dj = _parabola_vertex(up[i, (j - 1) % n1], up[i, j], up[i, (j + 1) % n1])
    pi = (i + di) / oversample  # chip coordinates, element centres at integers
    pj = (j + dj) / oversample
    peak_power = float(up[i, j]) + background

    # Back to image pixel-is-area coordinates.
    meas_row = r0 + pi + 0.5
    meas_col = c0 + pj + 0.5
    mr, mc = math.floor(meas_row), math.floor(meas_col)
    if not (0 <= mr < h and 0 <= mc < w) or _near_invalid(img, mr, mc, edge_px, (o0, o1), shape):
        return _nan_result(ReflectorStatus.NEAR_EDGE)

    yy, xx = np.mgrid[0:chip, 0:chip]
    dist = np.hypot(yy - pi, xx - pj)
    ring = valid & (dist >= inner) & (dist <= outer)
    clutter = float(np.mean(sub[ring])) if ring.any() else math.nan
    if peak_power <= 0.0 or not np.isfinite(clutter):
        pcr = -math.inf if peak_power <= 0.0 else math.nan
    elif clutter <= 0.0:
        pcr = math.inf
    else:
        pcr = 10.0 * math.log10(peak_power / clutter)
    if not pcr >= min_pcr_db:  # NaN too
        return _nan_result(ReflectorStatus.LOW_CONTRAST, pcr)
    return PeakResult(float(meas_row), float(meas_col), float(pcr), ReflectorStatus.OK)


def measure_scene(
    image: np.ndarray,
    grid: Grid,
    reflectors: pd.DataFrame,
    date: dt.date | str,
    *,
    pixel_is_point: bool = False,
    chip: int = 32,
    search_px: float = 4.0,
    oversample: int = 32,
    clutter_ring: tuple[float, float] = (4.0, 16.0),
    edge_px: int = 3,
    min_pcr_db: float = 15.0,
) -> pd.DataFrame:
    """Geolocation offsets of one scene at every point target.

    Parameters
    ----------
    image
        2-D linear power on ``grid`` (NaN = nodata).
    grid
        The image's grid.
    reflectors
        As from :func:`read_reflectors`.
    date
        The scene's acquisition date (plate motion is applied to it).
    pixel_is_point, chip, search_px, oversample, clutter_ring, edge_px, min_pcr_db
        As in :func:`expected_positions` and :func:`locate_peak`.

    Returns
    -------
    pandas.DataFrame
        One row per target: ``date`` (``YYYY-MM-DD``), ``id``,
        ``expected_x``, ``expected_y`` (raster CRS), ``expected_row``,
        ``expected_col``, ``row_px``, ``col_px`` (measured minus expected,
        pixels), ``east_m``, ``north_m`` (measured minus expected, metres
        along +x / +y of the map CRS, through the affine transform), ``pcr_db``
        and ``status`` (a :class:`ReflectorStatus` value as str). Offsets are
        NaN unless the status is ``ok``.

    Raises
    ------
    SarstackError
        ``image`` does not have ``grid``'s shape, or as the functions above.
    """
    img = np.asarray(image)
    if img.shape != grid.shape:
        raise SarstackError(f"image shape {img.shape} is not the grid's {grid.shape}")
    return _measure(
        lambda r0, c0, nr, nc: img[r0 : r0 + nr, c0 : c0 + nc], grid, reflectors, date,
        pixel_is_point=pixel_is_point, chip=chip, search_px=search_px, oversample=oversample,
        clutter_ring=clutter_ring, edge_px=edge_px, min_pcr_db=min_pcr_db,
    )  # fmt: skip


def _measure(
    read_window: Callable[[int, int, int, int], np.ndarray],
    grid: Grid,
    reflectors: pd.DataFrame,
    date: dt.date | str,
    *,
    pixel_is_point: bool,
    chip: int,
    search_px: float,
    oversample: int,
    clutter_ring: tuple[float, float],
    edge_px: int,
    min_pcr_db: float,
) -> pd.DataFrame:
    """The one measurement loop of :func:`measure_scene` and
    :func:`measure_scene_file`: each target's :func:`target_window`, read by
    ``read_window(row_off, col_off, rows, cols)``, goes to :func:`locate_peak`."""
    day = _as_date(date)
    exp = expected_positions(reflectors, grid, day, pixel_is_point=pixel_is_point)
    results = []
    for er, ec in zip(exp["row"].to_numpy(float), exp["col"].to_numpy(float), strict=True):
        win = target_window(er, ec, grid.shape, chip=chip, edge_px=edge_px)
        if win is None:
            results.append(_nan_result(ReflectorStatus.OUTSIDE))
            continue
        r0, c0, nr, nc = win
        results.append(
            locate_peak(
                read_window(r0, c0, nr, nc), float(er), float(ec), chip=chip,
                search_px=search_px, oversample=oversample, clutter_ring=clutter_ring,
                edge_px=edge_px, min_pcr_db=min_pcr_db, origin=(r0, c0),
                raster_shape=grid.shape,
            )
        )  # fmt: skip
    return _offsets_frame(exp, results, grid, day)


def _offsets_frame(
    exp: pd.DataFrame, results: list[PeakResult], grid: Grid, day: dt.date
) -> pd.DataFrame:
    """The table :func:`measure_scene` returns, from the expected positions
    and the located peaks (in the same order)."""
    drow = np.array([p.row for p in results], dtype=float) - exp["row"].to_numpy(float)
    dcol = np.array([p.col for p in results], dtype=float) - exp["col"].to_numpy(float)
    t = grid.transform
    dx = t.a * dcol + t.b * drow
    dy = t.d * dcol + t.e * drow
    assert grid.crs is not None  # expected_positions refused a grid without one
    mx, my = _metres_per_unit(grid.crs, exp["y"].to_numpy(float))
    return pd.DataFrame(
        {
            "date": day.isoformat(),
            "id": exp["id"].to_numpy(),
            "expected_x": exp["x"].to_numpy(float),
            "expected_y": exp["y"].to_numpy(float),
            "expected_row": exp["row"].to_numpy(float),
            "expected_col": exp["col"].to_numpy(float),
            "row_px": drow,
            "col_px": dcol,
            "east_m": dx * mx,
            "north_m": dy * my,
            "pcr_db": np.array([p.pcr_db for p in results], dtype=float),
            "status": [p.status.value for p in results],
        }
    )


def target_window(
    row: float,
    col: float,
    raster_shape: tuple[int, int],
    *,
    chip: int = 32,
    edge_px: int = 3,
) -> tuple[int, int, int, int] | None:
    """The part of a raster :func:`locate_peak` looks at for a target expected at ``(row, col)``.

    The chip around the expected pixel, widened by ``edge_px`` on every side
    (the near-edge / near-nodata test around the measured peak, which lies
    inside the chip), clipped to the raster. Inside it no test ever meets the
    window's edge; where the raster clips it, the raster edge is where
    :func:`locate_peak` (given ``origin`` and ``raster_shape``) expects it.

    Parameters
    ----------
    row, col
        Expected fractional position, pixel-is-area.
    raster_shape
        ``(rows, cols)`` of the raster.
    chip, edge_px
        As in :func:`locate_peak`.

    Returns
    -------
    tuple of int or None
        ``(row0, col0, n_rows, n_cols)``; None when ``(row, col)`` is not in
        the raster (the target is ``outside``, nothing needs reading).
    """
    h, w = raster_shape
    if not (np.isfinite(row) and np.isfinite(col) and 0.0 <= row < h and 0.0 <= col < w):
        return None
    r0 = math.floor(row) - chip // 2 - edge_px
    c0 = math.floor(col) - chip // 2 - edge_px
    ra, ca = max(r0, 0), max(c0, 0)
    rb, cb = min(r0 + chip + 2 * edge_px, h), min(c0 + chip + 2 * edge_px, w)
    return ra, ca, rb - ra, cb - ca


# --------------------------------------------------------------------------- #
# One scene file: reads a window per target (the kernels above do the work)
# --------------------------------------------------------------------------- #


def measure_scene_file(
    path: str | Path,
    reflectors: pd.DataFrame,
    date: dt.date | str,
    *,
    scale: str = "power",
    pixel_is_point: bool = False,
    chip: int = 32,
    search_px: float = 4.0,
    oversample: int = 32,
    clutter_ring: tuple[float, float] = (4.0, 16.0),
    edge_px: int = 3,
    min_pcr_db: float = 15.0,
) -> pd.DataFrame:
    """:func:`measure_scene` on a raster file, reading only a window per target.

    Each target's :func:`target_window` (the chip plus ``edge_px`` around it,
    about ``(chip + 2 edge_px)^2`` pixels) is read, its nodata, non-finite
    and fill values as NaN and converted to linear power as every RTC stage
    reads a scene (:func:`sarstack.rtc.read_scene`); targets outside the
    raster read nothing. Memory follows the chip size, not the scene size,
    and the result equals :func:`measure_scene` on the whole image read the
    same way, number for number.

    Parameters
    ----------
    path
        A single-band raster (e.g. an RTC GeoTIFF) with a CRS.
    reflectors
        As from :func:`read_reflectors`.
    date
        The scene's acquisition date.
    scale
        How the file stores backscatter: ``power``, ``amplitude`` or ``db``
        (``rtc.scale``).
    pixel_is_point, chip, search_px, oversample, clutter_ring, edge_px, min_pcr_db
        As in :func:`measure_scene`.

    Returns
    -------
    pandas.DataFrame
        As :func:`measure_scene`.

    Raises
    ------
    SarstackError
        One line naming the file: missing, unreadable, more than one band,
        no CRS, or a window that cannot be read.
    """
    from rasterio.windows import Window

    from sarstack.io import read_grid
    from sarstack.rtc import read_scene

    grid = read_grid(path, single_band=True)
    if grid.crs is None:
        raise SarstackError(f"{path}: no CRS; the reflectors cannot be placed in it")
    return _measure(
        lambda r0, c0, nr, nc: read_scene(path, Window(c0, r0, nc, nr), scale=scale), grid,
        reflectors, date, pixel_is_point=pixel_is_point, chip=chip, search_px=search_px,
        oversample=oversample, clutter_ring=clutter_ring, edge_px=edge_px, min_pcr_db=min_pcr_db,
    )  # fmt: skip


# --------------------------------------------------------------------------- #
# Summary per scene and for the stack (pure)
# --------------------------------------------------------------------------- #

#: Columns of :func:`summarize_offsets` (``absolute.csv``).
ABSOLUTE_COLUMNS = (
    "scope", "date", "n_targets", "n_ok", "east_mean_m", "north_mean_m", "east_std_m",
    "north_std_m", "east_rms_m", "north_rms_m", "rms_m", "offset_m", "requirement_m", "passes",
    "verdict", "unmeasured_dates",
)  # fmt: skip


def _stats(east: np.ndarray, north: np.ndarray) -> dict[str, float]:
    """Mean, sample std (NaN below 2 values), RMS per axis and horizontal RMS."""
    n = len(east)
    nan = math.nan
    return {
        "east_mean_m": float(np.mean(east)) if n else nan,
        "north_mean_m": float(np.mean(north)) if n else nan,
        "east_std_m": float(np.std(east, ddof=1)) if n > 1 else nan,
        "north_std_m": float(np.std(north, ddof=1)) if n > 1 else nan,
        "east_rms_m": float(np.sqrt(np.mean(east**2))) if n else nan,
        "north_rms_m": float(np.sqrt(np.mean(north**2))) if n else nan,
        "rms_m": float(np.sqrt(np.mean(east**2 + north**2))) if n else nan,
    }


def summarize_offsets(
    measurements: pd.DataFrame, requirement_m: float | None = None,
    min_fraction: float | None = None,
) -> pd.DataFrame:
    """Absolute geolocation per scene and for the stack, with verdicts.

    Parameters
    ----------
    measurements
        Rows of :func:`measure_scene` for one or more scenes (at least
        ``date``, ``east_m``, ``north_m``, ``status``).
    requirement_m
        Largest acceptable horizontal absolute offset of a scene (metres);
        None: no verdict against a requirement.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ABSOLUTE_COLUMNS`. One ``scope = "scene"`` row per
        date (in date order), then one ``scope = "stack"`` row (``date``
        empty).

        Scene rows: ``n_targets``, ``n_ok`` (targets measured ``ok``); mean,
        sample std and RMS of east / north over the ok targets; ``rms_m``:
        horizontal RMS of the ok targets' offsets; ``offset_m``: the
        horizontal length of the mean offset, the scene's absolute
        geolocation error, which the requirement judges (``passes``:
        ``offset_m <= requirement_m``, empty when not judged).

        Stack row: ``n_targets``, ``n_ok`` summed; the statistics are over
        the *measured scenes' mean offsets*, each scene counted once (a scene
        with more targets is not worth more): mean, sample std (scene to
        scene), RMS per axis, ``rms_m`` = RMS of the scenes' ``offset_m``,
        and ``offset_m`` of the stack mean. ``unmeasured_dates``: the dates
        with no ok target, space-separated.

        ``verdict``, with the vocabulary of ``summary.csv``
        (:func:`sarstack.rtc.verdict`), never ``pass`` on what was not
        measured: a scene is ``pass`` / ``fail``, or ``not_measurable``
        without an ok target; the stack is ``fail`` if a measured scene
        fails, else ``not_measurable`` if no scene was measured, else
        ``incomplete`` if some scene was not, else ``pass``. Without a
        requirement the verdict is ``no_requirement`` where something was
        measured (``not_measurable`` where nothing was).
    """
    from sarstack.rtc import verdict

    is_ok = (measurements["status"] == ReflectorStatus.OK.value).to_numpy()
    dates = measurements["date"].astype(str).to_numpy()
    east_all = measurements["east_m"].to_numpy(float)
    north_all = measurements["north_m"].to_numpy(float)
    rows: list[dict[str, object]] = []
    means: list[tuple[float, float]] = []  # of the measured scenes
    scene_passes: list[bool | None] = []  # of the measured scenes
    unmeasured: list[str] = []
    for date in sorted(set(dates)):
        sel = dates == date
        ok = sel & is_ok
        stats = _stats(east_all[ok], north_all[ok])
        offset = math.hypot(stats["east_mean_m"], stats["north_mean_m"])
        passes: bool | None = None
        if ok.any():
            means.append((stats["east_mean_m"], stats["north_mean_m"]))
            if requirement_m is not None:
                passes = bool(offset <= requirement_m)
            scene_passes.append(passes)
        else:
            unmeasured.append(date)
        rows.append(
            {
                "scope": "scene",
                "date": date,
                "n_targets": int(sel.sum()),
                "n_ok": int(ok.sum()),
                **stats,
                "offset_m": offset,
                "requirement_m": requirement_m,
                "passes": passes,
                "verdict": verdict([passes] if ok.any() else [], int(not ok.any()),
                                   requirement_m),
                "unmeasured_dates": "",
            }
        )  # fmt: skip
    mean_e = np.array([m[0] for m in means])
    mean_n = np.array([m[1] for m in means])
    stats = _stats(mean_e, mean_n)
    rows.append(
        {
            "scope": "stack",
            "date": "",
            "n_targets": len(measurements),
            "n_ok": int(is_ok.sum()),
            **stats,
            "offset_m": math.hypot(stats["east_mean_m"], stats["north_mean_m"]),
            "requirement_m": requirement_m,
            "passes": None,
            "verdict": verdict(scene_passes, len(unmeasured), requirement_m, min_fraction),
            "unmeasured_dates": " ".join(unmeasured),
        }
    )
    return pd.DataFrame(rows, columns=list(ABSOLUTE_COLUMNS))

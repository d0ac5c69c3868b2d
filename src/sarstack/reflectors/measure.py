"""Locating each reflector's peak in a scene (oversampled chip, parabola
vertex) and its offset from the expected position."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from sarstack.errors import SarstackError
from sarstack.io import Grid
from sarstack.reflectors.inputs import _as_date, _metres_per_unit, expected_positions


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
    chip: int,
    search_px: float,
    oversample: int = 32,
    clutter_ring: tuple[float, float] = (4.0, 16.0),
    edge_px: int,
    min_pcr_db: float,
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

    r0, c0 = r - chip // 2, c - chip // 2
    sub = _cut_chip(img, r0, c0, chip, (o0, o1))
    valid = np.isfinite(sub)
    background = float(np.median(sub[valid]))
    work = np.where(valid, sub - background, 0.0)

    up = _fft_oversample(work, oversample)
    # Only within search_px of the expected position (chip coordinates, element
    # centres at integers).
    found = _oversampled_peak(up, row - r0 - 0.5, col - c0 - 0.5, oversample, search_px)
    if found is None:
        return _nan_result(ReflectorStatus.LOW_CONTRAST)
    pi, pj, peak = found
    peak_power = peak + background

    # Back to image pixel-is-area coordinates.
    meas_row = r0 + pi + 0.5
    meas_col = c0 + pj + 0.5
    mr, mc = math.floor(meas_row), math.floor(meas_col)
    if not (0 <= mr < h and 0 <= mc < w) or _near_invalid(img, mr, mc, edge_px, (o0, o1), shape):
        return _nan_result(ReflectorStatus.NEAR_EDGE)

    pcr = _peak_to_clutter(sub, valid, (pi, pj), (inner, outer), peak_power)
    if not pcr >= min_pcr_db:  # NaN too
        return _nan_result(ReflectorStatus.LOW_CONTRAST, pcr)
    return PeakResult(float(meas_row), float(meas_col), float(pcr), ReflectorStatus.OK)


def _cut_chip(
    img: np.ndarray, r0: int, c0: int, chip: int, origin: tuple[int, int]
) -> np.ndarray:
    """The ``chip`` x ``chip`` window of the raster from raster element ``(r0, c0)``,
    NaN outside the image (window) held, whose element ``[0, 0]`` is ``origin``."""
    o0, o1 = origin
    sub = np.full((chip, chip), np.nan)
    ra, rb = max(r0, o0), min(r0 + chip, o0 + img.shape[0])
    ca, cb = max(c0, o1), min(c0 + chip, o1 + img.shape[1])
    sub[ra - r0 : rb - r0, ca - c0 : cb - c0] = img[ra - o0 : rb - o0, ca - o1 : cb - o1]
    return sub


def _oversampled_peak(
    up: np.ndarray, er: float, ec: float, oversample: int, search_px: float
) -> tuple[float, float, float] | None:
    """The largest value of the oversampled chip ``up`` within ``search_px`` of the
    expected chip position ``(er, ec)``, refined by a parabola per axis: its chip
    ``(row, col)`` (element centres at integers) and value; None when there is no
    sample in the disc or the maximum is not a true local maximum."""
    n0, n1 = up.shape
    ui = np.arange(n0)[:, None] / oversample - er
    uj = np.arange(n1)[None, :] / oversample - ec
    disc = np.hypot(ui, uj) <= search_px
    if not disc.any():
        return None
    i, j = np.unravel_index(int(np.argmax(np.where(disc, up, -np.inf))), up.shape)
    around = up[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
    if up[i, j] < around.max():  # the flank of a brighter return outside the disc
        return None
    di = _parabola_vertex(up[(i - 1) % n0, j], up[i, j], up[(i + 1) % n0, j])
    dj = _parabola_vertex(up[i, (j - 1) % n1], up[i, j], up[i, (j + 1) % n1])
    pi = (i + di) / oversample  # chip coordinates, element centres at integers
    pj = (j + dj) / oversample
    return pi, pj, float(up[i, j])


def _peak_to_clutter(
    sub: np.ndarray, valid: np.ndarray, peak: tuple[float, float],
    ring_px: tuple[float, float], peak_power: float,
) -> float:
    """10 log10(peak power / mean power of the chip's valid pixels at a distance in
    ``ring_px`` of the chip position ``peak``); +-inf or NaN where that is undefined."""
    chip = sub.shape[0]
    yy, xx = np.mgrid[0:chip, 0:chip]
    dist = np.hypot(yy - peak[0], xx - peak[1])
    ring = valid & (dist >= ring_px[0]) & (dist <= ring_px[1])
    clutter = float(np.mean(sub[ring])) if ring.any() else math.nan
    if peak_power <= 0.0 or not np.isfinite(clutter):
        return -math.inf if peak_power <= 0.0 else math.nan
    if clutter <= 0.0:
        return math.inf
    return 10.0 * math.log10(peak_power / clutter)


def measure_scene(
    image: np.ndarray,
    grid: Grid,
    reflectors: pd.DataFrame,
    date: dt.date | str,
    *,
    pixel_is_point: bool,
    chip: int,
    search_px: float,
    oversample: int = 32,
    clutter_ring: tuple[float, float] = (4.0, 16.0),
    edge_px: int,
    min_pcr_db: float,
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
    chip: int,
    edge_px: int,
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


def measure_scene_file(
    path: str | Path,
    reflectors: pd.DataFrame,
    date: dt.date | str,
    *,
    scale: str,
    pixel_is_point: bool,
    chip: int,
    search_px: float,
    oversample: int = 32,
    clutter_ring: tuple[float, float] = (4.0, 16.0),
    edge_px: int,
    min_pcr_db: float,
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

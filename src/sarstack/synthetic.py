"""Synthetic RTC stacks with a known geolocation error per date.

:func:`make_rtc_stack` writes a small stack of HyP3-style RTC GeoTIFFs (VV,
linear power, float32) of one textured ground scene, each date displaced by a
known sub-pixel geolocation error, with moving frame extents, speckle and
slanted invalid swath edges, and optionally bright point targets (corner
reflectors) whose surveyed positions go to ``reflectors.csv``: each date's
absolute offset at the targets is then that date's known error.
:func:`expected_pair_offsets` turns the recorded
truth into the offsets a co-registration tool should measure for a pair
network. :func:`make_ifg_stack` writes unwrapped interferograms of a known
phase history.

Each writer is a simulation plus file writing: :func:`simulate_rtc_stack` and
:func:`simulate_ifg_stack` return the same arrays and truth in memory
(:class:`RtcSimulation`, :class:`IfgSimulation`) without touching the disk.

Convention
----------
A ground feature at true map position ``P`` appears at
``P + (east_px * pixel_size, north_px * pixel_size)`` (east, north) in that
date's GeoTIFF. For a pair ``(i, j)`` (reference ``i``, secondary ``j``) the
expected measured offset of the secondary relative to the reference is
``east_m = (east_px[j] - east_px[i]) * pixel_size`` and likewise north. With
north-up transforms, north +1 pixel is row -1.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

from sarstack.errors import SarstackError
from sarstack.io import Grid, write_csv, write_raster

TRUTH_COLUMNS = [
    "date",
    "path",
    "east_px",
    "north_px",
    "east_m",
    "north_m",
    "frame_row_off",
    "frame_col_off",
]

# Extra canvas margin (pixels) beyond the frame jitter and shifts, so that the
# circular Fourier shift never wraps canvas-edge content into a frame.
_MARGIN_PX = 16

# (gaussian sigma in pixels, weight) of the noise layers of the log-power texture.
_TEXTURE_SCALES = ((0.7, 0.5), (1.5, 0.6), (4.0, 0.8), (12.0, 1.0), (32.0, 0.8))

# Low-pass of the canvas, per axis (cycles per pixel): raised-cosine taper from the
# first to the second value, zero at Nyquist, so the scene is band-limited and the
# Fourier shift is an exact translation; kept wide so that phase correlation (which
# whitens the spectrum) still sees scene texture at almost every frequency.
_LOWPASS = (0.4, 0.5)

# Smallest power of the noise-free canvas (linear), so valid pixels never equal nodata 0.
_MIN_POWER = 0.005

#: Columns of the point-target list (``reflectors.csv``), as
#: :func:`sarstack.reflectors.read_reflectors` reads it.
REFLECTOR_CSV_COLUMNS = ["id", "x", "y", "crs"]

# Point targets: gaussian PSF (sigma in pixels), peak power this many dB above the canvas mean,
# at least this many pixels from every frame edge and nodata wedge (the chip of
# sarstack.reflectors.locate_peak is 32 px: 16 px each side plus its edge test)
# and at least this far apart (one target per chip).
_TARGET_SIGMA_PX = 1.2
_TARGET_DB = 35.0
_TARGET_MARGIN_PX = 24
_TARGET_SPACING_PX = 36
# Widest nodata wedge, as a fraction of the width (see _wedge_mask).
_WEDGE_MAX = 0.08


def _texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Log-power texture: unit-variance sum of gaussian-filtered noise at a few scales."""
    field = np.zeros(shape, dtype=np.float64)
    for sigma, weight in _TEXTURE_SCALES:
        noise = np.fft.fft2(rng.standard_normal(shape))
        layer = np.fft.ifft2(ndimage.fourier_gaussian(noise, sigma)).real
        field += weight * layer / (layer.std() + 1e-12)
    return (field - field.mean()) / (field.std() + 1e-12)


def _lines(rng: np.random.Generator, shape: tuple[int, int], n_lines: int) -> np.ndarray:
    """Bright straight features (roads, field edges) with a gaussian cross-section."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros(shape, dtype=np.float64)
    for _ in range(n_lines):
        r0, c0 = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
        theta = rng.uniform(0.0, np.pi)
        dist = (rows - r0) * np.cos(theta) - (cols - c0) * np.sin(theta)
        width = rng.uniform(0.8, 1.6)
        out += rng.uniform(0.4, 1.0) * np.exp(-0.5 * (dist / width) ** 2)
    return out


def _lowpass(shape: tuple[int, int]) -> np.ndarray:
    """Separable raised-cosine low-pass transfer function on the ``fft2`` grid."""
    lo, hi = _LOWPASS
    out = np.ones(shape, dtype=np.float64)
    for axis, n in enumerate(shape):
        f = np.abs(np.fft.fftfreq(n))
        taper = 0.5 * (1.0 + np.cos(np.pi * np.clip((f - lo) / (hi - lo), 0.0, 1.0)))
        taper[f >= hi] = 0.0
        out *= taper[:, None] if axis == 0 else taper[None, :]
    return out


def _target_centres(
    rng: np.random.Generator, n: int, rows: tuple[float, float], cols: tuple[float, float]
) -> np.ndarray:
    """``(n, 2)`` point-target centres on a lattice inside ``rows`` x ``cols``.

    Fractional ``(row, col)``, pixel-is-area (the centre of element ``[i, j]``
    is ``(i + 0.5, j + 0.5)``); each lattice cell's centre is moved by up to
    0.5 px so that the targets fall at arbitrary sub-pixel positions.
    """
    height, width = rows[1] - rows[0], cols[1] - cols[0]
    n_c = max(1, math.ceil(math.sqrt(n * width / max(height, 1.0))))
    n_r = math.ceil(n / n_c)
    if min(height / n_r, width / n_c) < _TARGET_SPACING_PX:
        raise SarstackError(
            f"{n} point targets do not fit {_TARGET_SPACING_PX} px apart and "
            f"{_TARGET_MARGIN_PX} px from the frame and nodata edges of every date; "
            "use fewer targets, a larger shape or less frame jitter"
        )
    cells = [(i, j) for i in range(n_r) for j in range(n_c)][:n]
    lattice = [(rows[0] + (i + 0.5) * height / n_r, cols[0] + (j + 0.5) * width / n_c)
               for i, j in cells]  # fmt: skip
    return np.array(lattice) + rng.uniform(-0.5, 0.5, size=(n, 2))


def _render_targets(centres: np.ndarray, shape: tuple[int, int], amplitude: float) -> np.ndarray:
    """Gaussian PSFs (linear power) centred at fractional pixel-is-area ``(row, col)``."""
    ii = np.arange(shape[0], dtype=np.float64) + 0.5
    jj = np.arange(shape[1], dtype=np.float64) + 0.5
    two_s2 = 2.0 * _TARGET_SIGMA_PX**2
    out = np.zeros(shape, dtype=np.float64)
    for rc, cc in centres:
        out += amplitude * np.outer(np.exp(-((ii - rc) ** 2) / two_s2),
                                    np.exp(-((jj - cc) ** 2) / two_s2))  # fmt: skip
    return out


def _wedge_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """True where a slanted swath-edge wedge makes the pixel invalid (left and right)."""
    h, w = shape
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :] + 0.5
    frac = max(h - 1, 1)
    mask = np.zeros(shape, dtype=bool)
    for side in ("left", "right"):
        narrow, wide = rng.uniform(0.01, 0.035), rng.uniform(0.05, 0.08)
        top, bottom = (narrow, wide) if rng.random() < 0.5 else (wide, narrow)
        width = (top + (bottom - top) * rows / frac) * w
        mask |= cols < width if side == "left" else cols > w - width
    return mask


class RtcSimulation(NamedTuple):
    """A synthetic RTC stack in memory, as :func:`simulate_rtc_stack` returns it.

    :func:`make_rtc_stack` writes ``images[k]`` on ``grids[k]`` to
    ``{names[k]}/{names[k]}_VV.tif`` and ``truth`` (with absolute paths) to
    ``truth.csv``.
    """

    #: Acquisition dates, in time order.
    dates: list[dt.date]
    #: HyP3-style scene name of each date (``S1A_IW_{YYYYMMDD}T{hhmmss}_..._{XXXX}``).
    names: list[str]
    #: Grid of each date: one CRS and pixel size, frames offset by whole pixels.
    grids: list[Grid]
    #: ``(n_dates, rows, cols)`` float32 linear power, exactly as written:
    #: speckle applied, invalid wedge pixels set to ``nodata``.
    images: np.ndarray
    #: Nodata value of ``images`` (also the GeoTIFF nodata tag).
    nodata: float
    #: One row per date, columns :data:`TRUTH_COLUMNS` (see :func:`make_rtc_stack`);
    #: ``path`` is relative to the output folder, ``{name}/{name}_VV.tif``.
    truth: pd.DataFrame
    #: Surveyed (true) positions of the point targets, columns
    #: :data:`REFLECTOR_CSV_COLUMNS` (map ``x``, ``y`` in the scenes' CRS);
    #: None without point targets.
    reflectors: pd.DataFrame | None = None


def simulate_rtc_stack(
    *,
    n_dates: int = 6,
    shape: tuple[int, int] = (320, 320),
    pixel_size: float = 30.0,
    shifts_px: np.ndarray | None = None,
    max_shift_px: float = 0.8,
    frame_jitter_px: int = 12,
    nan_edge: bool = True,
    looks: float = 8.0,
    seed: int = 0,
    start_date: str = "2021-01-03",
    interval_days: int = 12,
    crs: str = "EPSG:32611",
    origin: tuple[float, float] = (400000.0, 4000000.0),
    nodata: float = 0.0,
    speckle: bool = True,
    point_targets: int = 0,
) -> RtcSimulation:
    """Simulate an RTC stack with a known geolocation error per date (no files).

    One band-limited ground reflectivity canvas (multi-scale log-normal
    texture plus a few bright linear features) is generated once; each date
    is rendered from it with an exact Fourier sub-pixel shift, cropped to a
    frame that moves by whole pixels on one aligned grid, multiplied by
    Gamma speckle and given slanted invalid edges.

    Parameters
    ----------
    n_dates
        Number of acquisitions.
    shape
        Frame size ``(rows, cols)`` of every scene.
    pixel_size
        Pixel size in CRS units (metres).
    shifts_px
        Geolocation error per date, shape ``(n_dates, 2)`` as
        ``(east_px, north_px)``. Default: uniform in
        ``[-max_shift_px, max_shift_px]`` for every date, the first included.
    max_shift_px
        Half-range of the default random errors.
    frame_jitter_px
        Each frame is offset from the first by a random whole number of
        pixels in ``[-frame_jitter_px, frame_jitter_px]`` in each axis.
    nan_edge
        Add slanted invalid wedges (1-8 % of the width) on the left and right
        edges, different per date, set to ``nodata``.
    looks
        Equivalent number of looks of the Gamma(looks, 1/looks) speckle.
    seed
        Seed; the same seed gives identical results.
    start_date
        First acquisition date, ``YYYY-MM-DD``.
    interval_days
        Days between acquisitions.
    crs
        CRS of the scenes.
    origin
        Upper-left corner ``(x, y)`` of the first date's frame.
    nodata
        Value of invalid pixels; valid pixels never equal it.
    speckle
        Apply speckle (set false for noise-free scenes, e.g. to test offsets).
    point_targets
        Number of bright point targets (corner reflectors): gaussian PSFs
        (sigma 1.2 px, peak 35 dB above the canvas mean) placed on the ground
        canvas on a lattice, at least 24 px from every date's frame edges and
        nodata wedges and 36 px apart, and moved with the scene (the same
        translation, rendered analytically in each frame), so that
        each date's absolute offset at the targets (measured minus surveyed,
        east = +x) is that date's ``east_m``, ``north_m`` of the truth. They
        are added after the speckle (a reflector's return does not fade).
        0 (the default) adds none and leaves every output as without the
        option.

    Returns
    -------
    RtcSimulation
        Dates, scene names, grids, the float32 images and the truth table.

    Raises
    ------
    SarstackError
        On invalid arguments.
    """
    if n_dates < 1:
        raise SarstackError(f"n_dates must be at least 1, got {n_dates}")
    h, w = (int(shape[0]), int(shape[1]))
    if h < 16 or w < 16:
        raise SarstackError(f"shape {tuple(shape)} is too small (at least 16 x 16)")
    if not pixel_size > 0:
        raise SarstackError(f"pixel_size must be positive, got {pixel_size}")
    if speckle and not looks > 0:
        raise SarstackError(f"looks must be positive, got {looks}")
    if frame_jitter_px < 0:
        raise SarstackError(f"frame_jitter_px must be >= 0, got {frame_jitter_px}")
    if point_targets < 0:
        raise SarstackError(f"point_targets must be >= 0, got {point_targets}")
    try:
        first = dt.date.fromisoformat(start_date)
    except ValueError:
        raise SarstackError(f"start_date {start_date!r} is not YYYY-MM-DD") from None

    # Independent streams, so that e.g. speckle=False keeps the same scene and errors.
    ss = np.random.SeedSequence(seed)
    # (A 7th stream for the point targets leaves the first six as they were.)
    r_shift, r_frame, r_scene, r_wedge, r_speckle, r_name, r_targets = (
        np.random.default_rng(s) for s in ss.spawn(7)
    )

    default_shifts = r_shift.uniform(-max_shift_px, max_shift_px, size=(n_dates, 2))
    if shifts_px is None:
        shifts = default_shifts
    else:
        shifts = np.asarray(shifts_px, dtype=np.float64)
        if shifts.shape != (n_dates, 2) or not np.all(np.isfinite(shifts)):
            raise SarstackError(
                f"shifts_px must be finite with shape ({n_dates}, 2), got {shifts.shape}"
            )

    offs = r_frame.integers(-frame_jitter_px, frame_jitter_px + 1, size=(n_dates, 2))
    offs[0] = 0  # frames are offset relative to the first date

    max_off = int(np.max(np.abs(offs))) if n_dates else 0
    pad = max_off + int(np.ceil(np.max(np.abs(shifts)))) + _MARGIN_PX
    ch, cw = h + 2 * pad, w + 2 * pad

    # Ground truth: log-normal texture (about 0.01-1) plus bright lines, then a
    # low-pass so the periodic canvas is band-limited and the Fourier shift is an
    # exact sub-pixel translation. The low-pass rings slightly below zero next to
    # sharp features; raising the mean (the DC bin only) keeps it positive.
    log_power = np.log(0.1) + 0.55 * _texture(r_scene, (ch, cw))
    canvas = np.exp(log_power) + _lines(r_scene, (ch, cw), n_lines=int(r_scene.integers(4, 8)))
    spectrum = np.fft.fft2(canvas) * _lowpass((ch, cw))
    deficit = _MIN_POWER - float(np.fft.ifft2(spectrum).real.min())
    if deficit > 0:
        spectrum[0, 0] += deficit * ch * cw

    grid_crs = CRS.from_user_input(crs)
    centres = None  # of the point targets, canvas (row, col)
    reflectors = None
    if point_targets:
        # Canvas rows / cols inside every date's frame, clear of wedges and edges.
        m = _TARGET_MARGIN_PX + int(np.ceil(np.max(np.abs(shifts))))
        wedge = int(np.ceil(_WEDGE_MAX * w)) if nan_edge else 0
        rows_in = (pad + offs[:, 0].max() + m, pad + offs[:, 0].min() + h - m)
        cols_in = (pad + offs[:, 1].max() + wedge + m, pad + offs[:, 1].min() + w - wedge - m)
        target_power = float(spectrum[0, 0].real) / (ch * cw) * 10 ** (_TARGET_DB / 10)
        centres = _target_centres(
            r_targets, point_targets, (float(rows_in[0]), float(rows_in[1])),
            (float(cols_in[0]), float(cols_in[1])),
        )  # fmt: skip
        # Frame 0's transform origin is canvas (pad, pad); every frame is on that grid.
        reflectors = pd.DataFrame(
            {
                "id": [f"PT{k + 1:02d}" for k in range(point_targets)],
                "x": origin[0] + (centres[:, 1] - pad) * pixel_size,
                "y": origin[1] - (centres[:, 0] - pad) * pixel_size,
                "crs": crs,
            },
            columns=REFLECTOR_CSV_COLUMNS,
        )
    names_hex = r_name.integers(0, 16**4, size=n_dates)
    hhmmss = f"{int(r_name.integers(0, 24)):02d}{int(r_name.integers(0, 60)):02d}"
    images = np.empty((n_dates, h, w), dtype=np.float32)
    dates: list[dt.date] = []
    names: list[str] = []
    grids: list[Grid] = []
    rows: list[dict[str, object]] = []
    for k in range(n_dates):
        de, dn = float(shifts[k, 0]), float(shifts[k, 1])
        # Content at true position P appears at P + (de east, dn north): +de columns, -dn rows.
        shifted = np.fft.ifft2(ndimage.fourier_shift(spectrum, shift=(-dn, de))).real
        ro, co = int(offs[k, 0]), int(offs[k, 1])
        img = shifted[pad + ro : pad + ro + h, pad + co : pad + co + w]
        img = np.maximum(img, 1e-6)  # guard only: the canvas minimum is _MIN_POWER
        if speckle:
            img = img * r_speckle.gamma(shape=looks, scale=1.0 / looks, size=img.shape)
        if centres is not None:
            # The same translation as the canvas's (+de columns, -dn rows), rendered
            # analytically in this frame: exact, and no ringing of a low-pass.
            moved = centres + np.array([-dn - (pad + ro), de - (pad + co)])
            img = img + _render_targets(moved, (h, w), target_power)
        img = img.astype(np.float32)
        img[img == np.float32(nodata)] = np.nextafter(np.float32(nodata), np.float32(np.inf))
        if nan_edge:
            img[_wedge_mask(r_wedge, (h, w))] = nodata
        images[k] = img

        date = first + dt.timedelta(days=k * interval_days)
        seconds = int(r_name.integers(0, 60))
        stem = (
            f"S1A_IW_{date:%Y%m%d}T{hhmmss}{seconds:02d}_DVP_RTC30_G_gpuned_{int(names_hex[k]):04X}"
        )
        transform = Affine(
            pixel_size, 0.0, origin[0] + co * pixel_size, 0.0, -pixel_size,
            origin[1] - ro * pixel_size,
        )  # fmt: skip
        dates.append(date)
        names.append(stem)
        grids.append(Grid(grid_crs, transform, w, h))
        rows.append(
            {
                "date": date.isoformat(),
                "path": str(Path(stem, f"{stem}_VV.tif")),
                "east_px": de,
                "north_px": dn,
                "east_m": de * pixel_size,
                "north_m": dn * pixel_size,
                "frame_row_off": ro,
                "frame_col_off": co,
            }
        )
    truth = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    return RtcSimulation(dates, names, grids, images, nodata, truth, reflectors)


def make_rtc_stack(
    out_dir: str | Path,
    *,
    n_dates: int = 6,
    shape: tuple[int, int] = (320, 320),
    pixel_size: float = 30.0,
    shifts_px: np.ndarray | None = None,
    max_shift_px: float = 0.8,
    frame_jitter_px: int = 12,
    nan_edge: bool = True,
    looks: float = 8.0,
    seed: int = 0,
    start_date: str = "2021-01-03",
    interval_days: int = 12,
    crs: str = "EPSG:32611",
    origin: tuple[float, float] = (400000.0, 4000000.0),
    nodata: float = 0.0,
    speckle: bool = True,
    point_targets: int = 0,
) -> pd.DataFrame:
    """Write a synthetic RTC stack with a known geolocation error per date.

    Simulates the stack with :func:`simulate_rtc_stack` (see there for the
    model) and writes it: one HyP3-style sub-folder per scene holding
    ``{name}_VV.tif`` (float32 linear power, nodata ``nodata``), plus
    ``truth.csv`` and, with point targets, ``reflectors.csv`` (``id, x, y,
    crs``: the targets' true positions in the scenes' CRS, as
    :func:`sarstack.reflectors.read_reflectors` reads them).

    Parameters
    ----------
    out_dir
        Output folder; one HyP3-style sub-folder per scene plus ``truth.csv``.
    n_dates, shape, pixel_size, shifts_px, max_shift_px, frame_jitter_px, nan_edge, looks, seed, start_date, interval_days, crs, origin, nodata, speckle, point_targets
        As :func:`simulate_rtc_stack`; ``nodata`` is also the GeoTIFF
        nodata tag and the same seed gives identical files.

    Returns
    -------
    pandas.DataFrame
        One row per date in time order, columns ``date`` (``YYYY-MM-DD``),
        ``path`` (absolute path of the ``_VV.tif``), ``east_px``,
        ``north_px``, ``east_m``, ``north_m`` (the geolocation error) and
        ``frame_row_off``, ``frame_col_off`` (frame offset from the first
        date in pixels; +row is south, +col is east). Also written to
        ``{out_dir}/truth.csv``.
    """
    sim = simulate_rtc_stack(
        n_dates=n_dates, shape=shape, pixel_size=pixel_size, shifts_px=shifts_px,
        max_shift_px=max_shift_px, frame_jitter_px=frame_jitter_px, nan_edge=nan_edge,
        looks=looks, seed=seed, start_date=start_date, interval_days=interval_days, crs=crs,
        origin=origin, nodata=nodata, speckle=speckle, point_targets=point_targets,
    )  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [str((out / p).resolve()) for p in sim.truth["path"]]
    for img, grid, path in zip(sim.images, sim.grids, paths, strict=True):
        write_raster(path, img, grid, nodata=sim.nodata, units="linear power")
    truth = sim.truth.copy()
    truth["path"] = paths
    write_csv(out / "truth.csv", truth)
    if sim.reflectors is not None:
        write_csv(out / "reflectors.csv", sim.reflectors)
    return truth


def expected_pair_offsets(truth: pd.DataFrame, pairs: Sequence[tuple[int, int]]) -> pd.DataFrame:
    """Offsets a co-registration tool should measure for each pair.

    Parameters
    ----------
    truth
        The table returned by :func:`make_rtc_stack` (or read from its
        ``truth.csv``), one row per date in time order.
    pairs
        ``(i, j)`` row indices into ``truth``: reference ``i``, secondary ``j``.

    Returns
    -------
    pandas.DataFrame
        Columns ``reference_date``, ``secondary_date`` (``YYYY-MM-DD``),
        ``east_m``, ``north_m``: displacement of the secondary relative to
        the reference, ``(error[j] - error[i])`` in metres.
    """
    n = len(truth)
    east = truth["east_m"].to_numpy(dtype=np.float64)
    north = truth["north_m"].to_numpy(dtype=np.float64)
    dates = [str(d)[:10] for d in truth["date"]]
    rows = []
    for k, (i, j) in enumerate(pairs):
        if not (0 <= i < n and 0 <= j < n):
            raise SarstackError(f"pair {k} ({i}, {j}) is outside the {n} dates of the truth table")
        rows.append(
            {
                "reference_date": dates[i],
                "secondary_date": dates[j],
                "east_m": float(east[j] - east[i]),
                "north_m": float(north[j] - north[i]),
            }
        )
    return pd.DataFrame(rows, columns=["reference_date", "secondary_date", "east_m", "north_m"])


# --------------------------------------------------------------------------- #
# Synthetic unwrapped-interferogram stacks (InSAR time series)
# --------------------------------------------------------------------------- #

IFG_COLUMNS = [
    "path",
    "cor_path",
    "reference_date",
    "secondary_date",
    "reference_index",
    "secondary_index",
    "n_nodata",
]

# e-folding time (days) of the synthetic correlation with temporal baseline.
_COR_DECAY_DAYS = 1000.0


class EventStack(NamedTuple):
    """Tables of :func:`simulate_event_pairs`."""

    pairs: pd.DataFrame  # pairs.csv-like: dates, east/north offsets and se (m), status ok
    scenes: pd.DataFrame  # scenes.csv-like: date, a product path naming the platform
    dates: list[str]


def simulate_event_pairs(
    rng: np.random.Generator,
    *,
    n: int = 30,
    jitter: float = 1.0,
    meas: float = 0.9,
    se_factor: float = 1.0,
    step: float | None = None,
    k: int = 15,
    drift_m_per_yr: float = 0.0,
    network: str = "sequential+long:4",
    platforms: tuple[str, str] = ("S1A", "S1C"),
) -> EventStack:
    """Pair offsets of an RTC stack for the event search (sarstack.events).

    ``n`` dates 12 days apart from 2021-01-03, each scene with its own
    geolocation error (``jitter`` m per component); pairs of ``network``
    measured with error ``meas`` (m), stated as ``meas * se_factor``; with
    ``step``, every date from ``k`` on shifted east by ``step`` m (the first
    date of ``platforms[1]``; dates before ``k`` are ``platforms[0]``); with
    ``drift_m_per_yr``, an east drift.
    """
    from sarstack.dates import make_pairs

    ds = [str(d.date()) for d in pd.date_range("2021-01-03", periods=n, freq="12D")]
    truth = rng.normal(0, jitter, (n, 2))
    if step is not None:
        truth[k:, 0] += step
    truth[:, 0] += drift_m_per_yr * np.arange(n) * 12 / 365.25
    pairs = make_pairs(n, network)
    y = np.array([truth[j] - truth[i] for i, j in pairs]) + rng.normal(0, meas, (len(pairs), 2))
    p = pd.DataFrame({"reference_date": [ds[i] for i, _ in pairs],
                      "secondary_date": [ds[j] for _, j in pairs],
                      "east_m": y[:, 0], "north_m": y[:, 1], "east_se_m": meas * se_factor,
                      "north_se_m": meas * se_factor, "status": "ok"})  # fmt: skip
    names = [f"/data/{platforms[q >= k]}_IW_{d.replace('-', '')}T184544_DVP_RTC30_G_gpuned_13FA_VV.tif"
             for q, d in enumerate(ds)]  # fmt: skip
    return EventStack(p, pd.DataFrame({"date": ds, "path": names}), ds)


def _default_velocity(shape: tuple[int, int], peak: float = 6.0) -> np.ndarray:
    """Gaussian bump of phase velocity (rad/yr) centred in the frame, sigma = min(shape) / 6."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    sigma = min(h, w) / 6.0
    r0, c0 = (h - 1) / 2.0, (w - 1) / 2.0
    return peak * np.exp(-0.5 * ((rows - r0) ** 2 + (cols - c0) ** 2) / sigma**2)


class IfgSimulation(NamedTuple):
    """A synthetic interferogram stack and its truth in memory, as
    :func:`simulate_ifg_stack` returns it.

    :func:`make_ifg_stack` writes ``ifgs[k]`` and ``cor[k]`` as float32 and
    the truth fields (float64 here) cast to float32, all on ``grid``.
    """

    #: Acquisition dates, in time order.
    dates: list[dt.date]
    #: ``(i, j)`` date indices of each interferogram, in network order.
    pairs: list[tuple[int, int]]
    #: Grid of every raster (north-up, upper-left corner ``origin``).
    grid: Grid
    #: ``(n_ifg, rows, cols)`` float32 unwrapped phase (radians) exactly as
    #: written: noise, jump patch and the nodata block applied.
    ifgs: np.ndarray
    #: ``(n_ifg, rows, cols)`` float32 correlation exactly as written (same nodata block).
    cor: np.ndarray
    #: Nodata value of ``ifgs`` and ``cor`` (0.0 or NaN).
    nodata: float
    #: Nodata pixels per interferogram (non-zero for the one with the nodata block).
    n_nodata: list[int]
    #: ``(n_dates, rows, cols)`` float64 truth phase (radians), ``phase[0] = 0``.
    phase: np.ndarray
    #: ``(rows, cols)`` float64 truth displacement velocity, ``-v`` times the
    #: displacement scale, in ``units`` per year.
    velocity: np.ndarray
    #: Displacement units: ``"radians"``, or ``"meters"`` with a wavelength.
    units: str
    #: ``(rows, cols)`` float64 annual displacement amplitude ``|a|`` in ``units``;
    #: None without ``annual_amplitude_rad``.
    annual_amplitude: np.ndarray | None
    #: ``(rows, cols)`` float64 day of year of the annual displacement peak, NaN
    #: where ``a = 0``; None without ``annual_amplitude_rad``.
    annual_peak_doy: np.ndarray | None
    #: ``(date, step)``: each displacement step, ``(rows, cols)`` float64 in ``units``.
    steps: list[tuple[dt.date, np.ndarray]]
    #: Table of ``truth.csv``: ``date``, ``t_years``, ``phase_center_rad``,
    #: ``displacement_center``, ``displacement_units`` at pixel ``(rows // 2, cols // 2)``.
    truth: pd.DataFrame


def _pair_name(d1: dt.date, d2: dt.date) -> str:
    """``YYYYMMDD_YYYYMMDD``: the file stem of interferogram ``(d1, d2)``."""
    return f"{d1:%Y%m%d}_{d2:%Y%m%d}"


def simulate_ifg_stack(
    *,
    n_dates: int = 10,
    shape: tuple[int, int] = (64, 64),
    interval_days: int = 12,
    start_date: str = "2020-01-01",
    velocity_rad_per_year: np.ndarray | None = None,
    seasonal_amp_rad: float = 1.0,
    noise_rad: float = 0.1,
    network: str = "nearest:3",
    nodata_value: float = 0.0,
    seed: int = 0,
    wavelength: float | None = None,
    jump_patch: tuple[int, slice, slice] | None = None,
    pixel_size: float = 30.0,
    crs: str = "EPSG:32611",
    origin: tuple[float, float] = (500000.0, 4000000.0),
    annual_amplitude_rad: float | np.ndarray | None = None,
    steps: Sequence[tuple[str, float | np.ndarray]] | None = None,
) -> IfgSimulation:
    """Simulate a stack of unwrapped interferograms with a known phase history (no files).

    Truth phase of date ``k`` at each pixel (radians)::

        phase_k = v * t_k + a * sin(2 pi t_k) + sum_j s_j * (date_k >= step_j)

    with ``t_k`` in years (365.25 d) since the first date (so
    ``phase_0 = 0``), ``v`` the phase velocity field, ``a`` a seasonal
    amplitude that falls linearly from ``seasonal_amp_rad`` on the left edge
    to half of it on the right edge (or ``annual_amplitude_rad``) and
    ``s_j`` the phase steps of ``steps`` (none by default). Interferogram
    ``(i, j)`` is ``phase_j - phase_i`` plus independent N(0, ``noise_rad``)
    noise. Line-of-sight displacement is ``-phase`` (positive towards the
    radar), times ``wavelength / (4 pi)`` with a wavelength.

    Interferogram 1 (0 if there is only one) has a nodata block in its
    top-left corner of ``max(1, rows // 16)`` x ``max(1, cols // 16)``
    pixels. The correlation is in ``[0.05, 1]``: ``0.99`` falling to ``0.3``
    in a disc in the upper-right quarter, decaying as ``exp(-days / 1000)``,
    with the same nodata block.

    The annual truth follows the conventions of
    :class:`sarstack.velocity.DeformationModel`: amplitude ``|a|`` in
    displacement units and the day of year of the displacement's annual
    peak (``1 + 365.25 * (tau_peak mod 1)``, ``tau_peak`` in years since
    2000-01-01: ``t = 0.75`` for ``a > 0``, ``t = 0.25`` for ``a < 0``), NaN
    where ``a = 0``. Each step's truth is the displacement step ``-s`` (times
    ``wavelength / (4 pi)``).

    Parameters
    ----------
    n_dates
        Number of acquisitions (at least 2).
    shape
        ``(rows, cols)``, each at least 8.
    interval_days
        Days between acquisitions.
    start_date
        First date, ``YYYY-MM-DD``.
    velocity_rad_per_year
        Phase velocity field ``(rows, cols)``; default a gaussian bump of
        +6 rad/yr at the centre (a displacement of -6 rad/yr: subsidence).
    seasonal_amp_rad
        Seasonal amplitude on the left edge (radians).
    noise_rad
        Standard deviation of the interferogram noise (radians).
    network
        Pair network, as :func:`sarstack.dates.make_pairs`.
    nodata_value
        Nodata value of the interferograms and correlations (0.0 or NaN);
        valid pixels never equal it.
    seed
        Seed; the same seed gives identical results.
    wavelength
        Radar wavelength in metres; displacement truth in meters instead of
        radians.
    jump_patch
        ``(ifg_index, row_slice, col_slice)``: add ``+2 pi`` to that patch of
        that interferogram (an unwrapping error).
    pixel_size, crs, origin
        Grid of the rasters (upper-left corner ``origin``).
    annual_amplitude_rad
        Seasonal (annual) phase amplitude ``a``, a number or a
        ``(rows, cols)`` map in radians, instead of the ramp of
        ``seasonal_amp_rad``; fills the annual truth fields.
    steps
        ``(date, s)`` pairs: a phase step ``s`` (radians, a number or a
        ``(rows, cols)`` map) added on and after ``date`` (``YYYY-MM-DD``,
        after the first date, not after the last).

    Returns
    -------
    IfgSimulation
        Dates, pairs, grid, the float32 interferograms and correlations, and
        the truth.

    Raises
    ------
    SarstackError
        On invalid arguments.
    """
    from sarstack.dates import make_pairs, years_since

    if n_dates < 2:
        raise SarstackError(f"n_dates must be at least 2, got {n_dates}")
    h, w = (int(shape[0]), int(shape[1]))
    if h < 8 or w < 8:
        raise SarstackError(f"shape {tuple(shape)} is too small (at least 8 x 8)")
    if noise_rad < 0:
        raise SarstackError(f"noise_rad must be >= 0, got {noise_rad}")
    if wavelength is not None and not wavelength > 0:
        raise SarstackError(f"wavelength must be positive metres, got {wavelength}")
    try:
        first = dt.date.fromisoformat(start_date)
    except ValueError:
        raise SarstackError(f"start_date {start_date!r} is not YYYY-MM-DD") from None
    if velocity_rad_per_year is None:
        vel = _default_velocity((h, w))
    else:
        vel = np.asarray(velocity_rad_per_year, dtype=np.float64)
        if vel.shape != (h, w) or not np.all(np.isfinite(vel)):
            raise SarstackError(
                f"velocity_rad_per_year must be finite with shape ({h}, {w}), got {vel.shape}"
            )
    annual = None
    if annual_amplitude_rad is not None:
        annual = np.asarray(annual_amplitude_rad, dtype=np.float64)
        if annual.shape not in ((), (h, w)) or not np.all(np.isfinite(annual)):
            raise SarstackError(
                f"annual_amplitude_rad must be finite, a number or shape ({h}, {w}), got {annual.shape}"
            )
    dates = [first + dt.timedelta(days=k * interval_days) for k in range(n_dates)]
    step_list: list[tuple[dt.date, np.ndarray]] = []
    for d, amount in steps or ():
        try:
            sd = dt.date.fromisoformat(str(d))
        except ValueError:
            raise SarstackError(f"step date {d!r} is not YYYY-MM-DD") from None
        if not dates[0] < sd <= dates[-1] or sd in [x for x, _ in step_list]:
            raise SarstackError(f"step {sd} is repeated or not inside {dates[0]}..{dates[-1]}")
        sa = np.asarray(amount, dtype=np.float64)
        if sa.shape not in ((), (h, w)) or not np.all(np.isfinite(sa)):
            raise SarstackError(f"step {sd}: must be finite, a number or shape ({h}, {w})")
        step_list.append((sd, sa))
    pairs = make_pairs(n_dates, network)
    if jump_patch is not None and not 0 <= int(jump_patch[0]) < len(pairs):
        raise SarstackError(
            f"jump_patch interferogram {jump_patch[0]} is outside the {len(pairs)} interferograms"
        )

    r_noise = np.random.default_rng(np.random.SeedSequence(seed))
    t = years_since(dates)
    cols = np.arange(w, dtype=np.float64)[None, :]
    amp = seasonal_amp_rad * (1.0 - 0.5 * cols / (w - 1)) * np.ones((h, 1))
    if annual is not None:
        amp = annual * np.ones((h, w))
    phase = vel[None] * t[:, None, None] + amp[None] * np.sin(2.0 * np.pi * t)[:, None, None]
    for sd, sa in step_list:
        after = np.array([d >= sd for d in dates])
        phase[after] += sa

    rows_i, cols_i = np.mgrid[0:h, 0:w].astype(np.float64)
    disc = np.hypot(rows_i - h / 4.0, cols_i - 3.0 * w / 4.0) < min(h, w) / 8.0
    cor_base = np.where(disc, 0.3, 0.99)

    grid = Grid(
        CRS.from_user_input(crs),
        Affine(pixel_size, 0.0, origin[0], 0.0, -pixel_size, origin[1]),
        w,
        h,
    )
    k_nodata = min(1, len(pairs) - 1)
    block = (slice(0, max(1, h // 16)), slice(0, max(1, w // 16)))
    nodata_f32 = np.float32(nodata_value)
    ifgs = np.empty((len(pairs), h, w), dtype=np.float32)
    cors = np.empty((len(pairs), h, w), dtype=np.float32)
    n_nodata: list[int] = []
    for k, (i, j) in enumerate(pairs):
        ifg = phase[j] - phase[i] + r_noise.normal(0.0, noise_rad, size=(h, w))
        if jump_patch is not None and int(jump_patch[0]) == k:
            ifg[jump_patch[1], jump_patch[2]] += 2.0 * np.pi
        days = (dates[j] - dates[i]).days
        cor = np.clip(cor_base * np.exp(-abs(days) / _COR_DECAY_DAYS), 0.05, 1.0)
        ifg32, cor32 = ifg.astype(np.float32), cor.astype(np.float32)
        if not np.isnan(nodata_f32):
            ifg32[ifg32 == nodata_f32] = np.nextafter(nodata_f32, np.float32(np.inf))
        if k == k_nodata:
            ifg32[block] = nodata_f32
            cor32[block] = nodata_f32
        ifgs[k], cors[k] = ifg32, cor32
        n_nodata.append(int(block[0].stop * block[1].stop) if k == k_nodata else 0)

    scale, units = (1.0, "radians") if wavelength is None else (wavelength / (4 * np.pi), "meters")
    annual_amplitude = annual_peak_doy = None
    if annual is not None:
        annual_amplitude = np.abs(amp) * scale
        tau0 = (first - dt.date(2000, 1, 1)).days / 365.25
        tau_peak = tau0 + np.where(amp > 0, 0.75, 0.25)  # peak of -a sin(2 pi t)
        annual_peak_doy = np.where(amp != 0, 1.0 + 365.25 * np.mod(tau_peak, 1.0), np.nan)
    rc = (h // 2, w // 2)
    truth = pd.DataFrame(
        {
            "date": [d.isoformat() for d in dates],
            "t_years": t,
            "phase_center_rad": phase[:, rc[0], rc[1]],
            "displacement_center": (0.0 - phase[:, rc[0], rc[1]]) * scale,
            "displacement_units": units,
        }
    )
    return IfgSimulation(
        dates=dates,
        pairs=pairs,
        grid=grid,
        ifgs=ifgs,
        cor=cors,
        nodata=nodata_value,
        n_nodata=n_nodata,
        phase=phase,
        velocity=-vel * scale,
        units=units,
        annual_amplitude=annual_amplitude,
        annual_peak_doy=annual_peak_doy,
        steps=[(sd, -sa * scale * np.ones((h, w))) for sd, sa in step_list],
        truth=truth,
    )


def make_ifg_stack(
    out_dir: str | Path,
    *,
    n_dates: int = 10,
    shape: tuple[int, int] = (64, 64),
    interval_days: int = 12,
    start_date: str = "2020-01-01",
    velocity_rad_per_year: np.ndarray | None = None,
    seasonal_amp_rad: float = 1.0,
    noise_rad: float = 0.1,
    network: str = "nearest:3",
    nodata_value: float = 0.0,
    seed: int = 0,
    wavelength: float | None = None,
    jump_patch: tuple[int, slice, slice] | None = None,
    pixel_size: float = 30.0,
    crs: str = "EPSG:32611",
    origin: tuple[float, float] = (500000.0, 4000000.0),
    annual_amplitude_rad: float | np.ndarray | None = None,
    steps: Sequence[tuple[str, float | np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Write a synthetic stack of unwrapped interferograms with a known phase history.

    Simulates the stack with :func:`simulate_ifg_stack` (see there for the
    model, the nodata block and the correlation) and writes, under
    ``out_dir``:

    * ``ifgs/{YYYYMMDD}_{YYYYMMDD}.unw.tif``: float32 radians, nodata
      ``nodata_value``, tags ``reference_date`` and ``secondary_date``.
    * ``cor/{YYYYMMDD}_{YYYYMMDD}.cor.tif``: float32 correlation, same
      nodata and tags.
    * ``truth_phase.tif``: ``n_dates`` bands, the truth phase (radians),
      band descriptions the dates.
    * ``truth_velocity.tif``: displacement velocity ``-v`` in radians/year,
      or ``-v * wavelength / (4 pi)`` in meters/year.
    * ``truth.csv``: ``date``, ``t_years``, ``phase_center_rad``,
      ``displacement_center`` and ``displacement_units`` at the centre pixel
      ``(rows // 2, cols // 2)``.

    With ``annual_amplitude_rad``, also the truth of the annual term of the
    displacement (conventions of :class:`sarstack.velocity.DeformationModel`):

    * ``truth_annual_amplitude.tif``: ``|a|`` in displacement units
      (radians, or meters with a wavelength).
    * ``truth_annual_phase.tif``: day of year of the displacement's annual
      peak, NaN where ``a = 0``; units ``day of year``.

    With ``steps``, for each ``(date, s)``:

    * ``truth_step_{YYYYMMDD}.tif``: the displacement step ``-s`` (times
      ``wavelength / (4 pi)``), in displacement units.

    Parameters
    ----------
    out_dir
        Output folder.
    n_dates, shape, interval_days, start_date, velocity_rad_per_year, seasonal_amp_rad, noise_rad, network, nodata_value, seed, wavelength, jump_patch, pixel_size, crs, origin, annual_amplitude_rad, steps
        As :func:`simulate_ifg_stack`; the same seed gives identical files,
        ``wavelength`` sets the units of the displacement truth rasters.

    Returns
    -------
    pandas.DataFrame
        One row per interferogram in network order: ``path``, ``cor_path``
        (absolute), ``reference_date``, ``secondary_date`` (``YYYY-MM-DD``),
        ``reference_index``, ``secondary_index`` and ``n_nodata``.
    """
    sim = simulate_ifg_stack(
        n_dates=n_dates, shape=shape, interval_days=interval_days, start_date=start_date,
        velocity_rad_per_year=velocity_rad_per_year, seasonal_amp_rad=seasonal_amp_rad,
        noise_rad=noise_rad, network=network, nodata_value=nodata_value, seed=seed,
        wavelength=wavelength, jump_patch=jump_patch, pixel_size=pixel_size, crs=crs,
        origin=origin, annual_amplitude_rad=annual_amplitude_rad, steps=steps,
    )  # fmt: skip
    out = Path(out_dir)
    grid, dates, nodata = sim.grid, sim.dates, float(sim.nodata)
    rows: list[dict[str, object]] = []
    for k, (i, j) in enumerate(sim.pairs):
        name = _pair_name(dates[i], dates[j])
        path = (out / "ifgs" / f"{name}.unw.tif").resolve()
        cor_path = (out / "cor" / f"{name}.cor.tif").resolve()
        tags = {"reference_date": dates[i].isoformat(), "secondary_date": dates[j].isoformat()}
        write_raster(path, sim.ifgs[k], grid, nodata=nodata, units="radians", tags=tags)
        write_raster(cor_path, sim.cor[k], grid, nodata=nodata, units="1", tags=tags)
        rows.append(
            {
                "path": str(path),
                "cor_path": str(cor_path),
                "reference_date": dates[i].isoformat(),
                "secondary_date": dates[j].isoformat(),
                "reference_index": i,
                "secondary_index": j,
                "n_nodata": sim.n_nodata[k],
            }
        )

    units = sim.units
    write_raster(
        out / "truth_phase.tif", sim.phase.astype(np.float32), grid, units="radians",
        descriptions=[d.isoformat() for d in dates],
    )  # fmt: skip
    write_raster(
        out / "truth_velocity.tif", sim.velocity.astype(np.float32), grid, units=f"{units}/year"
    )
    if sim.annual_amplitude is not None and sim.annual_peak_doy is not None:
        write_raster(
            out / "truth_annual_amplitude.tif", sim.annual_amplitude.astype(np.float32), grid,
            units=units,
        )  # fmt: skip
        write_raster(
            out / "truth_annual_phase.tif", sim.annual_peak_doy.astype(np.float32), grid,
            units="day of year",
        )  # fmt: skip
    for sd, step in sim.steps:
        write_raster(
            out / f"truth_step_{sd:%Y%m%d}.tif", step.astype(np.float32), grid, units=units
        )
    write_csv(out / "truth.csv", sim.truth)
    return pd.DataFrame(rows, columns=IFG_COLUMNS)

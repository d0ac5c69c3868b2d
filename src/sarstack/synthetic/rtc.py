"""Synthetic RTC stacks with known per-date shifts (and point targets), for
tests and benchmarks."""

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

from sarstack.dates import parse_iso_date
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
    h, w, first = _check_rtc_args(
        n_dates, shape, pixel_size, speckle, looks, frame_jitter_px, point_targets, start_date
    )
    # Independent streams, so that e.g. speckle=False keeps the same scene and errors.
    ss = np.random.SeedSequence(seed)
    # (A 7th stream for the point targets leaves the first six as they were.)
    r_shift, r_frame, r_scene, r_wedge, r_speckle, r_name, r_targets = (
        np.random.default_rng(s) for s in ss.spawn(7)
    )
    shifts = _date_shifts(r_shift, shifts_px, n_dates, max_shift_px)

    offs = r_frame.integers(-frame_jitter_px, frame_jitter_px + 1, size=(n_dates, 2))
    offs[0] = 0  # frames are offset relative to the first date

    max_off = int(np.max(np.abs(offs))) if n_dates else 0
    pad = max_off + int(np.ceil(np.max(np.abs(shifts)))) + _MARGIN_PX
    spectrum = _ground_spectrum(r_scene, (h + 2 * pad, w + 2 * pad))

    grid_crs = CRS.from_user_input(crs)
    targets: _Targets | None = None
    reflectors = None
    if point_targets:
        targets = _place_targets(
            r_targets, point_targets, spectrum, shifts, offs, pad, (h, w), nan_edge
        )
        reflectors = _reflector_table(targets.centres, pad, pixel_size, origin, crs)
    names_hex = r_name.integers(0, 16**4, size=n_dates)
    hhmmss = f"{int(r_name.integers(0, 24)):02d}{int(r_name.integers(0, 60)):02d}"
    images = np.empty((n_dates, h, w), dtype=np.float32)
    dates: list[dt.date] = []
    names: list[str] = []
    grids: list[Grid] = []
    rows: list[dict[str, object]] = []
    for k in range(n_dates):
        de, dn = float(shifts[k, 0]), float(shifts[k, 1])
        ro, co = int(offs[k, 0]), int(offs[k, 1])
        images[k] = _render_frame(
            spectrum, (de, dn), (ro, co), pad, (h, w), targets,
            r_speckle if speckle else None, looks, r_wedge if nan_edge else None, nodata,
        )  # fmt: skip

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
        rows.append(_truth_row(date, stem, (de, dn), (ro, co), pixel_size))
    truth = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    return RtcSimulation(dates, names, grids, images, nodata, truth, reflectors)


def _truth_row(
    date: dt.date, stem: str, shift: tuple[float, float], off: tuple[int, int], pixel_size: float
) -> dict[str, object]:
    """One date's row of the truth table (:data:`TRUTH_COLUMNS`)."""
    de, dn = shift
    ro, co = off
    return {
        "date": date.isoformat(),
        "path": str(Path(stem, f"{stem}_VV.tif")),
        "east_px": de,
        "north_px": dn,
        "east_m": de * pixel_size,
        "north_m": dn * pixel_size,
        "frame_row_off": ro,
        "frame_col_off": co,
    }


def _check_rtc_args(
    n_dates: int, shape: tuple[int, int], pixel_size: float, speckle: bool, looks: float,
    frame_jitter_px: int, point_targets: int, start_date: str,
) -> tuple[int, int, dt.date]:
    """The frame's ``(rows, cols)`` and the first date, or raise on an invalid argument
    (see :func:`simulate_rtc_stack`)."""
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
    return h, w, parse_iso_date(start_date, "start_date")


def _date_shifts(
    rng: np.random.Generator, shifts_px: np.ndarray | None, n_dates: int, max_shift_px: float
) -> np.ndarray:
    """``(n_dates, 2)`` geolocation errors ``(east_px, north_px)``: ``shifts_px``, checked,
    or uniform in ``[-max_shift_px, max_shift_px]`` (drawn either way, so that the
    other streams do not depend on it)."""
    default_shifts = rng.uniform(-max_shift_px, max_shift_px, size=(n_dates, 2))
    if shifts_px is None:
        return default_shifts
    shifts = np.asarray(shifts_px, dtype=np.float64)
    if shifts.shape != (n_dates, 2) or not np.all(np.isfinite(shifts)):
        raise SarstackError(
            f"shifts_px must be finite with shape ({n_dates}, 2), got {shifts.shape}"
        )
    return shifts


def _ground_spectrum(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """``fft2`` of the band-limited ground reflectivity canvas of ``shape``.

    Ground truth: log-normal texture (about 0.01-1) plus bright lines, then a
    low-pass so the periodic canvas is band-limited and the Fourier shift is an
    exact sub-pixel translation. The low-pass rings slightly below zero next to
    sharp features; raising the mean (the DC bin only) keeps it positive.
    """
    ch, cw = shape
    log_power = np.log(0.1) + 0.55 * _texture(rng, (ch, cw))
    canvas = np.exp(log_power) + _lines(rng, (ch, cw), n_lines=int(rng.integers(4, 8)))
    spectrum = np.fft.fft2(canvas) * _lowpass((ch, cw))
    deficit = _MIN_POWER - float(np.fft.ifft2(spectrum).real.min())
    if deficit > 0:
        spectrum[0, 0] += deficit * ch * cw
    return spectrum


class _Targets(NamedTuple):
    """Point targets on the canvas: ``(n, 2)`` canvas ``(row, col)`` centres and
    the peak power of each (linear)."""

    centres: np.ndarray
    power: float


def _place_targets(
    rng: np.random.Generator, n: int, spectrum: np.ndarray, shifts: np.ndarray,
    offs: np.ndarray, pad: int, shape: tuple[int, int], nan_edge: bool,
) -> _Targets:
    """``n`` point targets on canvas rows / cols inside every date's frame, clear of
    wedges and edges, :data:`_TARGET_DB` above the canvas mean."""
    h, w = shape
    ch, cw = spectrum.shape
    m = _TARGET_MARGIN_PX + int(np.ceil(np.max(np.abs(shifts))))
    wedge = int(np.ceil(_WEDGE_MAX * w)) if nan_edge else 0
    rows_in = (pad + offs[:, 0].max() + m, pad + offs[:, 0].min() + h - m)
    cols_in = (pad + offs[:, 1].max() + wedge + m, pad + offs[:, 1].min() + w - wedge - m)
    target_power = float(spectrum[0, 0].real) / (ch * cw) * 10 ** (_TARGET_DB / 10)
    centres = _target_centres(
        rng, n, (float(rows_in[0]), float(rows_in[1])),
        (float(cols_in[0]), float(cols_in[1])),
    )  # fmt: skip
    return _Targets(centres, target_power)


def _reflector_table(
    centres: np.ndarray, pad: int, pixel_size: float, origin: tuple[float, float], crs: str
) -> pd.DataFrame:
    """The surveyed positions of the point targets (:data:`REFLECTOR_CSV_COLUMNS`)."""
    # Frame 0's transform origin is canvas (pad, pad); every frame is on that grid.
    return pd.DataFrame(
        {
            "id": [f"PT{k + 1:02d}" for k in range(len(centres))],
            "x": origin[0] + (centres[:, 1] - pad) * pixel_size,
            "y": origin[1] - (centres[:, 0] - pad) * pixel_size,
            "crs": crs,
        },
        columns=REFLECTOR_CSV_COLUMNS,
    )


def _render_frame(
    spectrum: np.ndarray, shift: tuple[float, float], off: tuple[int, int], pad: int,
    shape: tuple[int, int], targets: _Targets | None, r_speckle: np.random.Generator | None,
    looks: float, r_wedge: np.random.Generator | None, nodata: float,
) -> np.ndarray:
    """One date's float32 image: the canvas shifted by ``shift`` ``(east, north)`` px,
    cropped at frame offset ``off`` ``(rows, cols)``, with speckle (``r_speckle``),
    the point targets and nodata wedges (``r_wedge``)."""
    h, w = shape
    de, dn = shift
    ro, co = off
    # Content at true position P appears at P + (de east, dn north): +de columns, -dn rows.
    shifted = np.fft.ifft2(ndimage.fourier_shift(spectrum, shift=(-dn, de))).real
    img = shifted[pad + ro : pad + ro + h, pad + co : pad + co + w]
    img = np.maximum(img, 1e-6)  # guard only: the canvas minimum is _MIN_POWER
    if r_speckle is not None:
        img = img * r_speckle.gamma(shape=looks, scale=1.0 / looks, size=img.shape)
    if targets is not None:
        # The same translation as the canvas's (+de columns, -dn rows), rendered
        # analytically in this frame: exact, and no ringing of a low-pass.
        moved = targets.centres + np.array([-dn - (pad + ro), de - (pad + co)])
        img = img + _render_targets(moved, (h, w), targets.power)
    img = img.astype(np.float32)
    img[img == np.float32(nodata)] = np.nextafter(np.float32(nodata), np.float32(np.inf))
    if r_wedge is not None:
        img[_wedge_mask(r_wedge, (h, w))] = nodata
    return img


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

"""Synthetic interferogram stacks with known deformation, noise, unwrapping
errors and nodata, for tests and benchmarks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS

from sarstack.dates import DAYS_PER_YEAR, parse_iso_date
from sarstack.errors import SarstackError
from sarstack.io import Grid, write_csv, write_raster
from sarstack.velocity.model import SEASONAL_EPOCH

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
        Pair network, as :func:`sarstack.network.make_pairs`.
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
    from sarstack.dates import years_since
    from sarstack.network import make_pairs

    h, w, first = _check_ifg_args(n_dates, shape, noise_rad, wavelength, start_date)
    vel, annual = _check_fields(velocity_rad_per_year, annual_amplitude_rad, (h, w))
    dates = [first + dt.timedelta(days=k * interval_days) for k in range(n_dates)]
    step_list = _check_steps(steps, dates, (h, w))
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

    grid = Grid(
        CRS.from_user_input(crs),
        Affine(pixel_size, 0.0, origin[0], 0.0, -pixel_size, origin[1]),
        w,
        h,
    )
    ifgs, cors, n_nodata = _render_ifgs(
        phase, dates, pairs, r_noise, noise_rad, jump_patch, nodata_value
    )

    scale, units = (1.0, "radians") if wavelength is None else (wavelength / (4 * np.pi), "meters")
    annual_amplitude = annual_peak_doy = None
    if annual is not None:
        annual_amplitude, annual_peak_doy = _annual_truth(amp, first, scale)
    truth = _truth_table(dates, t, phase, scale, units)
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


def _check_ifg_args(
    n_dates: int, shape: tuple[int, int], noise_rad: float, wavelength: float | None,
    start_date: str,
) -> tuple[int, int, dt.date]:
    """``(rows, cols)`` and the first date, or raise on an invalid argument
    (see :func:`simulate_ifg_stack`)."""
    if n_dates < 2:
        raise SarstackError(f"n_dates must be at least 2, got {n_dates}")
    h, w = (int(shape[0]), int(shape[1]))
    if h < 8 or w < 8:
        raise SarstackError(f"shape {tuple(shape)} is too small (at least 8 x 8)")
    if noise_rad < 0:
        raise SarstackError(f"noise_rad must be >= 0, got {noise_rad}")
    if wavelength is not None and not wavelength > 0:
        raise SarstackError(f"wavelength must be positive metres, got {wavelength}")
    return h, w, parse_iso_date(start_date, "start_date")


def _check_fields(
    velocity_rad_per_year: np.ndarray | None, annual_amplitude_rad: float | np.ndarray | None,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray | None]:
    """The phase velocity field (default :func:`_default_velocity`) and the annual
    amplitude (None without one), each checked (see :func:`simulate_ifg_stack`)."""
    h, w = shape
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
    return vel, annual


def _truth_table(
    dates: Sequence[dt.date], t: np.ndarray, phase: np.ndarray, scale: float, units: str
) -> pd.DataFrame:
    """The table of ``truth.csv``: phase and displacement at the centre pixel per date."""
    _, h, w = phase.shape
    rc = (h // 2, w // 2)
    return pd.DataFrame(
        {
            "date": [d.isoformat() for d in dates],
            "t_years": t,
            "phase_center_rad": phase[:, rc[0], rc[1]],
            "displacement_center": (0.0 - phase[:, rc[0], rc[1]]) * scale,
            "displacement_units": units,
        }
    )


def _check_steps(
    steps: Sequence[tuple[str, float | np.ndarray]] | None, dates: Sequence[dt.date],
    shape: tuple[int, int],
) -> list[tuple[dt.date, np.ndarray]]:
    """``steps`` as ``(date, phase step)``, each checked (see :func:`simulate_ifg_stack`)."""
    h, w = shape
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
    return step_list


def _render_ifgs(
    phase: np.ndarray, dates: Sequence[dt.date], pairs: Sequence[tuple[int, int]],
    r_noise: np.random.Generator, noise_rad: float,
    jump_patch: tuple[int, slice, slice] | None, nodata_value: float,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The float32 interferograms and correlations of ``pairs`` from the truth
    ``phase``, and the nodata pixels of each (see :func:`simulate_ifg_stack`)."""
    _, h, w = phase.shape
    rows_i, cols_i = np.mgrid[0:h, 0:w].astype(np.float64)
    disc = np.hypot(rows_i - h / 4.0, cols_i - 3.0 * w / 4.0) < min(h, w) / 8.0
    cor_base = np.where(disc, 0.3, 0.99)
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
    return ifgs, cors, n_nodata


def _annual_truth(amp: np.ndarray, first: dt.date, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Annual displacement amplitude ``|a|`` (times ``scale``) and the day of year
    of its peak (NaN where ``a = 0``), as :class:`sarstack.velocity.DeformationModel`."""
    annual_amplitude = np.abs(amp) * scale
    tau0 = (first - SEASONAL_EPOCH).days / DAYS_PER_YEAR
    tau_peak = tau0 + np.where(amp > 0, 0.75, 0.25)  # peak of -a sin(2 pi t)
    annual_peak_doy = np.where(amp != 0, 1.0 + DAYS_PER_YEAR * np.mod(tau_peak, 1.0), np.nan)
    return annual_amplitude, annual_peak_doy


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

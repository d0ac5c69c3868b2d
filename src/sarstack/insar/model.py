"""insar_velocity: the velocity (and seasonal/step model) rasters from the
time series, block by block, with their uncertainties."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from sarstack import dates as sdates
from sarstack import network as snet
from sarstack import velocity as svel
from sarstack.blocks import BandBuffer
from sarstack.errors import SarstackError
from sarstack.insar.common import _date_tags
from sarstack.insar.select import Ifg
from sarstack.io import (
    Grid,
    RasterWriter,
    StackReader,
    process_blocks,
    read_grid,
)

if TYPE_CHECKING:
    from sarstack.stagefiles import SeriesIndex

log = logging.getLogger(__package__)


def velocity_files(
    index: SeriesIndex,
    first: dt.date,
    out_velocity: str | Path,
    out_std: str | Path,
    *,
    block_shape: Sequence[int],
    weight_ifgs: Sequence[Ifg] | None = None,
    model: svel.DeformationModel | None = None,
    out_dir: str | Path | None = None,
    uncertainty: str,
    ifg_noise: tuple[Sequence[tuple[int, int]], str | Path] | None = None,
    threads: int = 1,
) -> str:
    """Per-pixel linear velocity (units per year, 365.25 d) of the time series,
    the first date's zero included; writes velocity and its standard error.

    The standard errors follow ``uncertainty`` (``insar.velocity_uncertainty``,
    :data:`sarstack.velocity.UNCERTAINTY_METHODS`); with ``ifg_noise =
    (pairs, ifg_residual_std.tif)`` (the network over the series' dates and
    the inversion's noise raster) ``"correlated"`` adds the interferograms'
    noise propagated through the network (:class:`sarstack.velocity.NetworkNoise`).

    With ``weight_ifgs`` (ifgs with correlation rasters) each date is weighted
    by the mean correlation of the interferograms that contain it.

    With a ``model`` beyond the line (:class:`sarstack.velocity.DeformationModel`
    with annual, semiannual or steps) the fit is :func:`sarstack.velocity.fit_model`
    (each pixel on its finite dates, weighted as above with ``weight_ifgs``):
    velocity and its standard error still go to ``out_velocity`` and
    ``out_std``, every other output of the model to ``{out_dir}/{name}.tif``
    (``out_dir`` default: the folder of ``out_velocity``), ``name`` from
    :meth:`~sarstack.velocity.DeformationModel.output_names` (e.g.
    ``annual_amplitude.tif``, ``annual_phase_std.tif``, ``step_20200301.tif``).
    Without a model, or with the linear one, the result is the plain linear
    fit of :func:`sarstack.velocity.velocity` / ``velocity_weighted``; a
    pixel with NaN dates (cut off from the network there) is fitted on its
    other dates.

    ``threads``: blocks of the linear fit solved side by side (the same rasters).

    Returns the velocity units, e.g. ``"radians/year"``.
    """
    dates = [first] + [dt.date.fromisoformat(d) for d in index["date"]]
    t = sdates.years_since(dates)
    paths = list(index["path"])
    units = str(list(index["units"])[0])
    grid = read_grid(paths[0])
    vunits = f"{units}/year"
    quantity = "linear LOS velocity, positive towards the radar"
    if weight_ifgs is not None:
        if not all(i.correlation for i in weight_ifgs):
            raise SarstackError("insar.velocity_weighting: 'correlation' needs insar.correlation")
        quantity += ", dates weighted by mean correlation"
        date_index = {d: k for k, d in enumerate(dates)}
    svel.check_uncertainty(uncertainty)
    date_cov = None
    if ifg_noise is not None and uncertainty == "correlated":
        date_cov = _network_date_cov(ifg_noise[0], len(dates))
    noise_reader = (
        StackReader([ifg_noise[1]]) if date_cov is not None and ifg_noise is not None
        else contextlib.nullcontext()
    )  # fmt: skip

    def network(src: Any, win: Window) -> svel.NetworkNoise | None:
        if date_cov is None:
            return None
        return svel.NetworkNoise(date_cov, src.read_one(0, win).astype(np.float64).reshape(-1) ** 2)

    std_q = f"standard error of the velocity ({_UNCERTAINTY_TAG[uncertainty]})"
    if model is not None and not model.is_linear:
        try:
            model.check(dates)
        except SarstackError as e:
            raise svel.model_error(e) from None
        out_dir = Path(out_velocity).parent if out_dir is None else Path(out_dir)
        paths_out = {"velocity": Path(out_velocity), "velocity_std": Path(out_std)}
        with noise_reader as src:
            _model_files(paths, dates, grid, units, model, paths_out, out_dir, block_shape,
                         weight_ifgs, uncertainty, lambda win: network(src, win))  # fmt: skip
        return vunits
    tags = _date_tags(dates[0], dates[-1], quantity=quantity)
    with (
        RasterWriter(out_velocity, grid, units=vunits, tags=tags) as wv,
        RasterWriter(out_std, grid, units=vunits, tags={**tags, "quantity": std_q}) as ws,
        BandBuffer(StackReader(paths, threads=threads), (0, grid.height)) as series,  # by band
        _correlation_reader(weight_ifgs) as cors,
        noise_reader as noise,
    ):
        def read_block(win: Window) -> tuple[np.ndarray, Any, np.ndarray | None]:
            # every read on the read-ahead thread; the fits may run side by side
            flat = _read_series(series, win).reshape(len(dates), -1)  # float64, a fresh array
            weights = None if weight_ifgs is None else _correlation_date_weights(
                weight_ifgs, cors, date_index, win, flat.shape)  # fmt: skip
            return flat, network(noise, win), weights

        def velocity_block(win: Window, block: tuple) -> tuple[np.ndarray, np.ndarray]:
            flat, net, weights = block
            v, s = _fit_line(flat, t, weights, uncertainty, net)
            shape = (int(win.height), int(win.width))
            return (np.asarray(v).reshape(shape).astype(np.float32),
                    np.asarray(s).reshape(shape).astype(np.float32))  # fmt: skip

        # Read ahead band by band of the series' tiles (each tile decompressed
        # once); with ``threads`` blocks fitted side by side, written in order.
        process_blocks(grid.shape, block_shape, velocity_block, writers=[wv, ws], prefetch=True,
                       read=read_block, band_rows=series.tile_rows,
                       workers=max(1, int(threads)))  # fmt: skip
    return vunits


def _read_series(series: StackReader | BandBuffer, win: Window) -> np.ndarray:
    """``(n_dates, rows, cols)`` float64 series of a window, the first date's zero included."""
    y = np.empty((len(series) + 1, int(win.height), int(win.width)), np.float64)
    y[0] = 0.0
    series.read(win, out=y[1:])
    return y


def _fit_line(
    flat: np.ndarray, t: np.ndarray, weights: np.ndarray | None, uncertainty: str,
    net: svel.NetworkNoise | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and its standard error of each pixel (column) of ``flat``
    ``(n_dates, n_pixels)`` at times ``t``: weighted by ``weights`` where given,
    else the plain line, with a pixel's NaN dates left out."""
    if weights is not None:
        return svel.velocity_weighted(flat, t, weights, uncertainty=uncertainty, network=net)
    v, s = svel.velocity(flat, t, uncertainty=uncertainty, network=net)[:2]
    # Dates cut off from the network at some pixels (NaN there):
    # those pixels are fitted on their other dates, the same line. A pixel
    # with a NaN date has a NaN velocity: only those are looked at (two
    # passes over the block's series otherwise, 15 % of its fit).
    part = np.isnan(v)
    if part.any():
        cand = flat[:, part]
        part[part] = np.isnan(cand).any(axis=0) & np.isfinite(cand).any(axis=0)
    if part.any():
        sub = flat[:, part]
        sub_net = None if net is None else net._replace(noise_var=net.noise_var[part])
        v[part], s[part] = svel.velocity_weighted(
            sub, t, np.isfinite(sub) * 1.0, uncertainty=uncertainty, network=sub_net
        )
    return v, s


#: How each ``insar.velocity_uncertainty`` is described in the standard errors' tags.
_UNCERTAINTY_TAG = {
    "correlated": "residuals correlated from date to date (AR(1)), plus the interferograms' "
    "noise through the network",
    "white": "independent residuals",
}


def _network_date_cov(pairs: Sequence[tuple[int, int]], n_dates: int) -> np.ndarray | None:
    """``(A^T A)^-1`` of the network over ``n_dates`` (None, with a warning, when
    the network does not determine every date: no network term then)."""
    a = snet.incidence_matrix(pairs, n_dates)
    ata = a.T @ a
    if np.linalg.matrix_rank(ata) < n_dates - 1:
        log.warning("insar.velocity_uncertainty: the network does not connect every date; "
                    "the interferograms' noise is not propagated into the standard errors")
        return None
    return np.linalg.inv(ata)


def _correlation_reader(weight_ifgs: Sequence[Ifg] | None) -> contextlib.AbstractContextManager:
    """The correlation rasters of ``weight_ifgs`` held open (a no-op context without them)."""
    if weight_ifgs is None:
        return contextlib.nullcontext()
    return StackReader([i.need("correlation") for i in weight_ifgs])


def _correlation_date_weights(
    weight_ifgs: Sequence[Ifg],
    cors: StackReader,
    date_index: dict[dt.date, int],
    win: Window,
    shape: tuple,
) -> np.ndarray:
    """``(n_dates, n_pixels)`` mean correlation of the ifgs that contain each date."""
    acc = np.zeros(shape)
    n = np.zeros(shape)
    for k, i in enumerate(weight_ifgs):
        cor = np.nan_to_num(cors.read_one(k, win).reshape(-1), nan=0.0)
        for d in (i.reference, i.secondary):
            acc[date_index[d]] += cor
            n[date_index[d]] += 1
    return acc / np.maximum(n, 1)


#: Quantity tag of each kind of output of the deformation model.
_MODEL_QUANTITY = {
    "velocity": "LOS velocity, positive towards the radar",
    "amplitude": "amplitude of the {} LOS displacement sinusoid",
    "phase": "day of year of the peak of the {} LOS displacement sinusoid (1.0: 1 January)",
    "step": "LOS displacement step on {}, positive towards the radar",
}


def _model_files(
    paths: Sequence[str],
    dates: Sequence[dt.date],
    grid: Grid,
    units: str,
    model: svel.DeformationModel,
    paths_out: dict[str, Path],
    out_dir: Path,
    block_shape: Sequence[int],
    weight_ifgs: Sequence[Ifg] | None,
    uncertainty: str,
    network: Callable[[Window], svel.NetworkNoise | None],
) -> None:
    """Block-wise :func:`sarstack.velocity.fit_model`, one COG per output (see velocity_files)."""
    span = (dates[-1] - dates[0]).days / sdates.DAYS_PER_YEAR
    for name, on, period in (("annual", model.annual, 1.0), ("semiannual", model.semiannual, 0.5)):
        if on and span < period:
            log.warning("insar.velocity_model.%s: the series spans %.2f years, less than one"
                        " period: the %s terms are poorly constrained", name, span, name)
    date_index = {d: k for k, d in enumerate(dates)}
    how = f"fit {model.describe()}" + (
        ", dates weighted by mean correlation" if weight_ifgs is not None else ""
    )
    tags = _date_tags(dates[0], dates[-1], model=how)
    std_how = _UNCERTAINTY_TAG[uncertainty]

    def quantity(name: str) -> str:
        base = name.removesuffix("_std")
        if base == "velocity":
            q = _MODEL_QUANTITY["velocity"]
        elif base.startswith("step_"):
            q = _MODEL_QUANTITY["step"].format(dt.datetime.strptime(base[5:], "%Y%m%d").date())
        else:
            term, kind = base.split("_")
            q = _MODEL_QUANTITY[kind].format(term)
        return f"standard error of the {q} ({std_how})" if name.endswith("_std") else q

    with contextlib.ExitStack() as stack:
        writers = {
            name: stack.enter_context(
                RasterWriter(
                    paths_out.get(name, out_dir / f"{name}.tif"), grid,
                    units=svel.output_units(name, units), tags={**tags, "quantity": quantity(name)},
                )
            )
            for name in model.output_names()
        }  # fmt: skip
        series = stack.enter_context(StackReader(paths))
        cors = stack.enter_context(_correlation_reader(weight_ifgs))

        def model_block(win: Window, y: np.ndarray) -> None:
            flat = y.reshape(len(dates), -1)  # float64
            w = (
                None
                if weight_ifgs is None
                else _correlation_date_weights(weight_ifgs, cors, date_index, win, flat.shape)
            )
            out = svel.fit_model(flat, dates, model, weights=w, uncertainty=uncertainty,
                                 network=network(win))  # fmt: skip
            for name, wr in writers.items():
                wr.write(out[name].reshape(y.shape[1:]).astype(np.float32), win)

        process_blocks(grid.shape, block_shape, model_block, prefetch=True,
                       read=lambda win: _read_series(series, win),
                       band_rows=series.tile_rows)  # fmt: skip

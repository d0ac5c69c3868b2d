"""Plots of the InSAR branch: velocity map (pixels without a standard error
masked and counted, the fitted model named, the far field outlined),
displacement time series at the reference and a few sample points, the pair
network, and, when they exist, maps of the model's amplitude and phase
rasters and of mask.tif (PNG)."""

import argparse
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from sarstack import cli, io, plots, stagefiles
from sarstack import velocity as svel
from sarstack.dates import DAYS_PER_YEAR
from sarstack.plots import maps  # noqa: F401 - the figures' module, imported before their processes fork

log = logging.getLogger("insar_plots")


#: Smallest velocity map whose figures are drawn in ``--threads`` processes
#: (1024^2: the map alone takes about a second; at 256^2 the three figures
#: took 0.71-0.76 s in two processes, 0.85 s in one, 2026-12-05).
PARALLEL_MIN_PX = 1 << 16


def sample_points(
    vel: np.ndarray, ref: tuple[int, int], std: np.ndarray | None = None
) -> dict[str, tuple[int, int]]:
    """Reference, fastest towards / away from the radar, and the centre.

    Only pixels with a value (and, with ``std``, a finite standard error: a
    pixel fitted on two dates has none) are sampled: the extremes are taken
    among them, and "centre" is the one nearest the raster's centre (ties:
    first in row-major order). Without any such pixel, only the reference.
    """
    ok = np.isfinite(vel)
    if std is not None:
        ok &= np.isfinite(std)
    pts = {"reference": ref}
    if not ok.any():
        return pts
    v = np.where(ok, vel, np.nan)
    for name, k in (("max velocity", np.nanargmax(v)), ("min velocity", np.nanargmin(v))):
        r, c = np.unravel_index(k, vel.shape)
        pts[name] = (int(r), int(c))
    # Squared distance of every pixel to the centre, the others out of reach:
    # argmin takes the first minimum in row-major order.
    rows = (np.arange(vel.shape[0]) - vel.shape[0] // 2) ** 2
    cols = (np.arange(vel.shape[1]) - vel.shape[1] // 2) ** 2
    d2 = np.where(ok, rows[:, None] + cols[None, :], np.iinfo(np.int64).max)
    r, c = np.unravel_index(int(np.argmin(d2)), vel.shape)
    pts["centre"] = (int(r), int(c))
    return pts


def model_name(tags: dict) -> str:
    """The fitted model, from the velocity raster's tags (``model`` is
    written by the deformation model, else ``quantity`` says the line)."""
    if tags.get("model"):
        return str(tags["model"])
    how = "fit offset + velocity"
    if "weighted by mean correlation" in tags.get("quantity", ""):
        how += ", dates weighted by mean correlation"
    return how


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    p.add_argument("--velocity", required=True, help="velocity.tif from insar_velocity")
    p.add_argument("--std", required=True, help="velocity_std.tif")
    p.add_argument("--index", required=True, help="timeseries.csv from insar_gather")
    p.add_argument("--ifgs", required=True, help="ifgs.csv from insar_select")
    p.add_argument("--reference", required=True, help="reference_point.txt from insar_reference")
    p.add_argument("--mask", default=None, help="mask.tif (1 = kept), when insar_gather wrote one")
    p.add_argument("--temporal-coherence", default=None,
                   help="temporal_coherence.tif: where there is data (masked vs no data)")
    p.add_argument("--map", nargs=2, action="append", metavar=("RASTER", "PNG"),
                   help="also draw this model raster (amplitude or phase) to PNG (repeatable)")
    p.add_argument("--out-mask", default=None, help="PNG of --mask")
    p.add_argument("--out-velocity", required=True, help="PNG: the velocity map")
    p.add_argument("--out-series", required=True,
                   help="PNG: displacement time series at the reference and a few sample points")
    p.add_argument("--out-network", required=True, help="PNG: the interferogram network")
    p.add_argument("--threads", type=int, default=1,
                   help="processes drawing the figures side by side (the same PNGs)")
    return p


def _map_style(name: str, tags: dict, units: str) -> dict[str, Any]:
    """Title, colour bar label and colour map of a model raster."""
    quantity = tags.get("quantity", name)
    if name.endswith("_phase"):
        # Day of year is cyclic: a cyclic colour map over the period, with no grey
        # in it (grey is masked / no data).
        period = DAYS_PER_YEAR / (2 if name.startswith("semiannual") else 1)
        return {"title": quantity, "label": "day of year of the peak",
                "cmap": "hsv", "vmin": 1.0, "vmax": 1.0 + period}  # fmt: skip
    return {"title": quantity, "label": f"{name.replace('_', ' ')} ({units})", "cmap": "viridis",
            "vmin": 0.0}


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, dates, pairs = stagefiles.read_ifgs(a.ifgs)
    ref = stagefiles.read_reference_point(a.reference)
    vel = io.read_band(a.velocity)
    std = io.read_band(a.std)
    tags = io.raster_tags(a.velocity)
    units = tags.get("units", "")
    grid = io.read_grid(a.velocity)
    geo: dict[str, Any] = {"transform": grid.transform, "crs": grid.crs}
    masked = None
    if a.mask is not None:
        keep = io.read_band(a.mask, nan_nodata=False)
        has = (np.isfinite(io.read_band(a.temporal_coherence)) if a.temporal_coherence
               else np.ones(keep.shape, bool))  # fmt: skip
        masked = has & (keep == 0)
    no_std = int((np.isfinite(vel) & ~np.isfinite(std)).sum())
    if no_std:
        log.info("%d pixels have a velocity but no standard error (too few dates): not drawn,"
                 " never sampled", no_std)  # fmt: skip
    index = stagefiles.read_index(a.index)
    pts = sample_points(vel, ref, std)
    series = {}
    with io.StackReader(list(index["path"])) as stack:  # each date's file opened once
        for name, (r, c) in pts.items():
            vals = [stack.read_one(k, Window(c, r, 1, 1))[0, 0] for k in range(len(stack))]
            series[f"{name} [{r}, {c}]"] = np.r_[0.0, vals]
    every = stagefiles.read_ifgs(a.ifgs, include_excluded=True)[0]

    def raster_map(raster: str, png: str) -> None:
        t = io.raster_tags(raster)
        plots.raster_map(io.read_band(raster), png, masked=masked, ref_rc=ref,
                         **_map_style(Path(raster).stem, t, t.get("units", "")), **geo)  # fmt: skip

    # The velocity map (the slowest) first: with two processes, it in one and
    # the other figures in the other.
    figures: list[Callable[[], object]] = [
        lambda: plots.velocity_map(vel, ref, units, a.out_velocity,
                                   {k: v for k, v in pts.items() if k != "reference"}, std=std,
                                   model=model_name(tags), masked=masked,
                                   far_field=svel.far_field(vel, std), **geo),
        lambda: plots.point_series(dates, series, str(list(index["units"])[0]), a.out_series),
        lambda: plots.network(dates, pairs, a.out_network,
                              excluded=[(i.reference, i.secondary) for i in every if i.excluded]),
    ]  # fmt: skip
    if a.mask is not None and a.out_mask:
        figures.append(lambda: plots.mask_map(keep, has, a.out_mask, ref_rc=ref, **geo))
    figures += [functools.partial(raster_map, raster, png) for raster, png in a.map or []]
    # A small map draws in a fraction of a second: no second process for it.
    plots.draw_figures(figures, workers=a.threads if vel.size >= PARALLEL_MIN_PX else 1)


if __name__ == "__main__":
    cli.run(main)

"""Plots of the InSAR branch: velocity map, displacement time series at the
reference point and a few sample points, and the pair network (PNG)."""



import argparse

import numpy as np
import pandas as pd
from rasterio.windows import Window

from sarstack import cli, insar, io, plots


def sample_points(vel: np.ndarray, ref: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Reference, fastest towards / away from the radar, and the centre pixel."""
    pts = {"reference": ref}
    if np.isfinite(vel).any():
        for name, k in (("max velocity", np.nanargmax(vel)), ("min velocity", np.nanargmin(vel))):
            r, c = np.unravel_index(k, vel.shape)
            pts[name] = (int(r), int(c))
    pts["centre"] = (vel.shape[0] // 2, vel.shape[1] // 2)
    return pts


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    p.add_argument("--velocity", required=True, help="velocity.tif from insar_velocity")
    p.add_argument("--index", required=True, help="timeseries.csv from insar_gather")
    p.add_argument("--ifgs", required=True, help="ifgs.csv from insar_select")
    p.add_argument("--reference", required=True, help="reference_point.txt from insar_reference")
    p.add_argument("--out-velocity", required=True, help="PNG: the velocity map")
    p.add_argument("--out-series", required=True, help="PNG: displacement time series at the reference and a few sample points")
    p.add_argument("--out-network", required=True, help="PNG: the interferogram network")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, dates, pairs = insar.read_ifg_table(a.ifgs)
    ref = insar.read_reference_point(a.reference)
    vel = io.read_band(a.velocity)
    units = io.raster_tags(a.velocity).get("units", "")
    index = pd.read_csv(a.index, dtype=str)
    pts = sample_points(vel, ref)
    series = {}
    for name, (r, c) in pts.items():
        vals = [io.read_band(f, Window(c, r, 1, 1))[0, 0] for f in index["path"]]
        series[f"{name} [{r}, {c}]"] = np.r_[0.0, vals]
    grid = io.read_grid(a.velocity)
    plots.velocity_map(vel, ref, units, a.out_velocity,
                       {k: v for k, v in pts.items() if k != "reference"},
                       transform=grid.transform, crs=grid.crs)
    plots.point_series(dates, series, str(index["units"].iloc[0]), a.out_series)
    every = insar.read_ifg_table(a.ifgs, include_excluded=True)[0]
    plots.network(dates, pairs, a.out_network,
                  excluded=[(i.reference, i.secondary) for i in every if i.excluded])


if __name__ == "__main__":
    cli.run(main)

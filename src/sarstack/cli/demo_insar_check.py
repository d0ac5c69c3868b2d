"""Compare the demo's InSAR outputs with the known truth (all referenced to the
chosen reference pixel): displacement per date, and velocity against the
linear fit of the true displacement (what a perfect inversion would give) and
against the true velocity field. Writes one row of error statistics."""

import argparse
import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from sarstack import cli, dates, io, refpoint, stagefiles, velocity

log = logging.getLogger("demo_insar_check")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    p.add_argument("--truth", required=True, help="truth.csv of the demo stack")
    p.add_argument("--index", required=True, help="time-series index from insar_invert")
    p.add_argument("--velocity", required=True, help="velocity.tif from insar_velocity")
    p.add_argument("--reference", required=True, help="reference_point.txt from insar_reference")
    p.add_argument("--out", required=True,
                   help="insar_accuracy.csv to write (error against the known velocity)")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    r, c = stagefiles.read_reference_point(a.reference)
    truth_dir = Path(a.truth).parent
    with rasterio.open(truth_dir / "truth_phase.tif") as ds:
        phase = ds.read().astype(np.float64)  # (n_dates, rows, cols)
    disp_true, _ = refpoint.phase_to_displacement(phase - phase[:, r : r + 1, c : c + 1], None)
    tcsv = stagefiles.read_table(a.truth)
    t = dates.years_since([dt.date.fromisoformat(d) for d in tcsv["date"]])
    index = stagefiles.read_index(a.index)
    disp = np.stack([np.zeros(phase.shape[1:])] + [io.read_band(f) for f in index["path"]])
    err_ts = disp - disp_true
    # the slope alone (its standard error, which uncertainty sets, is not compared)
    ideal = velocity.velocity(disp_true.reshape(len(t), -1), t, uncertainty="white")
    ideal_vel = ideal.velocity.reshape(phase.shape[1:])
    vel = io.read_band(a.velocity).astype(np.float64)
    field = io.read_band(truth_dir / "truth_velocity.tif").astype(np.float64)
    field -= field[r, c]
    ok = np.isfinite(vel)
    units = io.raster_tags(a.velocity).get("units", "")
    row = {
        "units": units,
        "n_pixels": int(ok.sum()),
        "n_nodata": int((~ok).sum()),
        "displacement_rmse": float(np.sqrt(np.nanmean(err_ts**2))),
        "displacement_max_abs_error": float(np.nanmax(np.abs(err_ts))),
        "velocity_rmse": float(np.sqrt(np.mean((vel - ideal_vel)[ok] ** 2))),
        "velocity_max_abs_error": float(np.max(np.abs(vel - ideal_vel)[ok])),
        "velocity_range": float(np.nanmax(np.abs(ideal_vel))),
        "velocity_rmse_vs_true_field": float(np.sqrt(np.mean((vel - field)[ok] ** 2))),
    }
    io.write_csv(a.out, pd.DataFrame([row]))
    log.info(
        "demo InSAR: displacement RMSE %.4f, velocity RMSE %.4f %s (max %.4f) for velocities "
        "up to %.2f; %d pixels, %d nodata; vs the true linear field (seasonal term aliased): %.4f",
        row["displacement_rmse"], row["velocity_rmse"], units, row["velocity_max_abs_error"],
        row["velocity_range"], row["n_pixels"], row["n_nodata"], row["velocity_rmse_vs_true_field"],
    )


if __name__ == "__main__":
    cli.run(main)

"""Per-pixel velocity of the displacement time series (units per year,
365.25-day years, the first date's zero included) and its standard error:
a linear fit by default; with --annual, --semiannual or --step the
deformation model offset + velocity (+ annual, semiannual sinusoids,
+ Heaviside steps), whose amplitude, phase (day of year of the peak) and
step rasters, each with a <name>_std.tif standard error, go to --out-dir.
Then checks the far field (a quiet sixteenth of the scene): a WARNING
when its median velocity is far from zero, i.e. the reference point is likely
on moving ground (sarstack.velocity.far_field)."""

import argparse
import datetime as dt
import logging

import numpy as np

from sarstack import cli, insar, io, options, stagefiles
from sarstack import velocity as svel
from sarstack.errors import SarstackError
from sarstack.velocity import DeformationModel, model_error

log = logging.getLogger("insar_velocity")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_velocity")
    p.add_argument("--index", required=True, help="time-series index CSV from insar_invert")
    p.add_argument("--ifgs", required=True, help="ifg table (for the first date)")
    p.add_argument("--out", required=True, help="velocity COG")
    p.add_argument("--out-std", required=True, help="velocity standard error COG")
    p.add_argument("--out-dir", default=None,
                   help="folder of the model's other rasters (default: the folder of --out)")
    p.add_argument("--ifg-residual-std", default=None,
                   help="ifg_residual_std.tif of insar_invert: the interferograms' noise, "
                        "propagated through the network with --uncertainty correlated")
    p.add_argument("--threads", type=int, default=1,
                   help="blocks of the linear fit solved side by side (the same rasters)")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    try:
        model = DeformationModel.from_config(a.annual, a.semiannual, a.step or ())
    except SarstackError as e:
        raise model_error(e) from None
    index = stagefiles.read_index(a.index)
    ifgs, dates, pairs = stagefiles.read_ifgs(a.ifgs)
    units = insar.velocity_files(
        index, dates[0], a.out, a.out_std, block_shape=a.block,
        weight_ifgs=ifgs if a.velocity_weighting == "correlation" else None,
        model=model, out_dir=a.out_dir, uncertainty=a.uncertainty,
        ifg_noise=(pairs, a.ifg_residual_std) if a.ifg_residual_std else None,
        threads=a.threads,
    )
    log.info("%s over %s .. %s written (%s)", model.describe(), dates[0],
             dt.date.fromisoformat(list(index["date"])[-1]), units)
    check_far_field(io.read_band(a.out), io.read_band(a.out_std), units)


def check_far_field(vel: np.ndarray, std: np.ndarray, units: str) -> svel.FarField | None:
    """Log the pixels without a standard error and the far-field median; a
    WARNING when the far field moves (reference point likely on moving ground)."""
    no_std = int((np.isfinite(vel) & ~np.isfinite(std)).sum())
    if no_std:
        log.info("%d pixels have a velocity but no standard error (too few dates):"
                 " the plots mask them", no_std)  # fmt: skip
    ff = svel.far_field(vel, std)
    if ff is None:
        log.info("far field: no part of the scene is well constrained; not checked")
        return None
    where = f"rows {ff.rows[0]}-{ff.rows[1] - 1}, cols {ff.cols[0]}-{ff.cols[1] - 1}"
    msg = (f"far-field median velocity {ff.median:.3g} {units} ({ff.n_pixels} well-constrained"
           f" pixels of the far-field cell, {where}); velocity spread (p98 - p2) {ff.spread:.3g},"
           f" limit {ff.limit:.3g}")  # fmt: skip
    if ff.suspicious:
        log.warning("%s: the far field moves, so the reference point is likely on moving"
                    " ground; give insar.reference_point or insar.reference_lonlat on stable"
                    " ground", msg)  # fmt: skip
    else:
        log.info("%s: ok", msg)
    return ff


if __name__ == "__main__":
    cli.run(main)

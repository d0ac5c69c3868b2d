"""Fit a ramp per interferogram (insar.deramp: a plane or a quadratic surface,
least squares on its valid pixels, optionally only where the correlation
reaches insar.deramp_min_correlation, outside insar.mask) and write the
coefficients, ramps.csv; insar_invert removes each ramp as it reads the ifg.
Streamed block by block: memory follows the block, not the scene."""

import argparse
import logging

from sarstack import cli, deramp, io, options, stagefiles, troposphere, unwrap
from sarstack.errors import SarstackError

log = logging.getLogger("insar_deramp")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_deramp")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--out", required=True, help="ramps.csv: the coefficients per ifg")
    p.add_argument("--troposphere", default=None,
                   help="folder of insar_troposphere's per-date delays: the ramps are fitted"
                        " to the phase minus each ifg's d_sec - d_ref")
    p.add_argument("--unwrap", default=None,
                   help="unwrap_ambiguity.tif of insar_unwrap_correction: the ramps are fitted"
                        " to the phase plus each ifg's 2 pi x cycles")
    p.add_argument("--out-plot", default=None,
                   help="plots/ramps.png: per ifg the ramp's range over the scene and the"
                        " phase's spread before and after")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, dates, pairs = stagefiles.read_ifgs(a.ifgs)
    if a.model == "none":
        raise SarstackError("insar.deramp: none, so there is no ramp to fit (--model)")
    grid = io.read_grid(ifgs[0].path)
    tropo = (troposphere.IfgDelays(a.troposphere, dates, pairs, grid)
             if a.troposphere else None)  # fmt: skip
    cycles = unwrap.IfgAmbiguities(a.unwrap, ifgs, grid) if a.unwrap else None
    table = deramp.fit_ramps(ifgs, a.model, block_shape=a.block, mask=a.mask,
                             min_correlation=a.min_correlation, troposphere=tropo,
                             unwrap=cycles)  # fmt: skip
    io.write_csv(a.out, table)
    if a.out_plot:
        from sarstack import plots

        plots.ramps(table, a.out_plot)
    worst = table.loc[table["ramp_rms_rad"].idxmax()]
    log.info("%d %s ramps fitted; median RMS removed %.3g rad, largest %.3g rad (%s)",
             len(table), a.model, table["ramp_rms_rad"].median(), worst["ramp_rms_rad"],
             worst["key"])  # fmt: skip


if __name__ == "__main__":
    cli.run(main)

"""Fit a ramp per interferogram (insar.deramp: a plane or a quadratic surface,
least squares on its valid pixels, optionally only where the correlation
reaches insar.deramp_min_correlation, outside insar.mask) and write the
coefficients, ramps.csv; insar_invert removes each ramp as it reads the ifg.
Streamed block by block: memory follows the block, not the scene."""

import argparse
import logging

from sarstack import cli, deramp, insar, io

log = logging.getLogger("insar_deramp")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--model", choices=deramp.MODELS[1:], required=True,
                   help="surface per ifg (config insar.deramp)")
    p.add_argument("--min-correlation", type=float, default=None,
                   help="fit only pixels whose correlation reaches this (config insar.deramp_min_correlation)")
    p.add_argument("--mask", default=None, help="mask raster, 0 = left out of the fit (config insar.mask)")
    p.add_argument("--block", type=int, nargs=2, required=True, metavar=("ROWS", "COLS"),
                   help="rows and columns read per block (config block_shape)")
    p.add_argument("--out", required=True, help="ramps.csv: the coefficients per ifg")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, _, _ = insar.read_ifg_table(a.ifgs)
    table = deramp.fit_ramps(ifgs, a.model, block_shape=a.block, mask=a.mask,
                             min_correlation=a.min_correlation)  # fmt: skip
    io.write_csv(a.out, table)
    worst = table.loc[table["ramp_rms_rad"].idxmax()]
    log.info("%d %s ramps fitted; median RMS removed %.3g rad, largest %.3g rad (%s)",
             len(table), a.model, table["ramp_rms_rad"].median(), worst["ramp_rms_rad"],
             worst["key"])  # fmt: skip


if __name__ == "__main__":
    cli.run(main)

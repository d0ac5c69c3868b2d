"""Per-pixel linear velocity of the displacement time series (units per year,
365.25-day years, the first date's zero included) and its standard error."""

import argparse
import datetime as dt
import logging

import pandas as pd

from sarstack import cli, insar

log = logging.getLogger("insar_velocity")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    p.add_argument("--index", required=True, help="time-series index CSV from insar_invert")
    p.add_argument("--ifgs", required=True, help="ifg table (for the first date)")
    p.add_argument("--out", required=True, help="velocity COG")
    p.add_argument("--out-std", required=True, help="velocity standard error COG")
    p.add_argument("--block", type=int, nargs=2, required=True, metavar=("ROWS", "COLS"))
    p.add_argument("--weight-by-correlation", action="store_true",
                   help="weight each date by the mean correlation of its ifgs")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    index = pd.read_csv(a.index, dtype=str)
    ifgs, dates, _ = insar.read_ifg_table(a.ifgs)
    units = insar.velocity_files(
        index, dates[0], a.out, a.out_std, block_shape=a.block,
        weight_ifgs=ifgs if a.weight_by_correlation else None,
    )
    log.info("velocity over %s .. %s written (%s)", dates[0], dt.date.fromisoformat(index["date"].iloc[-1]), units)


if __name__ == "__main__":
    cli.run(main)

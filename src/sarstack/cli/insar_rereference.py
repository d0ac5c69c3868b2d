"""Re-reference the displacement time series to an extra reference date (the
acquisition nearest to the one asked for): every later date minus that date."""

import argparse
import datetime as dt
import logging

from sarstack import cli, insar, options, stagefiles
from sarstack.errors import SarstackError

log = logging.getLogger("insar_rereference")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_rereference")
    p.add_argument("--index", required=True, help="time-series index from insar_invert")
    p.add_argument("--ifgs", required=True, help="ifg table (for the first date)")
    p.add_argument("--out-dir", required=True, help="folder for the re-referenced displacement rasters")
    p.add_argument("--out-index", required=True, help="timeseries CSV to write for them")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    if a.date is None:
        raise SarstackError("insar.extra_reference_date: not set (--date), nothing to re-reference to")
    try:
        wanted = dt.date.fromisoformat(a.date)
    except ValueError:
        raise SarstackError(f"insar.extra_reference_date: {a.date!r} is not YYYY-MM-DD") from None
    _, dates, _ = stagefiles.read_ifgs(a.ifgs)
    ref = insar.nearest_date(dates, wanted)
    log.info("extra reference date %s (nearest acquisition to %s)", ref, wanted)
    index = stagefiles.read_index(a.index)
    new = insar.rereference_files(index, dates[0], ref, a.out_dir, block_shape=a.block)
    stagefiles.write_index(a.out_index, new)


if __name__ == "__main__":
    cli.run(main)

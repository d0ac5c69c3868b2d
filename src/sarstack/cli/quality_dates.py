"""One per-date quality table for both branches: per date (and RTC stack) the
RTC offset from the first date with its 1-sigma and the events starting
there, the InSAR interferograms using it, their residual RMS and closure
share, and suggest_exclude with the reason (for insar.exclude_dates)."""

import argparse
import logging

from sarstack import cli, io, options, quality, stagefiles

log = logging.getLogger("quality_dates")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "quality_dates")
    p.add_argument("--rtc", nargs=3, action="append", default=None,
                   metavar=("NAME", "DATES", "EVENTS"),
                   help="an RTC stack: its name, dates.csv and date_events.csv (repeatable)")
    p.add_argument("--ifgs", default=None, help="ifgs.csv of insar_select")
    p.add_argument("--ifg-residuals", default=None, help="ifg_residuals.csv of insar_gather")
    p.add_argument("--closure-triangles", default=None,
                   help="closure_triangles.csv of insar_gather")
    p.add_argument("--out", required=True, help="quality/dates.csv")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    rtc = {name: (stagefiles.read_dates(d), stagefiles.read_table(e))
           for name, d, e in a.rtc or ()}  # fmt: skip
    insar = None
    if a.ifgs:
        import pandas as pd

        insar = quality.insar_dates(pd.DataFrame(stagefiles.read_ifg_rows(a.ifgs)),
                                    stagefiles.read_table(a.ifg_residuals),
                                    stagefiles.read_table(a.closure_triangles))  # fmt: skip
    table = quality.date_table(rtc, insar, residual_mads=a.residual_mads,
                               closure_fraction=a.closure_fraction)  # fmt: skip
    io.write_csv(a.out, table)
    flagged = table[table["suggest_exclude"]]
    for r in flagged.itertuples():
        log.warning("%s: suggested for insar.exclude_dates: %s", r.date, r.reason)
    log.info("%d dates, %d suggested for exclusion", table["date"].nunique(), len(flagged))


if __name__ == "__main__":
    cli.run(main)

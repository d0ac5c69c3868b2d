"""Select the interferogram stack: glob, date each pair from its name, match
conncomp/correlation companions, check that all share one grid and that the
network connects every date; writes the ifg table and the network."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sarstack import cli, insar, io  # noqa: E402

log = logging.getLogger("insar_select")


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--unwrapped", required=True, help="glob of unwrapped ifgs (radians)")
    p.add_argument("--conncomp", default=None, help="optional glob of conncomp labels")
    p.add_argument("--correlation", default=None, help="optional glob of correlation rasters")
    p.add_argument("--date-format", default="%Y%m%d")
    p.add_argument("--out", required=True, help="output CSV: one row per ifg")
    a = p.parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, dates, pairs, grid = insar.select_ifgs(
        a.unwrapped, conncomp=a.conncomp, correlation=a.correlation, date_format=a.date_format
    )
    log.info("%d interferograms over %d dates (%s .. %s) on a %d x %d grid", len(ifgs),
             len(dates), dates[0], dates[-1], grid.height, grid.width)
    io.write_csv(a.out, insar.ifg_table(ifgs))


if __name__ == "__main__":
    cli.run(main)

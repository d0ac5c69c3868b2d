"""Select the interferogram stack: glob, date each pair from its name, match
conncomp/correlation companions, apply the network editing of the config
(excluded dates and pairs, longest temporal baseline, lowest mean correlation,
period), check that the kept ifgs share one grid and that their network
connects every date; writes the ifg table (excluded ifgs with their reason, each
ifg's files' size and mtime)."""

import argparse
import datetime as dt
import logging

from sarstack import cli, insar, options, stagefiles
from sarstack.errors import SarstackError

log = logging.getLogger("insar_select")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_select")
    p.add_argument("--unwrapped", required=True, help="glob of unwrapped ifgs (radians)")
    p.add_argument("--conncomp", default=None, help="optional glob of conncomp labels")
    p.add_argument("--correlation", default=None, help="optional glob of correlation rasters")
    p.add_argument("--out", required=True, help="output CSV: one row per ifg")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    edit = insar.NetworkEdit(
        exclude_dates=tuple(_date(d, "insar.exclude_dates") for d in a.exclude_dates or ()),
        exclude_pairs=tuple(_pair(v) for v in a.exclude_pairs or ()),
        max_temporal_baseline=a.max_temporal_baseline,
        min_mean_correlation=a.min_mean_correlation,
        start_date=_date(a.start_date, "insar.start_date") if a.start_date else None,
        end_date=_date(a.end_date, "insar.end_date") if a.end_date else None,
        max_loop_rms_rad=a.max_loop_rms_rad,
        loop_exclude=a.loop_exclude,
    )
    ifgs, dates, pairs, grid = insar.select_ifgs(
        a.unwrapped, conncomp=a.conncomp, correlation=a.correlation, date_format=a.date_format,
        edit=edit, block_shape=a.block,
    )
    log.info("%d interferograms over %d dates (%s .. %s) on a %d x %d grid", len(pairs),
             len(dates), dates[0], dates[-1], grid.height, grid.width)
    for i in ifgs:
        if i.excluded:
            log.info("excluded %s: %s", i.key, i.excluded)
    stagefiles.write_ifgs(a.out, ifgs)


def _date(text: str, key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SarstackError(f"{key}: {text!r} is not a date YYYY-MM-DD") from None


def _pair(text: str) -> tuple[dt.date, dt.date]:
    try:
        d1, d2 = (dt.datetime.strptime(t, "%Y%m%d").date() for t in text.split("_"))
    except ValueError:
        raise SarstackError(f"insar.exclude_pairs: {text!r} is not YYYYMMDD_YYYYMMDD") from None
    return d1, d2


if __name__ == "__main__":
    cli.run(main)

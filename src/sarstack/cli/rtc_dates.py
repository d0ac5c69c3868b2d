"""Per-date geolocation offsets: invert the per-pair offsets over the pair
network (incidence-matrix least squares, optionally robust), for the whole
scene and per tile. The first date is the datum (0 m). With --summary, the
stack's verdict also judges each date's offset relative to the first date
(sarstack.rtc.judge_dates): summary.csv says which criterion failed. With
--out-events, steps and drift in the geolocation are searched for on the pairs
and attributed to the platform or product version that changed
(sarstack.events): date_events.csv, marked on the plot."""

import argparse
import logging

from sarstack import cli, io, options, rtc, stagefiles

log = logging.getLogger("rtc_dates")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_dates")
    p.add_argument("--offsets", required=True, help="offsets.csv from rtc_aggregate")
    p.add_argument("--pairs", required=True, help="pairs.csv from rtc_aggregate")
    p.add_argument("--out", required=True, help="dates.csv (whole scene)")
    p.add_argument("--out-tiles", required=True, help="dates_tiles.csv (per tile)")
    p.add_argument("--plot", required=True, help="PNG of the per-date offsets")
    p.add_argument("--scenes", default=None,
                   help="scenes.csv of rtc_select: platform and version per date, for --out-events")
    p.add_argument("--out-events", default=None,
                   help="date_events.csv: steps and drift, attributed (sarstack.events)")
    p.add_argument("--summary", default=None,
                   help="summary.csv of rtc_aggregate: the per-date criterion added (updated)")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    offsets = stagefiles.read_offsets(a.offsets)
    pairs = stagefiles.read_pairs(a.pairs)
    scene, tiles = rtc.date_offsets(offsets, pairs, robust=a.dates_method == "robust")
    for r in scene.itertuples():
        log.info("%s: east %.3f +- %.3f m, north %.3f +- %.3f m", r.date, r.east_m, r.east_sd_m,
                 r.north_m, r.north_sd_m)
    stagefiles.write_dates(a.out, scene)
    io.write_csv(a.out_tiles, tiles)
    found = None
    if a.out_events:
        import pandas as pd

        from sarstack import events

        scenes = pd.DataFrame(stagefiles.read_scenes(a.scenes)) if a.scenes else None
        found = events.find_events(pairs, scenes, significance=a.event_significance)
        if not events.redundant(pairs):
            log.info("no search for steps and drift: the ok pairs close no loop, so a scene's"
                     " own error and a pair's cannot be told apart (rtc.pairs: sequential+long:K"
                     " adds the pairs that do)")  # fmt: skip
        for r in found.itertuples():
            log.warning("%s %s: east %.2f m, north %.2f m (+- %.2f m), false-alarm probability"
                        " %.2g; %s", r.kind, r.date, r.east_m, r.north_m, r.sigma_m,
                        r.significance, r.note)  # fmt: skip
        io.write_csv(a.out_events, found)
    if a.summary:
        summary = rtc.judge_dates(stagefiles.read_table(a.summary), scene, a.requirement_m,
                                  a.min_fraction_within)
        s = summary.iloc[0]
        if s["dates_verdict"] == "fail":
            log.warning("%d dates are farther than %g m from the first date; the farthest, %s,"
                        " by %.2f +- %.2f m (the pairs' verdict: %s)",
                        s["n_dates_over_requirement"], a.requirement_m, s["max_date_offset_date"],
                        s["max_date_offset_m"], s["max_date_offset_sd_m"], s["pairs_verdict"])  # fmt: skip
        io.write_csv(a.summary, summary)
    from sarstack import plots  # matplotlib: imported when it draws

    plots.date_offsets(scene, a.plot, a.requirement_m, events=found)


if __name__ == "__main__":
    cli.run(main)

"""Injection-recovery (rtc.injection): the per-date offsets of the stack with a
known sub-pixel shift injected into every scene (rtc_xcorr --out-injected),
through the same pair statuses, network and per-date solve, against the
stack's own; writes injection.csv (injected and recovered offset per date,
relative to the first date) and adds the summary (RMS and largest error, in
metres and pixels, and the share of dates recovered within the requirement)
to the stack's summary.csv. Says so when nothing could be measured."""

import argparse
import logging

import pandas as pd

from sarstack import cli, io, options, rtc, stagefiles

log = logging.getLogger("rtc_injection")

#: summary.csv columns this stage adds (the summary dict's keys, prefixed).
SUMMARY_KEYS = ("n_dates", "rms_m", "max_m", "rms_px", "max_px", "within_requirement", "note")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_injection")
    p.add_argument("--dates", required=True, help="dates.csv of the stack (rtc_dates)")
    p.add_argument("--summary", required=True, help="summary.csv of the stack (updated)")
    p.add_argument("--grid", required=True, help="union grid JSON (pixel size, orientation)")
    p.add_argument("--out", required=True, help="injection.csv")
    p.add_argument("xcorr", nargs="+", help="rtc_xcorr --out-injected tables")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    offsets = pd.concat([stagefiles.read_table(f) for f in a.xcorr], ignore_index=True)
    offsets = offsets.sort_values(["reference_date", "secondary_date", "tile_row", "tile_col"])
    offsets = rtc.mark_outliers(offsets, sigma=a.outlier_sigma, floor_px=a.outlier_floor_px,
                                min_keep=a.min_ok_tiles)
    pairs = rtc.aggregate_pairs(offsets, min_ok_tiles=a.min_ok_tiles, requirement_m=a.requirement_m)
    injected_run, _ = rtc.date_offsets(offsets, pairs, robust=a.dates_method == "robust")
    table, s = rtc.injection_recovery(
        stagefiles.read_dates(a.dates), injected_run, stagefiles.read_grid(a.grid).transform,
        max_shift_px=a.max_shift_px, seed=a.seed, requirement_m=a.requirement_m,
    )  # fmt: skip
    summary = stagefiles.read_table(a.summary)
    for k in SUMMARY_KEYS:
        summary[f"injection_{k}"] = s[k]
    io.write_csv(a.out, table)
    io.write_csv(a.summary, summary)
    if s["note"]:
        log.warning("injection-recovery: %s (no pair of the injected stack was ok)", s["note"])
    else:
        log.info("injection-recovery over %d dates: RMS error %.3g m (%.3g px), largest %.3g m"
                 " (%.3g px)", s["n_dates"], s["rms_m"], s["rms_px"], s["max_m"], s["max_px"])


if __name__ == "__main__":
    cli.run(main)

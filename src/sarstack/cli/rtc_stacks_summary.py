"""Summary across the stacks of a many-stack RTC run (rtc.stacks):
stacks_summary.csv (per stack: dates, pairs, mean/RMS offsets, verdict, or why
it failed), stacks_overall.csv (fraction of stacks and of pairs within the
requirement) and a plot across stacks."""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path

import pandas as pd

from sarstack import cli, io, options, rtc, stagefiles
from sarstack.errors import SarstackError

log = logging.getLogger("rtc_stacks_summary")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_stacks_summary")
    p.add_argument("--stack", nargs=2, action="append", required=True, metavar=("NAME", "DIR"),
                   help="a stack's name and its output folder (repeat per stack)")
    p.add_argument("--logs", help="folder of the stacks' logs (LOGS/NAME/*.log); with --since, "
                   "a stack whose log has an error since then is reported as failed")
    p.add_argument("--since", type=float, default=None,
                   help="start of the run (seconds since the epoch) for --logs")
    p.add_argument("--absolute", action="store_true",
                   help="the stacks have an absolute evaluation (absolute.csv) to summarize")
    p.add_argument("--out", required=True, help="stacks_summary.csv")
    p.add_argument("--out-overall", required=True, help="stacks_overall.csv")
    p.add_argument("--plot", required=True, help="PNG across stacks")
    return p


def last_error(log_dir: Path, since: float | None) -> str:
    """The newest one-line error among a stack's job logs ('' when none)."""
    found: list[tuple[float, str]] = []
    for path in log_dir.rglob("*.log") if log_dir.is_dir() else []:
        try:
            mtime = path.stat().st_mtime
            if since is not None and mtime < since:
                continue
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            continue
        if lines and (lines[-1].startswith("error:") or "Error" in lines[-1].split(":")[0]):
            found.append((mtime, f"{lines[-1].strip()} [log: {path}]"))
    return max(found)[1] if found else ""


#: How each of a stack's tables is read (scenes.csv as rows, made a frame).
_READERS = {
    "summary": stagefiles.read_table,
    "pairs": stagefiles.read_pairs,
    "scenes": lambda p: pd.DataFrame(stagefiles.read_scenes(p), columns=list(stagefiles.SCENE_COLUMNS)),
    "absolute": stagefiles.read_table,
}


def _read(path: Path, kind: str) -> pd.DataFrame:
    try:
        return _READERS[kind](path)
    except (OSError, csv.Error, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise SarstackError(f"{path}: cannot read ({e})") from None


def collect(name: str, folder: Path, logs: Path | None, since: float | None,
            absolute: bool = False) -> rtc.StackResult:
    """One stack's outcome from what its jobs left in ``folder`` (and its logs);
    with ``absolute`` also its absolute.csv (read only then: one left from an
    earlier run with reflectors must not be reported)."""
    error = last_error(logs / name, since) if logs is not None else ""
    if error:
        return rtc.StackResult(name, rtc.StackOutcome.FAILED, error=error)
    names = ("summary", "pairs", "scenes", "absolute") if absolute else ("summary", "pairs", "scenes")
    files = {k: folder / f"{k}.csv" for k in names}
    if not all(f.is_file() for f in files.values()):
        return rtc.StackResult(name, rtc.StackOutcome.NOT_RUN,
                               error="did not finish: the run stopped at another stack's error, "
                                     "or one sharing its job failed (--keep-going finishes the "
                                     "other jobs; rtc.stacks_per_job: 1 gives each stack its own)")
    return rtc.StackResult(name, rtc.StackOutcome.OK, **{k: _read(f, k) for k, f in files.items()})


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    t0 = time.time()
    logs = Path(a.logs) if a.logs else None
    results = [collect(name, Path(folder), logs, a.since, a.absolute) for name, folder in a.stack]
    per_stack, overall = rtc.summarize_stacks(results, a.requirement_m, a.min_fraction_within)
    for r in per_stack.itertuples(index=False):
        if r.status == "ok":
            log.info("%s: %s, %d of %d pairs ok", r.stack, r.verdict, r.n_pairs_ok, r.n_pairs)
        else:
            log.info("%s: %s: %s", r.stack, r.status, r.error)
    o = overall.iloc[0]
    log.info("%d stacks, %d completed, %d pass; %s of the ok pairs within the requirement",
             o.n_stacks, o.n_stacks_ok, o.n_stacks_pass,
             "n/a" if pd.isna(o.fraction_pairs_within) else f"{o.fraction_pairs_within:.1%}")
    if o.calval_met:
        log.info("cal/val across stacks: %.1f%% of %d products within %g m (%s needed): %s",
                 100 * o.fraction_dates_within, o.n_dates_judged, a.requirement_m,
                 "all" if a.min_fraction_within is None else f"{a.min_fraction_within:.0%}",
                 "met" if o.calval_met == "yes" else "not met")  # fmt: skip
    io.write_csv(a.out, per_stack)
    io.write_csv(a.out_overall, overall)
    from sarstack import plots  # matplotlib: imported when it draws

    pairs = {r.name: r.pairs for r in results if r.pairs is not None}
    plots.stacks_summary(per_stack, pairs, a.plot, a.requirement_m)
    log.info("done in %.1f s", time.time() - t0)


if __name__ == "__main__":
    cli.run(main)

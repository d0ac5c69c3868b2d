"""Generate the synthetic RTC demo stack: a textured scene with known per-date
geolocation shifts, gamma speckle, moving frames, NaN swath edges and
HyP3-style names in per-scene folders; writes truth.csv beside the scenes and,
with point targets, reflectors.csv (id, x, y, crs: their true positions)."""

import argparse
import logging
from pathlib import Path

from sarstack import cli, options, synthetic

log = logging.getLogger("demo_rtc_stack")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "demo_rtc_stack")
    p.add_argument("--truth", required=True, help="truth CSV; scenes go in its folder")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    out_dir = Path(a.truth).parent
    truth = synthetic.make_rtc_stack(
        out_dir,
        n_dates=a.n_dates,
        shape=tuple(a.shape),
        seed=a.seed,
        looks=a.looks,
        point_targets=a.point_targets,
    )
    written = out_dir / "truth.csv"
    if written.resolve() != Path(a.truth).resolve():
        written.replace(a.truth)
    log.info(
        "%d synthetic scenes in %s, %d point targets%s",
        len(truth),
        out_dir,
        a.point_targets,
        f" ({out_dir / 'reflectors.csv'})" if a.point_targets else "",
    )


if __name__ == "__main__":
    cli.run(main)

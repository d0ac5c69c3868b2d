"""Generate the synthetic InSAR demo stack: unwrapped interferograms of a known
velocity field plus a seasonal term and noise, over a redundant network, with
correlation rasters and a few nodata pixels; writes truth beside them."""

import argparse
import logging
from pathlib import Path

from sarstack import cli, options, synthetic

log = logging.getLogger("demo_insar_stack")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "demo_insar_stack")
    p.add_argument("--truth", required=True, help="truth CSV; the stack goes in its folder")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    out_dir = Path(a.truth).parent
    ifgs = synthetic.make_ifg_stack(out_dir, n_dates=a.n_dates, shape=tuple(a.shape), seed=a.seed)
    log.info("%d synthetic interferograms in %s", len(ifgs), out_dir)


if __name__ == "__main__":
    cli.run(main)

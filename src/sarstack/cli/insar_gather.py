"""Gather the inversion strips (in row order) into the final COGs: time series
per date, residuals (when kept), residual sum, temporal coherence, ifgs used,
and the time-series index table."""

import argparse
import logging

from sarstack import cli, insar, options, stagefiles

log = logging.getLogger("insar_gather")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_gather")
    p.add_argument("strips", nargs="+", help="strip folders from insar_invert, in row order")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--reference", required=True, help="row,col file from insar_reference")
    p.add_argument("--out-dir", required=True, help="writes timeseries/, residuals/, ...")
    p.add_argument("--index", required=True, help="output CSV: date, path, units")
    p.add_argument("--threads", type=int, required=True, help="rasters written side by side")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, dates, _ = stagefiles.read_ifgs(a.ifgs)
    how = insar.describe_method(a.method, a.weighting, all(i.conncomp for i in ifgs))
    index = insar.gather_strips(
        a.strips, ifgs, dates, stagefiles.read_reference_point(a.reference), a.out_dir,
        wavelength=a.wavelength, how=how, block_shape=a.block, threads=a.threads,
        coherence_mask=a.coherence_mask, min_region_px=a.min_region_px,
        compress_series=a.compress_series,
    )
    stagefiles.write_index(a.index, index)
    insar.gather_stats(a.strips, ifgs, a.out_dir)


if __name__ == "__main__":
    cli.run(main)

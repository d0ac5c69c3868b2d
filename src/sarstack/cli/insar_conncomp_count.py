"""Per date, the number of interferograms with a non-zero (valid) connected
component at each pixel: one uint16 band per date."""



import argparse

from sarstack import cli, insar, options, stagefiles


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_conncomp_count")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select (with conncomp)")
    p.add_argument("--out", required=True,
                   help="raster to write: per date, the interferograms with a valid connected component at each pixel")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, dates, _ = stagefiles.read_ifgs(a.ifgs)
    insar.conncomp_count(ifgs, dates, a.out, block_shape=a.block, mask=a.mask)


if __name__ == "__main__":
    cli.run(main)

"""Mean correlation of the interferograms, the default reference-point quality:
the NaN-aware per-pixel temporal mean of a stack of rasters on one grid (the
ifg table's correlation column, another column, or rasters given)."""



import argparse

from sarstack import cli, insar, options, stagefiles
from sarstack.errors import SarstackError


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_correlation_mean")
    p.add_argument("--ifgs", default=None, help="ifg table: average its correlation column")
    p.add_argument("--column", default="correlation", help="column of the ifg table to average")
    p.add_argument("--out", required=True, help="the average raster (GeoTIFF) to write")
    p.add_argument("--units", default=None, help="units tag of the output raster")
    p.add_argument("rasters", nargs="*", help="rasters to average (instead of --ifgs)")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    paths = list(a.rasters)
    if a.ifgs:
        used = stagefiles.read_ifgs(a.ifgs)[0]  # network editing's exclusions left out
        paths += [str(getattr(i, a.column)) for i in used if getattr(i, a.column)]
    if not paths:
        raise SarstackError("insar_correlation_mean: no rasters to average")
    insar.temporal_average(paths, a.out, block_shape=a.block, units=a.units, mask=a.mask,
                           valid_range=(0.0, 1.0) if a.column == "correlation" else None)


if __name__ == "__main__":
    cli.run(main)

"""Per pixel, the number of triangles of the interferogram network whose phase
closure (ifg_ij + ifg_jk - ifg_ik, phase referenced to the reference point)
is farther than pi from zero: an indicator of unwrapping errors (uint16)."""



import argparse

from sarstack import cli, insar


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--reference", required=True, help="row,col file from insar_reference")
    p.add_argument(
        "--reference-window",
        type=int,
        required=True,
        help="odd K: median of a KxK window at the reference (1: the pixel)",
    )
    p.add_argument("--out", required=True,
                   help="raster to write: per pixel, the triplets with a non-zero closure")
    p.add_argument("--mask", default=None, help="mask raster, 0 = bad (-> nodata)")
    p.add_argument("--block", type=int, nargs=2, required=True, metavar=("ROWS", "COLS"),
                   help="rows and columns read per block (config insar.block_shape: the whole stack is held per block)")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, _, pairs = insar.read_ifg_table(a.ifgs)
    insar.closure_count(
        ifgs, pairs, a.out, ref_rc=insar.read_reference_point(a.reference),
        reference_window=a.reference_window, block_shape=a.block, mask=a.mask,
    )  # fmt: skip


if __name__ == "__main__":
    cli.run(main)

"""Invert the interferogram network block by block (L1 or L2) into
displacement per date referenced to the reference point, with per-ifg and
summed residuals."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sarstack import cli, insar, io  # noqa: E402
from sarstack.jaxcfg import configure_jax  # noqa: E402

log = logging.getLogger("insar_invert")


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--reference", required=True, help="row,col file from insar_reference")
    p.add_argument("--out-dir", required=True, help="writes timeseries/, residuals/, residual_sum.tif")
    p.add_argument("--index", required=True, help="output CSV: date, path, units")
    p.add_argument("--method", choices=["L1", "L2"], default="L1")
    p.add_argument("--wavelength", type=float, default=None, help="metres; omit for radians")
    p.add_argument("--mask", default=None)
    p.add_argument("--block", type=int, nargs=2, default=[256, 256], metavar=("ROWS", "COLS"))
    p.add_argument("--l1-tolerance", type=float, default=1e-4)
    p.add_argument("--l1-max-iterations", type=int, default=500)
    p.add_argument("--weighting", choices=["none", "correlation"], default="none")
    p.add_argument("--correlation-looks", type=float, default=1.0)
    p.add_argument("--correlation-threshold", type=float, default=0.0)
    p.add_argument("--jax-cache", default=None)
    a = p.parse_args(argv)
    cli.setup_logging(a.verbose)
    configure_jax(x64=True, cache_dir=a.jax_cache)
    ifgs, dates, pairs = insar.read_ifg_table(a.ifgs)
    index = insar.invert_files(
        ifgs, dates, pairs, insar.read_reference_point(a.reference), a.out_dir, method=a.method,
        wavelength=a.wavelength, mask=a.mask, block_shape=a.block,
        l1_tolerance=a.l1_tolerance, l1_max_iterations=a.l1_max_iterations,
        weighting=a.weighting, correlation_looks=a.correlation_looks,
        correlation_threshold=a.correlation_threshold,
    )
    io.write_csv(a.index, index)


if __name__ == "__main__":
    cli.run(main)

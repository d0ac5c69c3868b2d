"""Flatten outliers of one scene: values outside its own (NaN-aware) low/high
percentiles become NaN. Streams the raster block by block."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sarstack import cli, io, rtc  # noqa: E402
from sarstack.errors import SarstackError  # noqa: E402

log = logging.getLogger("rtc_flatten")


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--src", required=True, help="superset scene (COG)")
    p.add_argument("--out", required=True, help="flattened scene (COG)")
    p.add_argument("--percentiles", type=float, nargs=2, default=[1.0, 99.0], metavar=("LO", "HI"))
    p.add_argument("--block", type=int, nargs=2, default=[512, 512], metavar=("ROWS", "COLS"))
    a = p.parse_args(argv)
    cli.setup_logging(a.verbose)
    lo_p, hi_p = a.percentiles
    if not 0 <= lo_p < hi_p <= 100:
        raise SarstackError(f"rtc.percentiles: {a.percentiles} must satisfy 0 <= low < high <= 100")
    tags = io.raster_tags(a.src)
    lo, hi = rtc.flatten_scene(a.src, a.out, a.percentiles, block_shape=a.block, tags=tags)
    log.info("%s: kept values in [%.4g, %.4g] (percentiles %g..%g)", a.src, lo, hi, lo_p, hi_p)


if __name__ == "__main__":
    cli.run(main)

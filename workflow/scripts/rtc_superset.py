"""Put one RTC scene on the union grid: pad with NaN when it already lies on the
grid's pixel lattice (never resample those), reproject otherwise; nodata → NaN."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sarstack import cli, dates, io, rtc  # noqa: E402

log = logging.getLogger("rtc_superset")


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--scene", required=True, help="input RTC GeoTIFF")
    p.add_argument("--grid", required=True, help="union grid JSON from rtc_select")
    p.add_argument("--out", required=True, help="output COG on the union grid (NaN nodata)")
    p.add_argument("--resampling", default="bilinear", help="for off-grid scenes only")
    p.add_argument("--block", type=int, nargs=2, default=[512, 512], metavar=("ROWS", "COLS"))
    a = p.parse_args(argv)
    cli.setup_logging(a.verbose)

    grid = io.grid_from_dict(io.read_json(a.grid))
    d = dates.parse_scene_date(a.scene).isoformat()
    mode = rtc.superset_scene(
        a.scene, a.out, grid, block_shape=a.block, resampling=a.resampling,
        tags={"date": d, "start_date": d, "end_date": d, "source": Path(a.scene).name},
    )
    log.info("%s (%s): %s onto %d x %d grid", Path(a.scene).name, d, mode, grid.height, grid.width)


if __name__ == "__main__":
    cli.run(main)

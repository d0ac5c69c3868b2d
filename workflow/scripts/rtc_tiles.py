"""Write the tile grid as GeoJSON (tile polygons with row/col, pixel window and
each scene's valid-pixel fraction), loadable in QGIS. No tile rasters are copied."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from sarstack import cli, io, rtc  # noqa: E402

log = logging.getLogger("rtc_tiles")


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--grid", required=True, help="union grid JSON from rtc_select")
    p.add_argument("--tiles", type=int, nargs=2, default=[8, 8], metavar=("ROWS", "COLS"))
    p.add_argument("--out", required=True, help="output GeoJSON")
    p.add_argument("scenes", nargs="*", help="flattened scenes (valid fraction per tile)")
    a = p.parse_args(argv)
    cli.setup_logging(a.verbose)

    grid = io.grid_from_dict(io.read_json(a.grid))
    layout = rtc.tile_layout(grid.shape, a.tiles)
    valid = {}
    for s in a.scenes:
        d = io.raster_tags(s).get("date", Path(s).stem)
        valid[d] = rtc.valid_fractions(s, layout)
        log.info("%s: mean valid fraction %.3f", d, valid[d].mean())
    io.write_json(a.out, rtc.tiles_geojson(layout, grid, valid))
    log.info("%d x %d tiles of %d x %d px", layout.n_rows, layout.n_cols,
             layout.tile_height, layout.tile_width)


if __name__ == "__main__":
    cli.run(main)

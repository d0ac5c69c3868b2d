"""Write the tile grid as GeoJSON (tile polygons with row/col, pixel window and
each scene's valid-pixel fraction after flattening), loadable in QGIS. No tile
rasters are copied; the fractions come from the rtc_flatten chunks."""

import argparse
import logging

import numpy as np

from sarstack import cli, io, options, rtc, stagefiles

log = logging.getLogger("rtc_tiles")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_tiles")
    p.add_argument("--grid", required=True, help="union grid JSON from rtc_select")
    p.add_argument("--out", required=True, help="output GeoJSON")
    p.add_argument("flat", nargs="+", help="rtc_flatten chunk JSONs")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)

    grid = stagefiles.read_grid(a.grid)
    layout = rtc.tile_layout(grid.shape, a.tiles)
    scenes, _ = stagefiles.read_flat(a.flat)
    valid = {s["date"]: np.asarray(s["valid"], dtype=float) for s in scenes}
    io.write_json(a.out, rtc.tiles_geojson(layout, grid, valid))
    log.info("%d x %d tiles of %d x %d px; %d scenes", layout.n_rows, layout.n_cols,
             layout.tile_height, layout.tile_width, len(valid))


if __name__ == "__main__":
    cli.run(main)

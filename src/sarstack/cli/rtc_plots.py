"""Plots of the RTC branch: per-pair offsets with error bars, per-tile temporal
mean maps, offsets against time and a tile quiver map (PNG)."""



import argparse

import numpy as np
import pandas as pd

from sarstack import cli, io, options, plots, stagefiles


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_plots")
    p.add_argument("--offsets", required=True, help="offsets.csv from rtc_aggregate")
    p.add_argument("--pairs", required=True, help="pairs.csv from rtc_aggregate")
    p.add_argument("--tiles", required=True, help="tiles.csv from rtc_aggregate")
    p.add_argument("--geojson", required=True, help="tile grid (for tile centres)")
    p.add_argument("--out-pair", required=True, help="PNG: per-pair offsets with the requirement")
    p.add_argument("--out-tile", required=True, help="PNG: per-tile temporal mean maps")
    p.add_argument("--out-time", required=True, help="PNG: offsets vs time")
    p.add_argument("--out-quiver", required=True,
                   help="PNG: each tile's departure from its pair's offset")
    p.add_argument("--threads", type=int, default=1,
                   help="processes drawing the figures side by side (the same PNGs)")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)

    offsets = stagefiles.read_offsets(a.offsets)
    pairs = stagefiles.read_pairs(a.pairs)
    tiles = pd.read_csv(a.tiles)
    layout = io.read_json(a.geojson)
    feats = layout["features"]
    centres = pd.DataFrame(
        [
            {
                "tile_row": f["properties"]["tile_row"],
                "tile_col": f["properties"]["tile_col"],
                "x": float(np.mean([c[0] for c in f["geometry"]["coordinates"][0][:4]])),
                "y": float(np.mean([c[1] for c in f["geometry"]["coordinates"][0][:4]])),
            }
            for f in feats
        ]
    )
    # The slowest figure first: with two processes, the tile maps in one and
    # the other three in the other take about the same time.
    plots.draw_figures([
        lambda: plots.tile_mean_maps(tiles, a.out_tile),
        lambda: plots.pair_offsets(pairs, a.out_pair, a.requirement_m),
        lambda: plots.tile_quiver(tiles, centres, a.out_quiver, crs=crs_name(layout)),
        lambda: plots.offsets_vs_time(offsets, pairs, a.out_time),
    ], workers=a.threads)  # fmt: skip


def crs_name(geojson: dict) -> str | None:
    """``"EPSG:32611"`` from a GeoJSON ``crs`` member (``urn:ogc:def:crs:EPSG::32611``), or None."""
    name = str(geojson.get("crs", {}).get("properties", {}).get("name", ""))
    if "EPSG::" in name:
        return "EPSG:" + name.rsplit("::", 1)[1]
    return name or None


if __name__ == "__main__":
    cli.run(main)

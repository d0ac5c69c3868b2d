"""Aggregate per-pair tile offsets: offsets.csv (pair x tile, tiles that
disagree with their pair or their neighbours marked as outliers), pairs.csv (robust
per-pair offset, spread, counts, status, pass/fail), tiles.csv (per tile over
time) and summary.csv (stack verdict against the requirement); with --layout
also the map-ready tiles.geojson (tile polygons with their offsets over time)
and tile_vectors.geojson (a point per tile and pair with its offset)."""

import argparse
import logging

import pandas as pd

from sarstack import cli, io, options, rtc, stagefiles
from sarstack.errors import SarstackError

log = logging.getLogger("rtc_aggregate")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_aggregate")
    p.add_argument("xcorr", nargs="+", help="per-pair CSVs from rtc_xcorr")
    p.add_argument("--offsets", required=True, help="offsets.csv to write (pair x tile)")
    p.add_argument("--pairs", required=True,
                   help="pairs.csv to write (per pair: offset, spread, status, passes)")
    p.add_argument("--tiles", required=True, help="tiles.csv to write (per tile over all pairs)")
    p.add_argument("--summary", required=True, help="summary.csv to write (the stack's verdict)")
    p.add_argument("--layout", help="tile_layout.geojson from rtc_tiles (for the two GeoJSON outputs)")
    p.add_argument("--out-geojson", help="tiles.geojson: tile polygons with offsets over time")
    p.add_argument("--out-vectors", help="tile_vectors.geojson: per tile and pair offsets")
    return p


def main(argv=None):
    parser = create_parser()
    a = parser.parse_args(argv)
    cli.setup_logging(a.verbose)
    if (a.out_geojson or a.out_vectors) and not a.layout:
        parser.error("--out-geojson and --out-vectors need --layout")
    layout = io.read_json(a.layout) if a.layout else None

    frames = []
    for f in a.xcorr:
        try:
            frames.append(stagefiles.read_table(f))
        except (OSError, pd.errors.ParserError) as e:
            raise SarstackError(f"{f}: cannot read ({e})") from None
    offsets = pd.concat(frames, ignore_index=True)
    offsets = offsets.sort_values(["reference_date", "secondary_date", "tile_row", "tile_col"])
    offsets = rtc.mark_outliers(offsets, sigma=a.outlier_sigma, floor_px=a.outlier_floor_px,
                                min_keep=a.min_ok_tiles)
    n_out = offsets["status"].isin([rtc.STATUS_OUT_CONSENSUS, rtc.STATUS_OUT_NEIGHBOURS]).sum()
    if n_out:
        log.info("%d tile offsets are outliers (%s), left out of their pairs", n_out,
                 ", ".join(f"{s}: {k}" for s, k in offsets["status"].value_counts().items()
                           if s.startswith("outlier")))  # fmt: skip
    pairs = rtc.aggregate_pairs(offsets, min_ok_tiles=a.min_ok_tiles, requirement_m=a.requirement_m)
    tiles = rtc.aggregate_tiles(offsets, pairs)
    summary = rtc.summarize(pairs, a.requirement_m, a.min_fraction_within)
    for _, r in pairs.iterrows():
        log.info("%s -> %s: %s east %.3f m north %.3f m (%d/%d tiles ok)", r.reference_date,
                 r.secondary_date, r.status, r.east_m, r.north_m, r.n_ok, r.n_tiles)
    log.info("verdict: %s", summary["verdict"].iloc[0])
    stagefiles.write_offsets(a.offsets, offsets)
    stagefiles.write_pairs(a.pairs, pairs)
    io.write_csv(a.tiles, tiles)
    io.write_csv(a.summary, summary)
    if layout is not None and a.out_geojson:
        io.write_json(a.out_geojson, rtc.tiles_offsets_geojson(layout, tiles))
    if layout is not None and a.out_vectors:
        io.write_json(a.out_vectors, rtc.tile_vectors_geojson(layout, offsets))


if __name__ == "__main__":
    cli.run(main)

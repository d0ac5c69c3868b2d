"""Terrain vs timing (rtc.dem / rtc.incidence): per pair, the ok tiles' offsets
regressed on the tiles' terrain term (h cot(theta), h or cot(theta)) plus a
constant; the constant is the timing/orbit part, the rest is explained by the
terrain (as a DEM error would be). Writes terrain_split.csv: one row per pair
and per date (both parts inverted over the pair network)."""

import argparse
import logging

from sarstack import cli, io, options, rtc, stagefiles, terrain

log = logging.getLogger("rtc_terrain")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_terrain")
    p.add_argument("--offsets", required=True, help="offsets.csv of rtc_aggregate (pair x tile)")
    p.add_argument("--grid", required=True, help="union grid JSON of rtc_select")
    p.add_argument("--stack", default=None,
                   help="the stack's name, for {stack} in --dem/--incidence")
    p.add_argument("--out", required=True, help="terrain_split.csv")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)

    def named(path):
        return path.replace("{stack}", a.stack or "") if path else None

    grid = stagefiles.read_grid(a.grid)
    layout = rtc.tile_layout(grid.shape, a.tiles)
    term, units = terrain.tile_terrain_term(grid, layout, dem=named(a.dem),
                                            incidence=named(a.incidence))  # fmt: skip
    pairs = terrain.split_pairs(stagefiles.read_offsets(a.offsets), term, units)
    table = terrain.split_pairs_and_dates(pairs)
    io.write_csv(a.out, table)
    last = table[table["scope"] == "date"].iloc[-1]
    log.info("terrain split over %d pairs; last date %s: timing east %.2f north %.2f m,"
             " terrain-explained east %.2f north %.2f m", len(pairs), last.secondary_date,
             last.east_timing_m, last.north_timing_m, last.east_terrain_m, last.north_terrain_m)  # fmt: skip


if __name__ == "__main__":
    cli.run(main)

"""Select RTC scenes: glob (recursive), date each file by the first YYYYMMDD in
its name, sort chronologically, refuse (or drop) scenes off the stack's
footprint, and write the scene table (with each file's size and mtime) and the
union grid."""

import argparse
import logging

from sarstack import cli, io, options, rtc, stagefiles
from sarstack.errors import SarstackError

log = logging.getLogger("rtc_select")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_select")
    p.add_argument("--inputs", required=True, help="recursive glob of RTC GeoTIFFs ('**' allowed)")
    p.add_argument("--key", default=None,
                   help="the config key of the glob, named in errors (the workflow passes "
                        "rtc.inputs or rtc.stacks.NAME)")
    p.add_argument("--scenes", required=True, help="output CSV: date, key, path")
    p.add_argument("--grid", required=True, help="output JSON: union grid of all scenes")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)

    try:
        scenes = rtc.select_scenes(rtc.find_scenes(a.inputs), a.inputs)
    except SarstackError as e:
        raise SarstackError(f"{a.key or '--inputs'}: {e}") from None
    grids = [io.read_grid(s.path, single_band=True) for s in scenes]
    for s, g in zip(scenes, grids, strict=True):
        if g.crs is None:
            raise SarstackError(f"{s.path}: no CRS; an RTC scene must be georeferenced")
    scenes, grids = _placed(scenes, grids, a.misplaced == "drop")
    grid = rtc.union_grid(grids)
    rtc.check_union_size(grid, grids, [s.path for s in scenes])
    if a.tiles:
        rtc.tile_layout(grid.shape, a.tiles)  # too many tiles for the grid: error now
    on_grid = sum(rtc.grid_offset(g, grid) is not None for g in grids)
    log.info(
        "%d scenes %s .. %s; union grid %d x %d px of %.6g x %.6g; %d on the first scene's "
        "pixel grid (padded), %d to reproject",
        len(scenes), scenes[0].date, scenes[-1].date, grid.height, grid.width,
        *grid.pixel_size, on_grid, len(scenes) - on_grid,
    )
    stagefiles.write_grid(a.grid, grid)
    stagefiles.write_scenes(a.scenes, scenes)


def _placed(scenes: list, grids: list, drop: bool) -> tuple[list, list]:
    """The scenes on the stack's footprint: a misplaced one is an error naming it,
    or with ``drop`` left out with a warning (at least two must remain)."""
    bad = rtc.misplaced_scenes(grids, [s.path for s in scenes])
    if not bad:
        return scenes, grids
    lines = [rtc.misplaced_message(grids[k], scenes[k].path, grids) for k in bad]
    if not drop:
        more = f" ({len(bad) - 1} more such scenes)" if len(bad) > 1 else ""
        raise SarstackError(f"{lines[0]}{more}; fix or remove it, or set rtc.misplaced: drop "
                            "to leave such scenes out")  # fmt: skip
    for line in lines:
        log.warning("%s; left out (rtc.misplaced: drop)", line)
    keep = [k for k in range(len(scenes)) if k not in set(bad)]
    if len(keep) < 2:
        raise SarstackError(f"only {len(keep)} scene left after leaving out {len(bad)} misplaced "
                            "(rtc.misplaced: drop); need at least 2")  # fmt: skip
    return [scenes[k] for k in keep], [grids[k] for k in keep]


if __name__ == "__main__":
    cli.run(main)

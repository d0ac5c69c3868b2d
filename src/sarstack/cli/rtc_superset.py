"""Put one chunk of RTC scenes on the union grid. A scene already on the
grid's pixel lattice gets a VRT that pads it with NaN (nothing is copied or
resampled: resampling would itself shift it); any other scene is reprojected
to a COG. Nodata → NaN either way: the file's nodata tag and an undeclared
fill value (a repeated impossible value such as a -9999 or 0 border, found
on a decimated read and warned about), or --nodata (rtc.nodata). Writes OUT_DIR/{YYYYMMDD}.vrt|.tif and
OUT_DIR/index.csv."""

import argparse
import logging
from pathlib import Path

from sarstack import chunks, cli, io, options, rtc, stagefiles

log = logging.getLogger("rtc_superset")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_superset")
    p.add_argument("--scenes", required=True, help="scene table from rtc_select")
    p.add_argument("--grid", required=True, help="union grid JSON from rtc_select")
    p.add_argument("--chunk", required=True, help="I-of-N: this job's share of the dates")
    p.add_argument("--out-dir", required=True, help="folder for this chunk's scenes")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)

    grid = stagefiles.read_grid(a.grid)
    scenes = stagefiles.read_scenes(a.scenes)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in chunks.chunk_items(scenes, a.chunk):
        src, day = s["path"], s["date"]
        fill = rtc.scene_fill(src, a.scale, a.nodata)
        if rtc.grid_offset(io.read_grid(src), grid) is not None and rtc.vrt_possible(src, fill):
            dst, mode = out / f"{s['key']}.vrt", "padded"
            rtc.superset_vrt(src, dst, grid, fill=fill)
        else:
            dst = out / f"{s['key']}.tif"
            mode = rtc.superset_scene(
                src, dst, grid, block_shape=a.block, resampling=a.resampling,
                tags={"date": day, "start_date": day, "end_date": day, "source": Path(src).name},
                fill=fill,
            )
        # The source's fingerprint (rtc_select) is carried on: a VRT of a scene
        # rewritten in place is the same text, and this index must still change.
        rows.append({"date": day, "key": s["key"], "path": str(dst), "mode": mode, "source": src,
                     "fingerprint": s.get("fingerprint", ""),
                     "fill": "" if fill is None else repr(fill)})
        log.info("%s (%s): %s onto %d x %d grid", Path(src).name, day, mode,
                 grid.height, grid.width)
    io.write_rows(out / "index.csv", rows)


if __name__ == "__main__":
    cli.run(main)

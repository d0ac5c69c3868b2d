"""Flatten one chunk of scenes: each scene's own NaN-aware low/high percentile
bounds (values outside become NaN when read for correlation) and every tile's
valid fraction after flattening. No flattened copy is written: the bounds are
applied on the fly by rtc_xcorr. Beside each big scene's superset VRT it
leaves the scene decimated to at most 1024 px a side (``.strideN.npy``, at
most 4 MB), which rtc_xcorr's coarse offset would otherwise read the whole
scene for."""

import argparse
import logging

from sarstack import cli, io, options, rtc, stagefiles
from sarstack.errors import SarstackError

log = logging.getLogger("rtc_flatten")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_flatten")
    p.add_argument("--superset", required=True, help="index.csv of one rtc_superset chunk")
    p.add_argument("--grid", required=True, help="union grid JSON from rtc_select")
    p.add_argument("--out", required=True, help="output JSON: bounds and tile valid fractions")
    p.add_argument("--threads", type=int, default=1, help="scenes flattened side by side")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)

    grid = stagefiles.read_grid(a.grid)
    layout = rtc.tile_layout(grid.shape, a.tiles)
    # A decimated copy of each big scene for rtc_xcorr's coarse offset, from
    # the pass that samples it anyway (a scene of at most 1024 px a side is
    # read whole there: nothing to save).
    stride = rtc.coarse_stride(grid.shape)

    def flatten(s: dict) -> dict:
        coarse = rtc.coarse_cache_path(s["path"], stride) if stride > 1 else None
        try:
            lo, hi, valid = rtc.flatten_stats(s["path"], a.percentiles, layout,
                                              block_shape=a.block, scale=a.scale,
                                              source=s["source"], coarse_path=coarse)
        except SarstackError as e:  # name the input file, not its superset VRT
            raise SarstackError(str(e).replace(s["path"], s["source"])) from None
        log.info("%s: kept linear power in [%.4g, %.4g] (percentiles %g..%g); mean tile valid "
                 "fraction %.3f", s["date"], lo, hi, *a.percentiles, valid.mean())
        return {"date": s["date"], "key": s["key"], "path": s["path"],
                "source": s["source"], "fingerprint": s.get("fingerprint", ""),
                "low": lo, "high": hi, "valid": valid.round(6).tolist()}

    # Each scene on its own; the reads and sorts release the GIL, and map
    # keeps the scenes' order, so the JSON is the same for every thread count.
    rows = io.read_rows(a.superset)
    if a.threads > 1 and len(rows) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(a.threads, len(rows))) as pool:
            scenes = list(pool.map(flatten, rows))
    else:
        scenes = [flatten(s) for s in rows]
    stagefiles.write_flat(a.out, a.percentiles, a.scale, scenes)


if __name__ == "__main__":
    cli.run(main)

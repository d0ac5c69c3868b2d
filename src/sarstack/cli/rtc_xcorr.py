"""Measure the geolocation offsets of one chunk of scene pairs: sub-pixel phase
correlation of every tile (tiles batched), converted to metres east/north of
the secondary relative to the reference. One process handles many pairs, so
start-up is paid once per chunk, not once per pair."""

import argparse
import logging

import pandas as pd

from sarstack import chunks, cli, io, options, rtc, stagefiles
from sarstack import network as snet
from sarstack.errors import SarstackError

log = logging.getLogger("rtc_xcorr")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "rtc_xcorr")
    p.add_argument("--flat", nargs="+", required=True, help="rtc_flatten chunk JSONs (all)")
    p.add_argument("--grid", required=True, help="union grid JSON from rtc_select")
    p.add_argument("--chunk", required=True,
                   help="I-of-N: this job's share of the pairs' tile rows")
    p.add_argument("--out", required=True, help="output CSV, one row per pair and tile")
    p.add_argument("--threads", type=int, default=1, help="threads for the tile batches")
    p.add_argument("--out-injected", default=None,
                   help="also measure the pairs with a known shift injected into every scene"
                        " (rtc.injection) and write that table here")
    p.add_argument("--inject-max-shift-px", type=float, default=None,
                   help="with --out-injected: largest injected shift per axis (px)")
    p.add_argument("--inject-seed", type=int, default=None,
                   help="with --out-injected: seed of the injected shifts")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)

    scenes, scale = stagefiles.read_flat(a.flat)
    layout = rtc.tile_layout(stagefiles.read_grid(a.grid).shape, a.tiles)
    try:
        network = snet.make_pairs(len(scenes), a.pairs)
    except SarstackError as e:
        raise SarstackError(f"rtc.pairs: {e}") from None
    # The chunk's share of the pairs' tile rows: the same work in every chunk.
    share = chunks.chunk_parts(len(network), layout.n_rows, a.chunk)
    pairs = [network[k] for k, _ in share]
    log.info("%d pairs (chunk %s); %d x %d tiles of %d x %d px, upsample %d, preprocess %s",
             len(pairs), a.chunk, layout.n_rows, layout.n_cols, layout.tile_height,
             layout.tile_width, a.upsample_factor, a.preprocess)
    used = sorted({k for pair in pairs for k in pair})
    index = {k: n for n, k in enumerate(used)}

    def measure(inject: list[tuple[float, float]] | None) -> pd.DataFrame:
        try:
            frames = rtc.measure_pairs(
                [scenes[k]["path"] for k in used], [(index[i], index[j]) for i, j in pairs],
                layout, clips=[(scenes[k]["low"], scenes[k]["high"]) for k in used],
                upsample_factor=a.upsample_factor, max_nan_fraction=a.max_nan_fraction,
                preprocess=a.preprocess, min_quality=a.min_quality, max_shift_px=a.max_shift_px,
                iterations=0 if a.preprocess == "notebook" else a.refine_iterations,
                max_batch_pixels=4 * a.block[0] * a.block[1], scale=scale,
                threads=max(1, a.threads), inject=inject, tile_rows=[rows for _, rows in share],
            )  # fmt: skip
        except SarstackError as e:  # name the input files, not their superset VRTs
            msg = str(e)
            for k in used:
                msg = msg.replace(scenes[k]["path"], scenes[k].get("source", scenes[k]["path"]))
            raise SarstackError(msg) from None
        for (i, j), df in zip(pairs, frames, strict=True):
            ref, sec = scenes[i], scenes[j]
            df.insert(0, "secondary_date", sec["date"])
            df.insert(0, "reference_date", ref["date"])
            if inject is None:
                log.info("pair %s -> %s: %s", ref["date"], sec["date"],
                         df["status"].value_counts().to_dict())  # fmt: skip
        return pd.concat(frames, ignore_index=True)

    offsets = measure(None)
    if a.out_injected:
        if a.inject_max_shift_px is None or a.inject_seed is None:
            raise SarstackError("--out-injected needs --inject-max-shift-px and --inject-seed")
        log.info("injection-recovery: the same pairs with shifts of up to %g px injected",
                 a.inject_max_shift_px)
        shifts = [rtc.injected_shift(scenes[k]["date"], a.inject_max_shift_px, a.inject_seed)
                  for k in used]  # fmt: skip
        injected = measure(shifts)
    io.write_csv(a.out, offsets)
    if a.out_injected:
        io.write_csv(a.out_injected, injected)


if __name__ == "__main__":
    cli.run(main)

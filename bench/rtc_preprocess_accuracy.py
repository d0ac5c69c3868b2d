"""Which tile preprocessing is most accurate? Measured on synthetic truth.

Generates synthetic RTC stacks with known per-date shifts (sarstack.synthetic),
runs the same select -> superset -> flatten -> tiles -> measure chain as the
workflow for each preprocessing preset, and prints per-tile and per-pair errors
(pixels) against the truth. Usage:

    python bench/rtc_preprocess_accuracy.py [--seeds 3] [--shape 320 320] [--tiles 8 8]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from _common import schema_kwargs

from sarstack import io, rtc, synthetic, xcorr
from sarstack import network as snet
from sarstack.jaxcfg import configure_jax


def run_stack(tmp: Path, seed: int, shape, tiles, uf: int, looks: float) -> list[dict]:
    truth = synthetic.make_rtc_stack(
        tmp / "stack", n_dates=5, shape=shape, seed=seed, looks=looks
    )
    scenes = rtc.select_scenes(rtc.find_scenes(str(tmp / "stack" / "**" / "*_VV.tif")))
    grid = rtc.union_grid([io.read_grid(s.path) for s in scenes])
    flats = []
    for k, s in enumerate(scenes):
        sup, flat = tmp / f"sup{k}.tif", tmp / f"flat{k}.tif"
        rtc.superset_scene(s.path, sup, grid, **schema_kwargs("block_shape", "rtc.resampling"))
        rtc.flatten_scene(sup, flat, (1, 99), **schema_kwargs("block_shape"))
        flats.append(flat)
    layout = rtc.tile_layout(grid.shape, tiles)
    px = grid.pixel_size[0]
    rows = []
    for i, j in snet.make_pairs(len(scenes), "sequential"):
        true_e = (truth.east_m[j] - truth.east_m[i]) / px
        true_n = (truth.north_m[j] - truth.north_m[i]) / px
        for preset, iterations in [(p, it) for p in xcorr.PRESETS for it in (0, 1)]:
            df = rtc.measure_pair(
                flats[i], flats[j], layout, upsample_factor=uf, preprocess=preset,
                iterations=iterations,
                **schema_kwargs("rtc.max_nan_fraction", "rtc.min_quality", "rtc.max_shift_px",
                                "rtc.scale"),
            )
            ok = df[df.status == "ok"]
            err_e = ok.east_m / px - true_e
            err_n = ok.north_m / px - true_n
            pair = rtc.aggregate_pairs(
                df.assign(reference_date="a", secondary_date="b"), min_ok_tiles=1, requirement_m=None
            ).iloc[0]
            rows.append(
                {
                    "seed": seed,
                    "pair": f"{i}-{j}",
                    "preset": f"{preset} iter={iterations}",
                    "n_ok": len(ok),
                    "tile_rmse_px": float(np.sqrt(np.mean(np.r_[err_e, err_n] ** 2))),
                    "pair_err_px": float(
                        max(abs(pair.east_m / px - true_e), abs(pair.north_m / px - true_n))
                    ),
                }
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--shape", type=int, nargs=2, default=[320, 320])
    ap.add_argument("--tiles", type=int, nargs=2, default=[8, 8])
    ap.add_argument("--upsample", type=int, default=10)
    ap.add_argument("--looks", type=float, default=8.0)
    a = ap.parse_args()
    configure_jax()
    rows = []
    for seed in range(a.seeds):
        with tempfile.TemporaryDirectory() as d:
            rows += run_stack(Path(d), seed, tuple(a.shape), a.tiles, a.upsample, a.looks)
    df = pd.DataFrame(rows)
    summary = df.groupby("preset").agg(
        tiles_ok=("n_ok", "mean"),
        tile_rmse_px=("tile_rmse_px", "median"),
        pair_err_median_px=("pair_err_px", "median"),
        pair_err_max_px=("pair_err_px", "max"),
    )
    print(summary.sort_values("pair_err_max_px").to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()

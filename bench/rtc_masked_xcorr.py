"""Is masked correlation more accurate than today's NaN handling on partially
valid tiles? Measured on synthetic truth (issue 27 item 5).

Today (``sarstack.xcorr``, preset ``default``): a tile's invalid pixels are set
to its valid mean (0 after mean removal), the tile is Tukey-tapered and
cross-correlated (upsampled DFT, parabolic refinement, one re-centring pass).
The alternative: normalised cross-correlation over the pixels valid in both
tiles at each lag (Padfield, "Masked object registration in the Fourier
domain", IEEE TIP 2012; what ``skimage.registration.phase_cross_correlation``
does with ``reference_mask``), with a parabolic refinement of its integer
peak. Synthetic stacks (``sarstack.synthetic``, slanted nodata wedges, frames
moving by up to ``--jitter`` px on the union grid) are supersetted as the
workflow does; no percentile clipping, so that the only invalid pixels are
the wedges and the frame edges. Every tile of every sequential pair is
measured both ways; per-tile error against the truth (px, RMS of the two
components) by the tiles' valid fraction (the smaller of the two scenes').
The masked method is also run on fully valid tiles: its own error there is
the floor of what it can gain.

    PYTHONPATH=src .venv/bin/python bench/rtc_masked_xcorr.py [--seeds 3] [--tiles 6 6]
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


def masked_ncc_shift(ref: np.ndarray, mov: np.ndarray, max_shift: float,
                     min_overlap: float = 0.5) -> np.ndarray:  # fmt: skip
    """Shift (skimage convention) of one tile pair by masked NCC (NaN = invalid)."""
    h, w = ref.shape
    s = (2 * h, 2 * w)
    ma, mb = np.isfinite(ref).astype(float), np.isfinite(mov).astype(float)
    a = np.where(ma > 0, 10 * np.log10(np.maximum(np.nan_to_num(ref), 1e-10)), 0.0)
    b = np.where(mb > 0, 10 * np.log10(np.maximum(np.nan_to_num(mov), 1e-10)), 0.0)
    fa, fb = np.fft.rfft2(a, s), np.fft.rfft2(b, s)
    fma, fmb = np.fft.rfft2(ma, s), np.fft.rfft2(mb, s)
    fa2, fb2 = np.fft.rfft2(a * a, s), np.fft.rfft2(b * b, s)

    def c(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # sum_x X(x + u) Y(x)
        return np.fft.irfft2(x * np.conj(y), s)

    n = np.maximum(np.round(c(fma, fmb)), 1.0)
    sa, sb = c(fa, fmb), c(fma, fb)
    num = c(fa, fb) - sa * sb / n
    va = c(fa2, fmb) - sa * sa / n
    vb = c(fma, fb2) - sb * sb / n
    with np.errstate(invalid="ignore", divide="ignore"):
        ncc = num / np.sqrt(np.maximum(va * vb, 1e-30))
    lag_r = np.fft.fftfreq(s[0], 1 / s[0])[:, None]
    lag_c = np.fft.fftfreq(s[1], 1 / s[1])[None, :]
    ok = (n >= min_overlap * min(ma.sum(), mb.sum())) & (np.hypot(lag_r, lag_c) <= max_shift)
    ncc = np.where(ok & np.isfinite(ncc), ncc, -np.inf)
    k = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    sub = []
    for ax in (0, 1):
        lo, hi = list(k), list(k)
        lo[ax] = (k[ax] - 1) % s[ax]
        hi[ax] = (k[ax] + 1) % s[ax]
        y0, y1, y2 = ncc[tuple(lo)], ncc[k], ncc[tuple(hi)]
        d = y0 - 2 * y1 + y2
        sub.append(0.5 * (y0 - y2) / d if np.isfinite(d) and d < 0 else 0.0)
    # ncc peaks at the lag u where ref(x + u) matches mov(x): moving mov by u
    # registers it onto ref, which is skimage's shift (checked against the truth).
    return np.array([lag_r[k[0], 0] + sub[0], lag_c[0, k[1]] + sub[1]])


def run_stack(tmp: Path, seed: int, shape, tiles, jitter: int) -> list[dict]:
    truth = synthetic.make_rtc_stack(tmp / "stack", n_dates=4, shape=shape, seed=seed,
                                     frame_jitter_px=jitter, looks=8.0)  # fmt: skip
    scenes = rtc.select_scenes(rtc.find_scenes(str(tmp / "stack" / "**" / "*_VV.tif")))
    grid = rtc.union_grid([io.read_grid(s.path) for s in scenes])
    layout = rtc.tile_layout(grid.shape, tiles)
    stacks = []
    for k, s in enumerate(scenes):
        sup = tmp / f"sup{k}.tif"
        rtc.superset_scene(s.path, sup, grid, **schema_kwargs("block_shape", "rtc.resampling"))
        stacks.append(np.concatenate([rtc.tile_stack(rtc.read_scene(sup, layout.band_window(r), scale="power"),
                                                     layout) for r in range(layout.n_rows)]))
    px = grid.pixel_size[0]
    rows = []
    pre = dict(xcorr.PRESETS["default"])
    for i, j in snet.make_pairs(len(scenes), "sequential"):
        # skimage convention: minus the displacement (rows: north is up).
        true = np.array([(truth.north_m[j] - truth.north_m[i]) / px,
                         -(truth.east_m[j] - truth.east_m[i]) / px])  # fmt: skip
        ref, mov = stacks[i], stacks[j]
        valid = np.minimum(np.isfinite(ref).mean(axis=(1, 2)), np.isfinite(mov).mean(axis=(1, 2)))
        today = xcorr.register_tiles(ref, mov, upsample_factor=10, iterations=1,
                                     interpolate=True, **pre)["shift"]  # fmt: skip
        for t in np.flatnonzero(valid >= 0.5):
            m = masked_ncc_shift(ref[t], mov[t], max_shift=min(ref.shape[1:]) / 4)
            rows.append({"seed": seed, "pair": f"{i}-{j}", "valid": float(valid[t]),
                         "err_today": today[t] - true, "err_masked": m - true})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--shape", type=int, nargs=2, default=[384, 384])
    ap.add_argument("--tiles", type=int, nargs=2, default=[6, 6])
    ap.add_argument("--jitter", type=int, default=12)
    a = ap.parse_args()
    rows = []
    for seed in range(a.seeds):
        with tempfile.TemporaryDirectory() as d:
            rows += run_stack(Path(d), seed, tuple(a.shape), tuple(a.tiles), a.jitter)
    df = pd.DataFrame(rows)
    bins = [0.5, 0.75, 0.9, 0.95, 0.999, 1.0]
    df["bin"] = pd.cut(df["valid"], bins, right=False).astype(str)
    df.loc[df["valid"] == 1.0, "bin"] = "1 (fully valid)"

    def rms(col: pd.Series) -> float:
        e = np.stack(col.to_numpy())
        return float(np.sqrt(np.mean(e**2)))

    print("| valid fraction | tiles | RMS error px, today | masked NCC |\n|---|---|---|---|")
    for b, g in df.groupby("bin", sort=True):
        print(f"| {b} | {len(g)} | {rms(g['err_today']):.3f} | {rms(g['err_masked']):.3f} |")


if __name__ == "__main__":
    main()

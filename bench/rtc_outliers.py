"""The outlier-tile test (rtc.outlier_sigma, rtc.outlier_floor_px) on measured
tile tables: how many tiles it rejects on a clean stack, and how much it
protects the pair offsets when a few tiles are given a wrong offset.

Reads a run's ``rtc/offsets.csv`` and ``rtc/grid.json`` (any run: the demo,
an OPERA burst). For each (sigma, floor):

- clean: tiles rejected (of the ok ones) and the largest change of a pair
  offset against no test (px);
- corrupted: in every pair, ``--bad`` of the ok tiles (at least one) get an
  extra offset of ``A`` px in a random direction; the pair offsets' RMS error
  against the clean run without the test (px), without and with the test, and
  the share of corrupted tiles rejected;
- ramp: the same, on top of a smooth offset ramp of ``--ramp`` px across
  the tile grid in every pair (a rotation or terrain-like field), which
  inflates the consensus spread: what the neighbour test is for. The pair
  error is not given there: the mean of a ramp depends on which tiles are
  left, whether or not they were corrupted.

The last column counts the uncorrupted tiles the test rejected in the
corrupted stacks (their neighbours' median or the consensus moved).

    PYTHONPATH=src .venv/bin/python bench/rtc_outliers.py RUN_DIR [--bad 0.1] [--seeds 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from sarstack import rtc, stagefiles

KEYS = ["reference_date", "secondary_date"]


def pair_px(offsets: pd.DataFrame, res: tuple[float, float]) -> np.ndarray:
    """Pair offsets (east, north) in px, NaN for unreliable pairs."""
    p = rtc.aggregate_pairs(offsets, min_ok_tiles=3, requirement_m=None)
    return np.stack([p["east_m"].to_numpy() / res[0], p["north_m"].to_numpy() / res[1]], axis=1)


def move(offsets: pd.DataFrame, mask: np.ndarray, de: np.ndarray, dn: np.ndarray,
         res: tuple[float, float]) -> pd.DataFrame:  # fmt: skip
    """Tiles ``mask`` moved by (de, dn) px east and north (north-up grid)."""
    out = offsets.copy()
    out.loc[mask, "east_m"] += de * res[0]
    out.loc[mask, "d_col_px"] += de
    out.loc[mask, "north_m"] += dn * res[1]
    out.loc[mask, "d_row_px"] -= dn
    return out


def corrupt(offsets: pd.DataFrame, rng: np.random.Generator, frac: float, amp: float,
            res: tuple[float, float]) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """``frac`` of each pair's ok tiles (at least one) moved by ``amp`` px."""
    bad = np.zeros(len(offsets), dtype=bool)
    for _, idx in offsets.groupby(KEYS, sort=True).indices.items():
        ok = idx[(offsets["status"].to_numpy()[idx] == "ok")]
        if len(ok) >= rtc.MIN_OUTLIER_TILES:
            bad[rng.choice(ok, max(1, round(frac * len(ok))), replace=False)] = True
    ang = rng.uniform(0, 2 * np.pi, int(bad.sum()))
    return move(offsets, bad, amp * np.cos(ang), amp * np.sin(ang), res), bad


def ramp(offsets: pd.DataFrame, total: float, res: tuple[float, float]) -> pd.DataFrame:
    """A ramp of ``total`` px east over the tile rows and north over the columns."""
    r = offsets["tile_row"].to_numpy(float)
    c = offsets["tile_col"].to_numpy(float)
    de = total * r / max(r.max(), 1)
    dn = total * c / max(c.max(), 1)
    return move(offsets, np.ones(len(offsets), bool), de, dn, res)


def rms(err: np.ndarray) -> float:
    err = err[np.isfinite(err).all(axis=1)]
    return float(np.sqrt(np.mean(np.sum(err**2, axis=1))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", type=Path, help="a run's output_dir")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[3.0, 4.0, 5.0])
    ap.add_argument("--floors", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--amps", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    ap.add_argument("--bad", type=float, default=0.1, help="share of ok tiles corrupted per pair")
    ap.add_argument("--ramp", type=float, default=1.0, help="ramp across the tile grid (px)")
    ap.add_argument("--seeds", type=int, default=20)
    a = ap.parse_args()
    offsets = stagefiles.read_table(a.run / "rtc" / "offsets.csv")
    offsets = offsets.sort_values(KEYS + ["tile_row", "tile_col"], ignore_index=True)
    t = stagefiles.read_grid(a.run / "rtc" / "grid.json").transform
    res = (abs(t.a), abs(t.e))
    clean = pair_px(offsets, res)
    n_ok = int((offsets["status"] == "ok").sum())
    print(f"{a.run}: {len(clean)} pairs, {n_ok} ok tiles")
    print("| sigma | floor px | clean: rejected | clean: max pair change px | case | A px"
          " | pair RMS err px, no test | with test | corrupted tiles rejected"
          " | other tiles rejected |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for sigma in a.sigmas:
        for floor in a.floors:
            marked = rtc.mark_outliers(offsets, sigma=sigma, floor_px=floor, min_keep=3)
            rej = int((marked["status"] != offsets["status"]).sum())
            change = np.nanmax(np.abs(pair_px(marked, res) - clean))
            head = f"| {sigma:g} | {floor:g} | {rej}/{n_ok} | {change:.4f} |"
            for case in ("corrupted", "ramp"):
                base = ramp(offsets, a.ramp, res) if case == "ramp" else offsets
                ref = pair_px(base, res)
                for amp in a.amps:
                    e0, e1, hit, n_bad, other = [], [], 0, 0, 0
                    for seed in range(a.seeds):
                        bad_off, bad = corrupt(base, np.random.default_rng(seed), a.bad, amp, res)
                        m = rtc.mark_outliers(bad_off, sigma=sigma, floor_px=floor, min_keep=3)
                        e0.append(pair_px(bad_off, res) - ref)
                        e1.append(pair_px(m, res) - ref)
                        hit += int((m["status"].to_numpy()[bad] != "ok").sum())
                        other += int((m["status"] != bad_off["status"]).to_numpy()[~bad].sum())
                        n_bad += int(bad.sum())
                    errs = (f"{rms(np.concatenate(e0)):.4f} | {rms(np.concatenate(e1)):.4f}"
                            if case == "corrupted" else "- | -")
                    print(f"{head} {case} | {amp:g} | {errs} | {hit / n_bad:.2f} |"
                          f" {other / a.seeds:.1f} per stack |")
                    head = "| | | | |"


if __name__ == "__main__":
    main()

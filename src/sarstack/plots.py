"""Matplotlib figures for both branches (headless, Agg backend).

Each function takes tidy DataFrames and writes one PNG atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sarstack.io import atomic_output  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> None:
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)


def pair_offsets(pairs: pd.DataFrame, path: str | Path, requirement_m: float | None = None) -> None:
    """Per-pair robust offset (east, north) with spread as error bars."""
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(pairs) + 3), 4))
    x = np.arange(len(pairs))
    labels = [f"{r}\n{s}" for r, s in zip(pairs["reference_date"], pairs["secondary_date"], strict=True)]
    ax.errorbar(x - 0.1, pairs["east_m"], yerr=pairs["east_spread_m"], fmt="o", capsize=3, label="east")
    ax.errorbar(x + 0.1, pairs["north_m"], yerr=pairs["north_spread_m"], fmt="s", capsize=3, label="north")
    bad = pairs["status"] != "ok"
    for xi in x[bad.to_numpy()]:
        ax.axvspan(xi - 0.5, xi + 0.5, color="0.85", zorder=0)
    if requirement_m:
        for s in (-1, 1):
            ax.axhline(s * requirement_m, ls="--", color="tab:red", lw=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(x, labels, rotation=90, fontsize=7)
    ax.set_ylabel("offset of secondary vs reference (m)")
    ax.set_title("Per-pair geolocation offset (robust mean of ok tiles; grey = unreliable)")
    ax.legend()
    _save(fig, path)


def tile_mean_maps(tiles: pd.DataFrame, path: str | Path) -> None:
    """Temporal mean east and north offset of each tile, as two maps."""
    n_r, n_c = int(tiles["tile_row"].max()) + 1, int(tiles["tile_col"].max()) + 1
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    vals = {}
    for comp in ("east", "north"):
        grid = np.full((n_r, n_c), np.nan)
        grid[tiles["tile_row"], tiles["tile_col"]] = tiles[f"{comp}_mean_m"]
        vals[comp] = grid
    vmax = np.nanmax(np.abs(np.concatenate([v.ravel() for v in vals.values()])), initial=0) or 1.0
    for ax, comp in zip(axes, ("east", "north"), strict=True):
        im = ax.imshow(vals[comp], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(f"mean {comp} offset (m)")
        ax.set_xlabel("tile column")
        ax.set_ylabel("tile row")
        fig.colorbar(im, ax=ax, shrink=0.8)
    _save(fig, path)


def offsets_vs_time(offsets: pd.DataFrame, pairs: pd.DataFrame, path: str | Path) -> None:
    """Per-tile ok offsets (dots) and per-pair medians (lines) against secondary date."""
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ok = offsets[offsets["status"] == "ok"]
    for ax, comp in zip(axes, ("east", "north"), strict=True):
        ax.plot(pd.to_datetime(ok["secondary_date"]), ok[f"{comp}_m"], ".", alpha=0.3, ms=3,
                label="ok tiles")
        good = pairs[pairs["status"] == "ok"]
        ax.plot(pd.to_datetime(good["secondary_date"]), good[f"{comp}_m"], "o-", color="k",
                label="pair median")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel(f"{comp} (m)")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("secondary date")
    axes[0].set_title("Geolocation offsets against time")
    fig.autofmt_xdate()
    _save(fig, path)


def tile_quiver(tiles: pd.DataFrame, centres: pd.DataFrame, path: str | Path) -> None:
    """Arrows of each tile's mean anomaly (tile minus pair offset) at its centre."""
    df = tiles.merge(centres, on=["tile_row", "tile_col"])
    ue, un = ("east_anomaly_m", "north_anomaly_m") if "east_anomaly_m" in df else (
        "east_mean_m", "north_mean_m")
    fig, ax = plt.subplots(figsize=(7, 6.5))
    good = df[np.isfinite(df[ue]) & np.isfinite(df[un])]
    bad = df[~df.index.isin(good.index)]
    x0, y0 = float(df["x"].min()), float(df["y"].min())
    ax.plot((bad["x"] - x0) / 1e3, (bad["y"] - y0) / 1e3, "x", color="0.6", label="no ok offset")
    if len(good):
        mag = np.hypot(good[ue], good[un])
        ref = float(np.nanmax(mag)) or 1.0
        q = ax.quiver((good["x"] - x0) / 1e3, (good["y"] - y0) / 1e3, good[ue], good[un], mag,
                      cmap="viridis", angles="uv")
        ax.quiverkey(q, 0.1, -0.12, ref, f"{ref:.2g} m", labelpos="E")
        fig.colorbar(q, ax=ax, shrink=0.8, label="|anomaly| (m)")
    ax.set_aspect("equal")
    ax.set_xlabel(f"easting - {x0:.0f} (km)")
    ax.set_ylabel(f"northing - {y0:.0f} (km)")
    ax.set_title("Tile offset minus pair offset, mean over ok pairs")
    if len(bad):
        ax.legend(loc="upper right", fontsize=8, bbox_to_anchor=(1.0, -0.06))
    _save(fig, path)


def velocity_map(
    vel: np.ndarray, ref_rc: tuple[int, int], units: str, path: str | Path,
    points: dict[str, tuple[int, int]] | None = None,
) -> None:
    """Velocity raster with the reference point (star) and sample points."""
    fig, ax = plt.subplots(figsize=(7, 6))
    finite = vel[np.isfinite(vel)]
    vmax = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    im = ax.imshow(vel, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label=f"LOS velocity ({units}), + towards radar")
    ax.plot(ref_rc[1], ref_rc[0], "k*", ms=14, mfc="yellow", label="reference")
    for name, (r, c) in (points or {}).items():
        ax.plot(c, r, "ko", mfc="none", ms=9)
        ax.annotate(name, (c, r), xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title("Velocity")
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def point_series(
    dates: list, series: dict[str, np.ndarray], units: str, path: str | Path
) -> None:
    """Displacement against time at a few pixels."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    t = pd.to_datetime([str(d) for d in dates])
    for name, y in series.items():
        ax.plot(t, y, "o-", ms=4, label=name)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel(f"LOS displacement ({units}), + towards radar")
    ax.set_title("Displacement time series")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    _save(fig, path)


def network(dates: list, pairs: list[tuple[int, int]], path: str | Path) -> None:
    """The pair network: one line per interferogram between its two dates."""
    fig, ax = plt.subplots(figsize=(9, max(3, 0.12 * len(pairs) + 2)))
    t = pd.to_datetime([str(d) for d in dates])
    for k, (i, j) in enumerate(pairs):
        ax.plot([t[i], t[j]], [k, k], "-", color="tab:blue", lw=1.5)
        ax.plot([t[i], t[j]], [k, k], "o", color="k", ms=3)
    for d in t:
        ax.axvline(d, color="0.9", lw=0.8, zorder=0)
    ax.set_xlabel("date")
    ax.set_ylabel("interferogram")
    ax.set_title(f"Network: {len(pairs)} interferograms over {len(dates)} dates")
    fig.autofmt_xdate()
    _save(fig, path)


def date_offsets(dates_df: pd.DataFrame, path: str | Path) -> None:
    """Per-date offsets (network inversion of the pair offsets) with ±1 sd."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    t = pd.to_datetime(dates_df["date"])
    for comp, fmt in (("east", "o-"), ("north", "s-")):
        ax.errorbar(t, dates_df[f"{comp}_m"], yerr=dates_df[f"{comp}_sd_m"], fmt=fmt, capsize=3,
                    ms=4, label=comp)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel(f"offset relative to {dates_df['date'].iloc[0]} (m)")
    ax.set_title("Per-date geolocation offset (network inversion of pair offsets)")
    ax.legend()
    fig.autofmt_xdate()
    _save(fig, path)

"""The RTC figures: pair and date offsets, tile maps, quiver, stacks
summary, absolute offsets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sarstack.plots.common import (  # noqa: E402
    NOT_MEASURABLE,
    PAIR_OFFSET,
    _colorbar,
    _no_offset,
    _not_measurable,
    _ok,
    _save,
    default_min_ok_pairs,
)


def pair_offsets(pairs: pd.DataFrame, path: str | Path, requirement_m: float | None) -> plt.Figure:
    """Per-pair offset (east, north, with spread as error bars) and, below it,
    the horizontal offset √(east² + north²) that the requirement judges."""
    n = len(pairs)
    ok = _ok(pairs).to_numpy()
    x = np.arange(n)
    fig, (ax, axh) = plt.subplots(
        2, 1, figsize=(max(6, 0.45 * n + 3), 6.5), sharex=True, height_ratios=[3, 2]
    )
    for a in (ax, axh):
        for xi in x[~ok]:
            a.axvspan(xi - 0.5, xi + 0.5, color="0.88", zorder=0, lw=0)
    labels = [f"{r}\n{s}" for r, s in zip(pairs["reference_date"], pairs["secondary_date"], strict=True)]
    axh.set_xticks(x, labels, rotation=90, fontsize=7)
    axh.set_xlim(-0.5, n - 0.5)
    ax.set_title(f"Per-pair geolocation offset, secondary vs reference\n{PAIR_OFFSET}")
    if not ok.any():
        for a in (ax, axh):
            a.set_yticks([])
        ax.text(0.5, 0.5, NOT_MEASURABLE, ha="center", va="center", fontsize=20, color="tab:red",
                transform=ax.transAxes)
        axh.text(0.5, 0.5, f"no pair has enough ok tiles ({n} pairs, all unreliable)",
                 ha="center", va="center", transform=axh.transAxes)
        return _save(fig, path)

    ax.errorbar(x - 0.1, pairs["east_m"], yerr=pairs["east_spread_m"], fmt="o", capsize=3, label="east")
    ax.errorbar(x + 0.1, pairs["north_m"], yerr=pairs["north_spread_m"], fmt="s", capsize=3,
                label="north")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("offset (m)\nerror bar: robust spread of tiles")
    handles, _ = ax.get_legend_handles_labels()
    if (~ok).any():
        handles.append(Patch(color="0.88", label="unreliable pair (too few ok tiles)"))
    ax.legend(handles=handles, fontsize=8, loc="best")

    h = np.hypot(pairs["east_m"].to_numpy(float), pairs["north_m"].to_numpy(float))
    top = np.nanmax(h[ok])
    if requirement_m:
        if "passes" in pairs:
            passes = pairs["passes"].astype(bool).to_numpy() & ok
        else:
            passes = ok & (h <= requirement_m)
        fails = ok & ~passes
        top = max(top, requirement_m)
        axh.axhspan(requirement_m, 1.2 * top, color="tab:red", alpha=0.07, lw=0, zorder=0)
        axh.axhline(requirement_m, ls="--", color="tab:red", lw=1.2,
                    label=f"requirement {requirement_m:g} m")
        if passes.any():
            axh.plot(x[passes], h[passes], "o", color="tab:green", label="passes")
        if fails.any():
            axh.plot(x[fails], h[fails], "X", color="tab:red", ms=8, label="fails")
        axh.set_title(f"what is judged: horizontal offset vs requirement: "
                      f"{int(passes.sum())} of {int(ok.sum())} ok pairs pass", fontsize=10)
    else:
        axh.plot(x[ok], h[ok], "o", color="k", label="horizontal offset")
        axh.set_title("horizontal offset (no requirement set)", fontsize=10)
    axh.set_ylim(0, 1.2 * top if top > 0 else 1.0)
    axh.set_ylabel("√(east² + north²) (m)")
    axh.legend(fontsize=8, loc="best", ncol=3)
    return _save(fig, path)


def _tile_grid(tiles: pd.DataFrame, column: str, n_r: int, n_c: int) -> np.ndarray:
    grid = np.full((n_r, n_c), np.nan)
    grid[tiles["tile_row"].to_numpy(int), tiles["tile_col"].to_numpy(int)] = tiles[column].to_numpy(float)
    return grid


def tile_mean_maps(tiles: pd.DataFrame, path: str | Path, min_ok_pairs: int | None = None) -> plt.Figure:
    """Temporal mean east and north offset of each tile, and how many pairs it is ok in.

    A tile ok in fewer than ``min_ok_pairs`` pairs (default: half of the pairs)
    is hatched instead of coloured: its mean is over too few pairs to compare
    with the others (edge tiles that are ok in one pair of five would otherwise
    draw an edge pattern).
    """
    n_r, n_c = int(tiles["tile_row"].max()) + 1, int(tiles["tile_col"].max()) + 1
    n_pairs = int(tiles["n_pairs"].max()) if "n_pairs" in tiles and len(tiles) else 0
    k = default_min_ok_pairs(n_pairs) if min_ok_pairs is None else int(min_ok_pairs)
    count = _tile_grid(tiles, "n_ok", n_r, n_c)
    count = np.where(np.isfinite(count), count, 0)
    title = "Temporal mean of each tile's ok offsets over all pairs"
    if not (count > 0).any():
        return _not_measurable(title, f"no tile is ok in any of the {n_pairs} pairs", path)
    shown = count >= k
    vals = {}
    for comp in ("east", "north"):
        g = _tile_grid(tiles, f"{comp}_mean_m", n_r, n_c)
        vals[comp] = np.where(shown, g, np.nan)
    finite = np.concatenate([v[np.isfinite(v)] for v in vals.values()])
    vmax = float(np.max(np.abs(finite))) if finite.size else 0.0
    vmax = vmax or 1.0
    aspect = max(0.6, min(1.6, n_r / n_c))
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.9 * aspect + 0.6))
    fig.subplots_adjust(wspace=0.45, top=0.86)
    few = (count > 0) & ~shown
    for ax, comp in zip(axes[:2], ("east", "north"), strict=True):
        ax.set_facecolor("0.8")
        im = ax.imshow(vals[comp], cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        for r, c in zip(*np.nonzero(few), strict=True):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, hatch="///",
                                   edgecolor="0.45", lw=0))
        ax.set_title(f"mean {comp} offset")
        _colorbar(fig, ax, im, f"{comp} (m)")
    cmap = plt.get_cmap("viridis")
    im = axes[2].imshow(count, cmap=cmap, vmin=0, vmax=max(n_pairs, 1), interpolation="nearest")
    if n_r * n_c <= 400:
        for r in range(n_r):
            for c in range(n_c):
                dark = count[r, c] < 0.6 * max(n_pairs, 1)
                axes[2].text(c, r, f"{int(count[r, c])}", ha="center", va="center", fontsize=7,
                             color="w" if dark else "k")
    axes[2].set_title(f"pairs in which the tile is ok (of {n_pairs})")
    cb = _colorbar(fig, axes[2], im, "ok pairs")
    cb.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.set_xlabel("tile column")
        ax.set_ylabel("tile row")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Patch(facecolor="0.8", edgecolor="0.45", hatch="///",
                     label=f"ok in fewer than {k} of {n_pairs} pairs (not shown)"),
               Patch(facecolor="0.8", label="ok in no pair")][: 2 if (count == 0).any() else 1]
    axes[1].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
                   fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def offsets_vs_time(offsets: pd.DataFrame, pairs: pd.DataFrame, path: str | Path) -> plt.Figure:
    """Per-tile ok offsets (dots, at the secondary date) and per-pair offsets.

    A pair's offset is the secondary relative to the reference of that pair,
    not a position on a cumulative series: each is drawn as its own
    horizontal bar from the pair's reference date to its secondary date
    (marker at the secondary date), never joined to the next pair's.
    """
    title = "Geolocation offsets against time"
    okp = _ok(pairs)
    if not okp.any():
        return _not_measurable(
            title, f"no pair has enough ok tiles ({len(pairs)} pairs, all unreliable)", path)
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    ok = offsets[offsets["status"] == "ok"]
    good = pairs[okp]
    t0 = pd.to_datetime(good["reference_date"])
    t1 = pd.to_datetime(good["secondary_date"])
    bad_dates = pd.to_datetime(pairs.loc[~okp, "secondary_date"])
    for ax, comp in zip(axes, ("east", "north"), strict=True):
        for d in bad_dates:
            ax.axvline(d, color="0.75", ls=":", lw=1.2, zorder=0)
        ax.plot(pd.to_datetime(ok["secondary_date"]), ok[f"{comp}_m"], ".", alpha=0.3, ms=3,
                label="ok tiles (at the secondary date)")
        y = good[f"{comp}_m"].to_numpy(float)
        ax.hlines(y, t0, t1, color="k", lw=2,
                  label="pair offset (clipped mean of ok tiles), from reference to secondary date")
        ax.plot(t1, y, "o", color="k", ms=4)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel(f"{comp} (m)")
    handles, _ = axes[0].get_legend_handles_labels()
    if len(bad_dates):
        handles.append(Line2D([], [], color="0.75", ls=":", label="unreliable pair (no offset)"))
    # Above the data, so that it hides no point.
    axes[0].legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
                   fontsize=8, frameon=False)
    axes[-1].set_xlabel("date")
    axes[0].set_title(f"{title} (secondary relative to reference, per pair: not cumulative)",
                      pad=34)  # fmt: skip
    fig.autofmt_xdate()
    return _save(fig, path)


def _spacing(v: np.ndarray) -> float:
    d = np.diff(np.unique(np.round(v, 6)))
    d = d[d > 0]
    return float(d.min()) if d.size else 0.0


def tile_quiver(
    tiles: pd.DataFrame, centres: pd.DataFrame, path: str | Path, min_ok_pairs: int | None = None,
    crs: str | None = None,
) -> plt.Figure:
    """Arrows of each tile's mean anomaly (tile minus pair offset) at its centre.

    Map axes are easting/northing in km (longitude/latitude when the tile
    centres are in degrees), each label followed by ``crs`` (e.g.
    ``"EPSG:32611"``, the tile centres' CRS) when given. Each arrow is centred on its tile and
    the longest is 0.9 tile wide, so none leaves its tile. Tiles ok in fewer
    than ``min_ok_pairs`` pairs (default: half of the pairs) get a grey circle
    instead of an arrow, as in :func:`tile_mean_maps`.
    """
    df = tiles.merge(centres, on=["tile_row", "tile_col"])
    ue, un = ("east_anomaly_m", "north_anomaly_m") if "east_anomaly_m" in df else (
        "east_mean_m", "north_mean_m")
    n_pairs = int(df["n_pairs"].max()) if "n_pairs" in df and len(df) else 0
    k = default_min_ok_pairs(n_pairs) if min_ok_pairs is None else int(min_ok_pairs)
    n_ok = df["n_ok"] if "n_ok" in df else pd.Series(n_pairs, index=df.index)
    fin = np.isfinite(df[ue]) & np.isfinite(df[un])
    good = df[fin & (n_ok >= k)]
    few = df[fin & (n_ok < k)]
    bad = df[~fin]
    x, y = df["x"].to_numpy(float), df["y"].to_numpy(float)
    # Tile centres are in the rasters' CRS: metres (shown in km), or degrees.
    degrees = bool(len(df)) and np.all(np.abs(x) <= 180) and np.all(np.abs(y) <= 90)
    f = 1.0 if degrees else 1e-3
    xk, yk = x * f, y * f
    sx, sy = _spacing(xk), _spacing(yk)
    step = min(v for v in (sx, sy) if v > 0) if (sx or sy) else 1.0
    sx, sy = sx or step, sy or step
    fig, ax = plt.subplots(figsize=(7.5, 7))
    ax.plot(bad["x"] * f, bad["y"] * f, "x", color="0.6")
    ax.plot(few["x"] * f, few["y"] * f, "o", color="0.6", mfc="none")
    handles = []
    if len(good):
        mag = np.hypot(good[ue], good[un])
        ref = float(np.nanmax(mag)) or 1.0
        scale = ref / (0.9 * step)  # metres of anomaly per map unit
        q = ax.quiver(good["x"] * f, good["y"] * f, good[ue], good[un], mag, cmap="viridis",
                      clim=(0, ref), angles="xy", scale_units="xy", scale=scale, pivot="middle",
                      width=0.006)
        _colorbar(fig, ax, q, "|anomaly| (m)")
        # The key arrow ends at X (labelpos E): start it at the axes' left edge.
        key_len = 0.9 * step / (xk.max() - xk.min() + sx)
        ax.quiverkey(q, key_len, 1.025, ref, f"{ref:.2g} m", labelpos="E", coordinates="axes",
                     color="k")
    else:
        ax.text(0.5, 0.5, NOT_MEASURABLE, ha="center", va="center", fontsize=20, color="tab:red",
                transform=ax.transAxes, bbox=dict(facecolor="w", edgecolor="none", alpha=0.8))
    ax.set_xlim(xk.min() - sx / 2, xk.max() + sx / 2)
    ax.set_ylim(yk.min() - sy / 2, yk.max() + sy / 2)
    if degrees:
        ax.set_aspect(1.0 / max(math.cos(math.radians(float(np.mean(yk)))), 0.1))
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
    else:
        ax.set_aspect("equal")
        ax.set_xlabel("easting (km)")
        ax.set_ylabel("northing (km)")
    if crs:
        ax.set_xlabel(f"{ax.get_xlabel()}, {crs}")
        ax.set_ylabel(f"{ax.get_ylabel()}, {crs}")
    _no_offset(ax)
    ax.set_title("Tile offset minus pair offset, mean over the pairs the tile is ok in", pad=22)
    if len(few):
        handles.append(Line2D([], [], marker="o", color="0.6", mfc="none", ls="none",
                              label=f"ok in fewer than {k} of {n_pairs} pairs (not shown)"))
    if len(bad):
        handles.append(Line2D([], [], marker="x", color="0.6", ls="none", label="no ok offset"))
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, fontsize=8)
    return _save(fig, path)


def date_offsets(
    dates_df: pd.DataFrame,
    path: str | Path,
    requirement_m: float | None,
    events: pd.DataFrame | None = None,
) -> plt.Figure:
    """Per-date offsets (network inversion of the pair offsets) with ±1 sd,
    and below them the horizontal offset √(east² + north²) of each date
    relative to the first, with the requirement drawn when given. Steps of
    ``events`` (``date_events.csv``) are marked at their dates with what
    changed there; a drift is named in the title.

    The first date is the datum (0 m by definition); dates the ok pairs do not
    connect to it have no estimate and are marked. With no other date
    estimated the figure says "not measurable".
    """
    title = "Per-date geolocation offset (network inversion of pair offsets)"
    t = pd.to_datetime(dates_df["date"])
    est = (np.isfinite(dates_df["east_m"]) & np.isfinite(dates_df["north_m"])).to_numpy(copy=True)
    est[0] = False  # the datum is 0 by definition, not an estimate
    # n_pairs_used is per date; each used pair counts for its two dates.
    n_used = int(dates_df["n_pairs_used"].sum()) // 2 if "n_pairs_used" in dates_df else None
    if not est.any():
        used = f" ({n_used} ok pairs)" if n_used is not None else ""
        return _not_measurable(
            title, f"no date is connected to the first date {dates_df['date'].iloc[0]} by ok "
            f"pairs{used}", path)
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, height_ratios=[3, 2])
    for a in (ax, axh):
        for d in t[1:][~est[1:]]:
            a.axvline(d, color="0.75", ls=":", lw=1.2, zorder=0)
    for comp, fmt in (("east", "o-"), ("north", "s-")):
        ax.errorbar(t, dates_df[f"{comp}_m"], yerr=dates_df[f"{comp}_sd_m"], fmt=fmt, capsize=3,
                    ms=4, label=comp)
    ax.axhline(0, color="k", lw=0.5)
    drift = ""
    for ev in (events.itertuples() if events is not None else ()):
        if ev.kind == "drift":
            drift = f"; drift {np.hypot(ev.east_m, ev.north_m):.1f} m over the stack"
            continue
        for a in (ax, axh):
            a.axvline(pd.Timestamp(ev.date), color="tab:purple", ls="--", lw=1.3, zorder=1)
        ax.annotate(f"step {np.hypot(ev.east_m, ev.north_m):.1f} m\n{ev.note}",
                    (pd.Timestamp(ev.date), 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -3), textcoords="offset points", va="top", fontsize=7,
                    color="tab:purple")  # fmt: skip
    first = dates_df["date"].iloc[0]
    ax.set_ylabel(f"offset relative to {first} (m)")
    sub = f"; {n_used} ok pairs" if n_used is not None else ""
    ax.set_title(f"{title}\nerror bars ±1 sd{sub}{drift}", fontsize=11)
    handles, _ = ax.get_legend_handles_labels()
    if (~est[1:]).any():
        handles.append(Line2D([], [], color="0.75", ls=":", label="no estimate (not connected)"))
    if events is not None and (events["kind"] == "step").any():
        handles.append(Line2D([], [], color="tab:purple", ls="--", label="step (date_events.csv)"))
    ax.legend(handles=handles, fontsize=8)
    h = np.hypot(dates_df["east_m"].to_numpy(float), dates_df["north_m"].to_numpy(float))
    has = est  # the datum (0 m by definition) is not judged
    top = float(np.nanmax(h[has])) if has.any() else 0.0
    if requirement_m:
        top = max(top, requirement_m)
        within = has & (h <= requirement_m)
        beyond = has & (h > requirement_m)
        axh.axhspan(requirement_m, 1.2 * top, color="tab:red", alpha=0.07, lw=0, zorder=0)
        axh.axhline(requirement_m, ls="--", color="tab:red", lw=1.2,
                    label=f"requirement {requirement_m:g} m")
        if within.any():
            axh.plot(t[within], h[within], "o", color="tab:green", label="within")
        if beyond.any():
            axh.plot(t[beyond], h[beyond], "X", color="tab:red", ms=8, label="beyond")
        axh.set_title(f"horizontal offset relative to {first} vs requirement: "
                      f"{int(within.sum())} of {int(has.sum())} estimated dates within",
                      fontsize=10)  # fmt: skip
    else:
        axh.plot(t[has], h[has], "o", color="k", label="horizontal offset")
        axh.set_title(f"horizontal offset relative to {first} (no requirement set)", fontsize=10)
    axh.set_ylim(0, 1.2 * top if top > 0 else 1.0)
    axh.set_ylabel("√(east² + north²) (m)")
    axh.legend(fontsize=8, loc="best", ncol=3)
    fig.autofmt_xdate()
    return _save(fig, path)


#: Marker shapes cycled every 10 stacks, so that stack k and k + 10 (same tab10 colour) differ.
_STACK_MARKERS = "os^Dv<>PX*"


def stack_style(i: int) -> tuple[Any, str]:
    """Colour and marker of the ``i``-th stack: tab10 colours, a new marker
    shape every 10 stacks (100 distinct styles)."""
    return plt.get_cmap("tab10")(i % 10), _STACK_MARKERS[(i // 10) % len(_STACK_MARKERS)]


def stacks_summary(
    per_stack: pd.DataFrame,
    pairs: Mapping[str, pd.DataFrame],
    path: str | Path,
    requirement_m: float | None,
) -> plt.Figure:
    """Across the stacks of a many-stack run: each stack's ok pair offsets
    (east vs north, with the requirement circle; one colour and marker per
    stack, :func:`stack_style`) and, beside it, the horizontal offsets per
    stack (RMS and max) with each stack's verdict. A stack with nothing to
    draw (not measurable, failed or not run) has its row labelled in words.
    Both legends sit below their axes, clear of the data and tick labels."""
    n = len(per_stack)
    fig, (ax, axb) = plt.subplots(1, 2, figsize=(13, max(5.0, 0.4 * n + 3.5)),
                                  width_ratios=[1, 1.2])
    fig.subplots_adjust(wspace=0.55)
    ax.set_title("ok pair offsets, every stack")
    drawn = False
    for i, name in enumerate(per_stack["stack"]):
        p = pairs.get(name)
        if p is None or not len(p):
            continue
        ok = _ok(p)
        if ok.any():
            colour, marker = stack_style(i)
            ax.plot(p["east_m"][ok], p["north_m"][ok], marker, ms=5, color=colour, ls="none",
                    mec="k", mew=0.3, label=name)
            drawn = True
    if requirement_m:
        t = np.linspace(0, 2 * np.pi, 200)
        ax.plot(requirement_m * np.cos(t), requirement_m * np.sin(t), "--", color="tab:red",
                lw=1.2, label=f"requirement {requirement_m:g} m")
    if not drawn:
        ax.text(0.5, 0.5, NOT_MEASURABLE, ha="center", va="center", fontsize=18, color="tab:red",
                transform=ax.transAxes)
    ax.axhline(0, color="k", lw=0.4)
    ax.axvline(0, color="k", lw=0.4)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("east offset (m)")
    ax.set_ylabel("north offset (m)")
    if drawn or requirement_m:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  ncol=2 if n > 6 else 1, frameon=False)  # fmt: skip

    y = np.arange(n)[::-1]
    rms = np.hypot(per_stack["east_rms_m"].to_numpy(float), per_stack["north_rms_m"].to_numpy(float))
    top = per_stack["max_offset_m"].to_numpy(float)
    colours = [stack_style(i)[0] for i in range(n)]
    axb.barh(y, np.nan_to_num(rms), height=0.5, color=colours, alpha=0.8,
             label="RMS horizontal offset (bar and marker: the stack's style)")
    for k in np.flatnonzero(np.isfinite(rms)).tolist():
        colour, marker = stack_style(k)  # the stack's marker, as on the left
        axb.plot(rms[k], y[k], marker, color=colour, mec="k", mew=0.5, ms=7, clip_on=False)
    axb.plot(top, y, "k|", ms=12, mew=2, label="max horizontal offset")
    right = float(np.nanmax(np.concatenate([top[np.isfinite(top)], [requirement_m or 0.0, 1.0]])))
    if requirement_m:
        axb.axvline(requirement_m, ls="--", color="tab:red", lw=1.2,
                    label=f"requirement {requirement_m:g} m")
    labels = []
    for yi, r, v in zip(y, per_stack.itertuples(index=False), rms, strict=True):
        tag = r.verdict if r.status == "ok" else r.status
        labels.append(f"{r.stack}\n{tag}")
        if not np.isfinite(v):
            why = ("not measurable: no ok pair" if r.status == "ok"
                   else f"{r.status}: no offsets")  # fmt: skip
            axb.text(0.01 * right, yi, why, va="center", ha="left", fontsize=8, color="tab:red",
                     bbox=dict(facecolor="w", edgecolor="none", pad=1))
    axb.set_yticks(y, labels, fontsize=8)
    axb.set_ylim(-0.7, n - 0.3)
    axb.set_xlim(0, 1.15 * right)
    axb.set_xlabel("horizontal offset of ok pairs (m)")
    axb.set_title("per stack: RMS and max offset, verdict")
    axb.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    return _save(fig, path)


def absolute_offsets(
    measurements: pd.DataFrame,
    absolute: pd.DataFrame,
    path: str | Path,
    requirement_m: float | None,
) -> plt.Figure:
    """Absolute geolocation offsets at point targets, east vs north (m).

    Small grey dots: every ok target of every scene; coloured markers: each
    scene's mean offset (colour: date, each labelled with its date; a red
    edge when the scene fails); a black cross: the stack mean; a dashed red
    circle: the requirement. The title states the rule the verdict uses:
    each scene passes when its mean offset is within the requirement, and
    the stack passes only when every scene does (the stack mean is not
    judged). ``measurements`` is ``reflectors.csv``, ``absolute`` is
    ``absolute.csv`` (:func:`sarstack.reflectors.summarize_offsets`). With no
    ok target the figure says "not measurable".
    """
    import matplotlib.dates as mdates

    title = "Absolute geolocation at point targets (measured minus expected)"
    ok = (measurements["status"] == "ok") & np.isfinite(measurements["east_m"])
    all_scenes = absolute[absolute["scope"] == "scene"]
    scenes = all_scenes[all_scenes["n_ok"] > 0]
    stack = absolute[absolute["scope"] == "stack"].iloc[0]
    if not ok.any():
        n_scenes = len(all_scenes)
        return _not_measurable(
            title, f"no point target measured ok in {n_scenes} scenes "
            f"({len(measurements)} target measurements: outside, near an edge or low contrast)",
            path)  # fmt: skip
    fig, ax = plt.subplots(figsize=(7.5, 7.2))
    ax.plot(measurements.loc[ok, "east_m"], measurements.loc[ok, "north_m"], ".", color="0.6",
            ms=4, label=f"target ({int(ok.sum())} ok)", zorder=1)
    days = mdates.date2num(pd.to_datetime(scenes["date"]))
    judged = requirement_m is not None and "passes" in scenes
    fails = (scenes["passes"].astype(str).str.lower() == "false").to_numpy() if judged else (
        np.zeros(len(scenes), bool))
    sc = ax.scatter(scenes["east_mean_m"], scenes["north_mean_m"], c=days, cmap="viridis", s=45,
                    edgecolors=["tab:red" if f else "k" for f in fails],
                    linewidths=[2.0 if f else 0.5 for f in fails],
                    label=f"scene mean ({len(scenes)})", zorder=3)  # fmt: skip
    for r in scenes.itertuples(index=False):
        # Towards the plot's centre, so that no label leaves the axes.
        right = r.east_mean_m > 0
        ax.annotate(str(r.date), (r.east_mean_m, r.north_mean_m), xytext=(-5 if right else 5, 4),
                    textcoords="offset points", fontsize=7, zorder=4,
                    ha="right" if right else "left",
                    path_effects=[patheffects.withStroke(linewidth=2.5, foreground="w")])  # fmt: skip
    ax.plot(stack["east_mean_m"], stack["north_mean_m"], "X", color="k", ms=11,
            label="stack mean (not judged)", zorder=4)
    extent = float(np.nanmax(np.abs(measurements.loc[ok, ["east_m", "north_m"]].to_numpy())))
    if requirement_m:
        ax.add_patch(plt.Circle((0, 0), requirement_m, fill=False, ls="--", color="tab:red",
                                lw=1.2, label=f"requirement {requirement_m:g} m"))
        extent = max(extent, requirement_m)
    handles, _ = ax.get_legend_handles_labels()
    if fails.any():
        handles.append(Line2D([], [], marker="o", ls="none", mfc="w", mec="tab:red", mew=2,
                              label=f"scene fails ({int(fails.sum())})"))  # fmt: skip
    lim = 1.15 * extent if extent > 0 else 1.0
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("east offset (m)")
    ax.set_ylabel("north offset (m)")
    if requirement_m:
        n_pass = int((scenes["passes"].astype(str).str.lower() == "true").sum())
        n_unmeasured = len(all_scenes) - len(scenes)
        more = f", {n_unmeasured} not measured" if n_unmeasured else ""
        rule = (f"verdict: {stack['verdict']}: {n_pass} of {len(scenes)} measured scenes pass"
                f"{more}\nrule: a scene passes when |its mean offset| ≤ {requirement_m:g} m;"
                " the stack passes when every scene does")  # fmt: skip
    else:
        rule = "no requirement set"
    ax.set_title(f"{title}\nstack mean east {stack['east_mean_m']:.2f} m, north "
                 f"{stack['north_mean_m']:.2f} m, RMS of scene offsets {stack['rms_m']:.2f} m\n"
                 f"{rule}", fontsize=9)  # fmt: skip
    if len(scenes) > 1:
        cb = _colorbar(fig, ax, sc, "scene date")
        cb.ax.yaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09),
              ncol=3, frameon=False)
    return _save(fig, path)

"""The InSAR corrections' figures, one per correction stage: the unwrapping
correction (insar_unwrap_correction), the ramps (insar_deramp) and the
troposphere (insar_troposphere). Each is drawn by its stage from what it has
just written, so a correction that is off costs nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sarstack.plots.common import _save  # noqa: E402
from sarstack.plots.maps import NODATA_COLOUR, _label_map_axes, _map_axes, _map_kw  # noqa: E402

#: Most ifgs named on a per-ifg axis; beyond, every n-th is labelled.
MAX_IFG_LABELS = 40


def _ifg_axis(ax: plt.Axes, keys: Sequence[str]) -> np.ndarray:
    """Positions of the ifgs along x, labelled with their keys (every n-th
    when there are many)."""
    x = np.arange(len(keys))
    step = max(1, int(np.ceil(len(keys) / MAX_IFG_LABELS)))
    ax.set_xticks(x[::step])
    ax.set_xticklabels([str(k) for k in keys][::step], rotation=90, fontsize=7)
    ax.set_xlim(-0.7, len(keys) - 0.3)
    ax.set_xlabel("interferogram (reference_secondary)")
    return x


def _count_map(fig: plt.Figure, ax: plt.Axes, data: np.ndarray, title: str, label: str,
               vmax: float, geo: dict[str, Any] | None,
               ref_rc: tuple[int, int] | None) -> None:  # fmt: skip
    """A map of a count (NaN = no value, light grey), 0 white, on ``vmax``'s scale."""
    kw = _map_kw(geo)
    ax.set_facecolor(NODATA_COLOUR)
    cmap = plt.get_cmap("magma_r").copy()
    im = ax.imshow(np.where(data > 0, data, np.nan), cmap=cmap, vmin=0.5, vmax=max(vmax, 1.0),
                   interpolation="nearest", zorder=1, **kw)  # fmt: skip
    zero = np.where(data == 0, 1.0, np.nan)
    ax.imshow(zero, cmap="gray", vmin=0, vmax=1, interpolation="nearest", zorder=0.5, **kw)
    fig.colorbar(im, ax=ax, shrink=0.9, label=label)
    if ref_rc is not None:
        at = geo["at"] if geo else (lambda r, c: (float(c), float(r)))
        ax.plot(*at(*ref_rc), "k*", ms=12, mfc="yellow", ls="none", clip_on=False, zorder=3)
    _label_map_axes(ax, geo)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_title(title, fontsize=10)


def _summary(counts: np.ndarray) -> tuple[int, int]:
    """(sum over the pixels, pixels with a non-zero count) of a count map (NaN = none)."""
    c = counts[np.isfinite(counts)]
    return int(c.sum()), int((c > 0).sum())


def unwrap_correction(
    corrected: np.ndarray, before: np.ndarray, after: np.ndarray, table: pd.DataFrame,
    path: str | Path, *, transform: Any = None, crs: Any = None,
    ref_rc: tuple[int, int] | None = None,
) -> plt.Figure:
    """``insar.unwrap_correction``: per pixel the ifgs corrected
    (``unwrap_corrected_count.tif``), the triangles with a non-zero closure
    before and after the correction (``closure_count_before.tif``,
    ``closure_count_after.tif``, on one colour scale) and per ifg the pixels
    corrected (``unwrap_correction.csv``; ifgs in no triangle, which cannot be
    corrected, marked). NaN = no value (light grey), 0 white."""
    corrected, before, after = (np.asarray(a, np.float64) for a in (corrected, before, after))
    geo = _map_axes(transform, crs, corrected.shape)
    aspect = corrected.shape[0] / max(corrected.shape[1], 1) * (geo["aspect"] if geo else 1.0)
    map_h = float(np.clip(4.0 * aspect, 2.0, 6.0))  # a map row as tall as the maps
    fig = plt.figure(figsize=(14, map_h + 5.5), layout="constrained")
    gs = fig.add_gridspec(2, 3, height_ratios=[map_h + 1.0, 4.5])
    n_ifg_px = int(table["corrected_px"].sum())
    s_c, p_c = _summary(corrected)
    ax = fig.add_subplot(gs[0, 0])
    _count_map(fig, ax, corrected, f"ifgs corrected per pixel\n{n_ifg_px} ifg-pixels, on {p_c} px",
               "ifgs corrected", float(np.nanmax(corrected, initial=0)), geo, ref_rc)  # fmt: skip
    vmax = float(max(np.nanmax(before, initial=0), np.nanmax(after, initial=0)))
    for k, (data, when) in enumerate(((before, "before"), (after, "after"))):
        s, px = _summary(data)
        ax = fig.add_subplot(gs[0, 1 + k])
        _count_map(fig, ax, data, f"non-zero closures {when}\nsum {s}, on {px} px",
                   "triangles with a non-zero closure", vmax, geo, ref_rc)  # fmt: skip
        ax.set_ylabel("")
    ax = fig.add_subplot(gs[1, :])
    keys = table["key"].astype(str).tolist()
    x = _ifg_axis(ax, keys)
    vals = table["corrected_px"].to_numpy(np.float64)
    ax.bar(x, vals, color="tab:purple", width=0.8, label="pixels corrected")
    alone = table["n_triangles"].to_numpy() == 0
    if alone.any():
        ax.plot(x[alone], np.zeros(alone.sum()), "x", color="tab:red", ms=8, mew=2, clip_on=False,
                label=f"in no triangle: cannot be corrected ({int(alone.sum())})")  # fmt: skip
    ax.set_ylabel("pixels corrected")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"Pixels corrected per interferogram ({int((vals > 0).sum())} of {len(vals)} "
                 "ifgs corrected somewhere)", fontsize=10)  # fmt: skip
    fig.suptitle("Unwrapping-error correction by phase closure (insar.unwrap_correction: closure)",
                 fontsize=12)  # fmt: skip
    return _save(fig, path)


def ramp_peak_to_peak(table: pd.DataFrame, n: int = 65) -> np.ndarray:
    """Per row of ``ramps.csv``, the range (max - min, radians) of the fitted
    surface over the scene, its constant left out: for a plane |cx| + |cy|
    (x and y span -0.5 to 0.5), a quadratic surface sampled on ``n`` x ``n``
    points including the corners."""
    cols = {c: table[c].to_numpy(np.float64) if c in table else np.zeros(len(table))
            for c in ("cx", "cy", "cxx", "cxy", "cyy")}  # fmt: skip
    if not any(c in table for c in ("cxx", "cxy", "cyy")):
        return np.abs(cols["cx"]) + np.abs(cols["cy"])
    t = np.linspace(-0.5, 0.5, n)
    yy, xx = np.meshgrid(t, t, indexing="ij")
    g = np.stack([xx, yy, xx * xx, xx * yy, yy * yy]).reshape(5, -1)
    c = np.stack([cols[k] for k in ("cx", "cy", "cxx", "cxy", "cyy")], axis=1)
    s = c @ g
    return s.max(axis=1) - s.min(axis=1)


def _before_after(ax: plt.Axes, x: np.ndarray, before: np.ndarray, after: np.ndarray,
                  what: str) -> None:  # fmt: skip
    """Per ifg, a grey line from the spread before to the one after, the
    ones that grew in red."""
    grew = after > before
    for xi, b, a, g in zip(x, before, after, grew, strict=True):
        ax.plot([xi, xi], [b, a], "-", color="tab:red" if g else "0.6", lw=1.2, zorder=1)
    ax.plot(x, before, "o", color="0.35", ms=5, mfc="white", label=f"{what} before", zorder=2)
    ax.plot(x, after, "o", color="tab:blue", ms=5, label=f"{what} after", zorder=3)
    if grew.any():
        ax.plot([], [], "-", color="tab:red", label=f"grew ({int(grew.sum())} ifgs)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))  # never over the data


def ramps(table: pd.DataFrame, path: str | Path) -> plt.Figure:
    """``insar.deramp``: per ifg the range of its fitted ramp over the scene
    (:func:`ramp_peak_to_peak`), the same against the ifg's time span (ramps
    that grow with it, r near 1, are deformation shaped like a ramp, not
    orbit errors), and the phase's spread before (its std about the mean) and
    after (its RMS about the ramp) over the pixels of the fit (``ramps.csv``)."""
    model = str(table["model"].iloc[0]) if len(table) else "?"
    keys = table["key"].astype(str).tolist()
    p2p = ramp_peak_to_peak(table)
    span = (pd.to_datetime(table["secondary_date"])
            - pd.to_datetime(table["reference_date"])).dt.days.to_numpy(np.float64)  # fmt: skip
    fig = plt.figure(figsize=(max(11.0, 0.25 * len(keys) + 5), 9), layout="constrained")
    gs = fig.add_gridspec(2, 2, width_ratios=[3, 1.2])
    a1 = fig.add_subplot(gs[0, 0])
    a2 = fig.add_subplot(gs[1, 0], sharex=a1)
    a3 = fig.add_subplot(gs[0, 1])
    x = np.arange(len(keys))
    a1.bar(x, p2p, color="tab:orange", width=0.8)
    a1.set_ylabel("ramp range over the scene (rad)")
    a1.set_title(f"Fitted {model} ramp per interferogram: range over the scene, constant left "
                 f"out (median {np.median(p2p):.3g} rad, largest {np.max(p2p):.3g} rad)",
                 fontsize=10)  # fmt: skip
    a1.tick_params(labelbottom=False)
    a3.plot(span, p2p, "o", color="tab:orange", ms=5)
    a3.set_xlabel("time span of the ifg (days)")
    a3.set_ylabel("ramp range (rad)")
    r = (float(np.corrcoef(span, p2p)[0, 1])
         if len(span) > 2 and np.std(span) > 0 and np.std(p2p) > 0 else float("nan"))  # fmt: skip
    a3.set_title(f"Ramp range against time span\nr = {r:.2f}"
                 + ("; grows with it: deformation?" if r > 0.5 else ""), fontsize=10)  # fmt: skip
    a3.set_xlim(left=0)
    a3.set_ylim(bottom=0)
    before = table["phase_std_rad"].to_numpy(np.float64)
    after = table["residual_rms_rad"].to_numpy(np.float64)
    _before_after(a2, x, before, after, "phase spread")
    a2.set_ylabel("phase spread (rad)")
    a2.set_title(f"Phase spread over the fit's pixels: std before, RMS about the ramp after "
                 f"(medians {np.median(before):.3g} -> {np.median(after):.3g} rad)",
                 fontsize=10)  # fmt: skip
    _ifg_axis(a2, keys)
    fig.suptitle(f"Ramps removed (insar.deramp: {model})", fontsize=12)
    return _save(fig, path)


def troposphere(table: pd.DataFrame, path: str | Path) -> plt.Figure:
    """``insar.troposphere``: per ifg the phase's std over the scene before and
    after the delays are removed, and the correction's own std
    (``troposphere.csv``); an ifg whose spread grew is drawn in red (a wrong
    sign, units or date shows as many)."""
    keys = table["key"].astype(str).tolist()
    before = table["phase_std_before_rad"].to_numpy(np.float64)
    after = table["phase_std_after_rad"].to_numpy(np.float64)
    corr = table["correction_std_rad"].to_numpy(np.float64)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.25 * len(keys) + 3), 5.5))
    x = np.arange(len(keys))
    ax.bar(x, corr, color="tab:green", alpha=0.35, width=0.8, label="correction std", zorder=0)
    _before_after(ax, x, before, after, "phase std")
    _ifg_axis(ax, keys)
    ax.set_ylabel("std over the scene (rad)")
    fin = np.isfinite(before) & np.isfinite(after)
    med = (f"medians {np.median(before[fin]):.3g} -> {np.median(after[fin]):.3g} rad"
           if fin.any() else "no value")  # fmt: skip
    ax.set_title(f"Troposphere correction (insar.troposphere): phase std per interferogram "
                 f"before and after\n{med}; {int((after < before)[fin].sum())} of "
                 f"{len(keys)} ifgs reduced", fontsize=11)  # fmt: skip
    fig.tight_layout()
    return _save(fig, path)

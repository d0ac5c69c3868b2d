"""The InSAR figures: velocity and raster maps, the mask, a point's time
series and the network."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from sarstack.plots.common import _colorbar, _no_offset, _save  # noqa: E402


def _map_axes(transform: Any, crs: Any, shape: tuple[int, int]) -> dict[str, Any] | None:
    """How to draw a north-up raster in map coordinates, or None (pixel axes).

    Returns the imshow extent, a function from (row, col) to plot coordinates
    (pixel centres), axis labels and the aspect ratio.
    """
    if transform is None:
        return None
    t = tuple(float(v) for v in tuple(transform)[:6])
    a, b, c, d, e, f = t
    if b != 0 or d != 0 or a == 0 or e == 0:
        return None  # rotated grid: leave it in pixels
    geographic = getattr(crs, "is_geographic", None)
    if geographic is None:  # no CRS: degrees if the corners look like lon/lat
        x1, y1 = c + a * shape[1], f + e * shape[0]
        geographic = abs(a) < 0.1 and all(abs(v) <= 180 for v in (c, x1)) and all(
            abs(v) <= 90 for v in (f, y1))
    name = ""
    if crs is not None:
        epsg = crs.to_epsg() if hasattr(crs, "to_epsg") else None
        name = f"EPSG:{epsg}" if epsg else str(crs)[:30]
    if geographic:
        k, xl, yl = 1.0, "longitude (°)", "latitude (°)"
        mid_lat = f + e * shape[0] / 2
        aspect = 1.0 / max(math.cos(math.radians(mid_lat)), 0.1)
    else:
        units = getattr(crs, "linear_units", "metre") if crs is not None else "metre"
        if str(units).lower() in ("metre", "meter", "m", "unknown", ""):
            k, xl, yl = 1e-3, "easting (km)", "northing (km)"
        else:
            k, xl, yl = 1.0, f"easting ({units})", f"northing ({units})"
        aspect = 1.0
    if name:
        xl, yl = f"{xl}, {name}", f"{yl}, {name}"
    left, right = c * k, (c + a * shape[1]) * k
    top, bottom = f * k, (f + e * shape[0]) * k

    def at(r: float, col: float) -> tuple[float, float]:
        return (c + a * (col + 0.5)) * k, (f + e * (r + 0.5)) * k

    return {"extent": (left, right, bottom, top), "at": at, "xlabel": xl, "ylabel": yl,
            "aspect": aspect}


#: Colours of the map pixels that carry no value: no data in the inputs,
#: masked (insar.coherence_mask's mask.tif = 0) and fitted on too few dates
#: to have a standard error. None is in the colour maps used.
NODATA_COLOUR = "0.85"


MASKED_COLOUR = "0.45"


NO_STD_COLOUR = "k"


def _backdrop(ax: plt.Axes, layers: Sequence[tuple[np.ndarray, str, str]],
              kw: Mapping[str, Any]) -> list[Patch]:
    """Paint boolean ``(mask, colour, label)`` layers under the data image
    (whose NaN pixels are transparent); legend patches of the non-empty ones,
    each label followed by its pixel count."""
    from matplotlib.colors import to_rgba

    shape = layers[0][0].shape
    handles: list[Patch] = []
    rgba = None
    for m, colour, label in layers:
        if m.any():
            if rgba is None:
                rgba = np.zeros((*shape, 4))
            rgba[m] = to_rgba(colour)
            handles.append(Patch(facecolor=colour, edgecolor="0.3", label=f"{label} ({int(m.sum())} px)"))
    # No layer to paint (every pixel has a value): a transparent image would
    # leave the figure as it is, so none is drawn (the same PNG, without
    # resampling a float RGBA copy of the raster).
    if rgba is not None:
        ax.imshow(rgba, interpolation="nearest", zorder=0, **kw)
    return handles


def _map_kw(geo: dict[str, Any] | None) -> dict[str, Any]:
    return {"extent": geo["extent"], "aspect": geo["aspect"]} if geo else {}


def _label_map_axes(ax: plt.Axes, geo: dict[str, Any] | None) -> None:
    ax.set_xlabel(geo["xlabel"] if geo else "column")
    ax.set_ylabel(geo["ylabel"] if geo else "row")
    if geo:
        _no_offset(ax)


def velocity_map(
    vel: np.ndarray, ref_rc: tuple[int, int], units: str, path: str | Path,
    points: Mapping[str, tuple[int, int]] | None = None, *,
    transform: Any = None, crs: Any = None, std: np.ndarray | None = None,
    model: str | None = None, masked: np.ndarray | None = None,
    far_field: Any = None,
) -> plt.Figure:
    """Velocity raster with the reference point (star) and sample points.

    With ``transform`` (the raster's affine geotransform, rasterio order
    a, b, c, d, e, f) the axes are map coordinates: easting/northing in km for
    a projected ``crs``, longitude/latitude for a geographic one. Without it
    (or for a rotated grid) they are pixel columns and rows.

    With ``std`` (the velocity's standard error), pixels that have a velocity
    but no standard error (fitted on two dates) are not drawn: they are
    painted :data:`NO_STD_COLOUR` and counted in the legend, and the colour
    scale ignores them. ``masked`` (boolean) pixels are painted
    :data:`MASKED_COLOUR`, other pixels without a value :data:`NODATA_COLOUR`.
    ``model`` names the fitted model in the title; ``far_field``
    (:class:`sarstack.velocity.FarField`) is outlined and its median given.
    A point on a pixel without a value says "no value", never "nan".
    """
    geo = _map_axes(transform, crs, vel.shape)
    h, w = vel.shape
    vel = np.asarray(vel, dtype=np.float64)
    has = np.isfinite(vel)
    no_std = has & ~np.isfinite(std) if std is not None else np.zeros(vel.shape, bool)
    shown = np.where(no_std, np.nan, vel)
    masked = np.zeros(vel.shape, bool) if masked is None else (np.asarray(masked, bool) & ~has)
    fig, ax = plt.subplots(figsize=(7.5, 6.8))
    finite = shown[np.isfinite(shown)]
    vmax = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
    vmax = vmax or 1.0
    kw = _map_kw(geo)
    handles = _backdrop(ax, [
        (~has & ~masked, NODATA_COLOUR, "no data"),
        (masked, MASKED_COLOUR, "masked (mask.tif = 0)"),
        (no_std, NO_STD_COLOUR, "too few dates for a std: not shown"),
    ], kw)  # fmt: skip
    im = ax.imshow(shown, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest",
                   zorder=1, **kw)  # fmt: skip
    at = geo["at"] if geo else (lambda r, c: (float(c), float(r)))
    _colorbar(fig, ax, im, f"LOS velocity ({units}), + towards radar")
    # Markers are not clipped (a point on the edge pixel stays whole) and have
    # a white halo so that they read on dark and light colours alike.
    halo = [patheffects.withStroke(linewidth=3.5, foreground="w")]
    markers = "osD^vP"
    for m, (name, (r, c)) in zip(markers * 4, (points or {}).items(), strict=False):
        v = shown[r, c] if 0 <= r < h and 0 <= c < w else np.nan
        val = f"{v:.3g} {units}" if np.isfinite(v) else "no value"
        ax.plot(*at(r, c), m, color="k", mfc="none", mew=1.5, ms=10, ls="none", clip_on=False,
                path_effects=halo, label=f"{name} [row {r}, col {c}]: {val}", zorder=3)
    ax.plot(*at(*ref_rc), "k*", ms=15, mfc="yellow", ls="none", clip_on=False, zorder=3,
            label=f"reference [row {ref_rc[0]}, col {ref_rc[1]}]")
    title = "LOS velocity" + (f", {model}" if model else "")
    if far_field is not None:
        (r0, r1), (c0, c1) = far_field.rows, far_field.cols
        x0, y0 = at(r0 - 0.5, c0 - 0.5)
        x1, y1 = at(r1 - 0.5, c1 - 0.5)
        ax.add_patch(Rectangle((min(x0, x1), min(y0, y1)), abs(x1 - x0), abs(y1 - y0), fill=False,
                               ls="--", lw=1.2, ec="k", zorder=2,
                               label=f"far field: median {far_field.median:.3g} {units}"))  # fmt: skip
        flag = "  CHECK THE REFERENCE" if far_field.suspicious else ""
        title += f"\nfar field (quiet cell nearest 0) median {far_field.median:.3g} {units}{flag}"
    return _finish_map(fig, ax, geo, title, handles, path)


def _finish_map(fig: plt.Figure, ax: Any, geo: Any, title: str, handles: list,
                path: str | Path) -> plt.Figure:
    """The InSAR maps' common ending: axes labels, title, the legend below the
    map (plotted points, then the backdrop's ``handles``), saved to ``path``."""
    _label_map_axes(ax, geo)
    ax.set_title(title, fontsize=11)
    pts, _ = ax.get_legend_handles_labels()
    ax.legend(handles=pts + handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2,
              fontsize=8, frameon=False)
    return _save(fig, path)


def raster_map(
    data: np.ndarray, path: str | Path, *, title: str, label: str,
    cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None,
    masked: np.ndarray | None = None, ref_rc: tuple[int, int] | None = None,
    transform: Any = None, crs: Any = None, points: Sequence[tuple[int, int]] = (),
) -> plt.Figure:
    """One raster of the InSAR branch (e.g. annual amplitude or phase) on the
    axes of :func:`velocity_map`: ``masked`` pixels (boolean, without a value)
    :data:`MASKED_COLOUR`, other pixels without a value :data:`NODATA_COLOUR`,
    both counted in the legend; ``points`` (row, col) are marked as alternative
    reference points; the colour range defaults to the 1st-99th
    percentile of the values."""
    data = np.asarray(data, dtype=np.float64)
    geo = _map_axes(transform, crs, data.shape)
    has = np.isfinite(data)
    masked = np.zeros(data.shape, bool) if masked is None else (np.asarray(masked, bool) & ~has)
    fig, ax = plt.subplots(figsize=(7.5, 6.3))
    kw = _map_kw(geo)
    finite = data[has]
    if finite.size:
        lo, hi = np.percentile(finite, [1, 99])
        vmin = float(lo) if vmin is None else vmin
        vmax = float(hi) if vmax is None else vmax
    handles = _backdrop(ax, [(~has & ~masked, NODATA_COLOUR, "no data"),
                             (masked, MASKED_COLOUR, "masked (mask.tif = 0)")], kw)  # fmt: skip
    im = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", zorder=1, **kw)
    _colorbar(fig, ax, im, label)
    if ref_rc is not None:
        at = geo["at"] if geo else (lambda r, c: (float(c), float(r)))
        ax.plot(*at(*ref_rc), "k*", ms=15, mfc="yellow", ls="none", clip_on=False, zorder=3,
                label=f"reference [row {ref_rc[0]}, col {ref_rc[1]}]")
    if len(points):
        at = geo["at"] if geo else (lambda r, c: (float(c), float(r)))
        xy = np.array([at(r, c) for r, c in points])
        ax.plot(xy[:, 0], xy[:, 1], "k^", ms=9, mfc="cyan", ls="none", clip_on=False, zorder=3,
                label=f"{len(points)} alternative reference points")
    if not finite.size:
        ax.text(0.5, 0.5, "no value", ha="center", va="center", fontsize=18, color="tab:red",
                transform=ax.transAxes)
    return _finish_map(fig, ax, geo, title, handles, path)


def mask_map(
    mask: np.ndarray, has_data: np.ndarray, path: str | Path, *,
    ref_rc: tuple[int, int] | None = None, transform: Any = None, crs: Any = None,
    title: str = "Quality mask (mask.tif)",
) -> plt.Figure:
    """``mask.tif`` (1 = kept): kept, masked (0 where there is data) and no
    data (``has_data`` false, e.g. NaN temporal coherence) in three colours,
    each counted."""
    mask = np.asarray(mask)
    has = np.asarray(has_data, bool)
    kept = has & (mask == 1)
    geo = _map_axes(transform, crs, mask.shape)
    fig, ax = plt.subplots(figsize=(7.5, 6.3))
    kw = _map_kw(geo)
    handles = _backdrop(ax, [(kept, "tab:green", "kept (1)"),
                             (has & ~kept, MASKED_COLOUR, "masked (0)"),
                             (~has, NODATA_COLOUR, "no data")], kw)  # fmt: skip
    if ref_rc is not None:
        at = geo["at"] if geo else (lambda r, c: (float(c), float(r)))
        ax.plot(*at(*ref_rc), "k*", ms=15, mfc="yellow", ls="none", clip_on=False, zorder=3,
                label=f"reference [row {ref_rc[0]}, col {ref_rc[1]}]")
    if geo is None:
        ax.set_xlim(-0.5, mask.shape[1] - 0.5)
        ax.set_ylim(mask.shape[0] - 0.5, -0.5)
    n = int(has.sum())
    pct = f"{kept.sum() / n:.0%}" if n else "n/a"
    title = f"{title}: {int(kept.sum())} of {n} pixels with data kept ({pct})"
    return _finish_map(fig, ax, geo, title, handles, path)


def _datetimes(dates: Sequence[object]) -> np.ndarray:
    """Dates (``datetime.date`` or ISO text) as an array of midnight
    ``datetime.datetime`` for a date axis (without pandas: importing it took
    0.4-0.5 s of the InSAR figures' job)."""
    import datetime as dt

    return np.array([dt.datetime.fromisoformat(str(d)) for d in dates] or [],
                    dtype=object)  # fmt: skip


def point_series(
    dates: list, series: dict[str, np.ndarray], units: str, path: str | Path
) -> plt.Figure:
    """Displacement against time at a few pixels."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    t = _datetimes(dates)
    for name, y in series.items():
        ax.plot(t, y, "o-", ms=4, label=name)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel(f"LOS displacement ({units}), + towards radar")
    ax.set_title("Displacement time series")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)


def network(
    dates: list,
    pairs: Sequence[tuple[int, int]],
    path: str | Path,
    excluded: Sequence[tuple[object, object]] = (),
) -> plt.Figure:
    """The pair network: one line per interferogram between its two dates;
    ``excluded`` ``(reference, secondary)`` dates (network editing) in grey, dashed."""
    from matplotlib.collections import LineCollection
    from matplotlib.dates import date2num

    n = len(pairs) + len(excluded)
    fig, ax = plt.subplots(figsize=(9, max(3, 0.12 * n + 2)))
    t = _datetimes(dates)
    # One collection per kind (not a line per interferogram: 2 x 174 artists
    # took 0.8 s to draw and save for a 60-date stack).
    ii = np.array([i for i, _ in pairs], dtype=int)
    jj = np.array([j for _, j in pairs], dtype=int)
    k = np.arange(len(pairs))
    ends = np.stack([ii, jj], axis=1).ravel()
    ax.plot(t[ends], np.repeat(k, 2), "o", color="k", ms=3, zorder=3)  # sets the date axis
    x = date2num(t)
    ax.add_collection(LineCollection(
        [[(x[i], r), (x[j], r)] for r, (i, j) in enumerate(pairs)], colors="tab:blue",
        linewidths=1.5, zorder=2))  # fmt: skip
    if excluded:
        te = date2num(_datetimes([d for pair in excluded for d in pair]))
        ax.add_collection(LineCollection(
            [[(te[2 * r], len(pairs) + r), (te[2 * r + 1], len(pairs) + r)]
             for r in range(len(excluded))],
            colors="0.6", linewidths=1.2, linestyles="--", label="excluded (network editing)"))  # fmt: skip
        ax.autoscale_view()
    ax.vlines(t, 0, 1, transform=ax.get_xaxis_transform(), colors="0.9", lw=0.8, zorder=0)
    ax.set_xlabel("date")
    ax.set_ylabel("interferogram")
    more = f", {len(excluded)} excluded" if excluded else ""
    ax.set_title(f"Network: {len(pairs)} interferograms over {len(dates)} dates{more}")
    if excluded:
        ax.legend(loc="lower right", fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)

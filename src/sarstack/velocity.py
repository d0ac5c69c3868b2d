"""Per-pixel velocity: the linear fit of a displacement series, plain and
weighted. NumPy (float64 inside), so the velocity stage needs no JAX; the
results are cast to float32 unless the input is float64. Re-exported by
:mod:`sarstack.timeseries`."""

from __future__ import annotations

import numpy as np

from sarstack.errors import SarstackError


def _out_dtype(disp: np.ndarray) -> np.dtype:
    return np.dtype(np.float64 if np.asarray(disp).dtype == np.float64 else np.float32)


def _weighted_line(
    t: np.ndarray, y: np.ndarray, w: np.ndarray, absolute: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted slope and its standard error per column of ``y`` (see :func:`velocity_weighted`)."""
    t = t[:, None]
    ok = np.isfinite(y) & (w > 0)  # NaN weights fail w > 0
    anchor = ok & np.isinf(w)
    has_anchor = np.any(anchor, axis=0)
    wf = np.where(ok & ~anchor, w, 0.0)
    yz = np.where(ok, y, 0.0)
    n_ok = np.sum(ok, axis=0)
    # Centre: the anchor point (the line goes through it), else the weighted means.
    sw = np.sum(wf, axis=0)
    sw1 = np.where(sw > 0, sw, 1.0)
    t_a = np.sum(np.where(anchor, t, 0.0), axis=0)
    y_a = np.sum(np.where(anchor, yz, 0.0), axis=0)
    tc = np.where(has_anchor, t_a, np.sum(wf * t, axis=0) / sw1)
    yc = np.where(has_anchor, y_a, np.sum(wf * yz, axis=0) / sw1)
    dt_ = np.where(ok, t - tc, 0.0)
    sxx = np.sum(wf * dt_ * dt_, axis=0)
    good = (n_ok >= 2) & (sxx > 0)
    sxx1 = np.where(good, sxx, 1.0)
    slope = np.sum(wf * dt_ * (yz - yc), axis=0) / sxx1
    if absolute:
        std = np.sqrt(1.0 / sxx1)
        std_ok = good
    else:
        r = np.where(ok, yz - yc - slope * dt_, 0.0)
        dof = n_ok - 2
        chi2 = np.sum(wf * r * r, axis=0)
        std = np.sqrt(chi2 / np.maximum(dof, 1) / sxx1)
        std_ok = good & (dof >= 1)
    return np.where(good, slope, np.nan), np.where(std_ok, std, np.nan)


def velocity(disp: np.ndarray, t_years: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel linear fit of a displacement series.

    Parameters
    ----------
    disp
        ``(n_dates, ...)`` displacement, the first date's zero included.
    t_years
        ``(n_dates,)`` time of each date in years (``dates.years_since``).

    Returns
    -------
    vel : np.ndarray
        Slope in units per year, shape ``disp.shape[1:]``.
    vel_std : np.ndarray
        Standard error of the slope from the fit residuals (NaN if fewer
        than 3 dates).
    intercept : np.ndarray
        Fitted value at ``t = 0``.

    Pixels with a NaN on any date get NaN.
    """
    disp = np.asarray(disp)
    t = np.asarray(t_years, dtype=np.float64)
    if t.ndim != 1 or disp.ndim < 1 or disp.shape[0] != t.size:
        raise SarstackError(
            f"disp has shape {disp.shape}; expected ({t.size}, ...) to match t_years"
        )
    if t.size < 2 or np.ptp(t) <= 0:
        raise SarstackError("a velocity needs at least 2 distinct dates")
    dtype = _out_dtype(disp)
    tail = disp.shape[1:]
    y = disp.reshape(t.size, -1).astype(np.float64)
    bad = np.any(np.isnan(y), axis=0)
    y[:, bad] = 0.0
    tc = t - t.mean()
    sxx = float(tc @ tc)
    ym = y.mean(axis=0)
    slope = (tc @ (y - ym)) / sxx
    intercept = ym - slope * t.mean()
    ss = np.sum((y - (intercept + slope * t[:, None])) ** 2, axis=0)
    std = np.sqrt(ss / (t.size - 2) / sxx) if t.size >= 3 else np.full_like(slope, np.nan)
    out = [np.where(bad, np.nan, o).astype(dtype).reshape(tail) for o in (slope, std, intercept)]
    return out[0], out[1], out[2]


def velocity_weighted(
    disp: np.ndarray, t_years: np.ndarray, weights: np.ndarray, *, absolute: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel weighted linear fit of a displacement series.

    Minimises ``sum_k w_k (disp_k - c - v t_k)^2`` per pixel over the dates
    with a finite value and a positive weight (other dates are skipped, so
    NaN dates of :func:`invert_weighted` need no masking).

    Parameters
    ----------
    disp
        ``(n_dates, ...)`` displacement, the first date's zero included.
    t_years
        ``(n_dates,)`` time of each date in years.
    weights
        ``(n_dates, ...)`` (or ``(n_dates,)`` for all pixels) non-negative
        weights, e.g. ``1 / x_var`` (scaled to displacement units) of
        :func:`invert_weighted`. The first date, the datum, is exact (its
        variance is 0): give it ``np.inf``, which is handled exactly, the
        line being constrained to pass through that point (e.g.
        ``1 / np.vstack([np.zeros((1, ...)), x_var])``). At most one
        infinite weight per pixel. NaN or zero weight skips a date.
    absolute
        False (default): the weights are relative, and ``vel_std`` is the
        standard error scaled by the weighted residuals,
        ``sqrt(sum w r^2 / (n - 2) / sum w (t - t_c)^2)`` with ``n`` the dates
        used (an infinite-weight date counts as one of them), as
        ``numpy.polyfit(t, y, 1, w=sqrt(w), cov=True)``. True: the weights are
        inverse variances and ``vel_std = 1 / sqrt(sum w (t - t_c)^2)``.

    Returns
    -------
    vel : np.ndarray
        Slope in units per year, shape ``disp.shape[1:]``; NaN where fewer
        than 2 dates (at distinct times) have a finite value and positive
        weight.
    vel_std : np.ndarray
        Standard error of the slope (NaN also where only 2 dates are used,
        unless ``absolute``).
    """
    disp = np.asarray(disp)
    t = np.asarray(t_years, dtype=np.float64)
    if t.ndim != 1 or disp.ndim < 1 or disp.shape[0] != t.size:
        raise SarstackError(
            f"disp has shape {disp.shape}; expected ({t.size}, ...) to match t_years"
        )
    wt = np.asarray(weights)
    if wt.ndim == 1 and disp.ndim > 1 and wt.shape[0] == t.size:
        wt = wt.reshape((t.size,) + (1,) * (disp.ndim - 1))
    try:
        wt = np.broadcast_to(wt, disp.shape)
    except ValueError:
        raise SarstackError(
            f"weights have shape {np.shape(weights)}; expected {disp.shape} or ({t.size},)"
        ) from None
    dtype = _out_dtype(disp)
    wt = wt.reshape(t.size, -1).astype(np.float64)
    with np.errstate(invalid="ignore"):
        if np.any(wt < 0):
            raise SarstackError("weights must be non-negative")
    y = disp.reshape(t.size, -1).astype(np.float64)
    if np.any(np.sum(np.isposinf(wt) & np.isfinite(y), axis=0) > 1):
        raise SarstackError("at most one date per pixel may have an infinite weight")
    vel, std = _weighted_line(t, y, wt, bool(absolute))
    tail = disp.shape[1:]
    return vel.astype(dtype).reshape(tail), std.astype(dtype).reshape(tail)

"""The linear velocity fit per pixel (plain and weighted) and its standard
error: white, AR(1)-scaled residuals, and the network's noise."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sarstack.errors import SarstackError

#: How the standard errors of the velocity and of the model's other parameters
#: are estimated (config ``insar.velocity_uncertainty``). ``"correlated"``: the
#: fit residuals may be correlated from one date to the next (scaled by
#: :func:`ar1_variance_factor`), and, given ``network``, the interferograms'
#: noise is propagated through the network, whose dates share it
#: (:func:`network_variance`); the two add. ``"white"``: the residuals are
#: independent, the textbook least-squares error, honest only when the model
#: is the whole signal and the dates' errors are independent.
UNCERTAINTY_METHODS = ("correlated", "white")


class NetworkNoise(NamedTuple):
    """The interferograms' noise, for the ``network`` term of the standard errors."""

    #: ``(n_dates - 1, n_dates - 1)`` covariance of the dates after the first
    #: per unit of interferogram noise variance: ``(A^T A)^-1`` of the network's
    #: incidence matrix ``A`` (:func:`sarstack.network.incidence_matrix`).
    date_cov: np.ndarray
    #: ``(n_pixels,)`` variance of each pixel's interferogram noise in the
    #: series' units squared (the inversion's ``ifg_residual_std`` squared);
    #: NaN (no redundancy) adds nothing.
    noise_var: np.ndarray


def network_variance(coef: np.ndarray, network: NetworkNoise) -> np.ndarray:
    """Variance that the interferograms' noise gives an estimate ``sum_t coef_t y_t``
    of the series ``y`` (``y_0 = 0``, the datum): ``noise_var * c' C c`` over the
    dates after the first, per pixel. ``coef`` is ``(n_dates,)`` or
    ``(n_dates, n_pixels)``."""
    c = np.asarray(coef, dtype=np.float64)[1:]
    cov = np.asarray(network.date_cov, dtype=np.float64)
    q = c @ cov @ c if c.ndim == 1 else np.einsum("tp,ts,sp->p", c, cov, c)
    nv = np.asarray(network.noise_var, dtype=np.float64).reshape(-1)
    return np.nan_to_num(nv, nan=0.0) * q


#: Largest lag-1 autocorrelation :func:`ar1_variance_factor` uses (variance x 39 at most).
AR1_MAX_RHO = 0.95


def check_uncertainty(uncertainty: str) -> bool:
    """True for ``"correlated"``; an error names the config key for anything but the methods."""
    if uncertainty not in UNCERTAINTY_METHODS:
        raise SarstackError(
            f"insar.velocity_uncertainty: {uncertainty!r} is not one of "
            f"{', '.join(UNCERTAINTY_METHODS)}"
        )
    return uncertainty == "correlated"


def ar1_variance_factor(residual: np.ndarray, ok: np.ndarray | None) -> np.ndarray:
    """Variance inflation of least-squares standard errors for residuals
    correlated from date to date, per pixel (column).

    Unmodelled signal (a seasonal term the model lacks, atmosphere, slow
    unwrapping noise) leaves residuals that persist over several dates, and
    the textbook error ``sigma^2 (G^T G)^-1`` then claims far more precision
    than the estimate has. Taking the residuals as a first-order
    autoregressive process with lag-1 correlation ``rho`` (from consecutive
    dates, both valid) shrinks the number of independent dates to
    ``n (1 - rho) / (1 + rho)`` and multiplies the variances by
    ``(1 + rho) / (1 - rho)``. ``rho`` is corrected for its small-sample bias
    (``+ (1 + 4 rho) / n``), limited to ``[0, AR1_MAX_RHO]`` (white or
    alternating residuals keep the textbook error) and taken per pixel.

    ``residual`` and ``ok`` are ``(n_dates, n_pixels)`` in date order; only
    ``ok`` entries count, and a pixel's consecutive dates are its consecutive
    ``ok`` dates (a date it lacks is skipped, as if never acquired). ``ok``
    None: every entry (the same values as an all-True ``ok``, without its
    passes).
    """
    if ok is None:
        rz = residual
        num = np.einsum("tp,tp->p", rz[1:], rz[:-1])
        den = np.einsum("tp,tp->p", rz, rz)
        return _ar1_factor(num, den, np.full(rz.shape[1:], max(rz.shape[0], 1), np.intp))
    rz = np.where(ok, residual, 0.0)
    num = np.einsum("tp,tp->p", rz[1:], rz[:-1])
    part = ~ok.all(axis=0)
    if part.any():  # pixels lacking dates: pair each ok date with the pixel's next ok date
        okp, rp = ok[:, part], rz[:, part]
        n_dates = okp.shape[0]
        idx = np.where(okp, np.arange(n_dates)[:, None], n_dates)
        nxt = np.minimum.accumulate(idx[::-1], axis=0)[::-1]
        nxt = np.concatenate([nxt[1:], np.full((1, okp.shape[1]), n_dates)])
        r_next = np.take_along_axis(np.concatenate([rp, np.zeros((1, okp.shape[1]))]), nxt, axis=0)
        num[part] = np.einsum("tp,tp->p", rp, r_next)
    den = np.einsum("tp,tp->p", rz, rz)
    return _ar1_factor(num, den, np.maximum(np.sum(ok, axis=0), 1))


def _ar1_factor(num: np.ndarray, den: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:func:`ar1_variance_factor` from the lag-1 and lag-0 sums and the counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    rho = rho + (1.0 + 4.0 * np.maximum(rho, 0.0)) / n
    rho = np.clip(rho, 0.0, AR1_MAX_RHO)
    return (1.0 + rho) / (1.0 - rho)


def _residual_sums(
    y: np.ndarray, t: np.ndarray, slope: np.ndarray, intercept: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``y`` ``(n_dates, px)``, the sum of the squared residuals
    ``r = y - (intercept + slope t)`` and their lag-1 sum ``sum r_k r_(k-1)``,
    one date at a time (each row's work while it is in cache, no residual
    array): the values of ``np.sum(r**2, axis=0)`` and of
    :func:`ar1_variance_factor`'s sums bit for bit (both add the rows in
    order; ``tests/test_velocity_model.py``). 60 dates x 32768 px: about half the
    time of the residual array and its separate passes."""
    px = y.shape[1]
    ss, lag1 = np.zeros(px), np.zeros(px)
    r, prev, tmp = np.empty(px), np.empty(px), np.empty(px)
    for k in range(y.shape[0]):
        np.multiply(t[k], slope, out=r)
        np.add(r, intercept, out=r)
        np.subtract(y[k], r, out=r)
        if k == 0:
            np.multiply(r, r, out=ss)
        else:
            ss += np.multiply(r, r, out=tmp)
            if k == 1:
                np.multiply(r, prev, out=lag1)
            else:
                lag1 += np.multiply(r, prev, out=tmp)
        r, prev = prev, r
    return ss, lag1


def _out_dtype(disp: np.ndarray) -> np.dtype:
    return np.dtype(np.float64 if np.asarray(disp).dtype == np.float64 else np.float32)


def _weighted_line(
    t: np.ndarray, y: np.ndarray, w: np.ndarray, absolute: bool, ar1: bool,
    network: NetworkNoise | None = None,
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
        var = chi2 / np.maximum(dof, 1) / sxx1
        if ar1:
            # the anchor (weighted residual 0) counts as a date: the limit of a huge weight
            var = var * ar1_variance_factor(np.sqrt(wf) * r, ok)
            if network is not None:
                var = var + network_variance(wf * dt_ / sxx1, network)
        std = np.sqrt(var)
        std_ok = good & (dof >= 1)
    return np.where(good, slope, np.nan), np.where(std_ok, std, np.nan)


class VelocityFit(NamedTuple):
    """Result of :func:`velocity`."""

    #: Slope, units per year.
    velocity: np.ndarray
    #: Its standard error from the fit residuals (see ``uncertainty``).
    std: np.ndarray
    #: Fitted value at ``t = 0``.
    intercept: np.ndarray


def velocity(
    disp: np.ndarray,
    t_years: np.ndarray,
    *,
    uncertainty: str,
    network: NetworkNoise | None = None,
) -> VelocityFit:
    """Per-pixel linear fit of a displacement series.

    Parameters
    ----------
    disp
        ``(n_dates, ...)`` displacement, the first date's zero included.
    t_years
        ``(n_dates,)`` time of each date in years (``dates.years_since``).
    uncertainty
        :data:`UNCERTAINTY_METHODS`: ``"correlated"`` scales the standard error
        by :func:`ar1_variance_factor` of the residuals and adds the
        ``network`` term (:func:`network_variance`); ``"white"`` does neither.
    network
        The interferograms' noise (:class:`NetworkNoise`), or None.

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
    y = disp.reshape(t.size, -1).astype(np.float64, copy=False)
    # A NaN anywhere in a column makes its mean NaN: a block without one
    # skips the scan for them (the same values).
    ym = y.mean(axis=0)
    bad = np.isnan(ym)
    if bad.any():
        bad = np.any(np.isnan(y), axis=0)
        if np.may_share_memory(y, disp):  # never the caller's array
            y = y.copy()
        y[:, bad] = 0.0
        ym = y.mean(axis=0)
    tc = t - t.mean()
    sxx = float(tc @ tc)
    slope = (tc @ (y - ym)) / sxx
    intercept = ym - slope * t.mean()
    ss, lag1 = _residual_sums(y, t, slope, intercept)
    std = np.sqrt(ss / (t.size - 2) / sxx) if t.size >= 3 else np.full_like(slope, np.nan)
    if check_uncertainty(uncertainty):
        # ar1_variance_factor(r, None) from its two sums (its lag-0 sum is ss)
        var = std * std * _ar1_factor(lag1, ss, np.full(ss.shape, max(t.size, 1), np.intp))
        if network is not None:
            var = var + network_variance(tc / sxx, network)
        std = np.sqrt(var)
    out = [np.where(bad, np.nan, o).astype(dtype).reshape(tail) for o in (slope, std, intercept)]
    return VelocityFit(out[0], out[1], out[2])


def velocity_weighted(
    disp: np.ndarray,
    t_years: np.ndarray,
    weights: np.ndarray,
    *,
    absolute: bool = False,
    uncertainty: str,
    network: NetworkNoise | None = None,
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
    uncertainty, network
        As in :func:`velocity` (relative weights only; the AR(1) factor comes
        from the weighted residuals of the dates used (the anchor with 0), and
        the network term from the weighted slope's coefficients).

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
    vel, std = _weighted_line(t, y, wt, bool(absolute), check_uncertainty(uncertainty), network)
    tail = disp.shape[1:]
    return vel.astype(dtype).reshape(tail), std.astype(dtype).reshape(tail)

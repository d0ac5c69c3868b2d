"""Per-pixel velocity: the linear fit of a displacement series, plain and
weighted, and the general deformation model (offset + velocity, optional
annual and semiannual sinusoids and Heaviside steps, see
:class:`DeformationModel` and :func:`fit_model`). NumPy (float64 inside), so
the velocity stage needs no JAX; the results are cast to float32 unless the
input is float64. :func:`velocity` and :func:`velocity_weighted` are
re-exported by :mod:`sarstack.timeseries`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sarstack.dates import DAYS_PER_YEAR
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
    #: incidence matrix ``A`` (:func:`sarstack.dates.incidence_matrix`).
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


def ar1_variance_factor(residual: np.ndarray, ok: np.ndarray) -> np.ndarray:
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
    ``ok`` dates (a date it lacks is skipped, as if never acquired).
    """
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
    n = np.maximum(np.sum(ok, axis=0), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    rho = rho + (1.0 + 4.0 * np.maximum(rho, 0.0)) / n
    rho = np.clip(rho, 0.0, AR1_MAX_RHO)
    return (1.0 + rho) / (1.0 - rho)


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
    uncertainty: str = "correlated",
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
    y = disp.reshape(t.size, -1).astype(np.float64)
    bad = np.any(np.isnan(y), axis=0)
    y[:, bad] = 0.0
    tc = t - t.mean()
    sxx = float(tc @ tc)
    ym = y.mean(axis=0)
    slope = (tc @ (y - ym)) / sxx
    intercept = ym - slope * t.mean()
    r = y - (intercept + slope * t[:, None])
    ss = np.sum(r**2, axis=0)
    std = np.sqrt(ss / (t.size - 2) / sxx) if t.size >= 3 else np.full_like(slope, np.nan)
    if check_uncertainty(uncertainty):
        var = std * std * ar1_variance_factor(r, np.ones(r.shape, bool))
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
    uncertainty: str = "correlated",
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


# --------------------------------------------------------------------------- #
# General deformation model: offset + velocity (+ seasonal terms) (+ steps)
# --------------------------------------------------------------------------- #

#: Config key of the model; every error about it names this key.
MODEL_KEY = "insar.velocity_model"  # the config key the stages name in their errors


def model_error(err: Exception) -> SarstackError:
    """A model error as the stages report it, under its config key
    (``insar.velocity_model.steps: ...`` / ``insar.velocity_model: ...``)."""
    msg = str(err)
    return SarstackError(f"{MODEL_KEY}.{msg}" if msg.startswith("steps: ") else f"{MODEL_KEY}: {msg}")

#: Epoch of the seasonal terms, so that their phase is a day of the calendar year.
SEASONAL_EPOCH = dt.date(2000, 1, 1)

#: Days per year of every time axis here (``dates.years_since``).

#: A pixel whose normal matrix, scaled to a unit diagonal, has a Cholesky
#: pivot below this is singular (a column within about 1e-5 rad of the span of
#: the ones before it): NaN outputs.
RCOND = 1e-10

# Pixels per batch of the per-pixel normal equations (bounds the k x k temporaries).
_CHUNK = 32768


def _parse_step(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.datetime.strptime(str(value).strip(), "%Y-%m-%d").date()
    except ValueError:
        raise SarstackError(f"steps: {value!r} is not a date YYYY-MM-DD") from None


@dataclass(frozen=True)
class DeformationModel:
    """Which terms the per-pixel fit has, besides offset and velocity.

    The model of the displacement ``d`` at a date (units of the time series)::

        d = c + v t
            + a1 cos(2 pi tau) + b1 sin(2 pi tau)        (annual)
            + a2 cos(4 pi tau) + b2 sin(4 pi tau)        (semiannual)
            + sum_j s_j H(date - step_j)                 (steps)

    ``t``: years (365.25 d) since the first date of the series, as the plain
    linear fit; ``tau``: years (365.25 d) since :data:`SEASONAL_EPOCH`
    (2000-01-01), a fixed calendar epoch so that a seasonal phase is a day of
    the year; ``H = 1`` on and after the step date, 0 before it. The annual
    term is ``A cos(2 pi (tau - phi))`` with amplitude ``A = hypot(a1, b1)``
    and peak at ``phi`` years after the epoch (modulo 1), reported as the
    day of year ``1 + 365.25 * (phi mod 1)``, in ``[1, 366.25)`` (1.0 is
    1 January, 00:00). The semiannual term is ``A2 cos(4 pi (tau - phi2))``,
    its first peak of the year at day ``1 + 365.25 * (phi2 mod 0.5)``, in
    ``[1, 183.625)``.

    Parameters
    ----------
    annual, semiannual
        Fit the annual / semiannual sinusoid (two parameters each).
    steps
        Dates of Heaviside steps (one parameter each), sorted; use
        :meth:`from_config` to parse and check them.
    """

    annual: bool = False
    semiannual: bool = False
    steps: tuple[dt.date, ...] = ()

    @classmethod
    def from_config(
        cls, annual: bool = False, semiannual: bool = False, steps: Iterable[object] | None = ()
    ) -> DeformationModel:
        """The model of the config ``insar.velocity_model`` (steps as
        ``YYYY-MM-DD`` strings or dates). A malformed or repeated step date is
        a :class:`SarstackError` naming ``insar.velocity_model.steps``."""
        parsed: list[dt.date] = []
        for s in steps or ():
            d = _parse_step(s)
            if d in parsed:
                raise SarstackError(f"steps: {d} is given twice")
            parsed.append(d)
        return cls(bool(annual), bool(semiannual), tuple(sorted(parsed)))

    @property
    def is_linear(self) -> bool:
        """True for the plain offset + velocity model (the default)."""
        return not (self.annual or self.semiannual or self.steps)

    @property
    def n_params(self) -> int:
        """Number of parameters ``k`` per pixel."""
        return 2 + 2 * self.annual + 2 * self.semiannual + len(self.steps)

    def parameter_names(self) -> list[str]:
        """Columns of :func:`design_matrix`, in order: ``offset``, ``velocity``,
        ``annual_cos``, ``annual_sin``, ``semiannual_cos``, ``semiannual_sin``,
        ``step_{YYYYMMDD}``... (those of the model)."""
        names = ["offset", "velocity"]
        if self.annual:
            names += ["annual_cos", "annual_sin"]
        if self.semiannual:
            names += ["semiannual_cos", "semiannual_sin"]
        return names + [f"step_{d:%Y%m%d}" for d in self.steps]

    def output_names(self) -> list[str]:
        """Rasters of the model (file stems), each followed by its ``_std``:
        ``velocity``, ``annual_amplitude``, ``annual_phase``,
        ``semiannual_amplitude``, ``semiannual_phase``, ``step_{YYYYMMDD}``."""
        names = ["velocity"]
        if self.annual:
            names += ["annual_amplitude", "annual_phase"]
        if self.semiannual:
            names += ["semiannual_amplitude", "semiannual_phase"]
        names += [f"step_{d:%Y%m%d}" for d in self.steps]
        return [n for name in names for n in (name, f"{name}_std")]

    def describe(self) -> str:
        """E.g. ``offset + velocity + annual + step 2020-03-01``."""
        terms = ["offset", "velocity"]
        if self.annual:
            terms.append("annual")
        if self.semiannual:
            terms.append("semiannual")
        terms += [f"step {d}" for d in self.steps]
        return " + ".join(terms)

    def check(self, dates: Sequence[dt.date]) -> None:
        """Raise a one-line :class:`SarstackError` naming the config key when
        the model cannot be estimated from the series ``dates`` (sorted): a
        step not strictly after the first date or after the last (it needs a
        date before it and one on or after it), a repeated step, two steps
        with no date between them, or no more dates than parameters."""
        first, last = dates[0], dates[-1]
        seen: dict[int, dt.date] = {}
        for i, d in enumerate(self.steps):
            if d in self.steps[:i]:
                raise SarstackError(f"steps: {d} is given twice")
            if not first < d <= last:
                raise SarstackError(
                    f"steps: {d} is not inside the time series {first}..{last}"
                    " (a step needs a date before it and one on or after it)"
                )
            n_before = sum(x < d for x in dates)
            if n_before in seen:
                raise SarstackError(
                    f"steps: {seen[n_before]} and {d} have no date between them"
                    f" ({dates[n_before - 1]} and {dates[n_before]}): not separately estimable"
                )
            seen[n_before] = d
        if len(dates) <= self.n_params:
            raise SarstackError(
                f"{self.describe()} has {self.n_params} parameters and needs more"
                f" dates than that; the time series has {len(dates)}"
            )


def design_matrix(dates: Sequence[dt.date], model: DeformationModel) -> np.ndarray:
    """``(n_dates, k)`` float64 design matrix of ``model`` (columns as
    :meth:`DeformationModel.parameter_names`; conventions in
    :class:`DeformationModel`)."""
    days = np.array([(d - dates[0]).days for d in dates], dtype=np.float64)
    tau = np.array([(d - SEASONAL_EPOCH).days for d in dates], dtype=np.float64) / DAYS_PER_YEAR
    cols = [np.ones_like(days), days / DAYS_PER_YEAR]
    if model.annual:
        cols += [np.cos(2 * np.pi * tau), np.sin(2 * np.pi * tau)]
    if model.semiannual:
        cols += [np.cos(4 * np.pi * tau), np.sin(4 * np.pi * tau)]
    cols += [np.array([float(d >= s) for d in dates]) for s in model.steps]
    return np.stack(cols, axis=1)


def _inverse_spd(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverses of ``(k, k, P)`` symmetric unit-diagonal matrices by a batched
    Cholesky factorisation (loops over ``k`` only), and which are regular
    (every pivot above :data:`RCOND`); the inverse of a singular one is junk."""
    k, n_pix = m.shape[0], m.shape[2]
    low = np.zeros_like(m)
    good = np.ones(n_pix, dtype=bool)
    for j in range(k):
        piv = m[j, j] - np.sum(low[j, :j] ** 2, axis=0)
        good &= piv > RCOND
        low[j, j] = np.sqrt(np.where(good, piv, 1.0))
        for i in range(j + 1, k):
            low[i, j] = (m[i, j] - np.sum(low[i, :j] * low[j, :j], axis=0)) / low[j, j]
    linv = np.zeros_like(m)  # inverse of the lower factor, by forward substitution
    for j in range(k):
        linv[j, j] = 1.0 / low[j, j]
        for i in range(j + 1, k):
            linv[i, j] = -np.sum(low[i, j:i] * linv[j:i, j], axis=0) / low[i, i]
    inv = np.empty_like(m)
    for i in range(k):
        for j in range(i + 1):
            inv[i, j] = inv[j, i] = np.sum(linv[i:, i] * linv[i:, j], axis=0)
    return inv, good


def fit_design(
    disp: np.ndarray,
    g: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    uncertainty: str = "correlated",
    network: NetworkNoise | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel (weighted) least squares ``disp ~ g @ params`` on each pixel's
    finite dates, with standard errors from the fit residuals.

    Per pixel, over the dates ``i`` with a finite value (and a positive
    weight), minimises ``sum_i w_i (disp_i - g_i @ p)^2``; ``N = G^T W G``,
    ``sigma^2 = sum_i w_i r_i^2 / (n - k)`` (``n`` dates used, ``k``
    parameters; the weights are relative) and ``cov = sigma^2 N^-1``. The
    normal equations of all pixels are solved together (batched NumPy, no
    per-pixel loop), in float64.

    Parameters
    ----------
    disp
        ``(n_dates, ...)`` displacement; NaN dates are skipped per pixel.
    g
        ``(n_dates, k)`` design matrix (:func:`design_matrix`).
    weights
        Optional ``(n_dates, ...)`` or ``(n_dates,)`` finite non-negative
        weights; a zero or NaN weight skips the date.
    uncertainty
        ``"correlated"``: ``cov`` is scaled by :func:`ar1_variance_factor` of
        the weighted residuals (one factor for every parameter), and the
        ``network`` term added: ``noise_var * P C P^T`` with ``P = N^-1 G^T W``
        the pixel's estimator and ``C`` the network's date covariance;
        ``"white"``: neither.
    network
        The interferograms' noise (:class:`NetworkNoise`), or None.

    Returns
    -------
    params : np.ndarray
        ``(k, ...)`` float64.
    cov : np.ndarray
        ``(k, k, ...)`` float64 covariance of the parameters.
    n_used : np.ndarray
        ``(...)`` int, dates used per pixel.

    A pixel with ``n <= k`` or a singular ``N`` (e.g. no finite date on one
    side of a step) gets NaN parameters and covariance.
    """
    disp = np.asarray(disp)
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2 or disp.ndim < 1 or disp.shape[0] != g.shape[0]:
        raise SarstackError(
            f"disp has shape {disp.shape}; expected ({g.shape[0]}, ...) to match the design matrix"
        )
    n, k = g.shape
    ar1 = check_uncertainty(uncertainty)
    tail = disp.shape[1:]
    y = disp.reshape(n, -1).astype(np.float64)
    ok = np.isfinite(y)
    if weights is None:
        w = ok.astype(np.float64)
    else:
        wt = np.asarray(weights, dtype=np.float64)
        if wt.ndim == 1 and disp.ndim > 1 and wt.shape[0] == n:
            wt = wt.reshape((n,) + (1,) * (disp.ndim - 1))
        try:
            wt = np.broadcast_to(wt, disp.shape).reshape(n, -1)
        except ValueError:
            raise SarstackError(
                f"weights have shape {np.shape(weights)}; expected {disp.shape} or ({n},)"
            ) from None
        with np.errstate(invalid="ignore"):
            if np.any(wt < 0) or np.any(np.isposinf(wt)):
                raise SarstackError("weights of the velocity model must be finite and non-negative")
            ok &= wt > 0  # NaN weights fail
        w = np.where(ok, wt, 0.0)
    yz = np.where(ok, y, 0.0)
    n_used = ok.sum(axis=0)
    gg = (g[:, :, None] * g[:, None, :]).reshape(n, k * k)
    n_pix = y.shape[1]
    params = np.full((k, n_pix), np.nan)
    cov = np.full((k, k, n_pix), np.nan)
    for a in range(0, n_pix, _CHUNK):  # pixels last: contiguous vector ops
        b = min(a + _CHUNK, n_pix)
        wc, yc = w[:, a:b], yz[:, a:b]
        nm = (gg.T @ wc).reshape(k, k, b - a)
        rhs = g.T @ (wc * yc)
        diag = nm[np.arange(k), np.arange(k)]
        sc = 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0))
        ninv, good = _inverse_spd(nm * sc[:, None] * sc[None, :])
        good &= n_used[a:b] > k
        ninv *= sc[:, None] * sc[None, :]
        p = np.einsum("ijp,jp->ip", ninv, rhs)
        r = yc - g @ p
        sigma2 = np.sum(wc * r * r, axis=0) / np.maximum(n_used[a:b] - k, 1)
        if ar1:
            sigma2 = sigma2 * ar1_variance_factor(np.sqrt(wc) * r, wc > 0)
        cc = ninv * sigma2
        if ar1 and network is not None:
            # P = N^-1 G^T W of each pixel, on the dates after the first (the datum)
            est = np.einsum("ijp,tj,tp->itp", ninv, g[1:], wc[1:], optimize=True)
            q = np.einsum("itp,ts,jsp->ijp", est, network.date_cov, est, optimize=True)
            nv = np.asarray(network.noise_var, np.float64).reshape(-1)[a:b]
            nv = np.nan_to_num(nv, nan=0.0)
            cc = cc + q * nv
        params[:, a:b] = np.where(good, p, np.nan)
        cov[:, :, a:b] = np.where(good, cc, np.nan)
    return params.reshape((k,) + tail), cov.reshape((k, k) + tail), n_used.reshape(tail)


def _harmonic(
    a: np.ndarray, b: np.ndarray, vaa: np.ndarray, vab: np.ndarray, vbb: np.ndarray, period: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Amplitude, peak day of year and their standard errors (delta method) of
    ``a cos(2 pi tau / period) + b sin(2 pi tau / period)``."""
    amp = np.hypot(a, b)
    pos = amp > 0
    a2 = np.where(pos, amp * amp, 1.0)
    with np.errstate(invalid="ignore"):
        amp_std = np.sqrt((a * a * vaa + 2 * a * b * vab + b * b * vbb) / a2)
        theta_std = np.sqrt((b * b * vaa - 2 * a * b * vab + a * a * vbb) / (a2 * a2))
    phi = np.mod(np.arctan2(b, a) * period / (2 * np.pi), period)  # years after the epoch
    phi = np.where(phi >= period, phi - period, phi)
    day = 1.0 + DAYS_PER_YEAR * phi
    day_std = DAYS_PER_YEAR * period / (2 * np.pi) * theta_std
    nan = np.nan
    return amp, np.where(pos, amp_std, nan), np.where(pos, day, nan), np.where(pos, day_std, nan)


def fit_model(
    disp: np.ndarray,
    dates: Sequence[dt.date],
    model: DeformationModel,
    *,
    weights: np.ndarray | None = None,
    uncertainty: str = "correlated",
    network: NetworkNoise | None = None,
) -> dict[str, np.ndarray]:
    """Per-pixel fit of the deformation model to a displacement series.

    Each pixel is fitted on its finite dates (with a positive weight), so a
    date cut off from the network at a pixel costs only that date there; see
    :func:`fit_design` for the least squares and :class:`DeformationModel`
    for the terms and conventions. Unlike :func:`velocity` (where any NaN
    date makes the pixel NaN), the linear model here also uses the finite
    dates of a pixel; the velocity stage keeps :func:`velocity` for the
    linear model.

    Parameters
    ----------
    disp
        ``(n_dates, ...)`` displacement in the series' units (radians or
        meters), the first date's zero (the datum) included.
    dates
        ``(n_dates,)`` sorted dates of ``disp``.
    model
        The terms; checked with :meth:`DeformationModel.check`.
    weights
        Optional relative date weights (``(n_dates,)`` or ``disp.shape``),
        finite and non-negative: weighted least squares.
    uncertainty, network
        How the standard errors are estimated (:func:`fit_design`).

    Returns
    -------
    dict of str to np.ndarray
        Keyed by :meth:`DeformationModel.output_names`, each of shape
        ``disp.shape[1:]``, float32 unless ``disp`` is float64:

        * ``velocity``: units per year; ``velocity_std`` its standard error.
        * ``annual_amplitude``, ``semiannual_amplitude``: units, ``>= 0``.
        * ``annual_phase``: day of year of the annual peak, ``[1, 366.25)``;
          ``semiannual_phase``: first semiannual peak, ``[1, 183.625)``.
        * ``step_{YYYYMMDD}``: units, the jump on that date.
        * ``<name>_std``: standard error of each (phase: in days), from
          ``sigma^2 (G^T W G)^-1``; amplitude and phase by the delta method
          with the sine-cosine covariance (the amplitude is biased high
          where it is within a few standard errors of zero).

        NaN everywhere for a pixel with too few dates (``n <= k``) or a
        singular system (e.g. no finite date on one side of a step); the
        phase and the amplitude's standard error NaN where the amplitude is
        exactly 0.
    """
    disp = np.asarray(disp)
    dates = list(dates)
    if disp.ndim < 1 or disp.shape[0] != len(dates):
        raise SarstackError(
            f"disp has shape {disp.shape}; expected ({len(dates)}, ...) to match the dates"
        )
    model.check(dates)
    params, cov, _ = fit_design(
        disp, design_matrix(dates, model), weights, uncertainty=uncertainty, network=network
    )
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore"):
        out["velocity"] = params[1]
        out["velocity_std"] = np.sqrt(cov[1, 1])
    i = 2
    for name, on, period in (
        ("annual", model.annual, 1.0),
        ("semiannual", model.semiannual, 0.5),
    ):
        if on:
            amp, amp_std, day, day_std = _harmonic(
                params[i], params[i + 1], cov[i, i], cov[i, i + 1], cov[i + 1, i + 1], period
            )
            out[f"{name}_amplitude"], out[f"{name}_amplitude_std"] = amp, amp_std
            out[f"{name}_phase"], out[f"{name}_phase_std"] = day, day_std
            i += 2
    for d in model.steps:
        out[f"step_{d:%Y%m%d}"] = params[i]
        with np.errstate(invalid="ignore"):
            out[f"step_{d:%Y%m%d}_std"] = np.sqrt(cov[i, i])
        i += 1
    dtype = _out_dtype(disp)
    return {name: out[name].astype(dtype) for name in model.output_names()}


def output_units(name: str, units: str) -> str:
    """Units string of output ``name`` of :func:`fit_model` for a series in ``units``."""
    base = name[: -len("_std")] if name.endswith("_std") else name
    if base == "velocity":
        return f"{units}/year"
    if base.endswith("_phase"):
        return "days" if name.endswith("_std") else "day of year"
    return units


# --------------------------------------------------------------------------- #
# Far-field check of a velocity map
# --------------------------------------------------------------------------- #

#: The scene is cut into this many strips along each axis for the far field.
FAR_FIELD_CELLS = 4

#: Quiet cells: an interquartile range of velocity at most this times the smallest.
FAR_FIELD_QUIET = 1.5

#: Warn when the far-field median exceeds this fraction of the velocity spread ...
FAR_FIELD_FRACTION = 0.05

#: ... and this many robust standard deviations of the far-field cell.
FAR_FIELD_SIGMAS = 3.0

#: Well-constrained: a finite standard error no more than this times the median one.
WELL_CONSTRAINED_STD = 3.0


def well_constrained(vel: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Pixels with a finite velocity and a finite standard error at most
    :data:`WELL_CONSTRAINED_STD` times the median standard error. A pixel
    fitted on too few dates to have a standard error (two dates) is not."""
    vel, std = np.asarray(vel, np.float64), np.asarray(std, np.float64)
    ok = np.isfinite(vel) & np.isfinite(std)
    if not ok.any():
        return ok
    return ok & (std <= WELL_CONSTRAINED_STD * float(np.median(std[ok])))


@dataclass(frozen=True)
class FarField:
    """How far from zero the quiet part of a velocity map reads.

    ``median``: median velocity of the well-constrained pixels of the far-field
    cell (``rows``, ``cols``: its half-open bounds). The scene is cut into
    :data:`FAR_FIELD_CELLS` x :data:`FAR_FIELD_CELLS` cells; of those at least
    half well constrained, the quiet ones have an interquartile range of
    velocity at most :data:`FAR_FIELD_QUIET` times the smallest, and the far
    field is the quiet cell whose median is nearest zero (so the check flags
    a map only when no quiet part of it reads as stable ground; a flat bowl
    floor or an ill-constrained model does not pass for the far field while
    a quiet cell reads zero). ``scatter``: that cell's robust standard deviation
    (IQR / 1.349); ``spread``: 98th minus 2nd percentile of the velocity over
    every well-constrained pixel; ``n_pixels``: pixels in the median.
    """

    median: float
    scatter: float
    spread: float
    n_pixels: int
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def limit(self) -> float:
        """Largest |median| that is not suspicious."""
        return max(FAR_FIELD_FRACTION * self.spread, FAR_FIELD_SIGMAS * self.scatter)

    @property
    def suspicious(self) -> bool:
        """The quiet ground moves by more than :attr:`limit`: a reference on moving ground."""
        return abs(self.median) > self.limit


def far_field(vel: np.ndarray, std: np.ndarray) -> FarField | None:
    """The far field of a velocity map (:class:`FarField`), or None when no
    cell is at least half well constrained.

    Stable ground far from the deformation is a quiet part of a scene: its
    velocities vary little. Referenced on stable ground it reads about zero;
    referenced on moving ground (the rim of a subsidence bowl) every quiet
    part reads minus the reference's motion, which
    :attr:`FarField.suspicious` flags.
    """
    vel = np.asarray(vel, np.float64)
    good = well_constrained(vel, std)
    if not good.any():
        return None
    cells: list[tuple[float, FarField]] = []
    rows = np.array_split(np.arange(vel.shape[0]), FAR_FIELD_CELLS)
    cols = np.array_split(np.arange(vel.shape[1]), FAR_FIELD_CELLS)
    for rr in rows:
        for cc in cols:
            if not (rr.size and cc.size):
                continue
            sl = (slice(rr[0], rr[-1] + 1), slice(cc[0], cc[-1] + 1))
            g = good[sl]
            if g.sum() < max(3, 0.5 * g.size):
                continue
            v = vel[sl][g]
            q25, q50, q75 = np.percentile(v, [25, 50, 75])
            cell = FarField(
                median=float(q50), scatter=float((q75 - q25) / 1.349), spread=0.0,
                n_pixels=int(v.size), rows=(int(rr[0]), int(rr[-1]) + 1),
                cols=(int(cc[0]), int(cc[-1]) + 1),
            )  # fmt: skip
            cells.append((float(q75 - q25), cell))
    if not cells:
        return None
    quiet = min(iqr for iqr, _ in cells) * FAR_FIELD_QUIET
    # Nearest zero among the quiet cells (ties: the first in row-major order).
    f = min((c for iqr, c in cells if iqr <= quiet), key=lambda c: abs(c.median))
    p2, p98 = np.percentile(vel[good], [2, 98])
    return FarField(f.median, f.scatter, float(p98 - p2), f.n_pixels, f.rows, f.cols)

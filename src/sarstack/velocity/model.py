"""Deformation models beyond a line (seasonal terms, steps): the design
matrix, the batched fit and its parameters' standard errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sarstack.dates import DAYS_PER_YEAR
from sarstack.errors import SarstackError
from sarstack.velocity.linear import (
    NetworkNoise,
    _out_dtype,
    ar1_variance_factor,
    check_uncertainty,
)

#: Config key of the model; every error about it names this key.
MODEL_KEY = "insar.velocity_model"  # the config key the stages name in their errors


def model_error(err: Exception) -> SarstackError:
    """A model error as the stages report it, under its config key
    (``insar.velocity_model.steps: ...`` / ``insar.velocity_model: ...``)."""
    msg = str(err)
    return SarstackError(f"{MODEL_KEY}.{msg}" if msg.startswith("steps: ") else f"{MODEL_KEY}: {msg}")


#: Epoch of the seasonal terms, so that their phase is a day of the calendar year.
SEASONAL_EPOCH = dt.date(2000, 1, 1)


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
    uncertainty: str,
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
    uncertainty: str,
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

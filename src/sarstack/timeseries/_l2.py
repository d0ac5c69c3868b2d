"""Least-squares (L2) network inversion: one product with the pseudo-inverse of ``A``.

NumPy, not JAX: the solve is two dense products per block, which BLAS runs
as fast as XLA did, and a stage that only needs L2 then never imports JAX
(~1.3 s and ~150 MB per job). The results agree with the former JAX kernel
to float rounding (``tests/test_timeseries.py`` checks against
``numpy.linalg.lstsq``).
"""

from __future__ import annotations

import numpy as np

from sarstack.network import _pairs_from_incidence
from sarstack.timeseries._common import LeastSquares, _prepare


def invert_l2(a: np.ndarray, phase: np.ndarray, *, all_finite: bool = False) -> LeastSquares:
    """Least-squares network inversion of every pixel at once.

    Parameters
    ----------
    a
        Design matrix ``(n_ifg, n_dates - 1)`` of full column rank, normally
        ``snet.incidence_matrix(pairs, n_dates)``; shared by all pixels.
    phase
        ``(n_ifg, ...)`` unwrapped phase; NaN = nodata.
    all_finite
        The caller knows every phase is finite: the scan for NaN is skipped
        (the same results).

    Returns
    -------
    x : np.ndarray
        ``(n_dates - 1, ...)`` phase of each later date relative to the first.
    residual : np.ndarray
        ``(n_ifg, ...)``, ``phase - A @ x``.

    Raises
    ------
    SarstackError
        If the network is disconnected (A is rank deficient) or shapes disagree.
    """
    a, flat, tail, dtype, pinv = _prepare(a, phase)
    b = np.asarray(flat, dtype=dtype)
    bad = np.zeros(b.shape[1], bool) if all_finite else np.isnan(b).any(axis=0)
    if bad.any():
        b = np.where(bad, 0.0, b).astype(dtype, copy=False)
    x = pinv.astype(dtype) @ b
    res = _model_phase(a, x)
    np.subtract(b, res, out=res)  # b - A x
    if not all_finite:
        x[:, bad] = np.nan
        res[:, bad] = np.nan
    return LeastSquares(x.reshape((a.shape[1], *tail)), res.reshape((a.shape[0], *tail)))


def _model_phase(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``A @ x`` in ``x``'s dtype. For an incidence matrix (the networks of
    :func:`sarstack.network.incidence_matrix`) each row is one date minus
    another, taken row by row: the same values as the product (one rounding
    either way, the zero terms exact), without BLAS's pass over the zeros
    and its temporary (about 10 % of an L2 block's solve on 174 ifgs x 59
    dates, measured alone)."""
    pairs = _pairs_from_incidence(a)
    if pairs is None:
        return a.astype(x.dtype) @ x
    out = np.empty((a.shape[0], *x.shape[1:]), x.dtype)
    for row, (i, j) in zip(out, pairs, strict=True):
        if i == 0:  # the first date is the datum (0)
            row[...] = x[j - 1]
        elif j == 0:  # a row of -1 alone: the datum minus date i
            np.negative(x[i - 1], out=row)
        else:
            np.subtract(x[j - 1], x[i - 1], out=row)
    return out

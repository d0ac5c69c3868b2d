"""Least-squares (L2) network inversion: one product with the pseudo-inverse of ``A``.

NumPy, not JAX: the solve is two dense products per block, which BLAS runs
as fast as XLA did, and a stage that only needs L2 then never imports JAX
(~1.3 s and ~150 MB per job). The results agree with the former JAX kernel
to float rounding (``tests/test_timeseries.py`` checks against
``numpy.linalg.lstsq``).
"""

from __future__ import annotations

from collections.abc import Iterator

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
        _model_row(x, i, j, row)
    return out


def _model_row(x: np.ndarray, i: int, j: int, out: np.ndarray) -> None:
    """Row ``(i, j)`` of an incidence matrix times ``x`` (date ``j`` minus
    date ``i``, date 0 the datum) into ``out``."""
    if i == 0:  # the first date is the datum (0)
        out[...] = x[j - 1]
    elif j == 0:  # a row of -1 alone: the datum minus date i
        np.negative(x[i - 1], out=out)
    else:
        np.subtract(x[j - 1], x[i - 1], out=out)


def invert_l2_rows(a: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    """:func:`invert_l2` of finite ``phase`` ``(n_ifg, px)`` (``all_finite``)
    with the residuals handed out one row at a time, never as a whole array.

    Returns ``x`` and an iterator over the rows of ``phase - A @ x``, each in
    one buffer reused for the next row (take what a row gives before asking
    for the next): the same values bit for bit as :func:`invert_l2`'s
    residuals (the same two roundings per value). A caller that only sums the
    residuals (:func:`sarstack.insar.outputs.residual_stats`) then makes each
    row while it is in cache, not a block-sized array written and read back
    twice. A 174-ifg x 32768-px block's compute, two processes at once:
    70-85 ms against 79-98 ms; two whole 2048 x 1024 strips side by side,
    eight alternating pairs: within this VM's noise (10.5-13.8 s against
    11.0-13.5 s).
    """
    a, flat, _, dtype, pinv = _prepare(a, phase)
    b = np.asarray(flat, dtype=dtype)
    x = pinv.astype(dtype) @ b
    return x, _residual_rows(a, x, b)


def _residual_rows(a: np.ndarray, x: np.ndarray, b: np.ndarray) -> Iterator[np.ndarray]:
    """The rows of ``b - A @ x`` in one reused buffer (see :func:`invert_l2_rows`)."""
    pairs = _pairs_from_incidence(a)
    if pairs is None:  # not an incidence matrix: the product as invert_l2 takes it
        model = a.astype(x.dtype) @ x
        for k in range(len(b)):
            yield np.subtract(b[k], model[k], out=model[k])
        return
    buf = np.empty(x.shape[1:], x.dtype)
    for k, (i, j) in enumerate(pairs):
        _model_row(x, i, j, buf)  # A @ x's row as _model_phase makes it
        yield np.subtract(b[k], buf, out=buf)

"""Least-squares (L2) network inversion: one product with the pseudo-inverse of ``A``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sarstack.timeseries._common import LeastSquares, _prepare


@jax.jit
def _l2_kernel(a: jax.Array, pinv: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    bad = jnp.any(jnp.isnan(b), axis=0)
    b0 = jnp.where(bad, 0.0, b)
    x = pinv @ b0
    res = b0 - a @ x
    return jnp.where(bad, jnp.nan, x), jnp.where(bad, jnp.nan, res)


def invert_l2(a: np.ndarray, phase: np.ndarray) -> LeastSquares:
    """Least-squares network inversion of every pixel at once.

    Parameters
    ----------
    a
        Design matrix ``(n_ifg, n_dates - 1)`` of full column rank, normally
        ``dates.incidence_matrix(pairs, n_dates)``; shared by all pixels.
    phase
        ``(n_ifg, ...)`` unwrapped phase; NaN = nodata.

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
    x, res = _l2_kernel(
        jnp.asarray(a, dtype=dtype), jnp.asarray(pinv, dtype=dtype), jnp.asarray(flat, dtype=dtype)
    )
    return LeastSquares(
        np.asarray(x).reshape((a.shape[1], *tail)),
        np.asarray(res).reshape((a.shape[0], *tail)),
    )

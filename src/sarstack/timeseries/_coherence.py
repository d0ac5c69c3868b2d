"""Temporal coherence of inversion residuals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sarstack.errors import SarstackError
from sarstack.timeseries._common import _work_dtype


@jax.jit
def _coherence_kernel(res: jax.Array) -> jax.Array:
    ok = jnp.isfinite(res)
    r = jnp.where(ok, res, 0.0)
    cnt = jnp.sum(ok, axis=0)
    re = jnp.sum(jnp.where(ok, jnp.cos(r), 0.0), axis=0)
    im = jnp.sum(jnp.where(ok, jnp.sin(r), 0.0), axis=0)
    return jnp.where(cnt > 0, jnp.hypot(re, im) / jnp.maximum(cnt, 1), jnp.nan)


def temporal_coherence(residual: np.ndarray) -> np.ndarray:
    """Temporal coherence ``|mean_k exp(j residual_k)|`` of each pixel.

    Parameters
    ----------
    residual
        ``(n_ifg, ...)`` inversion residual in radians, e.g. from
        :func:`invert_weighted` (NaN on censored rows), :func:`invert_l2` or
        :func:`invert_l1`.

    Returns
    -------
    np.ndarray
        ``residual.shape[1:]``: the mean is over each pixel's finite rows only;
        1 for a network-consistent pixel, towards 0 for inconsistent ones; NaN
        where no row is finite (nodata pixels).
    """
    res = np.asarray(residual)
    if res.ndim < 1:
        raise SarstackError("residual must have an interferogram axis")
    dtype = _work_dtype(res)
    out = _coherence_kernel(jnp.asarray(res.reshape(res.shape[0], -1), dtype=dtype))
    return np.asarray(out).reshape(res.shape[1:])

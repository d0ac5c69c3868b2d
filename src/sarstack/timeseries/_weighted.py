"""Weighted and censored least-squares network inversion (per-pixel weights)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sarstack.errors import SarstackError
from sarstack.network import NetworkSolution, _pairs_from_incidence
from sarstack.timeseries._cholesky import _dense_solve, _elimination_plan, _key, _sparse_solve
from sarstack.timeseries._common import _prepare, _run_chunks

# Largest correlation used by correlation_weights (see its docstring).
_GAMMA_MAX = 0.999
# Pixels per weighted-L2 kernel call: fixed, so each network shape compiles once.
_W_CHUNK = 4096
# Smallest chunk: fewer pixels (e.g. the few pixels of a block that miss some
# ifgs) are padded to the next power of two from here, not to _W_CHUNK (at
# most 5 chunk shapes, each traced once per process).
_W_CHUNK_MIN = 256
# Largest unrolled sparse factorisation (multiply-adds per pixel, see
# _elimination_plan) before the weighted L2 falls back to the batched library
# Cholesky of the dense normal matrix; bounds the compilation time.
_SPARSE_MAX_OPS = 3000


def correlation_weights(
    correlation: np.ndarray, looks: float, threshold: float
) -> np.ndarray:
    """Inverse Cramér-Rao phase variance of each interferogram pixel.

    ``w = 2 L gamma^2 / (1 - gamma^2)``, the inverse of the Cramér-Rao bound
    ``(1 - gamma^2) / (2 L gamma^2)`` on the variance of a multilooked phase
    with ``L`` independent looks and correlation ``gamma``.

    Parameters
    ----------
    correlation
        Correlation (coherence magnitude) of any shape, normally
        ``(n_ifg, ...)`` like the phase stack.
    looks
        Effective number of independent looks ``L`` (positive).
    threshold
        Correlations below it get weight 0 (censored).

    Returns
    -------
    np.ndarray
        Weights of the same shape (float64, or float32 for float32 input).
        ``gamma`` is clipped to ``[0, 0.999]`` first: the cap bounds the
        largest weight at about ``998.5 L`` (``gamma -> 1`` would give an
        infinite weight, and correlation estimates near 1 are biased high),
        which also bounds the dynamic range of the normal equations. NaN
        correlation and ``gamma < threshold`` give weight 0.
    """
    looks = float(looks)
    if not (np.isfinite(looks) and looks > 0):
        raise SarstackError(f"looks must be positive, got {looks}")
    gam = np.asarray(correlation)
    dtype = np.float32 if gam.dtype == np.float32 else np.float64
    gam = gam.astype(dtype, copy=False)
    with np.errstate(invalid="ignore"):
        keep = gam >= threshold  # False for NaN
    g2 = np.clip(np.nan_to_num(gam, nan=0.0), 0.0, _GAMMA_MAX) ** 2
    w = (2.0 * looks) * g2 / (1.0 - g2)
    return np.where(keep, w, 0.0).astype(dtype, copy=False)


def _component_labels(
    used: jax.Array, edges: tuple[tuple[int, int], ...], n_nodes: int
) -> jax.Array:
    """Per-pixel connected-component label of every date over the used pairs.

    ``used`` is ``(n_ifg, C)``; the result is ``(n_dates, C)`` int32 holding, for
    each date, the smallest date index of its component (0 = connected to the
    first date). Batched min-label propagation: every step gives each date the
    smallest label among itself and its neighbours through used pairs, then
    jumps each label to its label's label (labels always name a date of the
    same component, so this is safe and halves long chains); repeated until
    no label changes, which is then the minimum of the component.
    """
    ii = np.array([e[0] for e in edges])
    jj = np.array([e[1] for e in edges])
    incident = [np.flatnonzero((ii == d) | (jj == d)) for d in range(n_nodes)]
    width = max(1, max(v.size for v in incident))
    # Incident pairs of each date, padded with the index of a sentinel row.
    table = np.full((n_nodes, width), len(edges))
    for d, v in enumerate(incident):
        table[d, : v.size] = v
    big = jnp.full((1, used.shape[1]), n_nodes, dtype=jnp.int32)

    def body(state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lab, _ = state
        via = jnp.where(used, jnp.minimum(lab[ii], lab[jj]), n_nodes)
        near = jnp.min(jnp.concatenate([via, big])[table], axis=1)
        new = jnp.minimum(lab, near)
        new = jnp.take_along_axis(new, new, axis=0)
        return new, jnp.any(new != lab)

    lab0 = jnp.broadcast_to(jnp.arange(n_nodes, dtype=jnp.int32)[:, None], (n_nodes, used.shape[1]))
    lab, _ = jax.lax.while_loop(lambda s: s[1], body, (lab0, jnp.asarray(True)))
    return lab


@functools.partial(jax.jit, static_argnames=("edges", "sparse"))
def _weighted_kernel(
    a: jax.Array,
    b: jax.Array,
    w: jax.Array,
    edges: tuple[tuple[int, int], ...],
    sparse: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Weighted L2 of every column: ``(A^T W A) x = A^T W b`` with censoring.

    A NaN in ``b`` censors that row like a zero weight; a column with no used
    row is NaN throughout.

    Dates not connected to the first date through used pairs (``w > 0``) make
    ``A^T W A`` singular. Each such component of dates is decoupled from the
    rest of the normal matrix and carries no information on its offset from
    the datum: adding ``s`` (the mean diagonal of the pixel's normal matrix) to
    the diagonal of its first date grounds it. This leaves the reachable block
    untouched and fixes the component's first date at zero while its own
    pairs are still fitted exactly (the right-hand side sums to zero over the
    component), so their residuals stay meaningful. Its dates are reported as NaN.
    """
    m, n = a.shape
    nan = jnp.nan
    used = (w > 0) & ~jnp.isnan(b)
    bad = ~jnp.any(used, axis=0)  # nothing to solve with
    wz = jnp.where(used, w, 0.0)
    bz = jnp.where(used, b, 0.0)
    # Uncensored chunks (e.g. correlation weights only) are connected by
    # construction: skip the label propagation, half the kernel's time.
    lab = jax.lax.cond(
        jnp.all(used | bad[None, :]),
        lambda: jnp.zeros((n + 1, used.shape[1]), jnp.int32),
        lambda: _component_labels(used, edges, n + 1),
    )[1:]  # unknowns = dates 1 .. n
    lost = lab != 0
    own = jnp.arange(1, n + 1, dtype=lab.dtype)[:, None]
    # Diagonal of A^T W A: the summed weights of the pairs at each date.
    diag = jnp.abs(a.T) @ wz
    scale = jnp.sum(diag, axis=0) / n
    ground = jnp.where(lost & (lab == own), jnp.where(scale > 0, scale, 1.0), 0.0)
    rhs = a.T @ (wz * bz)
    if sparse:
        entries = {(d, d): diag[d] + ground[d] for d in range(n)}
        for k, (i, j) in enumerate(edges):
            if i > 0 and j > 0:
                kk = _key(i - 1, j - 1)
                entries[kk] = entries[kk] - wz[k] if kk in entries else -wz[k]
        order, struct, _ = _elimination_plan(n, edges)
        x, var = _sparse_solve(entries, rhs, order, struct)
    else:
        x, var = _dense_solve(a, wz, rhs, ground)
    res = jnp.where(used, bz - a @ x, nan)
    drop = lost | bad
    n_used = jnp.sum(used, axis=0, dtype=jnp.int32)
    return jnp.where(drop, nan, x), res, jnp.where(drop, nan, var), n_used


def weighted_chunk_pixels(n_pix: int) -> int:
    """Pixels per kernel call of :func:`invert_weighted` solving ``n_pix``
    pixels (each size is compiled once per process and network)."""
    return _chunk_size(n_pix)


def _chunk_size(n_pix: int) -> int:
    """Pixels per kernel call: :data:`_W_CHUNK`, or the next power of two
    (at least :data:`_W_CHUNK_MIN`) for fewer pixels."""
    size = _W_CHUNK_MIN
    while size < min(n_pix, _W_CHUNK):
        size *= 2
    return min(size, _W_CHUNK)


def invert_weighted(a: np.ndarray, phase: np.ndarray, weights: np.ndarray) -> NetworkSolution:
    """Weighted (and censored) least-squares network inversion of every pixel.

    Per pixel, solves the normal equations ``(A^T W A) x = A^T W b`` with
    ``W = diag(weights)``, for all pixels at once, in fixed-size chunks of
    pixels so each network compiles once. ``A^T W A`` is non-zero only on the
    diagonal and at the network's date pairs, so it is factorised by a
    Cholesky unrolled over that static sparsity pattern (minimum-degree
    order; a small-baseline network has almost no fill), with the diagonal
    of the inverse from the Takahashi recurrence; networks too dense for
    that use the batched library Cholesky of the full matrix. With inverse
    variances as weights (:func:`correlation_weights`) this is the
    best linear unbiased estimate for uncorrelated interferogram noise.

    A weight of 0 drops that interferogram for that pixel (censoring). Use
    ``weights = (conncomp != 0)`` for the L2 inversion censored by
    connected-component labels (0 = not unwrapped), or
    ``correlation_weights(...) * (conncomp != 0)`` for both. Dates that are
    not connected to the first date through the interferograms a pixel uses
    cannot be estimated: they are NaN for that pixel, while its other dates
    are solved exactly as if the lost dates had not been in the network.

    Parameters
    ----------
    a
        Incidence matrix ``(n_ifg, n_dates - 1)`` of a connected network
        (``snet.incidence_matrix``); shared by all pixels.
    phase
        ``(n_ifg, ...)`` unwrapped phase. NaN (a missing observation) drops
        that interferogram for that pixel only, like a zero weight.
    weights
        Finite, non-negative weights of the same shape as ``phase`` (booleans
        allowed), or ``(n_ifg,)`` for the same weights at every pixel.

    Returns
    -------
    dict
        ``x``: ``(n_dates - 1, ...)`` phase of each later date relative to the
        first (NaN where unreachable).
        ``residual``: ``(n_ifg, ...)``, ``phase - A @ x`` on used rows
        (``w > 0``; pairs among unreachable dates included, as their
        residuals do not depend on the unknown offset) and NaN on censored rows.
        ``n_used``: int32, per pixel the number of interferograms with
        ``w > 0`` (0 for nodata pixels).
        ``x_var``: ``(n_dates - 1, ...)`` the diagonal of ``(A^T W A)^-1`` over
        the reachable dates, the variance of each estimate when the weights
        are inverse variances (NaN where unreachable).

    Raises
    ------
    SarstackError
        If ``a`` is not the incidence matrix of a connected network, or
        shapes or weights are invalid.
    """
    a, flat, tail, dtype, _ = _prepare(a, phase)
    m, n = a.shape
    edges = _pairs_from_incidence(a)
    if edges is None:
        raise SarstackError(
            "invert_weighted needs an incidence matrix (one +1 and at most one -1 per row)"
        )
    wt = np.asarray(weights)
    if wt.ndim == 1 and np.ndim(phase) > 1 and wt.shape[0] == m:
        wt = wt.reshape((m,) + (1,) * (np.ndim(phase) - 1))
    try:
        wt = np.broadcast_to(wt, np.shape(phase)).reshape(m, -1)
    except ValueError:
        raise SarstackError(
            f"weights have shape {np.shape(weights)}; expected {np.shape(phase)} or ({m},)"
        ) from None
    if wt.dtype != bool:
        wt = wt.astype(dtype, copy=False)
        if not np.all(np.isfinite(wt)) or np.any(wt < 0):
            raise SarstackError("weights must be finite and non-negative")
    a_j = jnp.asarray(a, dtype=dtype)
    edges_t = tuple((int(i), int(j)) for i, j in edges)
    sparse = _elimination_plan(n, edges_t)[2] <= _SPARSE_MAX_OPS
    n_pix = flat.shape[1]
    x_out = np.empty((n, n_pix), dtype=dtype)
    v_out = np.empty((n, n_pix), dtype=dtype)
    r_out = np.empty((m, n_pix), dtype=dtype)
    u_out = np.empty(n_pix, dtype=np.int32)
    _run_chunks(
        lambda bb, ww: _weighted_kernel(a_j, bb, ww, edges=edges_t, sparse=sparse),
        [(flat, 0.0), (wt, 0.0)],  # padding: weight 0, a nodata pixel
        [x_out, r_out, v_out, u_out],
        _chunk_size(flat.shape[1]),
        dtype,
    )
    return NetworkSolution(
        x=x_out.reshape((n, *tail)),
        residual=r_out.reshape((m, *tail)),
        n_used=u_out.reshape(tail),
        x_var=v_out.reshape((n, *tail)),
    )

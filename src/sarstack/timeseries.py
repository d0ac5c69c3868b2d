"""InSAR time-series kernels: network inversion, referencing, displacement, velocity.

Conventions
-----------
* A pair network is a list of ``(i, j)`` date indices (reference ``i``,
  secondary ``j``) into a date-sorted stack; an interferogram of pair
  ``(i, j)`` measures ``phase[j] - phase[i]``.
* ``A = sarstack.dates.incidence_matrix(pairs, n_dates)`` has shape
  ``(n_ifg, n_dates - 1)``; the unknowns are the phases of the later dates
  relative to the first date, whose phase is fixed at zero.
* Stacks are ``(n_ifg, rows, cols)`` or flattened ``(n_ifg, n_pixels)``;
  every kernel keeps the trailing shape. NaN is nodata: :func:`invert_l2` and
  :func:`invert_l1` give NaN in every output for a pixel with a NaN in any
  interferogram; :func:`invert_weighted` drops the missing interferogram for
  that pixel only (dates it cuts off from the first date are NaN).
* Displacement is ``-phase`` (positive = towards the radar, e.g. uplift),
  times ``wavelength / (4 pi)`` to get metres.

The per-pixel kernels run in JAX over all pixels at once (no per-pixel loop)
and return NumPy arrays: L2 is one product with the pseudo-inverse of the
shared ``A``; L1 is a batched primal-dual interior-point method that factors
each pixel's normal matrix as a band matrix and certifies each pixel's
duality gap; weighted / censored L2 (:func:`invert_weighted`,
per-pixel interferogram weights, 0 = not used) solves each pixel's normal
equations with a Cholesky unrolled over the network's sparsity pattern, and
reports dates cut off from the first date as NaN. They work in float32, or
in float64 when the input is float64 and the caller enabled it with
``sarstack.jaxcfg.configure_jax(x64=True)`` (L1 then iterates in float32
first and finishes in float64, see :func:`invert_l1`). Importing this module
configures nothing. There is no file I/O here.
"""

from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from sarstack.dates import (
    _check_design,
    _pairs_from_incidence,
    check_network,
    is_single_reference,
    single_reference_series,
)
from sarstack.errors import SarstackError
from sarstack.refpoint import (
    check_reference_point,
    phase_to_displacement,
    reference,
    select_reference_point,
)
from sarstack.velocity import velocity, velocity_weighted

__all__ = [
    "check_network",
    "check_reference_point",
    "correlation_weights",
    "invert",
    "invert_l1",
    "invert_l2",
    "invert_weighted",
    "is_single_reference",
    "phase_to_displacement",
    "reference",
    "select_reference_point",
    "single_reference_series",
    "temporal_coherence",
    "velocity",
    "velocity_weighted",
]

log = logging.getLogger(__name__)

# A shared matrix as a dense array or a gather table (idx, val), see _make_op.
_Op: TypeAlias = jax.Array | tuple[jax.Array, jax.Array]

# Pixels per L1 kernel call (_L1_BLOCK, fixed so each network shape compiles
# once), solved in chunks of _L1_CHUNK pixels in turn, each iterating until
# its own pixels have converged.
_L1_BLOCK = 16384
_L1_CHUNK = 256
# Host threads that run L1 blocks side by side: XLA keeps the small chunks of
# one block mostly on one core (2 cores: 1.9x at 24 dates, 1.1-1.3x at 60).
def _l1_threads() -> int:
    """Host threads for L1 blocks: ``$SARSTACK_THREADS`` (set by the workflow from the
    rule's ``threads``) or the CPUs this process may use, at most 4."""
    env = os.environ.get("SARSTACK_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))
# Smallest tolerance that the float32 interior point is asked to reach before
# float64 (its relative rounding level is ~1e-6), and its iteration cap there.
_F32_MIN_TOL = 1e-5
_F32_MAX_ITER = 50
# Fraction of tol that the float32 iterations aim for (the certificate, with
# its own rounding, then rarely fails).
_F32_AIM = 0.5
# Absolute slack of a duality-gap test in units of its rounding level (_gap_floor).
_GAP_SLACK = 4.0
# A sparse shared matrix is applied as a gather table (see _make_op) when its
# densest row has at most this fraction of non-zeros, else as a dense product.
_GATHER_MAX_DENSITY = 0.125
# Relative diagonal regularisation of the interior-point normal equations, in
# units of the machine epsilon (found by experiment: 3-5 removes float32
# breakdowns near the optimum without slowing convergence; 30+ slows it).
_JITTER = 4.0


# --------------------------------------------------------------------------- #
# Inversion kernels
# --------------------------------------------------------------------------- #


def _work_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 when x64 is enabled and any input is float64, else float32."""
    want64 = any(np.asarray(a).dtype == np.float64 for a in arrays)
    return np.dtype(np.float64 if (want64 and jax.config.jax_enable_x64) else np.float32)


def _prepare(
    a: np.ndarray, phase: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], np.dtype, np.ndarray]:
    """Validate, flatten to (n_ifg, P) and compute the pseudo-inverse of A (float64)."""
    a = np.asarray(a, dtype=np.float64)
    phase = np.asarray(phase)
    _check_design(a)
    if phase.ndim < 1 or phase.shape[0] != a.shape[0]:
        raise SarstackError(
            f"phase has shape {phase.shape}; expected ({a.shape[0]}, ...) to match A {a.shape}"
        )
    if a.shape[0] < a.shape[1]:
        raise SarstackError(f"{a.shape[0]} interferograms cannot determine {a.shape[1]} dates")
    tail = phase.shape[1:]
    dtype = _work_dtype(phase)
    flat = phase.reshape(a.shape[0], -1)
    # Pseudo-inverse of the shared design matrix through QR, once, in float64.
    q, r = np.linalg.qr(a)
    pinv = np.linalg.solve(r, q.T)
    return a, flat, tail, dtype, pinv


@jax.jit
def _l2_kernel(a: jax.Array, pinv: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    bad = jnp.any(jnp.isnan(b), axis=0)
    b0 = jnp.where(bad, 0.0, b)
    x = pinv @ b0
    res = b0 - a @ x
    return jnp.where(bad, jnp.nan, x), jnp.where(bad, jnp.nan, res)


def invert_l2(a: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    return (
        np.asarray(x).reshape((a.shape[1], *tail)),
        np.asarray(res).reshape((a.shape[0], *tail)),
    )


def _make_op(mat: np.ndarray, dtype: np.dtype) -> _Op:
    """A shared matrix for :func:`_apply`: a gather table if sparse, else dense.

    The table is ``(idx, val)``, both ``(rows, width)`` with ``width`` the most
    non-zeros of a row (padding: index 0, value 0); it is used when ``width``
    is at most ``_GATHER_MAX_DENSITY`` of the columns.
    """
    nz = mat != 0
    width = max(1, int(nz.sum(axis=1).max(initial=0)))
    if width > _GATHER_MAX_DENSITY * mat.shape[1]:
        return jnp.asarray(mat, dtype=dtype)
    idx = np.zeros((mat.shape[0], width), dtype=np.int32)
    val = np.zeros((mat.shape[0], width), dtype=dtype)
    for r, row in enumerate(nz):
        cols = np.flatnonzero(row)
        idx[r, : cols.size] = cols
        val[r, : cols.size] = mat[r, cols]
    return jnp.asarray(idx), jnp.asarray(val)


def _apply(op: _Op, v: jax.Array) -> jax.Array:
    """``mat @ v`` for a batch ``v`` of shape ``(cols, C)`` and ``op = _make_op(mat)``."""
    if not isinstance(op, tuple):
        return op @ v
    idx, val = op
    out = val[:, :1] * v[idx[:, 0]]
    for t in range(1, idx.shape[1]):
        out = out + val[:, t : t + 1] * v[idx[:, t]]
    return out


def _half_bandwidth(a: np.ndarray) -> int:
    """Half-bandwidth of ``A^T D A`` for any diagonal ``D``: the widest column span of a row."""
    bw = 0
    for row in a != 0:
        cols = np.flatnonzero(row)
        if cols.size:
            bw = max(bw, int(cols[-1] - cols[0]))
    return bw


def _band_cholesky(band: jax.Array) -> jax.Array:
    """Batched Cholesky factor of symmetric positive definite band matrices.

    ``band`` is ``(w, n, C)``, pixels on the last axis, with
    ``band[d, j] = M[j, j + d]`` (zero past the matrix) and ``w - 1`` the
    half-bandwidth. Returns ``low`` of shape ``(n, w, C)`` with
    ``low[j, d] = L[j + d, j]``, ``M = L L^T``. One ``lax.scan`` step per
    column updates a ``(w, w)`` window of the Schur complement: ``n w^2``
    multiply-adds per pixel, and a program whose size does not grow with ``n``.
    """
    w, n, c = band.shape
    # Identity rows past the end keep the window inside the (padded) matrix.
    up = jnp.concatenate([band, jnp.zeros((w, w, c), band.dtype).at[0].set(1.0)], axis=1)
    p = np.arange(w)
    # Window at column 0: S[p, q] = M[p, q].
    s0 = up[np.abs(p[:, None] - p[None, :]), np.minimum(p[:, None], p[None, :])]
    # Entering at step j: column j + w of the window, M[j + 1 + p, j + w].
    enter = up[(w - 1 - p)[None, :], np.arange(n)[:, None] + 1 + p[None, :]]

    def step(s: jax.Array, new: jax.Array) -> tuple[jax.Array, jax.Array]:
        col = s[:, 0] / jnp.sqrt(s[0, 0])
        rest = s[1:, 1:] - col[1:, None] * col[None, 1:]
        top = jnp.concatenate([rest, new[:-1, None]], axis=1)
        return jnp.concatenate([top, new[None]], axis=0), col

    return jax.lax.scan(step, s0, enter)[1]


def _band_solve(low: jax.Array, rhs: jax.Array) -> jax.Array:
    """Solve ``L L^T x = rhs`` for ``low`` from :func:`_band_cholesky`, ``rhs`` ``(n, C)``."""
    n, w, c = low.shape
    r = jnp.concatenate([rhs, jnp.zeros((w, c), rhs.dtype)])

    def forward(win: jax.Array, xs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        col, new = xs  # win: updated rows j .. j + w - 1 of the right-hand side
        y = win[0] / col[0]
        return jnp.concatenate([win[1:] - col[1:] * y, new[None]]), y

    def backward(win: jax.Array, xs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        col, y = xs  # win: x[j + 1 .. j + w - 1]
        x = (y - jnp.sum(col[1:] * win, axis=0)) / col[0]
        return jnp.concatenate([x[None], win])[: w - 1], x

    _, y = jax.lax.scan(forward, r[:w], (low, r[w:]))
    _, x = jax.lax.scan(backward, jnp.zeros((w - 1, c), rhs.dtype), (low, y), reverse=True)
    return x


def _max_step(*rel: jax.Array) -> jax.Array:
    """Largest ``alpha`` in [0, 1] with ``1 + alpha * r >= 0`` for all ``r`` in ``rel``, per column.

    Each ``r`` is a step relative to positive values, ``step / val``: then
    ``val + alpha * step`` stays non-negative.
    """
    worst = functools.reduce(jnp.maximum, (jnp.max(-r, axis=0) for r in rel))
    return 1.0 / jnp.maximum(1.0, worst)


class _Design(NamedTuple):
    """The shared design matrix in the forms the L1 kernel needs (see :func:`_design`)."""

    a: _Op  # A, (m, n)
    at: _Op  # A^T, (n, m)
    band: tuple[_Op, ...]  # F_d, (n, m): (F_d @ d)[j] = (A^T diag(d) A)[j, j + d]
    pinv: jax.Array  # dense (n, m) pseudo-inverse
    colabs: jax.Array  # (n, 1) column sums of |A|


def _design(a: np.ndarray, pinv: np.ndarray, dtype: np.dtype) -> _Design:
    """Gather tables (or dense copies) of ``A``, ``A^T`` and the band of ``A^T D A``."""
    m, n = a.shape
    band = []
    for d in range(_half_bandwidth(a) + 1):
        f = np.zeros((n, m))
        f[: n - d] = (a[:, : n - d] * a[:, d:]).T
        band.append(_make_op(f, dtype))
    return _Design(
        a=_make_op(a, dtype),
        at=_make_op(a.T, dtype),
        band=tuple(band),
        pinv=jnp.asarray(pinv, dtype=dtype),
        colabs=jnp.asarray(np.abs(a).sum(axis=0)[:, None], dtype=dtype),
    )


@functools.partial(jax.jit, static_argnames=("chunk",))
def _l1_kernel(
    des: _Design,
    des_out: _Design,
    b: jax.Array,
    aim: jax.Array,
    tol: jax.Array,
    max_iter: jax.Array,
    chunk: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Solve and certify consecutive chunks of ``chunk`` columns of ``b``, in turn.

    Per chunk, in the precision of ``b`` and ``des_out``: the least-squares
    solution ``x2`` and its residual ``r``; then :func:`_l1_chunk` solves
    ``min_d sum|r - A d|`` in the precision of ``des``, aiming at ``aim``, and
    :func:`_l1_certify` checks ``x2 + d`` at ``tol``. The shift keeps the
    values the iterations see at the scale of the residuals, not of the
    phases, so float32 rounding stays far below a useful ``tol``. Small
    chunks keep the working set in cache (XLA's CPU reductions over the
    interferogram axis slow down several-fold on wide float64 arrays) and
    stop as soon as their own pixels have converged. Returns ``x``, the
    residual, the iterations of each chunk and whether each column is
    certified.
    """
    m, n_col = b.shape
    n = des_out.pinv.shape[0]

    def solve(bb: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        bad = jnp.any(jnp.isnan(bb), axis=0)
        b0 = jnp.where(bad, 0.0, bb)
        x2 = des_out.pinv @ b0
        slack = _gap_floor(des_out, b0, x2)
        r = (b0 - _apply(des_out.a, x2)).astype(des.colabs.dtype)
        d, y, k = _l1_chunk(des, r, slack.astype(r.dtype), aim, max_iter)
        x = x2 + d.astype(bb.dtype)
        x, res, ok = _l1_certify(des_out, bb, x, x2, y.astype(bb.dtype), tol)
        return x, res, k, ok

    def skip(bb: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        x = jnp.full((n, chunk), jnp.nan, bb.dtype)
        return x, jnp.full_like(bb, jnp.nan), jnp.int32(0), jnp.ones(chunk, bool)

    def one(bb: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        # A chunk of nodata only (e.g. the padding of the last block) is skipped.
        return jax.lax.cond(jnp.all(jnp.isnan(bb[0])), skip, solve, bb)

    chunks = jnp.moveaxis(b.reshape(m, n_col // chunk, chunk), 1, 0)
    x, res, n_it, ok = jax.lax.map(one, chunks)
    x = jnp.moveaxis(x, 0, 1).reshape(-1, n_col)
    return x, jnp.moveaxis(res, 0, 1).reshape(m, n_col), n_it, ok.reshape(n_col)


@jax.jit
def _l1_certify(
    des: _Design, b: jax.Array, x: jax.Array, x2: jax.Array, y: jax.Array, tol: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Least-squares fallback, residual and duality-gap certificate of each column.

    ``x`` is replaced by the least-squares solution ``x2`` where that has the
    smaller objective. ``y`` (an approximate dual solution) is projected onto
    ``{A^T y = 0}`` (``y - A (A^+ y)``) and scaled into ``[-1, 1]``, which
    makes it dual feasible, so ``b^T y <= min_x sum|b - A x|``: the relative
    gap ``(sum|b - A x| - b^T y) / sum|b - A x| <= tol`` proves that the
    objective is within ``tol`` of the optimum, up to a rounding-level slack
    in the working precision. Returns ``x``, the residual ``b - A x`` (NaN
    columns of ``b``: NaN) and whether the certificate holds (NaN columns: True).
    """
    bad = jnp.any(jnp.isnan(b), axis=0)
    b = jnp.where(bad, 0.0, b)
    x2 = jnp.where(bad, 0.0, x2)
    obj2 = jnp.sum(jnp.abs(b - _apply(des.a, x2)), axis=0)
    x = jnp.where(bad, 0.0, x)
    obj = jnp.sum(jnp.abs(b - _apply(des.a, x)), axis=0)
    x = jnp.where(obj <= obj2, x, x2)
    obj = jnp.minimum(obj, obj2)
    res = b - _apply(des.a, x)
    y = jnp.where(bad, 0.0, y)
    y = y - _apply(des.a, des.pinv @ y)
    y = y / jnp.maximum(1.0, jnp.max(jnp.abs(y), axis=0))
    ok = bad | (obj - jnp.sum(b * y, axis=0) <= tol * obj + _gap_floor(des, b, x))
    nan = jnp.nan
    return jnp.where(bad, nan, x), jnp.where(bad, nan, res), ok


def _gap_floor(des: _Design, b: jax.Array, x: jax.Array) -> jax.Array:
    """Absolute slack of the duality-gap test of ``x`` for the columns of ``b`` (NaN zeroed).

    ``_GAP_SLACK eps sum_k (|b_k| + (|A| |x|)_k)``: the rounding level of the
    residual ``b - A x`` in the working precision. Measured: the objective of
    an exact fit solved by least squares is at most ``3 eps`` times that sum
    (float64 and float32, nearest:3 networks of 13-120 dates), and the
    rounding error of the gap itself at most ``1.3 eps sum|b|``.
    """
    scale = jnp.sum(jnp.abs(b), axis=0) + jnp.sum(des.colabs * jnp.abs(x), axis=0)
    return _GAP_SLACK * jnp.finfo(b.dtype).eps * scale


def _l1_chunk(
    des: _Design, b: jax.Array, slack: jax.Array, tol: jax.Array, max_iter: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Primal-dual interior-point solve of min_x |b - A x|_1 for every column of ``b``.

    ``b`` is a least-squares residual (``A^T b = 0``; NaN columns: zero), so
    the iterations start from ``x = 0``.

    Primal LP: ``A x + u - v = b``, ``u, v >= 0``, minimise ``sum(u + v)``.
    Dual: maximise ``b^T y`` subject to ``A^T y = 0``, ``-1 <= y <= 1``, with
    slacks ``s = 1 - y``, ``w = 1 + y``. Mehrotra predictor-corrector steps;
    each needs one ``(n, n)`` solve per pixel with ``A^T diag(d) A``, factored
    once per iteration. That matrix has the band of ``A^T A`` whatever ``d``
    (half-bandwidth ``k`` for a small-baseline network whose pairs span at
    most ``k`` dates), so it is factored as a band (:func:`_band_cholesky`),
    and the products with ``A`` and ``A^T`` are gathers over their non-zeros.
    At the start, ``b`` gives a strictly feasible dual ``y = b / (2 max|b|)``.
    A pixel stops when its duality gap ``sum|b - A x| - b^T y`` is at most
    ``tol`` times its objective plus the rounding level of this problem and
    ``slack`` (that of the unshifted problem: an exact fit stops at once);
    ``y`` is dual feasible only up to the solver's accuracy, so
    :func:`_l1_certify` checks the result. Returns ``x``, ``y`` and the
    number of iterations.
    """
    m = b.shape[0]
    eps = jnp.finfo(b.dtype).eps
    x0 = jnp.zeros((des.colabs.shape[0], b.shape[1]), b.dtype)
    r0 = b
    obj0 = jnp.sum(jnp.abs(r0), axis=0)
    floor0 = _gap_floor(des, b, x0) + slack
    delta = jnp.maximum(obj0 / m, floor0)
    u = jnp.maximum(r0, 0.0) + delta
    v = jnp.maximum(-r0, 0.0) + delta
    rmax = jnp.max(jnp.abs(r0), axis=0)
    y = jnp.where(rmax > 0, 0.5 * r0 / jnp.where(rmax > 0, rmax, 1.0), 0.0)
    s, w = 1.0 - y, 1.0 + y

    def gap_ok(x: jax.Array, ax: jax.Array, y: jax.Array) -> jax.Array:
        obj = jnp.sum(jnp.abs(b - ax), axis=0)
        return obj - jnp.sum(b * y, axis=0) <= tol * obj + _gap_floor(des, b, x) + slack

    conv0 = (obj0 <= floor0) | gap_ok(x0, jnp.zeros_like(b), y)

    def cond(st):  # noqa: ANN001, ANN202
        k, *_, stop, _ = st
        return (k < max_iter) & ~jnp.all(stop)

    def body(st):  # noqa: ANN001, ANN202
        k, x, ax, u, v, y, s, w, stop, conv = st
        iu, iv, i_s, iw = 1.0 / u, 1.0 / v, 1.0 / s, 1.0 / w
        mu = (jnp.sum(u * s, axis=0) + jnp.sum(v * w, axis=0)) / (2 * m)
        dinv = 1.0 / (u * i_s + v * iw)
        # Relative diagonal regularisation keeps the factorisation finite when the
        # weights spread over many orders of magnitude near the optimum.
        band = jnp.stack([_apply(f, dinv) for f in des.band])
        low = _band_cholesky(band.at[0].multiply(1.0 + _JITTER * eps))
        # Residuals of the primal and dual equality constraints (rounding only
        # once feasible; the steps correct them).
        rp = b - ax - u + v
        rd = -_apply(des.at, y)
        r_s = 1.0 - y - s
        r_w = 1.0 + y - w

        def newton(r_us, r_vw):  # noqa: ANN001, ANN202
            g = (r_us - u * r_s) * i_s - (r_vw - v * r_w) * iw
            dx = _band_solve(low, _apply(des.at, dinv * (rp - g)) - rd)
            adx = _apply(des.a, dx)
            dy = dinv * (rp - g - adx)
            ds = r_s - dy
            dw = r_w + dy
            du = (r_us - u * ds) * i_s
            dv = (r_vw - v * dw) * iw
            return dx, du, dv, dy, ds, dw

        # Predictor (affine scaling).
        dx, du, dv, dy, ds, dw = newton(-u * s, -v * w)
        ap = _max_step(du * iu, dv * iv)
        ad = _max_step(ds * i_s, dw * iw)
        mu_aff = (
            jnp.sum((u + ap * du) * (s + ad * ds), axis=0)
            + jnp.sum((v + ap * dv) * (w + ad * dw), axis=0)
        ) / (2 * m)
        sigma = (mu_aff / mu) ** 3
        # Corrector (centring plus second-order term).
        dx, du, dv, dy, ds, dw = newton(sigma * mu - u * s - du * ds, sigma * mu - v * w - dv * dw)
        ap = 0.99 * _max_step(du * iu, dv * iv)
        ad = 0.99 * _max_step(ds * i_s, dw * iw)
        nx, nu, nv = x + ap * dx, u + ap * du, v + ap * dv
        ny, ns, nw = y + ad * dy, s + ad * ds, w + ad * dw
        # A pixel whose step went non-finite (breakdown near the optimum) stops as is.
        finite = jnp.all(jnp.isfinite(nx), axis=0) & jnp.all(jnp.isfinite(ny), axis=0)
        keep = stop | ~finite
        x, u, v, y, s, w = (
            jnp.where(keep, old, new)
            for old, new in ((x, nx), (u, nu), (v, nv), (y, ny), (s, ns), (w, nw))
        )
        ax = _apply(des.a, x)
        conv = conv | (~keep & gap_ok(x, ax, y))
        return k + 1, x, ax, u, v, y, s, w, stop | ~finite | conv, conv

    state = (jnp.asarray(0, jnp.int32), x0, jnp.zeros_like(b), u, v, y, s, w, conv0, conv0)
    k, x, _, _, _, y, *_ = jax.lax.while_loop(cond, body, state)
    return x, y, k


def invert_l1(
    a: np.ndarray, phase: np.ndarray, *, tol: float = 1e-4, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray, int]:
    """Least-absolute-deviation network inversion of every pixel at once.

    Minimises ``sum |phase - A x|`` per pixel with a batched primal-dual
    interior-point method (Mehrotra predictor-corrector), starting from the
    least-squares solution. Every iteration solves one weighted
    normal-equation system ``A^T D A`` per pixel; that matrix has the band of
    ``A^T A`` (a small-baseline network whose pairs span at most ``k`` dates
    has half-bandwidth ``k``), so it is factored as a band matrix, in
    ``O(n_dates k^2)`` per pixel, and the products with ``A`` use only its
    non-zeros; a network needs about 6-8 iterations whatever its size.

    The result of each pixel is checked with a duality-gap certificate: its
    dual iterate is projected onto ``{A^T y = 0}`` and scaled into
    ``[-1, 1]``, which makes ``phase^T y`` a lower bound on the optimum, so

        ``(sum|phase - A x| - phase^T y) <= tol * sum|phase - A x| + slack``

    proves that the objective is within a factor ``1 + tol`` of the optimum
    (``slack = 4 eps sum_k (|phase_k| + (|A| |x|)_k)``, the rounding level of
    the residual in the working precision; an exact fit passes on it). A
    pixel that does not pass is counted in a logged warning. Where the
    least-squares solution has the smaller objective (a pixel that stopped
    early), it is returned instead, so no pixel is worse than
    :func:`invert_l2`.

    Precision: the iterations solve for the correction to the least-squares
    solution, from its residual, so they handle residual-sized numbers
    rather than phases; they run in float32, aiming at ``tol / 2`` so that
    the certificate, evaluated with its own rounding, rarely fails. With
    float64 input and x64 enabled (``sarstack.jaxcfg.configure_jax(x64=True)``)
    and ``tol >= 1e-5``, the certificate and outputs are float64, and the few
    pixels that float32 leaves uncertified (or that need more than 50
    iterations) are solved again in float64; below ``1e-5`` everything runs
    in float64. Without x64 the certificate is float32, and tolerances under
    about ``1e-6`` are then met only through the slack. Pixels are processed
    in blocks of fixed size, so each ``(n_ifg, n_dates)`` network compiles
    once per precision; blocks run side by side in up to 4 threads.

    Parameters
    ----------
    a
        Design matrix ``(n_ifg, n_dates - 1)`` of full column rank, normally
        ``dates.incidence_matrix(pairs, n_dates)``; shared by all pixels.
    phase
        ``(n_ifg, ...)`` unwrapped phase; a pixel with NaN in any
        interferogram is NaN in both outputs.
    tol
        Relative duality-gap tolerance (see above); positive.
    max_iter
        Iteration cap per pixel, at least 1.

    Returns
    -------
    x : np.ndarray
        ``(n_dates - 1, ...)``.
    residual : np.ndarray
        ``(n_ifg, ...)``, ``phase - A @ x``.
    n_iter : int
        Most interior-point iterations any chunk of pixels took in one
        precision (``max_iter``: some pixel did not converge).

    Raises
    ------
    SarstackError
        If ``A`` is rank deficient (a disconnected network), shapes disagree,
        ``tol <= 0`` or ``max_iter < 1``.
    """
    if not tol > 0:
        raise SarstackError(f"tol must be positive, got {tol}")
    if int(max_iter) < 1:
        raise SarstackError(f"max_iter must be at least 1, got {max_iter}")
    a, flat, tail, dtype, pinv = _prepare(a, phase)
    m, n = a.shape
    n_pix = flat.shape[1]
    # Interior point in float32 first unless tol is below what float32 certifies;
    # the certificate, and the output, are in the working dtype, and pixels that
    # float32 left uncertified are solved again in float64.
    fast = np.dtype(np.float32) if tol >= _F32_MIN_TOL else dtype
    phases = list(dict.fromkeys([fast, dtype]))
    des_out = _design(a, pinv, dtype)
    tol_out = jnp.asarray(tol, dtype=dtype)
    x_out = np.empty((n, n_pix), dtype=dtype)
    r_out = np.empty((m, n_pix), dtype=dtype)
    ok = np.zeros(n_pix, dtype=bool)

    def solve(des: _Design, args: tuple[jax.Array, ...], contiguous: bool, sel: np.ndarray) -> int:
        """Solve the pixels ``sel`` (at most one block), store them, return the iterations."""
        cols = slice(int(sel[0]), int(sel[-1]) + 1) if contiguous else sel
        b = _pad_block(flat[:, cols], dtype)
        x, res, k, conv = _l1_kernel(des, des_out, b, *args, chunk=_L1_CHUNK)
        x_out[:, cols] = np.asarray(x)[:, : sel.size]
        r_out[:, cols] = np.asarray(res)[:, : sel.size]
        ok[cols] = np.asarray(conv)[: sel.size]
        return int(np.max(k))

    n_iter = 0
    for prec in phases:
        des = des_out if prec == dtype else _design(a, pinv, prec)
        cap = int(max_iter) if prec == phases[-1] else min(int(max_iter), _F32_MAX_ITER)
        # float32 aims below tol, so that few pixels miss the certificate.
        aim = tol * _F32_AIM if prec == np.float32 else tol
        args = (jnp.asarray(aim, dtype=prec), tol_out, jnp.asarray(cap, dtype=jnp.int32))
        todo = np.arange(n_pix) if prec == phases[0] else np.flatnonzero(~ok)
        blocks = [todo[p0 : p0 + _L1_BLOCK] for p0 in range(0, todo.size, _L1_BLOCK)]
        run = functools.partial(solve, des, args, prec == phases[0])
        # The first block compiles the kernel; the others run side by side.
        its = [run(blocks[0])] if blocks else []
        with ThreadPoolExecutor(_l1_threads()) as pool:
            its += pool.map(run, blocks[1:])
        n_iter = max([n_iter, *its])
    n_open = int(np.count_nonzero(~ok))
    if n_open:
        log.warning(
            "L1 inversion: %d of %d pixels stopped before reaching tol=%g (max_iter=%d)",
            n_open, n_pix, tol, max_iter,
        )  # fmt: skip
    return x_out.reshape((n, *tail)), r_out.reshape((m, *tail)), n_iter


def _pad_block(block: np.ndarray, dtype: np.dtype) -> jax.Array:
    """``block`` (``(m, <= _L1_BLOCK)``) as a device array of ``_L1_BLOCK`` columns, NaN-padded."""
    block = block.astype(dtype, copy=False)
    if block.shape[1] < _L1_BLOCK:
        pad = ((0, 0), (0, _L1_BLOCK - block.shape[1]))
        block = np.pad(block, pad, constant_values=np.nan)
    return jnp.asarray(block)


def invert(
    a: np.ndarray, phase: np.ndarray, method: str = "L1", **kw: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Network inversion by ``method`` ``"L1"`` or ``"L2"``.

    Returns
    -------
    x, residual, n_iter
        As :func:`invert_l1`; ``n_iter`` is 0 for the direct L2 solve.
    """
    meth = str(method).upper()
    if meth == "L2":
        if kw:
            raise SarstackError(f"L2 inversion takes no options, got {sorted(kw)}")
        x, res = invert_l2(a, phase)
        return x, res, 0
    if meth == "L1":
        return invert_l1(a, phase, **kw)
    raise SarstackError(f"insar.method {method!r} is not 'L1' or 'L2'")


# --------------------------------------------------------------------------- #
# Weighted and censored L2
# --------------------------------------------------------------------------- #

# Largest correlation used by correlation_weights (see its docstring).
_GAMMA_MAX = 0.999
# Pixels per weighted-L2 kernel call: fixed, so each network shape compiles once.
_W_CHUNK = 4096
# Largest unrolled sparse factorisation (multiply-adds per pixel, see
# _elimination_plan) before the weighted L2 falls back to the batched library
# Cholesky of the dense normal matrix; bounds the compilation time.
_SPARSE_MAX_OPS = 3000


def correlation_weights(
    correlation: np.ndarray, looks: float, threshold: float = 0.0
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


def _key(i: int, j: int) -> tuple[int, int]:
    return (i, j) if i <= j else (j, i)


@functools.lru_cache(maxsize=32)
def _elimination_plan(
    n: int, edges: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, ...], dict[int, tuple[int, ...]], int]:
    """Static sparse Cholesky plan for the normal matrix of a pair network.

    The unknowns are dates ``1 .. n`` (index ``d - 1``); ``A^T W A`` can only be
    non-zero on the diagonal and at the date pairs of the network, whatever the
    weights. Returns the elimination order (greedy minimum degree, ties: lowest
    index; a small-baseline network stays banded), the filled structure of each
    column of the factor (the later-eliminated rows, in elimination order) and
    the number of multiply-adds of the factorisation plus the diagonal of the
    inverse.
    """
    adj: list[set[int]] = [set() for _ in range(n)]
    for i, j in edges:
        if i > 0 and j > 0 and i != j:
            adj[i - 1].add(j - 1)
            adj[j - 1].add(i - 1)
    left = set(range(n))
    order: list[int] = []
    struct: dict[int, tuple[int, ...]] = {}
    for _ in range(n):
        k = min(left, key=lambda v: (len(adj[v]), v))
        nbrs = adj[k]
        for u in nbrs:
            adj[u] |= nbrs - {u}
            adj[u].discard(k)
        left.remove(k)
        order.append(k)
        struct[k] = tuple(nbrs)  # sorted by elimination position below
    pos = {k: p for p, k in enumerate(order)}
    struct = {k: tuple(sorted(s, key=pos.__getitem__)) for k, s in struct.items()}
    ops = sum(len(s) * (len(s) + 3) for s in struct.values())
    return tuple(order), struct, ops


def _sparse_solve(
    entries: dict[tuple[int, int], jax.Array],
    rhs: jax.Array,
    order: tuple[int, ...],
    struct: dict[int, tuple[int, ...]],
) -> tuple[jax.Array, jax.Array]:
    """Solve ``N x = rhs`` and ``diag(N^-1)`` for a batch of sparse SPD ``N``.

    ``entries`` holds the ``(C,)`` vectors of the non-zero entries of ``N``
    (keys ``(i, j)``, ``i <= j``; missing = 0), ``rhs`` is ``(n, C)``. Unrolled
    right-looking Cholesky ``N = L L^T`` over the static filled structure, then
    forward and back substitution, and the Takahashi recurrence for the entries
    of ``Sigma = N^-1`` on the structure of ``L`` (which needs no other entry):
    ``Sigma_jk = (delta_jk / L_kk - sum_q L_qk Sigma_jq) / L_kk``, ``q`` over the
    structure of column ``k``. Cost: ``sum |struct|^2`` per pixel, no fill
    outside the structure.
    """
    work: dict[tuple[int, int], jax.Array] = dict(entries)
    low: dict[tuple[int, int], jax.Array] = {}  # (row, col) of L
    diag: dict[int, jax.Array] = {}
    for k in order:
        d = jnp.sqrt(work[k, k])
        diag[k] = d
        inv = 1.0 / d
        col = struct[k]
        for i in col:
            v = work.get(_key(i, k))
            low[i, k] = v * inv if v is not None else jnp.zeros_like(d)
        for p, i in enumerate(col):
            for j in col[p:]:
                kk = _key(i, j)
                prod = low[i, k] * low[j, k]
                work[kk] = work[kk] - prod if kk in work else -prod
    n = len(order)
    r = [rhs[i] for i in range(n)]
    y: dict[int, jax.Array] = {}
    for k in order:
        y[k] = r[k] / diag[k]
        for i in struct[k]:
            r[i] = r[i] - low[i, k] * y[k]
    x: dict[int, jax.Array] = {}
    sig: dict[tuple[int, int], jax.Array] = {}
    for k in reversed(order):
        acc = y[k]
        for i in struct[k]:
            acc = acc - low[i, k] * x[i]
        x[k] = acc / diag[k]
        col = struct[k]
        for j in col:
            acc = jnp.zeros_like(diag[k])
            for q in col:
                acc = acc + low[q, k] * sig[_key(j, q)]
            sig[_key(j, k)] = -acc / diag[k]
        acc = 1.0 / diag[k]
        for q in col:
            acc = acc - low[q, k] * sig[_key(k, q)]
        sig[k, k] = acc / diag[k]
    return jnp.stack([x[k] for k in range(n)]), jnp.stack([sig[k, k] for k in range(n)])


def _dense_solve(
    a: jax.Array, wz: jax.Array, rhs: jax.Array, ground: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """As :func:`_sparse_solve` for dense networks: batched library Cholesky."""
    m, n = a.shape
    outer = (a[:, :, None] * a[:, None, :]).reshape(m, n * n)
    eye = jnp.eye(n, dtype=wz.dtype)
    mat = (wz.T @ outer).reshape(-1, n, n) + ground.T[:, :, None] * eye
    low = jax.lax.linalg.cholesky(mat, symmetrize_input=False)
    linv = jax.lax.linalg.triangular_solve(
        low, jnp.broadcast_to(eye, low.shape), left_side=True, lower=True
    )
    y = jnp.sum(linv * rhs.T[:, None, :], axis=-1)
    x = jnp.sum(linv * y[:, :, None], axis=-2)
    return x.T, jnp.sum(linv * linv, axis=-2).T


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


def invert_weighted(a: np.ndarray, phase: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
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
        (``dates.incidence_matrix``); shared by all pixels.
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
    for p0 in range(0, n_pix, _W_CHUNK):
        p1 = min(p0 + _W_CHUNK, n_pix)
        bb = np.zeros((m, _W_CHUNK), dtype=dtype)
        ww = np.zeros((m, _W_CHUNK), dtype=dtype)
        bb[:, : p1 - p0] = flat[:, p0:p1]
        ww[:, : p1 - p0] = wt[:, p0:p1]
        x, res, var, n_used = _weighted_kernel(
            a_j, jnp.asarray(bb), jnp.asarray(ww), edges=edges_t, sparse=sparse
        )
        x_out[:, p0:p1] = np.asarray(x)[:, : p1 - p0]
        v_out[:, p0:p1] = np.asarray(var)[:, : p1 - p0]
        r_out[:, p0:p1] = np.asarray(res)[:, : p1 - p0]
        u_out[p0:p1] = np.asarray(n_used)[: p1 - p0]
    return {
        "x": x_out.reshape((n, *tail)),
        "residual": r_out.reshape((m, *tail)),
        "n_used": u_out.reshape(tail),
        "x_var": v_out.reshape((n, *tail)),
    }


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


# --------------------------------------------------------------------------- #
# Referencing, displacement, velocity
# --------------------------------------------------------------------------- #

"""Least-absolute-deviation (L1) network inversion: a batched primal-dual
interior-point method with band Cholesky steps and a duality-gap certificate."""

from __future__ import annotations

import functools
import logging
from typing import NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from sarstack.cpus import available_cpus
from sarstack.errors import SarstackError
from sarstack.timeseries._cholesky import _band_cholesky, _band_solve, _half_bandwidth
from sarstack.timeseries._common import Inversion, _prepare, _run_chunks

# The package's logger ("sarstack.timeseries"), as before the split into modules.
log = logging.getLogger(__package__)

# A shared matrix as a dense array or a gather table (idx, val), see _make_op.
_Op: TypeAlias = jax.Array | tuple[jax.Array, jax.Array]

# Pixels per L1 kernel call (_L1_BLOCK, fixed so each network shape compiles
# once), solved in chunks of _L1_CHUNK pixels in turn, each iterating until
# its own pixels have converged.
_L1_BLOCK = 16384
_L1_CHUNK = 256


# Host threads that run L1 blocks side by side. They once shared XLA's
# machine-wide pool (2 cores: 1.9x at 24 dates, 1.1-1.3x at 60); sarstack's
# pool has one thread (sarstack.jaxcfg.start_backend), on which their kernel
# calls then take turns: a wider pool (SARSTACK_JAX_THREADS) lets them overlap.
def _l1_threads(threads: int | None = None) -> int:
    """Host threads for L1 blocks: ``threads`` (the workflow passes the rule's
    ``threads``), or the CPUs this process may use, at most 4, when None."""
    if threads is not None:
        return max(1, int(threads))
    return max(1, min(4, available_cpus()))


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
    """Gather tables (or dense copies) of ``A``, ``A^T`` and the band of ``A^T D A``,
    built once per process for each design matrix and type (a strip calls the
    solver once per block with the same network: 0.6 s of host work and
    device copies a 1024^2 strip paid again and again)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    pinv = np.ascontiguousarray(pinv, dtype=np.float64)
    return _design_cached(a.tobytes(), a.shape, pinv.tobytes(), np.dtype(dtype).str)


@functools.lru_cache(maxsize=8)
def _design_cached(a_bytes: bytes, shape: tuple[int, int], pinv_bytes: bytes, dtype: str) -> _Design:
    a = np.frombuffer(a_bytes, np.float64).reshape(shape)
    pinv = np.frombuffer(pinv_bytes, np.float64).reshape(shape[1], shape[0])
    return _build_design(a, pinv, np.dtype(dtype))


def _build_design(a: np.ndarray, pinv: np.ndarray, dtype: np.dtype) -> _Design:
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


def _l1_start(
    des: _Design, b: jax.Array, slack: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Starting point of :func:`_l1_chunk` for the residual ``b``: ``x = 0``,
    its objective and gap floor, the primal slacks ``u, v`` (the positive and
    negative parts of ``b``, each plus ``delta``) and the strictly feasible
    dual ``y = b / (2 max|b|)``."""
    m = b.shape[0]
    x0 = jnp.zeros((des.colabs.shape[0], b.shape[1]), b.dtype)
    obj0 = jnp.sum(jnp.abs(b), axis=0)
    floor0 = _gap_floor(des, b, x0) + slack
    delta = jnp.maximum(obj0 / m, floor0)
    u = jnp.maximum(b, 0.0) + delta
    v = jnp.maximum(-b, 0.0) + delta
    rmax = jnp.max(jnp.abs(b), axis=0)
    y = jnp.where(rmax > 0, 0.5 * b / jnp.where(rmax > 0, rmax, 1.0), 0.0)
    return x0, obj0, floor0, u, v, y


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
    It starts from :func:`_l1_start`.
    A pixel stops when its duality gap ``sum|b - A x| - b^T y`` is at most
    ``tol`` times its objective plus the rounding level of this problem and
    ``slack`` (that of the unshifted problem: an exact fit stops at once);
    ``y`` is dual feasible only up to the solver's accuracy, so
    :func:`_l1_certify` checks the result. Returns ``x``, ``y`` and the
    number of iterations.
    """
    m = b.shape[0]
    eps = jnp.finfo(b.dtype).eps
    x0, obj0, floor0, u, v, y = _l1_start(des, b, slack)
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
    a: np.ndarray,
    phase: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    threads: int | None = None,
) -> Inversion:
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
        ``snet.incidence_matrix(pairs, n_dates)``; shared by all pixels.
    phase
        ``(n_ifg, ...)`` unwrapped phase; a pixel with NaN in any
        interferogram is NaN in both outputs.
    tol
        Relative duality-gap tolerance (see above); positive.
    max_iter
        Iteration cap per pixel, at least 1.
    threads
        Host threads running blocks side by side (None: the CPUs this process
        may use, at most 4); the result does not depend on it.

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

    def kernel(
        des: _Design, args: tuple[jax.Array, ...], b: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array, int]:
        x, res, k, conv = _l1_kernel(des, des_out, b, *args, chunk=_L1_CHUNK)
        return x, res, conv, int(np.max(k))

    n_iter = 0
    for prec in phases:
        des = des_out if prec == dtype else _design(a, pinv, prec)
        cap = int(max_iter) if prec == phases[-1] else min(int(max_iter), _F32_MAX_ITER)
        # float32 aims below tol, so that few pixels miss the certificate.
        aim = tol * _F32_AIM if prec == np.float32 else tol
        args = (jnp.asarray(aim, dtype=prec), tol_out, jnp.asarray(cap, dtype=jnp.int32))
        todo = None if prec == phases[0] else np.flatnonzero(~ok)
        # Blocks of fixed size, NaN-padded (a chunk of NaN only is skipped); the
        # first block compiles the kernel, the others run side by side.
        its = _run_chunks(
            functools.partial(kernel, des, args),
            [(flat, np.nan)],
            [x_out, r_out, ok],
            _L1_BLOCK,
            dtype,
            pixels=todo,
            threads=_l1_threads(threads),
        )
        n_iter = max([n_iter, *(k for (k,) in its)])
    n_open = int(np.count_nonzero(~ok))
    if n_open:
        log.warning(
            "L1 inversion: %d of %d pixels stopped before reaching tol=%g (max_iter=%d)",
            n_open, n_pix, tol, max_iter,
        )  # fmt: skip
    return Inversion(x_out.reshape((n, *tail)), r_out.reshape((m, *tail)), n_iter)

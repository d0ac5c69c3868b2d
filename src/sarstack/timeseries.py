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
  every kernel keeps the trailing shape. NaN is nodata: a pixel with a NaN in
  any interferogram gets NaN in every output.
* Displacement is ``-phase`` (positive = towards the radar, e.g. uplift),
  times ``wavelength / (4 pi)`` to get metres.

The per-pixel kernels run in JAX over all pixels at once (no per-pixel loop)
and return NumPy arrays: L2 is one product with the pseudo-inverse of the
shared ``A``; L1 is a batched primal-dual interior-point method that stops on
each pixel's duality gap; weighted / censored L2 (:func:`invert_weighted`,
per-pixel interferogram weights, 0 = not used) solves each pixel's normal
equations with a Cholesky unrolled over the network's sparsity pattern, and
reports dates cut off from the first date as NaN. They work in float32, or
in float64 when the input is float64 and the caller enabled it with
``sarstack.jaxcfg.configure_jax(x64=True)``. Importing this module configures
nothing. There is no file I/O here.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from sarstack.dates import network_components
from sarstack.errors import SarstackError

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

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for scipy.ndimage.label

# Pixels per L1 kernel call: fixed, so each network shape compiles once.
_L1_CHUNK = 4096
# Largest number of unknowns (dates - 1) for the unrolled batched Cholesky; beyond
# it compilation grows too long and the library's batched Cholesky is used.
_UNROLL_MAX = 16
# Relative diagonal regularisation of the interior-point normal equations, in
# units of the machine epsilon (found by experiment: 3-5 removes float32
# breakdowns near the optimum without slowing convergence; 30+ slows it).
_JITTER = 4.0


# --------------------------------------------------------------------------- #
# Reference point
# --------------------------------------------------------------------------- #


def _largest_region(labels: np.ndarray) -> np.ndarray:
    """Mask of the largest labelled region (ties: the lowest label); all false if none."""
    if labels.max(initial=0) == 0:
        return np.zeros(labels.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _conncomp_region(conncomp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Largest 8-connected region of valid pixels that are non-zero in every layer.

    Two neighbouring pixels belong to the same region only when they carry the
    same label in every interferogram (they were unwrapped together).
    """
    from skimage.measure import label as sk_label

    cc = np.asarray(conncomp)
    if cc.ndim == 2:
        cc = cc[None]
    if cc.ndim != 3 or cc.shape[1:] != valid.shape:
        raise SarstackError(
            f"conncomp has shape {np.shape(conncomp)}; expected {valid.shape} "
            f"or (n_ifg, {valid.shape[0]}, {valid.shape[1]})"
        )
    ok = valid & np.all(cc != 0, axis=0)
    # Combine the label tuples into one integer id per pixel, compacting as we go.
    ids = np.zeros(valid.shape, dtype=np.int64)
    for layer in cc:
        _, inv = np.unique(layer, return_inverse=True)
        inv = inv.reshape(valid.shape).astype(np.int64)
        ids = ids * (int(inv.max()) + 1) + inv
        _, ids = np.unique(ids, return_inverse=True)
        ids = ids.reshape(valid.shape).astype(np.int64)
    ids = np.where(ok, ids + 1, 0)
    return _largest_region(sk_label(ids, background=0, connectivity=2))


def _best_quality(mask: np.ndarray, quality: np.ndarray | None) -> tuple[int, int]:
    """The pixel of ``mask`` with the highest quality (NaN lowest; ties: first)."""
    flat = np.flatnonzero(mask)
    if quality is None:
        k = flat[0]
    else:
        q = np.asarray(quality, dtype=np.float64).ravel()[flat]
        q = np.where(np.isnan(q), -np.inf, q)
        k = flat[int(np.argmax(q))]
    r, c = np.unravel_index(k, mask.shape)
    return int(r), int(c)


def select_reference_point(
    valid: np.ndarray,
    quality: np.ndarray | None = None,
    threshold: float = 0.95,
    conncomp: np.ndarray | None = None,
) -> tuple[int, int]:
    """Pick a reference pixel that is valid in every interferogram.

    Parameters
    ----------
    valid
        Boolean ``(rows, cols)``: the pixel is finite and not nodata in every
        interferogram (and not masked).
    quality
        Optional ``(rows, cols)`` quality (e.g. mean or temporal coherence);
        NaN counts as the lowest quality.
    threshold
        Candidates need ``quality >= threshold`` (ignored without ``quality``).
    conncomp
        Optional connected-component labels, ``(n_ifg, rows, cols)`` or an
        already-intersected ``(rows, cols)``; 0 = not unwrapped. Candidates
        are restricted to the largest 8-connected region of valid pixels that
        are non-zero, with one consistent label, in every interferogram (if no
        such pixel exists the labels are ignored, with a warning).

    Returns
    -------
    tuple of int
        ``(row, col)``. Among the candidates, the largest 8-connected region
        is taken, and in it the pixel nearest the region's centroid (ties:
        first in row-major order), which is itself in the region. If no
        candidate passes the threshold, the valid pixel (within the conncomp
        region, if any) with the best quality. Never a pixel that is not
        ``valid``.

    Raises
    ------
    SarstackError
        If no pixel is valid in every interferogram, or shapes disagree.
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.ndim != 2:
        raise SarstackError(f"valid must be 2-D (rows, cols), got shape {valid.shape}")
    if not valid.any():
        raise SarstackError(
            "no pixel is valid in every interferogram; cannot pick a reference point"
        )
    if quality is not None:
        quality = np.asarray(quality, dtype=np.float64)
        if quality.shape != valid.shape:
            raise SarstackError(f"quality has shape {quality.shape}; expected {valid.shape}")

    allowed = valid
    if conncomp is not None:
        region = _conncomp_region(conncomp, valid)
        if region.any():
            allowed = region
        else:
            log.warning("no valid pixel is non-zero in every conncomp layer; ignoring conncomp")

    if quality is None:
        candidates = allowed
    else:
        with np.errstate(invalid="ignore"):
            candidates = allowed & (quality >= threshold)
    if not candidates.any():
        rc = _best_quality(allowed, quality)
        log.info(
            "no pixel has quality >= %s; reference point %s has the best quality", threshold, rc
        )
        return rc

    labels, _ = ndimage.label(candidates, structure=_EIGHT)
    region = _largest_region(labels)
    rr, cc = np.nonzero(region)
    d2 = (rr - rr.mean()) ** 2 + (cc - cc.mean()) ** 2
    k = int(np.argmin(d2))
    return int(rr[k]), int(cc[k])


def check_reference_point(rc: Sequence[int], valid: np.ndarray) -> tuple[int, int]:
    """Validate a user-given reference point ``(row, col)``.

    Returns
    -------
    tuple of int
        The point as ``(row, col)`` Python ints.

    Raises
    ------
    SarstackError
        If the point is outside the raster or not valid in every interferogram.
    """
    valid = np.asarray(valid, dtype=bool)
    rows, cols = valid.shape
    try:
        r, c = (int(v) for v in rc)
    except (TypeError, ValueError):
        raise SarstackError(f"insar.reference_point {rc!r} is not [row, col]") from None
    if not (0 <= r < rows and 0 <= c < cols):
        raise SarstackError(
            f"insar.reference_point [{r}, {c}] is outside the {rows} x {cols} raster"
        )
    if not valid[r, c]:
        raise SarstackError(
            f"insar.reference_point [{r}, {c}] is nodata in at least one interferogram"
        )
    return r, c


# --------------------------------------------------------------------------- #
# Network
# --------------------------------------------------------------------------- #


def _date_label(k: int, dates: Sequence[dt.date] | None) -> str:
    return dates[k].isoformat() if dates is not None else f"#{k}"


def check_network(
    pairs: Sequence[tuple[int, int]], n_dates: int, dates: Sequence[dt.date] | None = None
) -> None:
    """Raise if the pair network does not connect every date to the first.

    Parameters
    ----------
    pairs
        ``(i, j)`` date indices of each interferogram.
    n_dates
        Number of dates.
    dates
        Optional dates (length ``n_dates``) used to name the unreachable ones;
        without them dates are named by 0-based index (``#3``).

    Raises
    ------
    SarstackError
        ``the interferogram network is disconnected: dates ... not connected
        to ...`` (the incidence matrix would not have full column rank).
    """
    if n_dates < 2:
        raise SarstackError(f"a time series needs at least 2 dates, got {n_dates}")
    if dates is not None and len(dates) != n_dates:
        raise SarstackError(f"{len(dates)} dates given for a network of {n_dates} dates")
    comp = network_components(pairs, n_dates)
    lost = np.flatnonzero(comp != comp[0])
    if lost.size == 0:
        return
    names = [_date_label(int(k), dates) for k in lost[:10]]
    more = f" and {lost.size - 10} more" if lost.size > 10 else ""
    first = _date_label(0, dates)
    idx = "" if dates is not None else " (0-based date indices)"
    raise SarstackError(
        f"the interferogram network is disconnected: dates {', '.join(names)}{more} "
        f"not connected to {first}, the first date{idx}; add interferograms that bridge them "
        "or drop them"
    )


def _pairs_from_incidence(a: np.ndarray) -> list[tuple[int, int]] | None:
    """Pairs of an incidence matrix (first-date datum), or None if it is not one."""
    pairs = []
    for row in a:
        plus, minus = np.flatnonzero(row == 1), np.flatnonzero(row == -1)
        if np.count_nonzero(row) != plus.size + minus.size or plus.size > 1 or minus.size > 1:
            return None
        if plus.size == 0 and minus.size == 0:
            return None
        i = int(minus[0]) + 1 if minus.size else 0
        j = int(plus[0]) + 1 if plus.size else 0
        pairs.append((i, j))
    return pairs


def _check_design(a: np.ndarray) -> None:
    """Full-column-rank check of the design matrix, naming dates for incidence matrices."""
    if a.ndim != 2 or a.shape[1] < 1:
        raise SarstackError(f"A must be 2-D (n_ifg, n_dates - 1), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise SarstackError("A has non-finite entries")
    pairs = _pairs_from_incidence(a)
    if pairs is not None:
        check_network(pairs, a.shape[1] + 1)
    elif np.linalg.matrix_rank(a) < a.shape[1]:
        raise SarstackError(
            f"the design matrix ({a.shape[0]} x {a.shape[1]}) does not have full column rank"
        )


def is_single_reference(pairs: Sequence[tuple[int, int]], n_dates: int | None = None) -> bool:
    """True if the network is exactly one interferogram from date 0 to each later date.

    Parameters
    ----------
    pairs
        ``(i, j)`` date indices.
    n_dates
        Number of dates; default ``max(j) + 1``.
    """
    if len(pairs) == 0:
        return False
    n = int(max(max(p) for p in pairs)) + 1 if n_dates is None else int(n_dates)
    if len(pairs) != n - 1:
        return False
    return all(int(i) == 0 for i, _ in pairs) and sorted(int(j) for _, j in pairs) == list(
        range(1, n)
    )


def single_reference_series(pairs: Sequence[tuple[int, int]], phase: np.ndarray) -> np.ndarray:
    """Phase series of a single-reference network, with no inversion.

    Parameters
    ----------
    pairs
        A single-reference network (:func:`is_single_reference`).
    phase
        ``(n_ifg, ...)`` interferogram stack in the order of ``pairs``.

    Returns
    -------
    np.ndarray
        ``(n_dates - 1, ...)``: the interferograms reordered by secondary date
        (the unknowns of :func:`invert_l2`). NaN pixels become NaN for every
        date, as in the inversions.
    """
    if not is_single_reference(pairs):
        raise SarstackError("the network is not single-reference (one pair 0 -> j per later date)")
    phase = np.asarray(phase)
    if phase.shape[0] != len(pairs):
        raise SarstackError(f"phase has {phase.shape[0]} interferograms; pairs has {len(pairs)}")
    order = np.argsort([j for _, j in pairs])
    x = phase[order].copy()
    bad = np.any(np.isnan(phase), axis=0)
    x[:, bad] = np.nan
    return x


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


def _chol_factor(mu: jax.Array, n: int) -> dict[tuple[int, int], jax.Array] | jax.Array:
    """Batched Cholesky factor of small SPD matrices, pixels on the last axis.

    ``mu`` is ``(n (n + 1) / 2, C)``: the upper triangles in ``np.triu_indices(n)``
    order. Up to ``_UNROLL_MAX`` unknowns the factorisation is unrolled over
    ``(C,)`` vectors (fast on CPU, one fused loop), returning ``L[i, j]`` for
    ``i >= j``; larger systems use the batched library Cholesky, ``(C, n, n)``.
    """
    rows, cols = np.triu_indices(n)
    if n > _UNROLL_MAX:
        full = jnp.zeros((n, n, mu.shape[1]), mu.dtype).at[rows, cols].set(mu)
        full = full.at[cols, rows].set(mu)
        return jnp.linalg.cholesky(jnp.moveaxis(full, -1, 0))
    upper = {(int(i), int(j)): mu[k] for k, (i, j) in enumerate(zip(rows, cols, strict=True))}
    low: dict[tuple[int, int], jax.Array] = {}
    for j in range(n):
        acc = upper[j, j]
        for k in range(j):
            acc = acc - low[j, k] * low[j, k]
        diag = jnp.sqrt(acc)
        low[j, j] = diag
        inv = 1.0 / diag
        for i in range(j + 1, n):
            acc = upper[j, i]
            for k in range(j):
                acc = acc - low[i, k] * low[j, k]
            low[i, j] = acc * inv
    return low


def _chol_solve(
    low: dict[tuple[int, int], jax.Array] | jax.Array, rhs: jax.Array, n: int
) -> jax.Array:
    """Solve ``L L^T x = rhs`` for a batch, ``rhs`` of shape ``(n, C)``."""
    if not isinstance(low, dict):
        sol = jax.scipy.linalg.cho_solve((low, True), rhs.T[..., None])
        return sol[..., 0].T
    y: list[jax.Array] = []
    for i in range(n):
        acc = rhs[i]
        for k in range(i):
            acc = acc - low[i, k] * y[k]
        y.append(acc / low[i, i])
    x: list[jax.Array] = [y[0]] * n
    for i in reversed(range(n)):
        acc = y[i]
        for k in range(i + 1, n):
            acc = acc - low[k, i] * x[k]
        x[i] = acc / low[i, i]
    return jnp.stack(x)


def _max_step(val: jax.Array, step: jax.Array) -> jax.Array:
    """Largest ``alpha`` in [0, 1] with ``val + alpha * step >= 0``, per column."""
    ratio = jnp.where(step < 0, -val / jnp.where(step < 0, step, -1.0), jnp.inf)
    return jnp.minimum(1.0, jnp.min(ratio, axis=0))


@jax.jit
def _l1_kernel(
    a: jax.Array,
    pinv: jax.Array,
    outer: jax.Array,
    b: jax.Array,
    tol: jax.Array,
    max_iter: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Primal-dual interior-point solve of min_x |b - A x|_1 for every column of ``b``.

    Primal LP: ``A x + u - v = b``, ``u, v >= 0``, minimise ``sum(u + v)``.
    Dual: maximise ``b^T y`` subject to ``A^T y = 0``, ``-1 <= y <= 1``, with
    slacks ``s = 1 - y``, ``w = 1 + y``. Mehrotra predictor-corrector steps;
    each needs one ``(n, n)`` solve per pixel with ``A^T diag(d) A``, factored
    once per iteration (unrolled batched Cholesky, pixels on the last axis).
    The start is the least-squares solution, whose residual ``r`` gives a
    strictly feasible dual ``y = r / (2 max|r|)`` (``A^T r = 0``). A pixel
    stops when its duality gap ``sum|b - A x| - b^T y`` is at most ``tol``
    times its objective plus a rounding-level slack (an exact fit stops at once).
    """
    m, n = a.shape
    dtype = b.dtype
    eps = jnp.finfo(dtype).eps
    diag_rows = np.flatnonzero(np.equal(*np.triu_indices(n)))
    bad = jnp.any(jnp.isnan(b), axis=0)
    b = jnp.where(bad, 0.0, b)
    x0 = pinv @ b
    r0 = b - a @ x0
    obj0 = jnp.sum(jnp.abs(r0), axis=0)
    # Rounding level of the objective: absolute slack of the stopping test.
    floor = 10.0 * eps * m * (1.0 + jnp.max(jnp.abs(b), axis=0))
    delta = jnp.maximum(obj0 / m, floor)
    u = jnp.maximum(r0, 0.0) + delta
    v = jnp.maximum(-r0, 0.0) + delta
    rmax = jnp.max(jnp.abs(r0), axis=0)
    y = jnp.where(rmax > 0, 0.5 * r0 / jnp.where(rmax > 0, rmax, 1.0), 0.0)
    s, w = 1.0 - y, 1.0 + y

    def gap_ok(x, y):
        obj = jnp.sum(jnp.abs(b - a @ x), axis=0)
        return obj - jnp.sum(b * y, axis=0) <= tol * obj + floor

    conv0 = bad | (obj0 <= floor) | gap_ok(x0, y)

    def newton(x, u, v, y, s, w, low, dinv, r_us, r_vw):
        rp = b - a @ x - u + v
        rd = -(a.T @ y)
        r_s = 1.0 - y - s
        r_w = 1.0 + y - w
        g = (r_us - u * r_s) / s - (r_vw - v * r_w) / w
        dx = _chol_solve(low, a.T @ (dinv * (rp - g)) - rd, n)
        dy = dinv * (rp - g - a @ dx)
        ds = r_s - dy
        dw = r_w + dy
        du = (r_us - u * ds) / s
        dv = (r_vw - v * dw) / w
        return dx, du, dv, dy, ds, dw

    def cond(st):
        k, *_, stop, _ = st
        return (k < max_iter) & ~jnp.all(stop)

    def body(st):
        k, x, u, v, y, s, w, stop, conv = st
        mu = (jnp.sum(u * s, axis=0) + jnp.sum(v * w, axis=0)) / (2 * m)
        dinv = 1.0 / (u / s + v / w)
        # Relative diagonal regularisation keeps the factorisation finite when the
        # weights spread over many orders of magnitude near the optimum.
        mmat = (outer.T @ dinv).at[diag_rows].multiply(1.0 + _JITTER * eps)
        low = _chol_factor(mmat, n)
        # Predictor (affine scaling).
        dx, du, dv, dy, ds, dw = newton(x, u, v, y, s, w, low, dinv, -u * s, -v * w)
        ap = jnp.minimum(_max_step(u, du), _max_step(v, dv))
        ad = jnp.minimum(_max_step(s, ds), _max_step(w, dw))
        mu_aff = (
            jnp.sum((u + ap * du) * (s + ad * ds), axis=0)
            + jnp.sum((v + ap * dv) * (w + ad * dw), axis=0)
        ) / (2 * m)
        sigma = (mu_aff / mu) ** 3
        # Corrector (centring plus second-order term).
        r_us = sigma * mu - u * s - du * ds
        r_vw = sigma * mu - v * w - dv * dw
        dx, du, dv, dy, ds, dw = newton(x, u, v, y, s, w, low, dinv, r_us, r_vw)
        ap = 0.99 * jnp.minimum(_max_step(u, du), _max_step(v, dv))
        ad = 0.99 * jnp.minimum(_max_step(s, ds), _max_step(w, dw))
        nx, nu, nv = x + ap * dx, u + ap * du, v + ap * dv
        ny, ns, nw = y + ad * dy, s + ad * ds, w + ad * dw
        # A pixel whose step went non-finite (breakdown near the optimum) stops as is.
        finite = jnp.all(jnp.isfinite(nx), axis=0) & jnp.all(jnp.isfinite(ny), axis=0)
        keep = stop | ~finite
        x, u, v, y, s, w = (
            jnp.where(keep, old, new)
            for old, new in ((x, nx), (u, nu), (v, nv), (y, ny), (s, ns), (w, nw))
        )
        conv = conv | (~keep & gap_ok(x, y))
        return k + 1, x, u, v, y, s, w, stop | ~finite | conv, conv

    state = (jnp.asarray(0, jnp.int32), x0, u, v, y, s, w, conv0, conv0)
    k, x, *_, conv = jax.lax.while_loop(cond, body, state)
    # Never worse than least squares (e.g. a pixel that broke down early).
    obj = jnp.sum(jnp.abs(b - a @ x), axis=0)
    x = jnp.where(obj <= obj0, x, x0)
    res = b - a @ x
    nan = jnp.nan
    return jnp.where(bad, nan, x), jnp.where(bad, nan, res), k, conv


def invert_l1(
    a: np.ndarray, phase: np.ndarray, *, tol: float = 1e-4, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray, int]:
    """Least-absolute-deviation network inversion of every pixel at once.

    Minimises ``sum |phase - A x|`` per pixel with a batched primal-dual
    interior-point method (Mehrotra predictor-corrector): every iteration
    solves one small weighted normal-equation system ``A^T D A`` per pixel
    for all pixels together, starting from the least-squares solution. A
    pixel stops when its duality gap (objective minus the dual bound) is
    at most ``tol`` times its objective, so the objective is within a factor
    ``1 + tol`` of the optimum; the loop stops when every pixel has stopped
    or after ``max_iter`` iterations. A pixel never ends with a larger
    objective than its least-squares solution. Pixels are processed in
    chunks of fixed size, so each ``(n_ifg, n_dates)`` network compiles once.

    Parameters
    ----------
    a
        Design matrix ``(n_ifg, n_dates - 1)`` of full column rank.
    phase
        ``(n_ifg, ...)`` unwrapped phase; NaN = nodata.
    tol
        Relative duality-gap tolerance.
    max_iter
        Iteration cap.

    Returns
    -------
    x : np.ndarray
        ``(n_dates - 1, ...)``.
    residual : np.ndarray
        ``(n_ifg, ...)``, ``phase - A @ x``.
    n_iter : int
        Most iterations any chunk of pixels needed (``max_iter``: some pixel
        did not converge).
    """
    if not tol > 0:
        raise SarstackError(f"tol must be positive, got {tol}")
    if int(max_iter) < 1:
        raise SarstackError(f"max_iter must be at least 1, got {max_iter}")
    a, flat, tail, dtype, pinv = _prepare(a, phase)
    m, n = a.shape
    iu = np.triu_indices(n)
    outer = a[:, iu[0]] * a[:, iu[1]]  # (m, n (n + 1) / 2): rows of A^T diag(d) A
    consts = [jnp.asarray(c, dtype=dtype) for c in (a, pinv, outer)]
    tol_j = jnp.asarray(tol, dtype=dtype)
    it_j = jnp.asarray(int(max_iter), dtype=jnp.int32)
    n_pix = flat.shape[1]
    x_out = np.empty((n, n_pix), dtype=dtype)
    r_out = np.empty((m, n_pix), dtype=dtype)
    n_iter, n_open = 0, 0
    for p0 in range(0, n_pix, _L1_CHUNK):
        block = np.zeros((m, _L1_CHUNK), dtype=dtype)
        p1 = min(p0 + _L1_CHUNK, n_pix)
        block[:, : p1 - p0] = flat[:, p0:p1]
        x, res, k, conv = _l1_kernel(*consts, jnp.asarray(block), tol_j, it_j)
        x_out[:, p0:p1] = np.asarray(x)[:, : p1 - p0]
        r_out[:, p0:p1] = np.asarray(res)[:, : p1 - p0]
        n_iter = max(n_iter, int(k))
        n_open += int(np.count_nonzero(~np.asarray(conv)[: p1 - p0]))
    if n_open:
        log.warning(
            "L1 inversion: %d of %d pixels stopped before reaching tol=%g (max_iter=%d)",
            n_open, n_pix, tol, max_iter,
        )  # fmt: skip
    return x_out.reshape((n, *tail)), r_out.reshape((m, *tail)), n_iter


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
    bad = jnp.any(jnp.isnan(b), axis=0)
    used = (w > 0) & ~bad
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
        ``(n_ifg, ...)`` unwrapped phase. A pixel with NaN in any
        interferogram is NaN in every output, whatever its weights.
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


def reference(x: np.ndarray, ref_rc: tuple[int, int]) -> np.ndarray:
    """Subtract the reference pixel's value on each date.

    Parameters
    ----------
    x
        ``(n, rows, cols)`` stack.
    ref_rc
        ``(row, col)`` of the reference pixel.

    Raises
    ------
    SarstackError
        If the point is outside the raster or its value is NaN on some date.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise SarstackError(f"reference needs an (n, rows, cols) stack, got shape {x.shape}")
    r, c = check_reference_point(ref_rc, np.ones(x.shape[1:], dtype=bool))
    ref = x[:, r, c]
    if np.any(np.isnan(ref)):
        k = int(np.flatnonzero(np.isnan(ref))[0])
        raise SarstackError(f"reference pixel [{r}, {c}] is NaN on layer {k}")
    return x - ref[:, None, None]


def phase_to_displacement(x: np.ndarray, wavelength: float | None) -> tuple[np.ndarray, str]:
    """Convert phase to line-of-sight displacement, positive towards the radar.

    Parameters
    ----------
    x
        Phase in radians.
    wavelength
        Radar wavelength in metres (e.g. 0.0555 for Sentinel-1), or None.

    Returns
    -------
    disp : np.ndarray
        ``-x * wavelength / (4 pi)`` in metres, or ``-x`` in radians when no
        wavelength is given.
    units : str
        ``"meters"`` or ``"radians"``.
    """
    x = np.asarray(x)
    if wavelength is None:
        return -x, "radians"
    if not (np.isfinite(wavelength) and wavelength > 0):
        raise SarstackError(f"wavelength must be positive metres, got {wavelength}")
    return x * (-float(wavelength) / (4.0 * np.pi)), "meters"


@jax.jit
def _velocity_kernel(t: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    n = t.shape[0]
    bad = jnp.any(jnp.isnan(y), axis=0)
    y = jnp.where(bad, 0.0, y)
    tc = t - jnp.mean(t)
    sxx = jnp.sum(tc * tc)
    ym = jnp.mean(y, axis=0)
    slope = (tc @ (y - ym)) / sxx
    intercept = ym - slope * jnp.mean(t)
    fit = intercept + slope * t[:, None]
    ss = jnp.sum((y - fit) ** 2, axis=0)
    if n >= 3:
        std = jnp.sqrt(ss / (n - 2) / sxx)
    else:
        std = jnp.full_like(slope, jnp.nan)
    nan = jnp.nan
    return jnp.where(bad, nan, slope), jnp.where(bad, nan, std), jnp.where(bad, nan, intercept)


def velocity(disp: np.ndarray, t_years: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel linear fit of a displacement series.

    Parameters
    ----------
    disp
        ``(n_dates, ...)`` displacement, the first date's zero included.
    t_years
        ``(n_dates,)`` time of each date in years (``dates.years_since``).

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
    dtype = _work_dtype(disp)
    tail = disp.shape[1:]
    out = _velocity_kernel(
        jnp.asarray(t, dtype=dtype), jnp.asarray(disp.reshape(t.size, -1), dtype=dtype)
    )
    return tuple(np.asarray(o).reshape(tail) for o in out)  # type: ignore[return-value]


@functools.partial(jax.jit, static_argnames=("absolute",))
def _velocity_weighted_kernel(
    t: jax.Array, y: jax.Array, w: jax.Array, absolute: bool
) -> tuple[jax.Array, jax.Array]:
    nan = jnp.nan
    t = t[:, None]
    ok = jnp.isfinite(y) & (w > 0)  # NaN weights fail w > 0
    anchor = ok & jnp.isinf(w)
    has_anchor = jnp.any(anchor, axis=0)
    wf = jnp.where(ok & ~anchor, w, 0.0)
    yz = jnp.where(ok, y, 0.0)
    n_ok = jnp.sum(ok, axis=0)
    # Centre: the anchor point (the line goes through it), else the weighted means.
    sw = jnp.sum(wf, axis=0)
    sw1 = jnp.where(sw > 0, sw, 1.0)
    t_a = jnp.sum(jnp.where(anchor, t, 0.0), axis=0)
    y_a = jnp.sum(jnp.where(anchor, yz, 0.0), axis=0)
    tc = jnp.where(has_anchor, t_a, jnp.sum(wf * t, axis=0) / sw1)
    yc = jnp.where(has_anchor, y_a, jnp.sum(wf * yz, axis=0) / sw1)
    dt_ = jnp.where(ok, t - tc, 0.0)
    sxx = jnp.sum(wf * dt_ * dt_, axis=0)
    good = (n_ok >= 2) & (sxx > 0)
    sxx1 = jnp.where(good, sxx, 1.0)
    slope = jnp.sum(wf * dt_ * (yz - yc), axis=0) / sxx1
    if absolute:
        std = jnp.sqrt(1.0 / sxx1)
        std_ok = good
    else:
        r = jnp.where(ok, yz - yc - slope * dt_, 0.0)
        dof = n_ok - 2
        chi2 = jnp.sum(wf * r * r, axis=0)
        std = jnp.sqrt(chi2 / jnp.maximum(dof, 1) / sxx1)
        std_ok = good & (dof >= 1)
    return jnp.where(good, slope, nan), jnp.where(std_ok, std, nan)


def velocity_weighted(
    disp: np.ndarray, t_years: np.ndarray, weights: np.ndarray, *, absolute: bool = False
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
    dtype = _work_dtype(disp)
    wt = wt.reshape(t.size, -1).astype(dtype, copy=False)
    with np.errstate(invalid="ignore"):
        if np.any(wt < 0):
            raise SarstackError("weights must be non-negative")
    y = disp.reshape(t.size, -1)
    if np.any(np.sum(np.isposinf(wt) & np.isfinite(y), axis=0) > 1):
        raise SarstackError("at most one date per pixel may have an infinite weight")
    vel, std = _velocity_weighted_kernel(
        jnp.asarray(t, dtype=dtype),
        jnp.asarray(y, dtype=dtype),
        jnp.asarray(wt),
        absolute=bool(absolute),
    )
    tail = disp.shape[1:]
    return np.asarray(vel).reshape(tail), np.asarray(std).reshape(tail)

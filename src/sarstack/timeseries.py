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
each pixel's duality gap. They work in float32, or
in float64 when the input is float64 and the caller enabled it with
``sarstack.jaxcfg.configure_jax(x64=True)``. Importing this module configures
nothing. There is no file I/O here.
"""

from __future__ import annotations

import datetime as dt
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
    "invert",
    "invert_l1",
    "invert_l2",
    "is_single_reference",
    "phase_to_displacement",
    "reference",
    "select_reference_point",
    "single_reference_series",
    "velocity",
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

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

The per-pixel kernels run in JAX over all pixels at once (one matrix product
per step, no per-pixel loop) and return NumPy arrays. They work in float32, or
in float64 when the input is float64 and the caller enabled it with
``sarstack.jaxcfg.configure_jax(x64=True)``. Importing this module configures
nothing. There is no file I/O here.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from functools import partial

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

# Residual balancing of the ADMM penalty (Boyd et al. 2011, section 3.4.1).
_RHO_MU = 10.0
_RHO_TAU = 2.0
_RHO_EVERY = 10  # iterations between penalty updates


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
        raise SarstackError("no pixel is valid in every interferogram; cannot pick a reference point")
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


def _prepare(a: np.ndarray, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple, np.dtype]:
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


@partial(jax.jit, static_argnames=())
def _l1_kernel(
    a: jax.Array, pinv: jax.Array, b: jax.Array, tol: jax.Array, max_iter: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """ADMM for min_x |A x - b|_1 per column of ``b``, warm-started from least squares.

    Splitting ``A x - z = b``, ``g(z) = |z|_1``, scaled dual ``u``:
    ``x = pinv (b + z - u)``, ``z = soft(A x - b + u, 1/rho)``,
    ``u += A x - z - b``. The x-update does not depend on ``rho``, so the
    per-pixel penalty can adapt (residual balancing) without refactorising.
    The iterate with the lowest objective seen is kept, starting from the
    least-squares solution, so the result never has a larger objective.
    """
    m = a.shape[0]
    dtype = b.dtype
    tiny = jnp.asarray(jnp.finfo(dtype).tiny ** 0.5, dtype)
    bad = jnp.any(jnp.isnan(b), axis=0)
    b = jnp.where(bad, 0.0, b)
    x0 = pinv @ b
    r0 = a @ x0 - b
    obj0 = jnp.sum(jnp.abs(r0), axis=0)
    b_norm = jnp.linalg.norm(b, axis=0)
    # Penalty start: the soft threshold 1/rho at the typical least-squares residual.
    scale = jnp.maximum(obj0 / m, jnp.finfo(dtype).eps * (1.0 + b_norm))
    rho = 1.0 / scale
    z = r0
    u = jnp.zeros_like(b)
    sqrt_m = jnp.sqrt(jnp.asarray(m, dtype))

    def cond(s):
        k, *_, done, _, _ = s
        return (k < max_iter) & ~jnp.all(done)

    def body(s):
        k, x, z, u, rho, done, best_x, best_obj = s
        x_new = pinv @ (b + z - u)
        ax = a @ x_new
        v = ax - b + u
        thr = 1.0 / rho
        z_new = jnp.sign(v) * jnp.maximum(jnp.abs(v) - thr, 0.0)
        r = ax - b - z_new
        u_new = u + r
        r_norm = jnp.linalg.norm(r, axis=0)
        s_norm = rho * jnp.linalg.norm(a.T @ (z_new - z), axis=0)
        eps_pri = tol * jnp.maximum(
            jnp.maximum(jnp.linalg.norm(ax, axis=0), jnp.linalg.norm(z_new, axis=0)), b_norm
        ) + tiny
        eps_dual = tol * sqrt_m
        conv = (r_norm <= eps_pri) & (s_norm <= eps_dual)

        obj = jnp.sum(jnp.abs(ax - b), axis=0)
        better = (obj < best_obj) & ~done
        best_x = jnp.where(better, x_new, best_x)
        best_obj = jnp.where(better, obj, best_obj)

        # Residual balancing every few iterations; u is the scaled dual y / rho.
        adapt = (k + 1) % _RHO_EVERY == 0
        up = adapt & (r_norm > _RHO_MU * s_norm)
        down = adapt & (s_norm > _RHO_MU * r_norm)
        factor = jnp.where(up, _RHO_TAU, jnp.where(down, 1.0 / _RHO_TAU, 1.0)).astype(dtype)
        rho_new = rho * factor
        u_new = u_new / factor

        keep = done
        x = jnp.where(keep, x, x_new)
        z = jnp.where(keep, z, z_new)
        u = jnp.where(keep, u, u_new)
        rho = jnp.where(keep, rho, rho_new)
        return k + 1, x, z, u, rho, done | conv, best_x, best_obj

    state = (jnp.asarray(0, jnp.int32), x0, z, u, rho, bad, x0, obj0)
    k, _, _, _, _, done, best_x, _ = jax.lax.while_loop(cond, body, state)
    res = b - a @ best_x
    return (
        jnp.where(bad, jnp.nan, best_x),
        jnp.where(bad, jnp.nan, res),
        k,
    )


def invert_l1(
    a: np.ndarray, phase: np.ndarray, *, tol: float = 1e-4, max_iter: int = 500
) -> tuple[np.ndarray, np.ndarray, int]:
    """Least-absolute-deviation network inversion of every pixel at once.

    Minimises ``sum |A x - phase|`` per pixel by ADMM, batched over all
    pixels (two small matrix products per iteration with the cached
    pseudo-inverse of the shared ``A``), warm-started from the least-squares
    solution, with a per-pixel adaptive penalty. A pixel stops when its primal
    residual is below ``tol`` relative to the size of ``A x``, ``z`` and
    ``phase`` and its dual residual below ``tol`` relative to the bound of
    the dual variable; the loop stops when every pixel has stopped, or after
    ``max_iter`` iterations. The returned ``x`` of each pixel is the iterate
    with the lowest objective, so its objective never exceeds the
    least-squares one.

    Parameters
    ----------
    a
        Design matrix ``(n_ifg, n_dates - 1)`` of full column rank.
    phase
        ``(n_ifg, ...)`` unwrapped phase; NaN = nodata.
    tol
        Relative stopping tolerance.
    max_iter
        Iteration cap.

    Returns
    -------
    x : np.ndarray
        ``(n_dates - 1, ...)``.
    residual : np.ndarray
        ``(n_ifg, ...)``, ``phase - A @ x``.
    n_iter : int
        Iterations run (``max_iter`` means some pixel did not converge).
    """
    if not tol > 0:
        raise SarstackError(f"tol must be positive, got {tol}")
    if int(max_iter) < 1:
        raise SarstackError(f"max_iter must be at least 1, got {max_iter}")
    a, flat, tail, dtype, pinv = _prepare(a, phase)
    x, res, k = _l1_kernel(
        jnp.asarray(a, dtype=dtype),
        jnp.asarray(pinv, dtype=dtype),
        jnp.asarray(flat, dtype=dtype),
        jnp.asarray(tol, dtype=dtype),
        jnp.asarray(int(max_iter), dtype=jnp.int32),
    )
    n_iter = int(k)
    if n_iter >= max_iter:
        log.warning("L1 inversion stopped at max_iter=%d before every pixel converged", max_iter)
    return (
        np.asarray(x).reshape((a.shape[1], *tail)),
        np.asarray(res).reshape((a.shape[0], *tail)),
        n_iter,
    )


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


def velocity(
    disp: np.ndarray, t_years: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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

"""Reference point selection and referencing, and phase to displacement: the
NumPy half of the InSAR time-series kernels (no JAX, so the stages that only
pick a point or convert units start quickly). Re-exported by
:mod:`sarstack.timeseries`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from sarstack.errors import SarstackError

log = logging.getLogger(__name__)

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for scipy.ndimage.label

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


#: Side (pixels) of the square neighbourhood over which the stability score
#: averages the phase-gradient rate, and that must be wholly valid around a
#: "well-connected" reference candidate.
STABLE_WINDOW = 5

#: Fraction of the quality candidates, lowest smoothed phase-gradient rate
#: first, that count as stable ground.
STABLE_FRACTION = 0.25


def gradient_rate(phase: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Local phase-gradient rate of a stack of unwrapped interferograms.

    Parameters
    ----------
    phase
        ``(n_ifg, rows, cols)`` unwrapped phase (radians), NaN = nodata.
    years
        ``(n_ifg,)`` time span of each interferogram in years (> 0).

    Returns
    -------
    np.ndarray
        ``(rows, cols)`` float64: ``sum_k |grad phase_k| / sum_k dt_k`` over
        the interferograms where the gradient is defined (radians per pixel
        per year), NaN where it is defined in none. The gradient is the
        central difference (one-sided next to nodata or the edge); it is
        undefined on nodata pixels and on pixels with no valid neighbour
        along either axis. Deformation gradients (the rim of a subsidence
        bowl) and noisy, badly unwrapped phase both raise it; stable ground
        keeps it low. Invariant to a constant added to any interferogram.
    """
    x = np.asarray(phase, dtype=np.float64)
    t = np.asarray(years, dtype=np.float64)
    if x.ndim != 3 or t.shape != (x.shape[0],):
        raise SarstackError(
            f"gradient_rate needs (n, rows, cols) phase and (n,) years, got {x.shape}, {t.shape}"
        )
    if not np.all(t > 0):
        raise SarstackError("gradient_rate: every interferogram needs a positive time span")

    def central(axis: int) -> np.ndarray:
        d = np.diff(x, axis=axis)
        pad_lo = [(0, 0)] * 3
        pad_hi = [(0, 0)] * 3
        pad_lo[axis] = (1, 0)
        pad_hi[axis] = (0, 1)
        back = np.pad(d, pad_lo, constant_values=np.nan)  # x[i] - x[i-1]
        fwd = np.pad(d, pad_hi, constant_values=np.nan)  # x[i+1] - x[i]
        n = np.isfinite(back).astype(np.int8) + np.isfinite(fwd)
        s = np.nan_to_num(back) + np.nan_to_num(fwd)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / n, np.nan)

    gr, gc = central(1), central(2)
    mag = np.where(
        np.isfinite(gr) & np.isfinite(gc), np.hypot(gr, gc), np.where(np.isfinite(gr), np.abs(gr), np.abs(gc))
    )
    mag = np.where(np.isfinite(x), mag, np.nan)
    ok = np.isfinite(mag)
    num = np.where(ok, mag, 0.0).sum(axis=0)
    den = (ok * t[:, None, None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _window_mean(values: np.ndarray, inside: np.ndarray, size: int) -> np.ndarray:
    """Mean of ``values`` over the ``size`` x ``size`` window, counting only
    finite values on ``inside`` pixels (NaN where there are none)."""
    from scipy import ndimage

    ok = inside & np.isfinite(values)
    s = ndimage.uniform_filter(np.where(ok, values, 0.0), size=size, mode="constant")
    n = ndimage.uniform_filter(ok.astype(np.float64), size=size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1e-12, s / np.maximum(n, 1e-12), np.nan)


def stable_ground(
    allowed: np.ndarray, quality: np.ndarray | None, threshold: float, roughness: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The candidates of the stability rule of :func:`select_reference_point`:
    ``(stable, rough)``, the mask of the stable, well-connected, low-gradient
    pixels (of every region) and the gradient rate averaged over
    :data:`STABLE_WINDOW`. The automatic reference point and its alternatives
    (:func:`alternative_points`) are both chosen among them."""
    from scipy import ndimage

    w = STABLE_WINDOW
    rough = _window_mean(np.asarray(roughness, dtype=np.float64), allowed, w)
    # Well connected: the whole w x w neighbourhood is valid (outside the raster is not).
    interior = ndimage.binary_erosion(allowed, structure=np.ones((w, w), bool), border_value=0)
    if not interior.any():
        log.info("no pixel has its whole %d x %d neighbourhood valid; using every valid pixel",
                 w, w)  # fmt: skip
        interior = allowed
    pool = interior
    if quality is not None:
        with np.errstate(invalid="ignore"):
            good = interior & (quality >= threshold)
        if not good.any():
            q = quality[interior]
            cut = float(np.nanmedian(q)) if np.isfinite(q).any() else -np.inf
            with np.errstate(invalid="ignore"):
                good = interior & (quality >= cut)
            log.info("no candidate pixel has quality >= %s; using the better half (quality >= %.3f)",
                     threshold, cut)  # fmt: skip
        if good.any():
            pool = good
    r_pool = np.where(pool, rough, np.nan)
    if np.isfinite(r_pool).any():
        cut = float(np.nanquantile(r_pool, STABLE_FRACTION))
        with np.errstate(invalid="ignore"):
            stable = pool & (r_pool <= cut)
    else:
        stable = pool
    return stable, rough


def _depth(region: np.ndarray) -> np.ndarray:
    """Distance of each pixel of ``region`` to its border (0 outside)."""
    from scipy import ndimage

    return ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]


def _stable_reference(
    allowed: np.ndarray, quality: np.ndarray | None, threshold: float, roughness: np.ndarray
) -> tuple[int, int]:
    """The stability rule of :func:`select_reference_point` (with ``roughness``)."""
    from scipy import ndimage

    stable, rough = stable_ground(allowed, quality, threshold, roughness)
    labels, _ = ndimage.label(stable, structure=_EIGHT)
    region = _largest_region(labels)
    # The most interior pixel of the region (farthest from its border), then
    # the lowest gradient rate, then the first in row-major order.
    depth = _depth(region)
    rr, cc = np.nonzero(region)
    rk = np.nan_to_num(rough[rr, cc], nan=np.inf)
    k = np.lexsort((rr * region.shape[1] + cc, rk, -depth[rr, cc]))[0]
    return int(rr[k]), int(cc[k])


#: Alternative reference points keep at least this depth (pixels from the
#: border of their stable region) where any candidate has it: not on the rim
#: of a quiet patch.
ALTERNATIVE_MIN_DEPTH = 2.0


def alternative_points(
    valid: np.ndarray,
    ref_rc: tuple[int, int],
    n: int,
    quality: np.ndarray | None = None,
    *,
    threshold: float,
    conncomp: np.ndarray | None = None,
    roughness: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """``n`` alternative reference points, chosen like the automatic one and
    spread apart: the candidates of :func:`select_reference_point` (valid in
    every ifg, inside the conncomp region; with ``roughness`` the stable,
    well-connected, low-gradient ground of :func:`stable_ground`, of every
    region, at least :data:`ALTERNATIVE_MIN_DEPTH` from its border where
    possible; without it the quality candidates), picked by farthest-point
    sampling from ``ref_rc``: each next point is the candidate farthest from
    the reference and the points already picked (ties: deeper inside its
    region, then row-major order). Deterministic; distinct from ``ref_rc``
    and from each other; fewer than ``n`` when there are fewer candidates."""
    valid = np.asarray(valid, dtype=bool)
    allowed = valid
    if conncomp is not None:
        region = _conncomp_region(conncomp, valid)
        if region.any():
            allowed = region
    if roughness is not None:
        cand, _ = stable_ground(allowed, quality, threshold, np.asarray(roughness, np.float64))
        depth = _depth(cand)  # within its own region: regions touch only across non-candidates
        if (depth >= ALTERNATIVE_MIN_DEPTH).any():
            cand = cand & (depth >= ALTERNATIVE_MIN_DEPTH)
    else:
        cand = allowed
        if quality is not None:
            with np.errstate(invalid="ignore"):
                good = allowed & (np.asarray(quality, np.float64) >= threshold)
            if good.any():
                cand = good
        depth = _depth(cand)
    cand = cand.copy()
    cand[ref_rc] = False
    rr, cc = np.nonzero(cand)
    if rr.size == 0 or n <= 0:
        return []
    d = depth[rr, cc]
    nearest = np.hypot(rr - ref_rc[0], cc - ref_rc[1])
    picked: list[tuple[int, int]] = []
    order = rr * cand.shape[1] + cc
    for _ in range(min(n, rr.size)):
        k = int(np.lexsort((order, -d, -nearest))[0])
        if nearest[k] <= 0:
            break
        picked.append((int(rr[k]), int(cc[k])))
        nearest = np.minimum(nearest, np.hypot(rr - rr[k], cc - cc[k]))
    return picked


def select_reference_point(
    valid: np.ndarray,
    quality: np.ndarray | None = None,
    *,
    threshold: float,
    conncomp: np.ndarray | None = None,
    roughness: np.ndarray | None = None,
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
    roughness
        Optional ``(rows, cols)`` phase-gradient rate (:func:`gradient_rate`).
        With it the point is chosen on stable, well-connected, low-gradient
        ground: candidates are the valid pixels whose whole
        :data:`STABLE_WINDOW` neighbourhood is valid, with
        ``quality >= threshold`` (if none: quality at least the median of
        those pixels); of them the :data:`STABLE_FRACTION` with the lowest
        gradient rate averaged over the neighbourhood are stable ground; the
        point is the most interior pixel (farthest from the region's border;
        ties: lowest gradient rate, then row-major order) of the largest
        8-connected stable region. A rim of a deforming area (steep phase
        gradient) or a noisy patch is never preferred to a wide quiet area.

    Returns
    -------
    tuple of int
        ``(row, col)``. Without ``roughness``: among the candidates, the
        largest 8-connected region is taken, and in it the pixel nearest the
        region's centroid (ties: first in row-major order), which is itself
        in the region; if no candidate passes the threshold, the valid pixel
        (within the conncomp region, if any) with the best quality. Never a
        pixel that is not ``valid``.

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

    if roughness is not None:
        roughness = np.asarray(roughness, dtype=np.float64)
        if roughness.shape != valid.shape:
            raise SarstackError(f"roughness has shape {roughness.shape}; expected {valid.shape}")
        return _stable_reference(allowed, quality, threshold, roughness)

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

    from scipy import ndimage  # imported here: 0.35 s that most stages never need

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
        raise SarstackError(f"reference point {rc!r} is not [row, col]") from None
    if not (0 <= r < rows and 0 <= c < cols):
        raise SarstackError(
            f"reference point [{r}, {c}] is outside the {rows} x {cols} raster"
        )
    if not valid[r, c]:
        raise SarstackError(
            f"reference point [{r}, {c}] is nodata in at least one interferogram"
        )
    return r, c


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

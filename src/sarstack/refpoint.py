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

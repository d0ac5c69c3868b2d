"""Phase closure of interferogram triangles: an unwrapping-error indicator.

For dates ``i < j < k`` whose three interferograms ``ij``, ``jk`` and ``ik``
are all in the network, the closure phase ``ifg_ij + ifg_jk - ifg_ik`` of
unwrapped phase is zero up to noise; an unwrapping error (a ``2 pi`` jump in
one of them) makes it about a multiple of ``2 pi``. The per-pixel number of
triangles whose closure is farther than ``pi`` from zero is MintPy's
``numTriNonzeroIntAmbiguity``.

NumPy only: no JAX, no I/O (:func:`sarstack.insar.closure_count` streams the
files).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sarstack.errors import SarstackError

#: Largest count written: the uint16 count rasters keep 65535 for nodata.
COUNT_MAX = 65534

#: Elements (triangles x pixels) of one chunk of closure phases (32 MB as float64).
_CHUNK_ELEMENTS = 1 << 22


def network_triangles(pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Every closed triangle of a pair network.

    Parameters
    ----------
    pairs
        ``(i, j)`` date indices of each interferogram, ``i < j``, no pair
        twice; any order.

    Returns
    -------
    np.ndarray
        ``(n_tri, 3)`` int64: for each date triple ``i < j < k`` whose three
        pairs are all in ``pairs``, the interferogram indices (positions in
        ``pairs``) of ``(i, j)``, ``(j, k)`` and ``(i, k)``, so that the
        closure is ``phase[ij] + phase[jk] - phase[ik]``. Sorted by
        ``(i, j, k)``. Shape ``(0, 3)`` for a network without triangles
        (e.g. sequential or single-reference).

    Raises
    ------
    SarstackError
        A pair with ``i >= j`` or a pair given twice.
    """
    index: dict[tuple[int, int], int] = {}
    later: dict[int, list[int]] = {}
    for n, (i, j) in enumerate(pairs):
        i, j = int(i), int(j)
        if i >= j:
            raise SarstackError(f"pair {n} ({i}, {j}): the first date must be before the second")
        if (i, j) in index:
            raise SarstackError(f"pair {n} ({i}, {j}) is also pair {index[(i, j)]}")
        index[(i, j)] = n
        later.setdefault(i, []).append(j)
    tri = [
        (i, j, k, index[(i, j)], index[(j, k)], index[(i, k)])
        for (i, k) in index
        for j in later[i]
        if j < k and (j, k) in index
    ]
    tri.sort()
    return np.array([t[3:] for t in tri], dtype=np.int64).reshape(-1, 3)


def closure_counts(
    phase: np.ndarray,
    triangles: np.ndarray,
    *,
    threshold: float = np.pi,
    chunk_elements: int = _CHUNK_ELEMENTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the triangles with a non-zero closure and the measurable ones.

    Parameters
    ----------
    phase
        ``(n_ifg, ...)`` unwrapped phase (radians), NaN = missing.
    triangles
        ``(n_tri, 3)`` ifg indices from :func:`network_triangles`.
    threshold
        A closure counts when ``|closure| > threshold`` (radians).
    chunk_elements
        Triangles are processed in chunks of about this many
        ``triangles x pixels`` elements, so memory stays bounded for dense
        networks.

    Returns
    -------
    nonzero, measured
        uint16 arrays with ``phase``'s trailing shape: the number of
        triangles whose closure is farther than ``threshold`` from zero, and
        the number of triangles with all three phases finite (a triangle with
        a NaN is in neither). Both saturate at :data:`COUNT_MAX`.
    """
    phase = np.asarray(phase)
    tri = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    if phase.ndim < 1:
        raise SarstackError("phase must have an interferogram axis first")
    if tri.size and (tri.min() < 0 or tri.max() >= phase.shape[0]):
        raise SarstackError(
            f"triangles refer to interferogram {int(tri.max())}; phase has {phase.shape[0]}"
        )
    trailing = phase.shape[1:]
    flat = phase.reshape(phase.shape[0], -1)
    npix = flat.shape[1]
    nonzero = np.zeros(npix, np.uint32)
    measured = np.zeros(npix, np.uint32)
    step = max(1, int(chunk_elements) // max(npix, 1))
    for t0 in range(0, len(tri), step):
        t = tri[t0 : t0 + step]
        c = flat[t[:, 0]] + flat[t[:, 1]] - flat[t[:, 2]]  # (chunk, npix); NaN stays NaN
        ok = np.isfinite(c)
        measured += ok.sum(axis=0, dtype=np.uint32)
        with np.errstate(invalid="ignore"):
            nonzero += (ok & (np.abs(c) > threshold)).sum(axis=0, dtype=np.uint32)
    return (
        np.minimum(nonzero, COUNT_MAX).astype(np.uint16).reshape(trailing),
        np.minimum(measured, COUNT_MAX).astype(np.uint16).reshape(trailing),
    )


def closure_nonzero_count(
    phase: np.ndarray, triangles: np.ndarray, *, threshold: float = np.pi
) -> np.ndarray:
    """Per pixel, the number of triangles whose closure phase is farther than ``pi`` from zero.

    Parameters
    ----------
    phase
        ``(n_ifg, ...)`` unwrapped phase (radians), NaN = missing.
    triangles
        ``(n_tri, 3)`` ifg indices from :func:`network_triangles`.
    threshold
        A closure counts when ``|closure| > threshold`` (radians).

    Returns
    -------
    np.ndarray
        uint16 with ``phase``'s trailing shape; a triangle with a NaN in any
        of its three interferograms is not counted. Saturates at
        :data:`COUNT_MAX`.
    """
    return closure_counts(phase, triangles, threshold=threshold)[0]

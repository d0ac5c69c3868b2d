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
    totals: np.ndarray | None = None,
    complete: bool | None = None,
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
    totals
        Optional ``(n_tri, 2)`` int64 array, incremented in place with each
        triangle's pixels of non-zero closure (column 0) and measurable pixels
        (column 1): the per-triangle view of the same counts, for block-wise
        sums over a scene.
    complete
        Whether every phase is finite, when the caller knows (None: one pass
        over ``phase`` says); the same counts either way.

    Returns
    -------
    nonzero, measured
        uint16 arrays with ``phase``'s trailing shape: the number of
        triangles whose closure is farther than ``threshold`` from zero, and
        the number of triangles with all three phases finite (a triangle with
        a NaN is in neither). Both saturate at :data:`COUNT_MAX`.

    One triangle at a time into buffers of one row of pixels, reused: memory
    follows the pixels, not the triangles, and no ``(triangles, pixels)``
    array is allocated (5x faster on a 64 x 512 block of 172 triangles than
    gathering them all at once; the same sums in the same order, so the same
    counts).
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
    # Every phase finite (one pass; a sum with a NaN or inf is not finite):
    # every triangle is measured everywhere, the same counts without the masks.
    if complete is None:
        complete = bool(np.isfinite(np.sum(flat, dtype=np.float64)))
    complete = complete and flat.size > 0
    c = np.empty(npix, np.result_type(flat.dtype, np.float32))
    bad = np.empty(npix, bool)
    ok = np.empty(npix, bool)
    with np.errstate(invalid="ignore"):
        for k, (ij, jk, ik) in enumerate(tri):
            np.add(flat[ij], flat[jk], out=c)
            np.subtract(c, flat[ik], out=c)
            np.abs(c, out=c)
            np.greater(c, threshold, out=bad)
            if not complete:
                np.isfinite(c, out=ok)
                bad &= ok  # a NaN or inf closure is neither non-zero nor measured
                measured += ok
            nonzero += bad
            if complete:
                if totals is not None:
                    totals[k] += (np.count_nonzero(bad), npix)
            elif totals is not None:
                totals[k] += (np.count_nonzero(bad), np.count_nonzero(ok))
    if complete:
        measured += np.uint32(len(tri))
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


# --------------------------------------------------------------------------- #
# Loop-closure network QC (insar.closure_qc)
# --------------------------------------------------------------------------- #

#: Triangles whose closures are computed at once (memory: this many x one block).
_TRI_CHUNK = 16


def closure_sums(z: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``(n_tri, 3)`` sums over the pixels of one block, per triangle, of its
    closure ``z[ij] + z[jk] - z[ik]``, of its square and of the valid pixels
    (finite in all three); ``z`` is ``(n_ifg, pixels)``. Summed over the blocks
    of a scene they give :func:`closure_variance`. A few triangles at a time:
    memory follows the block."""
    out = np.zeros((len(triangles), 3))
    for a in range(0, len(triangles), _TRI_CHUNK):
        t = triangles[a : a + _TRI_CHUNK]
        c = (z[t[:, 0]].astype(np.float64) + z[t[:, 1]]) - z[t[:, 2]]
        ok = np.isfinite(c)
        cz = np.where(ok, c, 0.0)
        out[a : a + len(t), 0] = cz.sum(axis=1)
        out[a : a + len(t), 1] = np.einsum("tp,tp->t", cz, cz)
        out[a : a + len(t), 2] = ok.sum(axis=1)
    return out


def closure_variance(sums: np.ndarray) -> np.ndarray:
    """Per triangle, the variance over the scene of its closure from the summed
    :func:`closure_sums` (NaN for a triangle without a valid pixel).

    The closure's mean is removed, so an unwrapping constant of an ifg does
    not count, and what remains is what varies across the scene: a patch off
    by 2 pi, noise."""
    s1, s2, n = sums[:, 0], sums[:, 1], sums[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        return np.where(n > 0, np.maximum(s2 / n - mean * mean, 0.0), np.nan)


def loop_rms(
    triangles: np.ndarray, variance: np.ndarray, n_ifgs: int, active: np.ndarray | None = None
) -> np.ndarray:
    """Per ifg, the RMS of its triangles' closures over the scene: ``sqrt`` of the
    mean of the :func:`closure_variance` of the triangles it is in (only
    those whose three ifgs are ``active``); NaN for an ifg in none."""
    act = np.ones(n_ifgs, bool) if active is None else np.asarray(active, bool)
    use = act[triangles].all(axis=1) & np.isfinite(variance)
    acc = np.zeros(n_ifgs)
    n = np.zeros(n_ifgs)
    for col in range(3):
        np.add.at(acc, triangles[use, col], variance[use])
        np.add.at(n, triangles[use, col], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.sqrt(acc / n), np.nan)


def closure_exclusions(
    pairs: Sequence[tuple[int, int]], variance: np.ndarray, max_rms: float
) -> tuple[np.ndarray, list[int]]:
    """Which ifgs loop-closure QC leaves out: the worst first, one at a time.

    While some ifg's :func:`loop_rms` over the triangles whose three ifgs are
    still in exceeds ``max_rms``, the worst one goes: the one in the most bad
    triangles (closure RMS above ``max_rms``), then the highest loop RMS.
    Leaving out the culprit of a bad triangle retires that triangle, which
    clears the two ifgs that shared it, so they stay. The network stays
    connected: an ifg is only ever judged on a triangle whose three ifgs are
    all in, i.e. it lies on a cycle, and an edge on a cycle is never a bridge.

    Returns the loop RMS of every ifg on the full network and the ifgs left
    out, in the order found.
    """
    tri = network_triangles(pairs)
    n = len(pairs)
    first = loop_rms(tri, variance, n)
    active = np.ones(n, bool)
    out: list[int] = []
    with np.errstate(invalid="ignore"):
        bad_tri = np.sqrt(variance) > max_rms
    while True:
        rms = np.where(active, loop_rms(tri, variance, n, active), np.nan)
        over = np.flatnonzero(rms > max_rms)
        if not over.size:
            return first, out
        live = active[tri].all(axis=1) & bad_tri
        n_bad = np.zeros(n, int)
        for col in range(3):
            np.add.at(n_bad, tri[live, col], 1)
        worst = int(max(over, key=lambda k: (n_bad[k], rms[k], -k)))
        active[worst] = False
        out.append(worst)

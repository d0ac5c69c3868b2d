"""Unwrapping-error correction by phase closure (``insar.unwrap_correction``).

For dates ``i < j < k`` whose three interferograms are in the network, the
closure ``phase[ij] + phase[jk] - phase[ik]`` of correctly unwrapped phase is
zero up to noise; an unwrapping error of ``n`` cycles in one of them makes it
about ``2 pi n``. Per pixel, the integer closures ``k = round(C / 2 pi)``
(``C = T phase``, ``T`` the ``(n_tri, n_ifg)`` triangle incidence with entries
``+1, +1, -1``) are explained by integer ambiguities ``U`` per ifg, the
fewest cycles that close every triangle (MintPy's ``phase_closure`` idea)::

    minimise  sum |U_i| + W sum |e_t|   subject to   T U + e = -k,  U, e integer

solved exactly as an integer programme (``scipy.optimize.milp``, HiGHS). The
slack ``e`` only comes into play where no ``U`` closes every triangle (the
rounded closures of a dense network are then inconsistent, e.g. one noisy
closure near ``pi``): its weight ``W`` exceeds any ``|U|_1`` the bounds allow,
so the triangles are closed exactly whenever they can be, and a triangle that
cannot be is left as it was rather than explained by extra corrections.
The corrected phase is ``phase + 2 pi U``.

**Batched.** Pixels whose integer closures are all zero (noise below ``pi``:
nearly all) are not touched. The others are grouped by their vector of
integer closures (``np.unique`` over the block: a 2 pi patch in a few ifgs
gives a handful of patterns, however many pixels it covers); one programme is
solved per pattern and its ``U`` scattered back to the pattern's pixels. A
triangle with a missing phase at a pixel is left out of that pixel's
programme (part of its pattern), and an ifg in none of the pixel's measured
triangles keeps ``U = 0``. At most :data:`MAX_PATTERNS` patterns are solved
per block, the most frequent first; the pixels of rarer ones are left
uncorrected and counted (``unsolved_px``; a warning says how many). One
programme takes about 10 ms for 30 ifgs (12 dates, ``nearest:3``), 15 ms for
285 ifgs (60 dates, ``nearest:5``) and 85 ms for 545 ifgs (``nearest:10``),
so a block at the cap costs 20 s to 3 min. Memory: the block's integer
closures, ``n_tri x pixels`` int16.

**Limits.** An ifg in no closed triangle of the network (every ifg of a
sequential, nearest-1 or single-reference network; the first and last
long-span ifgs of some networks), or in none at a pixel where the others are
missing, cannot be corrected there. An error is identifiable when its fix is
the unique fewest-cycle one: a common error in two ifgs of one triangle that
cancels in its closure, or an ifg in a single triangle (the ends of a
nearest-2 network), can be explained as well by another ifg and is then fixed
on whichever ifg the solver picks. Errors in so many ifgs that another set of
fewer cycles closes the triangles are "corrected" wrongly; the closures then
still vanish. Ambiguities are bounded to ``max |k| + 1`` cycles per ifg, and
written as int8 (beyond +-127 cycles, clipped: no real unwrapper is that far).

Closures do not change with per-date delays, nor (up to a plane) with
per-ifg ramps, but they do with a constant per ifg that is not a whole number
of cycles, which real ifgs carry (PyRate's cropA: a triangle closing at -1.53
cycles over the whole scene, rounding either way from pixel to pixel) and the
reference point takes out. So the stage takes the closures of the phase
minus each ifg's value at the reference point, the closures the inversion
counts (:func:`write_corrections`' ``reference``); the inversion, the
reference values and the deramp fit then add ``2 pi U`` to the raw phase as
they read each ifg.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from sarstack.errors import SarstackError

if TYPE_CHECKING:
    import pandas as pd

    from sarstack.insar import Ifg
    from sarstack.io import Grid

#: ``insar.unwrap_correction`` values.
METHODS = ("none", "closure")
#: Integer closure of a triangle with a missing phase at a pixel.
UNMEASURED = np.iinfo(np.int16).min
#: Most distinct integer-closure patterns solved per block (the most frequent
#: first); pixels of rarer patterns are left uncorrected and counted.
MAX_PATTERNS = 2048
#: Columns of ``unwrap_correction.csv`` (one row per ifg).
COLUMNS = ("key", "reference_date", "secondary_date", "n_triangles", "corrected_px",
           "cycles_added", "cycles_removed")  # fmt: skip
#: Nodata of ``unwrap_corrected_count.tif`` (pixels without any phase).
COUNT_NODATA = 65535


def incidence(triangles: np.ndarray, n_ifg: int) -> np.ndarray:
    """``(n_tri, n_ifg)`` int8 triangle incidence: ``+1`` for ``ij`` and ``jk``, ``-1`` for ``ik``."""
    tri = np.asarray(triangles, np.int64).reshape(-1, 3)
    t = np.zeros((len(tri), n_ifg), np.int8)
    rows = np.arange(len(tri))
    t[rows, tri[:, 0]] = 1
    t[rows, tri[:, 1]] = 1
    t[rows, tri[:, 2]] = -1
    return t


def closure_integers(phase: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``(n_tri, pixels)`` int16 ``round(closure / 2 pi)`` of ``phase`` ``(n_ifg,
    pixels)``; :data:`UNMEASURED` where one of the three phases is missing."""
    tri = np.asarray(triangles, np.int64).reshape(-1, 3)
    flat = np.asarray(phase, np.float64)
    out = np.empty((len(tri), flat.shape[1]), np.int16)
    step = max(1, (1 << 21) // max(flat.shape[1], 1))
    for a in range(0, len(tri), step):
        t = tri[a : a + step]
        c = flat[t[:, 0]] + flat[t[:, 1]]
        c -= flat[t[:, 2]]
        c *= 1.0 / (2.0 * np.pi)
        ok = np.isfinite(c)
        k = np.rint(np.clip(np.where(ok, c, 0.0), -32767, 32767))
        out[a : a + len(t)] = np.where(ok, k, UNMEASURED).astype(np.int16)
    return out


def solve_pattern(k: np.ndarray, tmat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer ambiguities ``U`` ``(n_ifg,)`` of one pattern of integer closures
    ``k`` ``(n_tri,)`` (:data:`UNMEASURED` entries left out), and the closures
    left ``k + T U`` (:data:`UNMEASURED` kept): the fewest cycles that close the
    measured triangles, exactly (``scipy.optimize.milp``)."""
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, milp

    k = np.asarray(k, np.int64)
    n_ifg = tmat.shape[1]
    meas = k != UNMEASURED
    u = np.zeros(n_ifg, np.int64)
    left = k.copy()
    if not (meas & (k != 0)).any():
        return u, left
    ts = tmat[meas].astype(np.float64)
    ks = k[meas].astype(np.float64)
    active = np.flatnonzero((ts != 0).any(axis=0))
    ta = sparse.csr_array(ts[:, active])
    n, m = len(active), len(ks)
    bound = float(np.abs(ks).max() + 1)
    weight = bound * n + 1.0  # any exact closure is cheaper than one slack cycle
    eye = sparse.identity(m, format="csr")
    a = sparse.hstack([ta, -ta, eye, -eye], format="csr")
    cost = np.concatenate([np.ones(2 * n), np.full(2 * m, weight)])
    ub = np.concatenate([np.full(2 * n, bound), np.full(2 * m, np.inf)])
    res = milp(cost, constraints=LinearConstraint(a, -ks, -ks), integrality=np.ones(len(cost)),
               bounds=Bounds(np.zeros(len(cost)), ub))  # fmt: skip
    if res.x is None:  # cannot happen: U = 0, e = -k is feasible
        raise SarstackError(f"unwrap correction: the integer programme failed ({res.message})")
    x = np.rint(res.x).astype(np.int64)
    u[active] = x[:n] - x[n : 2 * n]
    left[meas] = k[meas] + tmat[meas].astype(np.int64) @ u
    return u, left


def ambiguities(
    phase: np.ndarray,
    triangles: np.ndarray,
    *,
    max_patterns: int = MAX_PATTERNS,
    tmat: np.ndarray | None = None,
    k: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per ifg and pixel, the integer ambiguity ``U`` of ``phase`` ``(n_ifg,
    pixels)`` (int8, ``phase + 2 pi U`` is the corrected phase), and the block's
    counts: ``flagged_px`` (pixels with a non-zero integer closure),
    ``closed_px`` (of them, every measured closure zero after the correction),
    ``unsolved_px`` (left uncorrected beyond ``max_patterns``), ``patterns``
    (distinct patterns), ``nonzero_after_px`` (pixels still with a non-zero
    integer closure). ``k``: the integer closures of ``phase``
    (:func:`closure_integers`) when the caller has them already."""
    n_ifg, npix = phase.shape
    tri = np.asarray(triangles, np.int64).reshape(-1, 3)
    u = np.zeros((n_ifg, npix), np.int8)
    stats = {"flagged_px": 0, "closed_px": 0, "unsolved_px": 0, "patterns": 0,
             "nonzero_after_px": 0}  # fmt: skip
    if not len(tri) or not npix:
        return u, stats
    if tmat is None:
        tmat = incidence(tri, n_ifg)
    if k is None:
        k = closure_integers(phase, tri)
    flagged = ((k != 0) & (k != UNMEASURED)).any(axis=0)
    idx = np.flatnonzero(flagged)
    stats["flagged_px"] = len(idx)
    if not len(idx):
        return u, stats
    patterns, inverse, counts = np.unique(k[:, idx].T, axis=0, return_inverse=True,
                                          return_counts=True)  # fmt: skip
    inverse = np.asarray(inverse).reshape(-1)
    stats["patterns"] = len(patterns)
    order = np.argsort(-counts, kind="stable")
    solved = order[:max_patterns]
    sol = np.zeros((len(patterns), n_ifg), np.int64)
    closed = np.zeros(len(patterns), bool)
    for p in solved:  # one programme per distinct pattern, not per pixel
        sol[p], left = solve_pattern(patterns[p], tmat)
        closed[p] = not ((left != 0) & (left != UNMEASURED)).any()
    is_solved = np.zeros(len(patterns), bool)
    is_solved[solved] = True
    stats["unsolved_px"] = int(counts[~is_solved].sum())
    stats["closed_px"] = int(counts[closed].sum())
    stats["nonzero_after_px"] = int(counts[~closed].sum())
    u[:, idx] = np.clip(sol[inverse].T, -127, 127).astype(np.int8)
    return u, stats


def correct(phase: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``phase + 2 pi u`` (float64; NaN stays NaN)."""
    return np.asarray(phase, np.float64) + (2.0 * np.pi) * u


def closure_count(k: np.ndarray) -> np.ndarray:
    """Per pixel, the measured triangles of integer closures ``k`` ``(n_tri,
    pixels)`` that are non-zero (uint16; :data:`COUNT_NODATA` where no triangle
    is measured)."""
    meas = k != UNMEASURED
    out = ((k != 0) & meas).sum(axis=0).astype(np.uint16)
    out[~meas.any(axis=0)] = COUNT_NODATA
    return out


def write_corrections(
    ifgs: Sequence[Ifg],
    pairs: Sequence[tuple[int, int]],
    out: str | Path,
    out_count: str | Path,
    *,
    block_shape: Sequence[int],
    max_patterns: int = MAX_PATTERNS,
    reference: np.ndarray | None = None,
    out_closures: tuple[str | Path, str | Path] | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Stage ``insar_unwrap_correction``: block by block, the ambiguities of the
    phase of ``ifgs`` (minus ``reference``) into ``out`` (one int8 band per ifg, its key the band
    description; ``2 pi U`` is added to the ifg) and the number of corrected
    ifgs per pixel into ``out_count`` (uint16, :data:`COUNT_NODATA` where no
    ifg has a phase). Returns the per-ifg table (:data:`COLUMNS`) and the
    scene's counts (:func:`ambiguities`, plus ``closures_before`` and
    ``closures_after``: the non-zero integer closures summed over the pixels).

    ``reference`` ``(n_ifg,)``: each ifg's phase at the reference point
    (:func:`sarstack.insar.reference_phase` of the raw phase), subtracted before
    the closures are taken, so that they are the closures of the phase the
    inversion references. Without it, an ifg whose phase carries a constant
    that is not a whole number of cycles (unwrappers and processors leave
    one) gives its triangles a closure near an odd multiple of pi over the
    whole scene, which rounds either way from pixel to pixel. The cycles are
    still added to the raw phase: a constant per ifg does not change them.
    ``out_closures`` ``(before, after)``: per pixel, the triangles with a
    non-zero integer closure before and after the correction
    (:func:`closure_count`). Every raster is written atomically: on an error
    none is left."""
    import contextlib

    import pandas as pd

    from sarstack import closure
    from sarstack.io import RasterWriter, StackReader, process_blocks, read_grid

    n = len(ifgs)
    grid = read_grid(ifgs[0].path)
    tri = closure.network_triangles(pairs)
    tmat = incidence(tri, n)
    n_tri = np.abs(tmat).sum(axis=0).astype(np.int64)
    ref = None if reference is None else np.asarray(reference, np.float64).reshape(n, 1)
    corrected = np.zeros(n, np.int64)
    added = np.zeros(n, np.int64)
    removed = np.zeros(n, np.int64)
    totals = {"flagged_px": 0, "closed_px": 0, "unsolved_px": 0, "patterns": 0,
              "nonzero_after_px": 0, "closures_before": 0, "closures_after": 0}  # fmt: skip
    tags = {"quantity": "unwrapping ambiguity", "method": "closure",
            "note": "the ifg's phase + 2 pi x this value is the corrected phase"}  # fmt: skip
    with contextlib.ExitStack() as st:
        stack = st.enter_context(StackReader([i.path for i in ifgs]))
        w_u = st.enter_context(RasterWriter(
            out, grid, count=n, dtype="int8", nodata=None, units="cycles", tags=tags,
            descriptions=[i.key for i in ifgs], overviews=False))  # fmt: skip
        w_n = st.enter_context(RasterWriter(
            out_count, grid, dtype="uint16", nodata=COUNT_NODATA, units="count",
            tags={"quantity": "ifgs corrected by insar.unwrap_correction"}))  # fmt: skip
        writers = [w_u, w_n]
        for path, when in zip(out_closures or (), ("before", "after"), strict=False):
            writers.append(st.enter_context(RasterWriter(
                path, grid, dtype="uint16", nodata=COUNT_NODATA, units="count",
                tags={"quantity": f"triangles with a non-zero closure {when} "
                                  "insar.unwrap_correction"})))  # fmt: skip

        def block(win: Window, data: np.ndarray) -> tuple[np.ndarray, ...]:
            h, w = int(win.height), int(win.width)
            flat = data.astype(np.float64).reshape(n, -1)
            if ref is not None:
                flat -= ref
            k = closure_integers(flat, tri)
            u, stats = ambiguities(flat, tri, max_patterns=max_patterns, tmat=tmat, k=k)
            for key in stats:
                totals[key] += stats[key]
            nz = u != 0
            corrected[:] += nz.sum(axis=1)
            added[:] += np.where(u > 0, u, 0).sum(axis=1, dtype=np.int64)
            removed[:] += np.where(u < 0, -u, 0).sum(axis=1, dtype=np.int64)
            count = nz.sum(axis=0).astype(np.uint16)
            count[~np.isfinite(flat).any(axis=0)] = COUNT_NODATA
            before = closure_count(k)
            k_after = np.where(k == UNMEASURED, k, k + tmat.astype(np.int64) @ u.astype(np.int64))
            after = closure_count(k_after)
            for key, c in (("closures_before", before), ("closures_after", after)):
                totals[key] += int(c[c != COUNT_NODATA].sum(dtype=np.int64))
            res = [u.reshape(n, h, w), count.reshape(h, w)]
            if out_closures:
                res += [before.reshape(h, w), after.reshape(h, w)]
            return tuple(res)

        process_blocks(grid.shape, block_shape, block, read=stack.read, writers=writers,
                       prefetch=True, band_rows=stack.tile_rows)  # fmt: skip
    table = pd.DataFrame({
        "key": [i.key for i in ifgs], "reference_date": [i.reference.isoformat() for i in ifgs],
        "secondary_date": [i.secondary.isoformat() for i in ifgs], "n_triangles": n_tri,
        "corrected_px": corrected, "cycles_added": added, "cycles_removed": removed,
    }, columns=list(COLUMNS))  # fmt: skip
    return table, totals


class IfgAmbiguities:
    """``2 pi U`` of each ifg (radians, float64), read window by window from
    the raster of :func:`write_corrections`: added to the raw phase as each ifg
    is read. An error names the raster when it is off the ifgs' grid or its
    bands are not the ifgs' (rerun insar_unwrap_correction). Used as a context
    manager (held open) or not (each read opens it)."""

    def __init__(self, path: str | Path, ifgs: Sequence[Ifg], grid: Grid) -> None:
        from sarstack.io import Grid as RasterGrid
        from sarstack.io import open_raster

        self.path = Path(path)
        with open_raster(self.path) as ds:
            if not RasterGrid(ds.crs, ds.transform, ds.width, ds.height).same_as(grid):
                raise SarstackError(f"{self.path}: not on the interferograms' grid "
                                    "(rerun insar_unwrap_correction)")  # fmt: skip
            keys = [i.key for i in ifgs]
            if list(ds.descriptions) != keys:
                raise SarstackError(f"{self.path}: its bands are not the {len(keys)} ifgs of the "
                                    "ifg table (rerun insar_unwrap_correction)")  # fmt: skip
        self._ds: Any = None

    def __enter__(self) -> IfgAmbiguities:
        from sarstack.io import open_raster

        self._ds = open_raster(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ds is not None:
            self._ds.close()
        self._ds = None

    def read(self, win: Window) -> np.ndarray:
        """``(n_ifg, rows, cols)``: ``2 pi U`` of each ifg over ``win``."""
        if self._ds is None:
            with self:
                return self.read(win)
        try:
            u = self._ds.read(window=win)
        except Exception as e:  # noqa: BLE001 - rasterio raises several types on bad data
            raise SarstackError(f"{self.path}: cannot read ({e})") from None
        return (2.0 * np.pi) * u.astype(np.float64)

"""insar_invert: invert one strip of rows block by block (reference, solve,
residuals, closure) into the strip's rasters and scene sums."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine
from rasterio.windows import Window

from sarstack import chunks, refpoint
from sarstack import network as snet
from sarstack.cpus import available_cpus
from sarstack.errors import SarstackError
from sarstack.insar.diagnostics import _closure_block, _closure_tags, _log_triangles, _n_flagged
from sarstack.insar.outputs import (
    ResidualStats,
    SolvedBlock,
    StripOutputs,
    residual_row_stats,
    residual_square_sums,
    residual_stats,
)
from sarstack.insar.reader import BlockReader, RawBlock
from sarstack.insar.reference import reference_phase
from sarstack.insar.select import Ifg, read_ifg_table
from sarstack.io import (
    Grid,
    count_blocks,
    process_blocks,
    read_grid,
)

if TYPE_CHECKING:
    from sarstack.insar.injection import InjectedPhase
    from sarstack.troposphere import IfgDelays
    from sarstack.unwrap import IfgAmbiguities

log = logging.getLogger(__package__)


def _irls_l1(
    a: np.ndarray,
    flat: np.ndarray,
    weights: np.ndarray,
    *,
    l1_tolerance: float,
    l1_max_iterations: int,
) -> tuple[snet.NetworkSolution, int]:
    """L1 of a censored / weighted system: :func:`sarstack.network.irls_l1` over
    ``timeseries.invert_weighted`` (residual floor at most 1e-4 of the median
    phase), each pixel until its objective is proven within ``1 +
    l1_tolerance`` of its optimum (the open pixels alone solved again)."""
    from sarstack import timeseries as ts  # JAX: imported by the stages that solve

    n_pix = flat.shape[1]
    chunk = ts.weighted_chunk_pixels(n_pix)

    def solve(w: np.ndarray, cols: np.ndarray) -> snet.NetworkSolution:
        # The open pixels, padded with closed ones (base weights, results
        # dropped) to whole kernel calls of the full solve's size: fewer calls
        # as pixels close, and no kernel shape to compile anew.
        if cols.size == n_pix:
            return ts.invert_weighted(a, flat, w)
        k = min(n_pix, -(-cols.size // chunk) * chunk)
        if k == n_pix:
            full = np.array(weights, dtype=np.float64)
            full[:, cols] = w
            return snet.NetworkSolution(
                *(np.asarray(f)[..., cols] for f in ts.invert_weighted(a, flat, full)))
        pad = np.setdiff1d(np.arange(n_pix), cols)[: k - cols.size]
        out = ts.invert_weighted(a, flat[:, np.concatenate([cols, pad])],
                                 np.concatenate([w, weights[:, pad]], axis=1))  # fmt: skip
        return snet.NetworkSolution(*(np.asarray(f)[..., : cols.size] for f in out))

    return snet.irls_l1(solve, weights, flat, floor=1e-4, max_iter=l1_max_iterations,
                        tol=l1_tolerance)  # fmt: skip


#: Fewest pixels sharing one missing-interferogram pattern that the L1
#: inversion of a block's partial pixels solves as one network without those
#: ifgs (:func:`_pattern_l1`): the interior point of complete pixels, about
#: 35 us a pixel here, instead of the reweighted least squares (about 800 us
#: a pixel); fewer go to the reweighting, which costs no compilation of
#: another network shape.
L1_PATTERN_MIN_PX = 256


def _pattern_l1(
    a: np.ndarray, sub: np.ndarray, w: np.ndarray, **kw: Any
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """L1 of the partial pixels ``sub`` (weights 0/1 ``w``) that share a
    missing pattern with at least :data:`L1_PATTERN_MIN_PX` others and whose
    remaining ifgs still tie every date to the first: each such pattern is the
    network without its missing ifgs, solved by ``timeseries.invert_l1``
    (``kw``: its options) and certified like complete pixels; the minimum of
    the same objective (the used ifgs' absolute residuals) as the reweighted
    solver's, to the same tolerance. Returns the solution of the pixels done
    (``x``, ``residual`` NaN on missing rows, ``n_used``; columns of ``sub``),
    which of them were done, and the most iterations."""
    from sarstack import timeseries as ts  # JAX

    n_ifg, n = a.shape
    groups, inverse = snet.distinct_columns(w)
    counts = np.bincount(inverse, minlength=len(groups))
    done = np.zeros(sub.shape[1], bool)
    x = np.full((n, sub.shape[1]), np.nan)
    res = np.full(sub.shape, np.nan)
    n_used = np.zeros(sub.shape[1], np.int32)
    n_it = 0
    for g in np.flatnonzero(counts >= L1_PATTERN_MIN_PX):
        rows = groups[g] > 0
        if np.linalg.matrix_rank(a[rows]) < n:
            continue  # dates cut off from the first: the reweighting NaNs them
        cols = np.flatnonzero(inverse == g)
        out = ts.invert(a[rows], sub[np.ix_(rows, cols)], "L1", **kw)
        x[:, cols] = out.x
        res[np.ix_(rows, cols)] = out.residual
        n_used[cols] = int(rows.sum())
        done[cols] = True
        n_it = max(n_it, out.n_iter)
    return {"x": x, "residual": res, "n_used": n_used}, done, n_it


#: Most distinct missing-interferogram patterns among a block's partial pixels
#: that L2 solves pattern by pattern in NumPy (one least-squares solve each,
#: all the pattern's pixels as right-hand sides; a frame edge or a nodata
#: corner gives a handful); more go to the batched JAX solver, which costs an
#: import of JAX (~1.3 s, ~150 MB) and a compile per network.
MAX_NUMPY_PATTERNS = 64


def _censored_l2(
    a: np.ndarray, pairs: Sequence[tuple[int, int]], sub: np.ndarray, w: np.ndarray
) -> Any:
    """L2 of pixels missing some ifgs (weights 0/1 ``w``): the same model and
    outputs by either solver, equal to float64 rounding."""
    if len(snet.distinct_columns(w)[0]) <= MAX_NUMPY_PATTERNS:
        return snet.solve_network_columns(pairs, a.shape[1] + 1, sub, w)
    from sarstack import timeseries as ts  # JAX

    return ts.invert_weighted(a, sub, w)


def _solve_block(
    a: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    flat: np.ndarray,
    weights: np.ndarray | None,
    *,
    method: str,
    single: bool,
    l1_tolerance: float,
    l1_max_iterations: int,
    threads: int | None = None,
    complete: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One block: (x, residual, n_used, iterations) by the configured method.

    Without weights, pixels valid in every ifg go through the plain L2 / L1
    kernels (single-reference networks are only re-ordered), and pixels
    missing some ifgs through the censored solver (missing ifgs dropped for
    that pixel only; dates cut off from the first date are NaN there). With
    weights (correlation and/or conncomp censoring) every pixel goes through
    the censored, weighted solver. L1 on the censored system is iteratively
    reweighted least squares (:func:`_irls_l1`). ``complete``: every phase is
    known to be finite (the masks are skipped; the same results).
    """
    from sarstack import timeseries as ts  # JAX: imported by the stages that solve

    n_ifg = flat.shape[0]
    finite = None if complete else np.isfinite(flat)
    full = np.ones(flat.shape[1], bool) if finite is None else finite.all(axis=0)
    if weights is None:
        if single:
            x = snet.single_reference_series(pairs, flat)
            res = np.where(full, 0.0, np.nan) * np.ones_like(flat)
            n_it = 0
        else:
            kw: dict[str, Any] = {"all_finite": True} if complete and method == "L2" else {}
            if method == "L1":
                kw = {"tol": l1_tolerance, "max_iter": l1_max_iterations, "threads": threads}
            x, res, n_it = ts.invert(a, flat, method, **kw)
        n_used = np.where(full, n_ifg, 0).astype(np.int32)
        partial = finite.any(axis=0) & ~full if finite is not None else None
        if partial is not None and partial.any():
            x, res = np.array(x), np.array(res)  # writable copies of the kernels' outputs
            sub = flat[:, partial]
            w = np.isfinite(sub).astype(flat.dtype)
            if method == "L1":
                # Patterns shared by many pixels as networks of their own, the
                # rest by reweighted least squares.
                sol, done, it = _pattern_l1(a, sub, w, tol=l1_tolerance,
                                            max_iter=l1_max_iterations, threads=threads)  # fmt: skip
                if not done.all():
                    rest, it2 = _irls_l1(a, sub[:, ~done], w[:, ~done], l1_tolerance=l1_tolerance,
                                         l1_max_iterations=l1_max_iterations)  # fmt: skip
                    for key in ("x", "residual", "n_used"):
                        sol[key][..., ~done] = rest[key]
                    it = max(it, it2)
                n_it = max(n_it, it)
                x[:, partial], res[:, partial], n_used[partial] = sol["x"], sol["residual"], sol["n_used"]
            else:
                out = _censored_l2(a, pairs, sub, w)
                x[:, partial] = out["x"]
                res[:, partial] = out["residual"]
                n_used[partial] = out["n_used"]
        return x, res, n_used, n_it
    if method == "L1":
        out, n_it = _irls_l1(a, flat, weights, l1_tolerance=l1_tolerance,
                             l1_max_iterations=l1_max_iterations)  # fmt: skip
    else:
        out, n_it = ts.invert_weighted(a, flat, weights), 0
    return out["x"], out["residual"], np.asarray(out["n_used"], np.int32), n_it


#: Plain L2 (no weights, no censoring) solves in float32 where every ifg file
#: is float32, as dolphin does: the phase referenced in float32 (corrections
#: are applied in float64 first), the product with the pseudo-inverse, the
#: residuals and the closures in float32; the residuals' sums in float64. Half
#: the bytes and BLAS work of float64: a 2048 x 1024 x 174-ifg strip alone
#: 9.6-10.9 -> 8.2-9.3 s. **A result change within a stated tolerance** (the
#: float64 solve is the previous kernel; ``tests/test_insar_outputs.py``):
#: the time series within :data:`SINGLE_L2_TOL` of its largest |value|, the
#: coherence within 1e-6, the same ifg counts and closure counts.
L2_SINGLE_PRECISION = True
#: The float32 L2 time series' largest difference from the float64 solve, as a
#: fraction of the series' largest |value| (measured: 1.0e-6 on a strip of the
#: 2048² bench stack, 1.2e-5 rad on a series up to 12.9 rad).
SINGLE_L2_TOL = 1e-5

#: Memory (bytes) that the blocks a strip solves side by side may take
#: together: a plain L2 block holds about five float64 arrays of its ifgs x
#: pixels (phase, residuals, their squares, the outputs' temporaries), 0.23 GB
#: for 174 ifgs x 64 x 512 (estimated; a second block at a time added about
#: 0.24 GB to a 1024² strip's peak), so 4 blocks at a time at most there (the
#: insar_invert job asks for 2 GB).
WORKERS_MEMORY = 1 << 30


def _block_workers(
    method: str, weighted: bool, threads: int | None, n_ifgs: int, block_shape: Sequence[int]
) -> int:  # fmt: skip
    """Blocks a strip solves side by side. Plain L2 solves with NumPy, which
    lets go of the GIL: one block per thread (written in order, one at a
    time; the same rasters and tables), as many as :data:`WORKERS_MEMORY`
    holds. L1 and the weighted solvers spread each block's solve over the
    threads themselves: one block at a time."""
    if method == "L1" or weighted:
        return 1
    per_block = 5 * 8 * n_ifgs * int(block_shape[0]) * int(block_shape[1])
    return max(1, min(threads or available_cpus(), WORKERS_MEMORY // max(per_block, 1)))


def strip_work(
    ifg_table: str | Path, block_rows: int, method: str, weighting: str
) -> tuple[int, int]:
    """The inversion scatter's items: ``(block rows of the grid, pixels x used
    ifgs x cost per block row)`` for the ifg table of ``insar_select``,
    ``insar.block_shape``'s rows and the solver (:func:`sarstack.chunks.invert_cost`);
    the one place the strip count starts from (``strip_rows`` cuts the same
    block rows)."""
    used = read_ifg_table(ifg_table)[0]  # excluded ones left out
    grid = read_grid(used[0].path)
    per_pixel = weighting == "correlation" or all(i.conncomp for i in used)
    cost = chunks.invert_cost(method, per_pixel)
    return -(-grid.height // int(block_rows)), int(block_rows) * grid.width * len(used) * cost


def strip_rows(height: int, block_rows: int, label: str) -> tuple[int, int]:
    """Rows ``[r0, r1)`` of strip ``label`` (``"I-of-N"``).

    Strips are made of whole block rows, so every block (and with it every
    per-block solver decision) is the same whatever the number of strips:
    the outputs are identical for every N.
    """
    n_blocks = -(-height // block_rows)
    blocks = chunks.chunk_items(list(range(n_blocks)), label)
    b0, b1 = blocks[0], blocks[-1] + 1
    return b0 * block_rows, min(b1 * block_rows, height)


def invert_strip(
    ifgs: Sequence[Ifg],
    dates: Sequence[dt.date],
    pairs: Sequence[tuple[int, int]],
    ref_rc: tuple[int, int],
    out_dir: str | Path,
    *,
    rows: tuple[int, int] | None = None,
    method: str,
    wavelength: float | None,
    mask: str | Path | None,
    block_shape: Sequence[int],
    l1_tolerance: float,
    l1_max_iterations: int,
    weighting: str,
    correlation_looks: float,
    correlation_threshold: float,
    write_residuals: bool,
    reference_window: int,
    threads: int | None = None,
    ramps: tuple[str, np.ndarray] | None = None,
    troposphere: IfgDelays | None = None,
    unwrap: IfgAmbiguities | None = None,
    injection: InjectedPhase | None = None,
) -> None:
    """Invert rows ``[r0, r1)`` of the stack block by block into one strip folder.

    Interferograms are referenced to ``ref_rc`` first (each ifg minus its
    value there), then inverted per pixel. With conncomp rasters an ifg
    whose label is 0 at a pixel is dropped for that pixel only (censored
    least squares; dates it cuts off from the first date are nodata there).
    ``weighting="correlation"`` weights each ifg by its inverse Cramér-Rao
    phase variance. The mask (0 = bad) makes a pixel nodata in every output.

    Writes the :data:`~sarstack.insar.outputs.INVERSION_OUTPUTS` into ``out_dir``
    on the strip's own grid:
    displacement (one band per date after the first, positive towards the
    radar), residuals (one band per ifg, radians, NaN where censored; only
    with ``write_residuals``), residual sum, temporal coherence and the
    number of ifgs used. :func:`gather_strips` assembles the final COGs.
    ``threads``: host threads of the L1 solver (None: the CPUs available).
    ``ramps``: ``(model, coefficients)`` (:func:`sarstack.deramp.read_ramps`),
    each ifg's ramp removed as it is read, before the referencing.
    ``troposphere``: :class:`sarstack.troposphere.IfgDelays`, each ifg's delay
    difference ``d_sec - d_ref`` removed as it is read, before the referencing.
    ``unwrap``: :class:`sarstack.unwrap.IfgAmbiguities`, each ifg's ``2 pi U``
    (unwrapping-error correction) added as it is read, first.
    ``injection``: :class:`sarstack.insar.injection.InjectedPhase` (insar.injection),
    each ifg's injected phase added to its raw phase as it is read, the
    reference values included.
    """

    out_dir = Path(out_dir)
    grid = read_grid(ifgs[0].path)
    r0, r1 = rows if rows is not None else (0, grid.height)
    sgrid = Grid(grid.crs, grid.transform @ Affine.translation(0, r0), grid.width, r1 - r0)
    r, c = ref_rc
    if weighting == "correlation" and not all(i.correlation for i in ifgs):
        raise SarstackError("insar.weighting: 'correlation' needs insar.correlation rasters")
    censor = all(i.conncomp for i in ifgs)
    weighted = weighting == "correlation" or censor
    a = snet.incidence_matrix(pairs, len(dates))
    single = snet.is_single_reference(pairs, len(dates))
    how = describe_method(method, weighting, censor)
    log.info(
        "%d ifgs over %d dates, %s network, reference pixel [%d, %d], %s; rows %d-%d",
        len(ifgs), len(dates), "single-reference" if single else "redundant", r, c,
        "re-ordered (no inversion needed)" if single and not weighted else how, r0, r1 - 1,
    )  # fmt: skip
    # The closure diagnostic (:func:`closure_count`) from the same referenced
    # blocks: no second read of the stack.
    from sarstack import closure as sclosure

    triangles = sclosure.network_triangles(pairs)
    _log_triangles(len(triangles), len(ifgs))
    closure_tags = _closure_tags(dates[0], dates[-1], len(triangles), ref_rc, reference_window)
    with contextlib.ExitStack() as st:
        reader = st.enter_context(BlockReader(
            ifgs, None, mask, weighting=weighting, censor=censor, looks=correlation_looks,
            threshold=correlation_threshold, ramps=ramps, shape=grid.shape,
            troposphere=troposphere, unwrap=unwrap, injection=injection, rows=(r0, r1),
            threads=_block_workers(method, weighted, threads, len(ifgs), block_shape),
            single=L2_SINGLE_PRECISION and method == "L2" and not weighted))  # fmt: skip
        # The reference values from the files already open (no second open of each).
        reader.ref_vals = reference_phase(ifgs, ref_rc, reference_window, ramps,
                                          troposphere, unwrap, reader=reader.phase)  # fmt: skip
        outputs = st.enter_context(StripOutputs(
            out_dir, sgrid, len(dates), len(ifgs), {"write_residuals": write_residuals},
            {"closure_nonzero_count": closure_tags}))  # fmt: skip
        solve = _StripBlocks(
            a, pairs, triangles, outputs, len(dates), wavelength,
            count_blocks(sgrid.shape, block_shape), reader.prepare,
            dict(method=method, single=single, l1_tolerance=l1_tolerance,
                 l1_max_iterations=l1_max_iterations, threads=threads),
        )  # fmt: skip
        # The strip's blocks, read at their rows in the whole stack, band by
        # band of the ifgs' tiles: each tile decompressed once (in row-major
        # order a 2048-wide stack's 174 ifgs needed 365 MB of cached tiles
        # for that, more than GDAL_CACHEMAX; their reads took 2.1-2.4 s a
        # strip, 1.3 s band by band).
        process_blocks(sgrid.shape, block_shape, solve.compute, commit=solve.commit,
                       prefetch=True, workers=reader.threads,
                       read=lambda w: reader.read(Window(w.col_off, w.row_off + r0, w.width, w.height)),
                       band_rows=reader.phase.tile_rows, row0=r0)  # fmt: skip
    log.info("%d pixels with at least one non-zero closure", solve.n_flagged)
    write_strip_stats(out_dir, ifgs, solve.res_ss, solve.res_n, triangles, solve.tri_totals)


class _StripBlocks:
    """:func:`invert_strip`'s work on one block (the block engine's ``compute`` and ``commit``):
    solve, closure counts, the strip's scene sums, the outputs, progress.

    The scene sums feed the per-date quality table: each ifg's squared
    residuals and finite pixels, each triangle's non-zero and measurable
    closures. Residual sums are kept per block (summed in block order by the
    gather, so the tables are identical for every strip count).
    """

    def __init__(
        self, a: np.ndarray, pairs: Sequence[tuple[int, int]], triangles: np.ndarray,
        outputs: StripOutputs, n_dates: int, wavelength: float | None, n_blocks: int,
        prepare: Callable[[RawBlock], tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
        solve_kw: dict[str, Any],
    ) -> None:  # fmt: skip
        self.a, self.pairs, self.triangles, self.outputs = a, pairs, triangles, outputs
        self.prepare = prepare  # the block as read -> phase, weights, mask
        self.n_dates, self.wavelength, self.n_blocks = n_dates, wavelength, n_blocks
        self.solve_kw = solve_kw
        self.disp_scale = float(abs(refpoint.phase_to_displacement(np.ones(1), wavelength)[0][0]))
        # per block, keyed by the block's (row, col): listed in row-major
        # block order whatever order the blocks come in
        self._res: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.tri_totals = np.zeros((len(triangles), 2), np.int64)
        self.n_flagged = self.max_it = self.done = 0

    @property
    def res_ss(self) -> list[np.ndarray]:
        """Each block's per-ifg sum of squared residuals, in row-major block order."""
        return [self._res[k][0] for k in sorted(self._res)]

    @property
    def res_n(self) -> list[np.ndarray]:
        """Each block's per-ifg count of finite residuals, in row-major block order."""
        return [self._res[k][1] for k in sorted(self._res)]

    def compute(self, swin: Window, block: RawBlock) -> _BlockResult:
        """One block's solve, closure, sums and output values: touches nothing
        shared (blocks may be computed side by side, see :meth:`commit`)."""
        flat, weights, m = self.prepare(block)
        # One pass says whether every phase is finite (a sum is NaN
        # otherwise): the solve and the closure then skip their masks.
        complete = bool(np.isfinite(np.sum(flat, dtype=np.float64)))
        res: np.ndarray | None
        stats: ResidualStats | None
        if complete and weights is None and self._rows_path:
            x, stats = self._solve_by_rows(flat)
            n_ifg, px = flat.shape
            res, n_used, n_it = None, np.full(px, n_ifg, np.int32), 0
            sums, ss = _stats_sums(stats, n_ifg, px)
        else:
            x, res, n_used, n_it = _solve_block(self.a, self.pairs, flat, weights,
                                                complete=complete, **self.solve_kw)  # fmt: skip
        disp, _ = refpoint.phase_to_displacement(x, self.wavelength)
        tri = np.zeros_like(self.tri_totals)
        closure = _closure_block(flat, self.triangles, m, tri, complete=complete)
        if res is not None:
            # Complete phase without weights solved by L2 leaves finite residuals.
            plain = weights is None and self.solve_kw["method"] == "L2"
            sums, ss, stats, complete = _residual_sums(res, complete and plain)
        values = self.outputs.values(SolvedBlock(
            (int(swin.height), int(swin.width)), disp, res, n_used, m, closure, self.n_dates,
            self.disp_scale, complete, ss, stats))  # fmt: skip
        return _BlockResult(values, sums, tri, _n_flagged(closure), n_it)

    @functools.cached_property
    def _rows_path(self) -> bool:
        """Whether a complete block without weights is solved by
        :meth:`_solve_by_rows`: plain L2 of a network that is not
        single-reference, no output that keeps the residuals."""
        kw = self.solve_kw
        return (kw["method"] == "L2" and not kw["single"]
                and not any(o.keeps_residuals for o in self.outputs.outputs))  # fmt: skip

    def _solve_by_rows(self, flat: np.ndarray) -> tuple[np.ndarray, ResidualStats]:
        """Plain L2 of a complete block (:attr:`_rows_path`) with its residuals
        made and summed one row at a time (:func:`sarstack.timeseries.invert_l2_rows`,
        :func:`sarstack.insar.outputs.residual_row_stats`), never a block-sized
        array: ``x`` and the residuals' stats, the same values, sums and
        rasters bit for bit as the block-wide path (``tests/test_insar_outputs.py``)."""
        from sarstack import timeseries as ts

        n_ifg, px = flat.shape
        x, rows = ts.invert_l2_rows(self.a, flat)
        return x, residual_row_stats(rows, n_ifg, px, x.dtype)

    def commit(self, swin: Window, r: _BlockResult) -> None:
        """One computed block into the strip: its writes, the strip's sums
        (per block, keyed by window, so any block order gives the same
        tables), progress. One block at a time."""
        self.outputs.write_values(swin, r.values)
        self._res[(int(swin.row_off), int(swin.col_off))] = r.res_sums
        self.tri_totals += r.tri_totals
        self.n_flagged += r.n_flagged
        self.max_it = max(self.max_it, r.iterations)
        self.done += 1
        log.info(
            "block %d/%d done%s", self.done, self.n_blocks,
            f" (iterations <= {self.max_it})" if self.solve_kw["method"] == "L1" else "",
        )  # fmt: skip


def _residual_sums(res: np.ndarray, complete: bool) -> tuple[
    tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], ResidualStats | None, bool
]:  # fmt: skip
    """A block's residual sums: per ifg (squares, count), per pixel (squares,
    count), :func:`residual_stats` (complete residuals) and whether every
    residual is finite (``complete``: known so; otherwise one pass says it,
    a sum being NaN else). The squares are float64 whatever the residuals'
    type; the masks only where a residual is missing."""
    complete = complete or bool(np.isfinite(np.sum(res, dtype=np.float64)))
    if complete:
        st = residual_stats(res)
        n, npx = res.shape
        return (*_stats_sums(st, n, npx), st, True)
    sq = np.square(res, dtype=np.float64)  # also the outputs' ifg_residual_std
    finite = np.isfinite(res)
    sums = (np.sum(sq, axis=1, where=finite), np.count_nonzero(finite, axis=1))
    return sums, residual_square_sums(res, False, sq, finite), None, False


def _stats_sums(st: ResidualStats, n: int, npx: int) -> tuple[
    tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]:  # fmt: skip
    """Per ifg (squares, count) and per pixel (squares, count) of ``n`` x
    ``npx`` complete residuals from their :class:`ResidualStats`."""
    return (st.ifg_ss, np.full(n, npx, np.intp)), (st.pixel_ss, np.full(npx, n, np.intp))


@dataclass(frozen=True)
class _BlockResult:
    """What :meth:`_StripBlocks.compute` hands to :meth:`_StripBlocks.commit`."""

    values: list[np.ndarray]
    res_sums: tuple[np.ndarray, np.ndarray]
    tri_totals: np.ndarray
    n_flagged: int
    iterations: int


#: The strips' scene sums (CSV), summed over the strips by the gather.
STRIP_STATS = {"ifgs": "ifg_stats.csv", "triangles": "triangle_stats.csv"}


def write_strip_stats(
    out_dir: Path, ifgs: Sequence[Ifg], res_ss: Sequence[np.ndarray],
    res_n: Sequence[np.ndarray], triangles: np.ndarray, tri_totals: np.ndarray,
) -> None:
    """A strip's per-block, per-ifg residual sums and per-triangle closure
    counts (written without pandas: a strip job need not import it)."""
    from sarstack.atomic import write_columns

    n_ifg = len(ifgs)
    write_columns(out_dir / STRIP_STATS["ifgs"], {
        "block": np.repeat(np.arange(len(res_ss)), n_ifg), "ifg": np.tile(np.arange(n_ifg), len(res_ss)),
        "res_ss_rad2": np.concatenate(res_ss) if res_ss else np.zeros(0),
        "n_px": np.concatenate(res_n) if res_n else np.zeros(0, np.int64)})  # fmt: skip
    tri = np.asarray(triangles, np.int64).reshape(-1, 3)
    write_columns(out_dir / STRIP_STATS["triangles"], {
        "ifg_a": tri[:, 0], "ifg_b": tri[:, 1], "ifg_c": tri[:, 2],
        "nonzero_px": tri_totals[:, 0], "measured_px": tri_totals[:, 1]})  # fmt: skip


def describe_method(method: str, weighting: str, censor: bool) -> str:
    """Human-readable inversion method, e.g. ``"L1, conncomp-censored"``."""
    return (
        f"{method}"
        + (", correlation-weighted" if weighting == "correlation" else "")
        + (", conncomp-censored" if censor else "")
    )

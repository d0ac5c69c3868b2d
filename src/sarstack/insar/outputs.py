"""The inversion's output rasters, declared once (:data:`INVERSION_OUTPUTS`).

Each entry names a raster and says what it holds: its bands (one per date
after the first, one per interferogram, or one), type, nodata, units and
quantity, whether the coherence mask applies, and how a solved block makes
it. ``insar_invert`` writes every entry block by block into its strip folder
(:class:`StripOutputs`), ``insar_gather`` assembles the strips into the final
COGs from the same entries (:func:`sarstack.insar.gather_strips`), and the
``insar_gather`` rule's outputs are derived from them (``common.smk``,
``insar_gather_outputs``). A new inversion raster is one entry here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from sarstack.insar.common import COUNT_NODATA
from sarstack.io import Grid, RasterWriter


@dataclass(frozen=True)
class SolvedBlock:
    """One solved block as the outputs need it: ``disp`` ``(dates - 1, px)``
    in the time series' units, ``res`` ``(ifgs, px)`` in radians (NaN where
    censored; None where no output keeps them, see
    :attr:`InversionOutput.keeps_residuals`), ``n_used`` ``(px,)``, the mask
    (True = kept) or None, the closure count ``(px,)``, the number of dates
    and the radians-to-units factor of the time series."""

    shape: tuple[int, int]
    disp: np.ndarray
    res: np.ndarray | None
    n_used: np.ndarray
    mask: np.ndarray | None
    closure: np.ndarray
    n_dates: int
    disp_scale: float
    #: Every residual finite (no nodata, censored or masked pixel in the
    #: block): the sums skip their masks, the same values.
    complete: bool = False
    #: Per pixel, the sum of the squared finite residuals (float64) and their
    #: count, when the caller squared them already (the strip's per-ifg sums):
    #: not computed twice, and the squares need not outlive the caller's sums.
    res_ss: tuple[np.ndarray, np.ndarray] | None = None
    #: :func:`residual_stats` of ``res`` when the caller has them (complete
    #: float64 residuals): the residual sum and coherence taken from them.
    stats: ResidualStats | None = None

    @property
    def residuals(self) -> np.ndarray:
        """``res``; an error where the block was solved without keeping them."""
        if self.res is None:
            raise RuntimeError("the block's residuals were not kept (keeps_residuals)")
        return self.res


@dataclass(frozen=True)
class ResidualStats:
    """What the outputs and the strip's tables take from a block's residuals
    ``(ifgs, px)``, every one finite: per ifg the sum of squares; per pixel the
    sum of squares and of absolute values (float64) and the temporal
    coherence (float32)."""

    ifg_ss: np.ndarray
    pixel_ss: np.ndarray
    abs_sum: np.ndarray
    coherence: np.ndarray


def residual_stats(res: np.ndarray) -> ResidualStats:
    """:class:`ResidualStats` of complete residuals ``(ifgs, px)`` (float64, or
    float32 from a single-precision solve) in one pass over their rows, each
    row's work done while it is in cache. The sums are float64 whatever the
    residuals' type (float32 ones are converted row by row, exactly).

    The same values bit for bit as the block-wide reductions they replace
    (``tests/test_insar_outputs.py``): ``np.sum(res**2, axis=1)`` (each row's
    own pairwise sum), ``np.sum(res**2, axis=0)`` and ``np.sum(|res|, axis=0)``
    (NumPy adds the rows in order into one accumulator, as here) and
    :func:`sarstack.timeseries.temporal_coherence` in float32 (the float32
    cosines and sines added row by row, the same order). A 174-ifg x 32768-px
    block: about 20 ms against 50 ms for the separate passes (each a trip
    through the 45 MB block in memory, and a 45 MB array of squares).
    """
    n, px = res.shape
    return residual_row_stats(res, n, px, res.dtype)


def residual_row_stats(
    rows: Iterable[np.ndarray], n: int, px: int, dtype: np.dtype | type
) -> ResidualStats:  # fmt: skip
    """:func:`residual_stats` of the ``n`` residual rows (each ``(px,)`` of
    ``dtype``) that ``rows`` hands out one after the other, e.g. made one at
    a time (:func:`sarstack.timeseries.invert_l2_rows`): each row is used
    before the next is asked for."""
    ifg_ss = np.empty(n)
    pixel_ss, abs_sum = np.zeros(px), np.zeros(px)
    re, im = np.zeros(px, np.float32), np.zeros(px, np.float32)
    sq, tmp = np.empty(px), np.empty(px)
    t32 = np.empty(px, np.float32)
    buf = None if np.dtype(dtype) == np.float32 else np.empty(px, np.float32)
    k = -1
    for k, row in enumerate(rows):
        np.square(row, out=sq, dtype=np.float64)
        ifg_ss[k] = sq.sum()
        r32: np.ndarray = row
        if buf is not None:  # float64 residuals: their float32 values for the coherence
            buf[...] = row
            r32 = buf
        if k == 0:  # the first row is the accumulators' start (as NumPy's reductions)
            pixel_ss[...] = sq
            np.abs(row, out=abs_sum, dtype=np.float64)
            np.cos(r32, out=re)
            np.sin(r32, out=im)
            continue
        pixel_ss += sq
        abs_sum += np.abs(row, out=tmp, dtype=np.float64)
        re += np.cos(r32, out=t32)
        im += np.sin(r32, out=t32)
    if k + 1 != n:
        raise ValueError(f"residual_row_stats: {k + 1} rows, expected {n}")
    coherence = np.hypot(re, im) / np.float32(n) if n else np.full(px, np.nan, np.float32)
    return ResidualStats(ifg_ss, pixel_ss, abs_sum, coherence)


@dataclass(frozen=True)
class InversionOutput:
    """One output raster of the inversion (see the module's docstring).

    ``per``: ``"date"`` (a band per date after the first, gathered into
    ``{name}/{first}_{date}.tif``), ``"ifg"`` (a band per interferogram,
    ``{name}/{ref}_{sec}.tif``) or ``"pixel"`` (one band, ``{name}.tif``).
    ``units``: ``"displacement"`` stands for the time series' units (radians,
    or metres with a wavelength). ``quantity``: the raster's ``quantity`` tag
    (None: the date span's tags only; for ``per="date"``/``"ifg"`` each file
    gets its own dates). ``masked``: nodata where the coherence mask drops a
    pixel. ``tags_from_strip``: the final raster carries the strip file's tags
    (set by the inversion). ``option``: the inversion option that turns it on
    (None: always written). ``make``: the block's values, ``(bands, px)`` or
    ``(px,)``, already in ``dtype``.
    """

    name: str
    per: str
    units: str
    quantity: str | None
    make: Callable[[SolvedBlock], np.ndarray]
    dtype: str = "float32"
    nodata: int | None = None
    masked: bool = True
    tags_from_strip: bool = False
    option: str | None = None
    report: str | None = None
    #: ``make`` reads the block's residuals themselves (``SolvedBlock.res``),
    #: not only their sums (``stats``, ``res_ss``): the inversion then keeps them.
    keeps_residuals: bool = False

    @property
    def strip_file(self) -> str:
        return f"{self.name}.tif"

    @property
    def final(self) -> str:
        """The gathered file (``per="pixel"``) or folder, relative to the InSAR folder."""
        return self.name if self.per != "pixel" else f"{self.name}.tif"

    def bands(self, n_dates: int, n_ifgs: int) -> int:
        return {"date": n_dates - 1, "ifg": n_ifgs, "pixel": 1}[self.per]

    def writer_options(self) -> dict[str, object]:
        """The raster's type and nodata (``nodata`` None: NaN, the writer's own)."""
        return {"dtype": self.dtype, "nodata": float("nan") if self.nodata is None else self.nodata}


def ifg_residual_std(
    res: np.ndarray | None, n_dates: int, units_per_rad: float = 1.0, complete: bool = False,
    ss: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:  # fmt: skip
    """Per pixel, the interferograms' noise that the network's redundancy
    reveals: ``units_per_rad * sqrt(sum r^2 / (m - n_dates + 1))`` over the ``m``
    finite residuals ``r`` (radians) of the pixel's ifgs; NaN where
    ``m <= n_dates - 1`` (no redundancy: the noise is invisible there).

    ``units_per_rad`` converts radians to the time series' units (``abs`` of
    :func:`sarstack.refpoint.phase_to_displacement` of 1). The velocity stage
    propagates it through the network (``insar.velocity_uncertainty``).
    ``complete``: every residual is finite (the same result, without the masks).
    ``ss``: :func:`residual_square_sums` of ``res`` when the caller has them.
    """
    if ss is None:
        if res is None:
            raise ValueError("ifg_residual_std needs the residuals or their square sums")
        ss = residual_square_sums(res, complete)
    ssq, m = ss
    dof = m - (n_dates - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(dof > 0, abs(units_per_rad) * np.sqrt(ssq / np.maximum(dof, 1)), np.nan)


def residual_square_sums(
    res: np.ndarray, complete: bool = False, sq: np.ndarray | None = None,
    finite: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per pixel, the sum of the squared finite residuals (float64) and how
    many there are: what :func:`ifg_residual_std` rests on. ``sq``
    (``np.square(res, dtype=np.float64)``) and ``finite`` (``np.isfinite(res)``)
    when the caller has them; ``complete``: every residual is finite."""
    if sq is None:
        sq = np.square(res, dtype=np.float64)
    if complete:
        return np.sum(sq, axis=0), np.full(res.shape[1:], res.shape[0], np.intp)
    used = np.isfinite(res) if finite is None else finite
    return np.sum(sq, axis=0, where=used), np.count_nonzero(used, axis=0)


def _residual_sum(b: SolvedBlock) -> np.ndarray:
    if b.stats is not None:
        return b.stats.abs_sum.astype(np.float32)
    if b.complete:
        # Row by row into one accumulator: the additions of np.sum(|res|,
        # axis=0) in its order (bit for bit, tested), without the block-sized
        # |res| (45 MB for 174 ifgs x 64 x 512 in float64) and 3x faster.
        acc = np.abs(b.residuals[0])
        row = np.empty_like(acc)
        for r in b.residuals[1:]:
            acc += np.abs(r, out=row)
        return acc.astype(np.float32)
    # A sum over the finite rows: the same sum as nansum, without its copy.
    absres = np.abs(b.residuals)
    used = np.isfinite(b.residuals).any(axis=0)
    return np.where(used, np.sum(absres, axis=0, where=~np.isnan(absres)), np.nan).astype(
        np.float32
    )


def _temporal_coherence(b: SolvedBlock) -> np.ndarray:
    from sarstack import timeseries as ts  # JAX: imported by the stages that solve

    if b.stats is not None:
        return b.stats.coherence
    # From the residuals as written (float32): float32 sine and cosine are
    # SIMD and 5x faster than float64 ones; the coherence, itself float32,
    # differs from the float64 one by < 1e-5 (test_insar_workflow).
    return ts.temporal_coherence(b.residuals, np.float32)


def _n_used(b: SolvedBlock) -> np.ndarray:
    count = b.n_used.astype(np.uint16)
    if b.mask is not None:
        count[~b.mask.reshape(count.shape)] = COUNT_NODATA
    return count


#: Every output raster of the inversion, in the order the gather writes them.
INVERSION_OUTPUTS: tuple[InversionOutput, ...] = (
    InversionOutput("timeseries", "date", "displacement",
                    "line-of-sight displacement, positive towards the radar",
                    lambda b: b.disp.astype(np.float32)),
    InversionOutput("residuals", "ifg", "radians", "network residual (ifg - model)",
                    lambda b: b.residuals.astype(np.float32), option="write_residuals",
                    keeps_residuals=True),
    InversionOutput("residual_sum", "pixel", "radians", None, _residual_sum),
    InversionOutput("ifg_residual_std", "pixel", "displacement",
                    "interferogram noise from the network residuals: "
                    "sqrt(sum r^2 / (ifgs used - dates + 1))",
                    lambda b: ifg_residual_std(b.res, b.n_dates, b.disp_scale, b.complete,
                                               b.res_ss).astype(np.float32)),
    InversionOutput("temporal_coherence", "pixel", "1",
                    "temporal coherence |mean exp(j residual)| of used ifgs",
                    _temporal_coherence, masked=False),
    InversionOutput("n_ifgs_used", "pixel", "count", "ifgs used", _n_used,
                    dtype="uint16", nodata=COUNT_NODATA),
    InversionOutput("closure_nonzero_count", "pixel", "count", None,
                    lambda b: b.closure, dtype="uint16", nodata=COUNT_NODATA, masked=False,
                    tags_from_strip=True, report="insar_closure.rst"),
)  # fmt: skip
#: The entries by name.
OUTPUTS_BY_NAME = {o.name: o for o in INVERSION_OUTPUTS}


class StripOutputs:
    """The strip rasters of :func:`sarstack.insar.invert_strip`, open for the
    strip: one band-interleaved staging GeoTIFF per :data:`INVERSION_OUTPUTS`
    entry that is on; ``write_values(window, values(block))`` writes one block of each."""

    def __init__(
        self, out_dir: str | Path, grid: Grid, n_dates: int, n_ifgs: int,
        options: dict[str, bool], tags: dict[str, dict[str, str]],
    ) -> None:  # fmt: skip
        self.outputs = [o for o in INVERSION_OUTPUTS if o.option is None or options[o.option]]
        self.out_dir, self.grid, self.tags = Path(out_dir), grid, tags
        self.n_dates, self.n_ifgs = n_dates, n_ifgs
        self._stack = contextlib.ExitStack()
        self.w: dict[str, RasterWriter] = {}

    def __enter__(self) -> StripOutputs:
        with self._stack as st:
            for o in self.outputs:
                self.w[o.name] = st.enter_context(RasterWriter(
                    self.out_dir / o.strip_file, self.grid, count=o.bands(self.n_dates, self.n_ifgs),
                    cog=False, tags=self.tags.get(o.name), **o.writer_options()))  # type: ignore[arg-type]  # fmt: skip
            self._stack = st.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)  # type: ignore[arg-type]

    def values(self, block: SolvedBlock) -> list[np.ndarray]:
        """Each output's values for one block, shaped for :meth:`write_values`
        (the computing, apart from the writing: may run on several blocks at once)."""
        return [o.make(block).reshape(-1, *block.shape) if o.per != "pixel"
                else o.make(block).reshape(block.shape) for o in self.outputs]  # fmt: skip

    def write_values(self, win: Window, values: list[np.ndarray]) -> None:
        """Write one block's :meth:`values` (one block at a time)."""
        for o, v in zip(self.outputs, values, strict=True):
            self.w[o.name].write(v, win)

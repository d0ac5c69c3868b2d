"""insar.injection: a known deformation added to the interferograms as they are
read, the inversion and velocity fit run again, and how well it came back.

The injected signal is a Gaussian bowl ``G`` (1 at its centre) moving at a
peak velocity ``v`` (the output's units per year), plus optionally a step
``s`` on a date: the displacement of date ``d`` is ``(v (t_d - t_0) + s H(d -
step_date)) G``, converted to phase and added to each ifg as its secondary
date's value minus its reference date's (:class:`InjectedPhase`, read by the
inversion's block reader). Nothing is written beside the user's data.
Recovered = the injected run's velocity minus the stack's own;
:func:`recovery_files` compares it with the injected velocity, relative to
the reference point as every output is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from sarstack import dates as sdates
from sarstack import refpoint
from sarstack.errors import SarstackError
from sarstack.io import Grid, RasterWriter, StackReader, process_blocks

if TYPE_CHECKING:  # pandas is imported where tables are built
    import pandas as pd

log = logging.getLogger(__package__)

#: The config section, named in errors.
KEY = "insar.injection"
#: Temporal-coherence bins of injection.csv (lower bound inclusive; the last
#: one includes 1).
COHERENCE_BINS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0))
#: Columns of injection.csv.
INJECTION_COLUMNS = ["quantity", "coherence_bin", "n_px", "rms_error", "max_abs_error",
                     "mean_error", "within_std", "within_3std", "injected_peak", "units"]  # fmt: skip
#: With ``velocity: null``, the peak velocity is this many times the median
#: reported velocity_std: a bowl well above the noise whatever the units.
AUTO_VELOCITY_STDS = 10.0


@dataclass(frozen=True)
class Bowl:
    """The injected displacement: a Gaussian bowl on a grid of ``shape``.

    ``centre`` is ``(row, col)`` (pixel centres), ``sigma_px`` its width in
    pixels; ``velocity`` the peak velocity (output units per year), ``step``
    the peak step on ``step_date`` (output units; 0 = none).
    """

    shape: tuple[int, int]
    centre: tuple[float, float]
    sigma_px: float
    velocity: float
    step: float = 0.0
    step_date: dt.date | None = None

    @classmethod
    def from_config(
        cls,
        shape: tuple[int, int],
        *,
        velocity: float,
        sigma: float,
        centre: Sequence[float] | None = None,
        seed: int | None = None,
        step: float = 0.0,
        step_date: str | dt.date | None = None,
    ) -> Bowl:
        """The bowl of ``insar.injection`` on a grid of ``shape``: ``sigma`` a
        fraction of the grid's smaller side; centred on ``centre`` (row, col),
        or drawn from ``seed`` in the middle half of the grid, or the grid's
        centre. A bad value is a :class:`SarstackError` naming its key."""
        h, w = int(shape[0]), int(shape[1])
        if not (math.isfinite(sigma) and sigma > 0):
            raise SarstackError(f"{KEY}.sigma: must be a positive fraction of the scene, got {sigma}")
        if not math.isfinite(velocity):
            raise SarstackError(f"{KEY}.velocity: must be a number, got {velocity}")
        if centre is not None and seed is not None:
            raise SarstackError(f"{KEY}: give centre or seed, not both")
        if centre is not None:
            r, c = (float(v) for v in centre)
            if not (0 <= r < h and 0 <= c < w):
                raise SarstackError(f"{KEY}.centre: [{r:g}, {c:g}] is outside the {h} x {w} grid")
        elif seed is not None:
            rng = np.random.default_rng(int(seed))
            r, c = (float(v) for v in rng.uniform([h / 4, w / 4], [3 * h / 4, 3 * w / 4]))
        else:
            r, c = (h - 1) / 2, (w - 1) / 2
        d = None
        if step_date is not None:
            try:
                d = dt.date.fromisoformat(str(step_date))
            except ValueError:
                raise SarstackError(f"{KEY}.step_date: {step_date!r} is not a date YYYY-MM-DD") from None
        if step and d is None:
            raise SarstackError(f"{KEY}.step: a step needs {KEY}.step_date")
        return cls((h, w), (r, c), float(sigma) * min(h, w), float(velocity), float(step), d)

    def check_dates(self, dates: Sequence[dt.date]) -> None:
        """A step date must fall inside the series (a date before it and one on or after it)."""
        if self.step and self.step_date is not None and not dates[0] < self.step_date <= dates[-1]:
            raise SarstackError(f"{KEY}.step_date: {self.step_date} is not inside the time series"
                                f" {dates[0]}..{dates[-1]}")  # fmt: skip

    def shape_at(self, win: Window) -> np.ndarray:
        """``G`` over ``win``: ``(rows, cols)`` float64, 1 at the centre."""
        rows = np.arange(win.row_off, win.row_off + win.height, dtype=np.float64)[:, None]
        cols = np.arange(win.col_off, win.col_off + win.width, dtype=np.float64)[None, :]
        r, c = self.centre
        return np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * self.sigma_px**2))

    def coefficients(self, dates: Sequence[dt.date]) -> np.ndarray:
        """Per date, the displacement at the bowl's centre (output units), 0 on the first date."""
        c = self.velocity * sdates.years_since(dates)
        if self.step and self.step_date is not None:
            c = c + self.step * np.array([d >= self.step_date for d in dates], np.float64)
        return c

    def describe(self, units: str) -> str:
        """E.g. ``"Gaussian bowl at row 32, col 40, sigma 9.6 px, 0.01 meters/year"``."""
        r, c = self.centre
        text = (f"Gaussian bowl at row {r:g}, col {c:g}, sigma {self.sigma_px:.3g} px,"
                f" peak {self.velocity:.3g} {units}/year")  # fmt: skip
        if self.step and self.step_date is not None:
            text += f" plus a step of {self.step:.3g} {units} on {self.step_date}"
        return text


class InjectedPhase:
    """The injected phase of each ifg (radians): ``(D_sec - D_ref) G / k``, with
    ``D`` the bowl's per-date displacement and ``k`` the phase-to-displacement
    factor of ``wavelength`` (:func:`sarstack.refpoint.phase_to_displacement`)."""

    def __init__(self, bowl: Bowl, dates: Sequence[dt.date], pairs: Sequence[tuple[int, int]],
                 wavelength: float | None) -> None:  # fmt: skip
        bowl.check_dates(dates)
        self.bowl = bowl
        k = float(refpoint.phase_to_displacement(np.ones(1), wavelength)[0][0])
        d = bowl.coefficients(dates)
        self.per_ifg = np.array([(d[s] - d[r]) / k for r, s in pairs], np.float64)

    def read(self, win: Window) -> np.ndarray:
        """``(n_ifg, rows, cols)`` injected phase over ``win``."""
        return self.per_ifg[:, None, None] * self.bowl.shape_at(win)[None]

    def read_one(self, k: int, win: Window) -> np.ndarray:
        """Ifg ``k``'s injected phase over ``win``."""
        return self.per_ifg[k] * self.bowl.shape_at(win)


class InjectedStack:
    """A :class:`sarstack.io.StackReader` of the ifgs whose reads come back with
    the injected phase added (float64; NaN stays NaN): the inversion's reader
    and the reference values read through it see the same signal."""

    def __init__(self, stack: StackReader, phase: InjectedPhase) -> None:
        self.stack = stack
        self.phase = phase
        self.paths = stack.paths

    def __len__(self) -> int:
        return len(self.stack)

    @property
    def tile_rows(self) -> int:
        return self.stack.tile_rows

    def read(self, window: Window, dtype: Any = None) -> np.ndarray:
        """The raw phase plus the injected one, float64 (``dtype`` is accepted
        as by :meth:`sarstack.io.StackReader.read`; the sum is float64 already)."""
        return self.stack.read(window, np.float64) + self.phase.read(window)

    def read_one(self, k: int, window: Window) -> np.ndarray:
        return self.stack.read_one(k, window).astype(np.float64) + self.phase.read_one(k, window)


def auto_velocity(std_path: str | Path) -> float:
    """:data:`AUTO_VELOCITY_STDS` times the median reported velocity_std (read
    decimated to at most ~1024 rows, so memory does not follow the scene)."""
    import rasterio

    with rasterio.open(std_path) as src:
        step = max(1, math.ceil(src.height / 1024))
        shape = (max(1, src.height // step), max(1, src.width // step))
        sd = src.read(1, out_shape=shape, masked=True).astype("float64").filled(np.nan)
    sd = sd[np.isfinite(sd)]
    if not sd.size:
        raise SarstackError(f"{KEY}.velocity: {std_path} has no standard error to size the bowl"
                            " from; give the velocity")  # fmt: skip
    return float(AUTO_VELOCITY_STDS * np.median(sd))


@dataclass
class _Sums:
    n: int = 0
    ss: float = 0.0
    s: float = 0.0
    max_abs: float = 0.0
    within: int = 0
    within3: int = 0

    def add(self, err: np.ndarray, std: np.ndarray) -> None:
        if not err.size:
            return
        self.n += int(err.size)
        self.ss += float(np.sum(err**2))
        self.s += float(np.sum(err))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(err))))
        self.within += int(np.count_nonzero(np.abs(err) <= std))
        self.within3 += int(np.count_nonzero(np.abs(err) <= 3 * std))


def _bin_label(lo: float, hi: float) -> str:
    return f"{lo:.1f}-{hi:.1f}"


def recovery_files(
    bowl: Bowl,
    ref_rc: tuple[int, int],
    dates: Sequence[dt.date],
    grid: Grid,
    quantities: Sequence[tuple[str, str | Path, str | Path, str | Path]],
    temporal_coherence: str | Path,
    out_error: str | Path,
    *,
    units: str,
    block_shape: Sequence[int],
) -> pd.DataFrame:
    """Recovered minus injected, block by block.

    ``quantities``: ``(name, injected run's raster, stack's own raster, its
    reported standard error)`` for ``"velocity"`` and, with a step, ``"step"``.
    Recovered = injected run minus own; the injected value at a pixel is the
    bowl's peak times ``G - G(ref_rc)`` (every output is relative to the
    reference point). Writes the velocity's error (``out_error``, float32,
    ``units``/year, NaN where either run has none) and returns the table
    (:data:`INJECTION_COLUMNS`): per quantity, over all pixels with a value and
    per temporal-coherence bin (:data:`COHERENCE_BINS`), the pixels, RMS,
    largest and mean error and the fractions within 1 and 3 reported standard
    errors.
    """
    import pandas as pd

    from sarstack.insar.common import _date_tags

    g_ref = float(bowl.shape_at(Window(ref_rc[1], ref_rc[0], 1, 1))[0, 0])
    peaks = {"velocity": bowl.velocity, "step": bowl.step}
    qunits = {"velocity": f"{units}/year", "step": units}
    labels = ["all"] + [_bin_label(lo, hi) for lo, hi in COHERENCE_BINS]
    sums = {(q[0], b): _Sums() for q in quantities for b in labels}
    edges = np.array([lo for lo, _ in COHERENCE_BINS] + [np.inf])
    tags = _date_tags(dates[0], dates[-1], quantity="injection-recovery error of the velocity:"
                      " recovered (injected run minus own) minus injected",
                      injected=bowl.describe(units), reference_point=f"{ref_rc[0]},{ref_rc[1]}")  # fmt: skip
    with contextlib.ExitStack() as st:
        readers = [(name, st.enter_context(StackReader([inj, own, std])))
                   for name, inj, own, std in quantities]  # fmt: skip
        tc_reader = st.enter_context(StackReader([temporal_coherence]))
        writer = st.enter_context(RasterWriter(out_error, grid, units=qunits["velocity"], tags=tags))

        def block(win: Window) -> None:
            truth = bowl.shape_at(win) - g_ref
            tc = tc_reader.read_one(0, win).astype(np.float64)
            which = np.searchsorted(edges, tc, side="right") - 1  # bin index; NaN -> len
            which[~np.isfinite(tc)] = -1
            for name, r in readers:
                inj, own, std = r.read(win).astype(np.float64)
                err = (inj - own) - peaks[name] * truth
                if name == "velocity":
                    writer.write(err.astype(np.float32), win)
                ok = np.isfinite(err)
                sd = np.where(np.isfinite(std), std, -np.inf)  # no std: never within
                sums[(name, "all")].add(err[ok], sd[ok])
                for k, lab in enumerate(labels[1:]):
                    sel = ok & (which == k)
                    sums[(name, lab)].add(err[sel], sd[sel])

        process_blocks(grid.shape, block_shape, block)
    rows: list[dict[str, Any]] = []
    nan = float("nan")
    for name, *_ in quantities:
        for lab in labels:
            s = sums[(name, lab)]
            rows.append({
                "quantity": name, "coherence_bin": lab, "n_px": s.n,
                "rms_error": math.sqrt(s.ss / s.n) if s.n else nan,
                "max_abs_error": s.max_abs if s.n else nan, "mean_error": s.s / s.n if s.n else nan,
                "within_std": s.within / s.n if s.n else nan,
                "within_3std": s.within3 / s.n if s.n else nan,
                "injected_peak": peaks[name], "units": qunits[name]})  # fmt: skip
    return pd.DataFrame(rows, columns=INJECTION_COLUMNS)

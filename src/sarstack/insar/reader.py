"""The inversion's block reader: each window of a strip's inputs (referenced
phase, weights, mask) from the stack held open (:class:`BlockReader`)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from rasterio.windows import Window

from sarstack.blocks import BandBuffer
from sarstack.insar.common import check_range
from sarstack.insar.reference import read_mask
from sarstack.insar.select import Ifg
from sarstack.io import StackReader

if TYPE_CHECKING:
    from sarstack.insar.injection import InjectedPhase
    from sarstack.troposphere import IfgDelays
    from sarstack.unwrap import IfgAmbiguities


class BlockReader:
    """The inversion's inputs for one window: referenced phase, weights, mask.

    Holds every ifg (and companion) open while the strip is inverted
    (:class:`sarstack.io.StackReader`). ``prepare(read(window))`` returns the
    phase ``(n_ifg, pixels)`` in float64 (plus its unwrapping correction,
    minus its ramp and its delays) minus each ifg's reference value (NaN
    where nodata or masked; float32 with ``single`` where every file is
    float32, the corrections still applied in float64), the weights (None
    unless correlation-weighted or conncomp-censored) and the mask of the
    window (None without one). With
    ``injection`` the raw phase comes with the injected phase added.

    ``read`` is the I/O, ``prepare`` the arithmetic: a strip's blocks are
    read on one thread and prepared by the threads that solve them (the
    conversion and referencing were a third of the reading thread's work,
    which paced the 1024^2 x 174-ifg strip solved by two threads).
    """

    def __init__(
        self,
        ifgs: Sequence[Ifg],
        ref_vals: np.ndarray | None,
        mask: str | Path | None,
        *,
        weighting: str,
        censor: bool,
        looks: float,
        threshold: float,
        ramps: tuple[str, np.ndarray] | None = None,
        shape: tuple[int, int] | None = None,
        troposphere: IfgDelays | None = None,
        unwrap: IfgAmbiguities | None = None,
        injection: InjectedPhase | None = None,
        threads: int = 1,
        rows: tuple[int, int] | None = None,
        single: bool = False,
    ) -> None:
        self.ifgs = list(ifgs)
        self.rows = rows  # the stack's rows read (a strip), for BandBuffer
        self.threads = threads  # the ifgs read side by side, as many blocks solved
        self.single = single  # float32 phase where every file is float32
        self.unwrap = unwrap
        self.injection = injection
        self.ref_vals = ref_vals
        self.ramps = ramps
        self.troposphere = troposphere
        self.shape = shape
        self.mask = mask
        self.weighting = weighting
        self.censor = censor
        self.looks = looks
        self.threshold = threshold
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> BlockReader:
        with self._stack as st:
            self.phase: Any = st.enter_context(StackReader([i.path for i in self.ifgs],
                                                           threads=self.threads))
            # Each file's values as read_one gives them (float64 stays float64).
            self._phase_dtype = np.float64 if self.phase.any_float64 else np.float32
            #: The prepared phase's type (see the class).
            self.dtype = np.dtype(np.float32 if self.single and self._phase_dtype == np.float32
                                  else np.float64)  # fmt: skip
            if self.rows is not None:  # a band of the tiles read at once (BandBuffer)
                self.phase = BandBuffer(self.phase, self.rows)
            if self.injection is not None:  # the raw phase plus the injected signal
                from sarstack.insar.injection import InjectedStack

                self.phase = InjectedStack(self.phase, self.injection)
            self.cor = (st.enter_context(StackReader([i.need("correlation") for i in self.ifgs]))
                        if self.weighting == "correlation" else None)  # fmt: skip
            self.cc = (st.enter_context(StackReader([i.need("conncomp") for i in self.ifgs],
                                                    nan_nodata=False))
                       if self.censor else None)  # fmt: skip
            if self.troposphere is not None:
                st.enter_context(self.troposphere)
            if self.unwrap is not None:
                st.enter_context(self.unwrap)
            self._stack = st.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read(self, win: Window) -> RawBlock:
        """The window's inputs as read: the I/O of a block, apart from the
        arithmetic (:meth:`prepare`, which may run on another thread)."""
        ramp = None
        if self.ramps is not None and self.shape is not None:
            from sarstack import deramp

            ramp = deramp.evaluate(self.ramps[1], win, self.shape, self.ramps[0])
        return RawBlock(
            self.phase.read(win, self._phase_dtype),
            self.unwrap.read(win) if self.unwrap is not None else None, ramp,
            self.troposphere.read(win) if self.troposphere is not None else None,
            read_mask(self.mask, win),
            self.cor.read(win) if self.cor is not None else None,
            self.cc.read(win) if self.cc is not None else None,
        )  # fmt: skip

    def prepare(self, raw: RawBlock) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """A block's phase ``(n_ifg, pixels)`` in :attr:`dtype`: as read, plus its
        unwrapping correction, minus its ramp and its delays, minus each ifg's
        reference value, NaN where masked; its weights and mask (see the class)."""
        from sarstack import timeseries as ts  # JAX: imported by the stages that solve

        if self.ref_vals is None:
            raise RuntimeError("the reference values are set before the first read")
        n = len(self.ifgs)
        ref = self.ref_vals[:, None, None]
        if raw.unwrap is None and raw.ramp is None and raw.troposphere is None:
            # converted and referenced in one pass: the same values as below
            phase = np.subtract(raw.phase, ref, dtype=self.dtype)
        else:  # the corrections in float64 (delays of hundreds of radians)
            phase = raw.phase.astype(np.float64)
            if raw.unwrap is not None:
                phase += raw.unwrap
            if raw.ramp is not None:
                phase -= raw.ramp
            if raw.troposphere is not None:
                phase -= raw.troposphere
            phase -= ref
            phase = phase.astype(self.dtype, copy=False)
        m = raw.mask
        if m is not None:
            phase[:, ~m] = np.nan
        flat = phase.reshape(n, -1)
        if raw.cor is None and raw.cc is None:
            return flat, None, m
        weights = np.ones_like(flat)
        if raw.cor is not None and self.cor is not None:
            for p, layer in zip(self.cor.paths, raw.cor, strict=True):
                check_range(layer, p, 0.0, 1.0, "correlation")
            weights = ts.correlation_weights(raw.cor.reshape(flat.shape), self.looks, self.threshold)
        if raw.cc is not None:
            weights = weights * (raw.cc.reshape(flat.shape) != 0)
        return flat, weights, m


class RawBlock(NamedTuple):
    """One window of :class:`BlockReader`'s inputs as read: the phase stack
    (float32, float64 where a file or the injection is), the unwrapping
    correction, ramp and delays (None where off), the mask, correlation and
    conncomp stacks (None where absent)."""

    phase: np.ndarray
    unwrap: np.ndarray | None
    ramp: np.ndarray | None
    troposphere: np.ndarray | None
    mask: np.ndarray | None
    cor: np.ndarray | None
    cc: np.ndarray | None

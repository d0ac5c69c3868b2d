"""The inversion chain run again inside one job: the whole stack as one strip,
the gather and the velocity fit, in a scratch folder. ``insar_injection``
runs it with a known signal added, ``insar_reference_sensitivity`` with other
reference points; both build its options from their arguments here."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sarstack.io import Grid


def add_chain_arguments(p: Any) -> None:
    """The files a stage running the chain needs beside the config options
    (``argparse`` parser ``p``): the corrections the inversion applies, and
    the host threads."""
    p.add_argument("--troposphere", default=None,
                   help="folder of insar_troposphere's per-date delays (as the inversion)")
    p.add_argument("--unwrap", default=None,
                   help="unwrap_ambiguity.tif of insar_unwrap_correction (as the inversion)")
    p.add_argument("--threads", type=int, default=0, help="host threads (0: the CPUs available)")


def chain_options(
    a: Any, ifgs: Sequence[Any], dates: Sequence[dt.date], pairs: Sequence[tuple[int, int]],
    grid: Grid, *, ramps: tuple[str, np.ndarray] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:  # fmt: skip
    """The ``invert``, ``gather`` and ``velocity`` options of :func:`run_chain`
    from a stage's parsed arguments (the inversion's, gather's and velocity's
    config options, ``--troposphere``/``--unwrap`` folders or files of the
    corrections, ``--threads``, ``--annual``/``--semiannual``/``--step``).
    ``ramps``: the ramps to remove (None: ``a.ramps`` read when given)."""
    from sarstack import deramp, troposphere, unwrap
    from sarstack.errors import SarstackError
    from sarstack.velocity import DeformationModel, model_error

    try:
        model = DeformationModel.from_config(a.annual, a.semiannual, a.step or ())
    except SarstackError as e:
        raise model_error(e) from None
    if ramps is None and getattr(a, "ramps", None):
        ramps = deramp.read_ramps(a.ramps, ifgs)
    invert = dict(
        method=a.method, wavelength=a.wavelength, mask=a.mask, block_shape=a.block,
        l1_tolerance=a.l1_tolerance, l1_max_iterations=a.l1_max_iterations,
        weighting=a.weighting, correlation_looks=a.correlation_looks,
        correlation_threshold=a.correlation_threshold, reference_window=a.reference_window,
        threads=a.threads if a.threads > 0 else None, ramps=ramps,
        troposphere=(troposphere.IfgDelays(a.troposphere, dates, pairs, grid)
                     if getattr(a, "troposphere", None) else None),
        unwrap=unwrap.IfgAmbiguities(a.unwrap, ifgs, grid) if getattr(a, "unwrap", None) else None,
    )  # fmt: skip
    # compress_series: the scratch series are read once, then deleted
    gather = dict(threads=max(1, a.threads), compress_series=False, coherence_mask=a.coherence_mask,
                  min_region_px=a.min_region_px)  # fmt: skip
    velocity = dict(weight_ifgs=ifgs if a.velocity_weighting == "correlation" else None,
                    model=model, uncertainty=a.uncertainty)  # fmt: skip
    return invert, gather, velocity


def run_chain(
    ifgs: Sequence[Any],
    dates: Sequence[dt.date],
    pairs: Sequence[tuple[int, int]],
    ref_rc: tuple[int, int],
    scratch: str | Path,
    *,
    invert: dict[str, Any],
    gather: dict[str, Any],
    velocity: dict[str, Any],
    injection: Any = None,
) -> dict[str, Path]:
    """The inversion, gather and velocity fit of the stack referenced to
    ``ref_rc`` (with ``injection``, a :class:`sarstack.insar.injection.InjectedPhase`,
    added as each ifg is read), in ``scratch`` (the caller removes it): one
    strip of the whole grid (:func:`~sarstack.insar.invert_strip` with
    ``invert``'s options, the same blocks, so the same per-block solver
    decisions as the stack's own strips), :func:`~sarstack.insar.gather_strips`
    (``gather``'s options: the coherence mask) and
    :func:`~sarstack.insar.velocity_files` (``velocity``'s: weighting, model,
    uncertainty). Returns the run's rasters by name: ``velocity``,
    ``velocity_std`` and the model's others. Memory follows the blocks."""
    from sarstack.insar.gather import gather_strips
    from sarstack.insar.invert import describe_method, invert_strip
    from sarstack.insar.model import velocity_files

    scratch = Path(scratch)
    strip, run = scratch / "strip", scratch / "run"
    invert_strip(ifgs, dates, pairs, ref_rc, strip, injection=injection, write_residuals=False,
                 **invert)  # fmt: skip
    how = describe_method(invert["method"], invert["weighting"], all(i.conncomp for i in ifgs))
    index = gather_strips([strip], ifgs, dates, ref_rc, run, wavelength=invert["wavelength"],
                          how=how, block_shape=invert["block_shape"], **gather)  # fmt: skip
    shutil.rmtree(strip)  # the staging rasters: only the series is read again
    out = {"velocity": scratch / "velocity.tif", "velocity_std": scratch / "velocity_std.tif"}
    velocity_files(index, dates[0], out["velocity"], out["velocity_std"],
                   block_shape=invert["block_shape"], out_dir=scratch, **velocity)  # fmt: skip
    model = velocity.get("model")
    for name in model.output_names()[2:] if model is not None and not model.is_linear else ():
        out[name] = scratch / f"{name}.tif"
    return out

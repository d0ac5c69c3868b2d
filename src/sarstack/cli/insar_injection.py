"""Injection-recovery (insar.injection): a known deformation (a Gaussian bowl of
given peak velocity, optionally a step) added to every interferogram as it is
read, then the same inversion (one strip of the whole stack, the same blocks),
gather and velocity fit as the stack's own run (the ramps of insar.deramp fitted
again to the phase with the signal, as insar_deramp fits them), in a scratch folder removed at
the end; writes injection_error.tif (recovered minus injected velocity, the
recovered one being the injected run's velocity minus the stack's own) and
injection.csv (RMS, largest and mean error and the share within 1 and 3
reported standard errors, over the scene and per temporal-coherence bin)."""

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from sarstack import cli, deramp, io, options, refpoint, stagefiles
from sarstack.insar import chain
from sarstack.insar import injection as inj
from sarstack.jaxcfg import configure_jax

log = logging.getLogger("insar_injection")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_injection")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--reference", required=True, help="row,col file from insar_reference")
    chain.add_chain_arguments(p)
    p.add_argument("--velocity-dir", required=True,
                   help="folder of the stack's own velocity.tif, velocity_std.tif and model rasters")
    p.add_argument("--temporal-coherence", required=True, help="temporal_coherence.tif (the bins)")
    p.add_argument("--out", required=True, help="injection.csv")
    p.add_argument("--out-error", required=True, help="injection_error.tif")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, dates, pairs = stagefiles.read_ifgs(a.ifgs)
    grid = io.read_grid(ifgs[0].path)
    # The chain's options (the model checked first): the ramps are refitted below.
    invert, gather, vel = chain.chain_options(a, ifgs, dates, pairs, grid)
    model = vel["model"]
    ref_rc = stagefiles.read_reference_point(a.reference)
    own = Path(a.velocity_dir)
    velocity = a.velocity if a.velocity is not None else inj.auto_velocity(own / "velocity_std.tif")
    bowl = inj.Bowl.from_config(grid.shape, velocity=velocity, sigma=a.sigma, centre=a.centre,
                                seed=a.seed, step=a.inject_step, step_date=a.inject_step_date)  # fmt: skip
    phase = inj.InjectedPhase(bowl, dates, pairs, a.wavelength)
    step_name = f"step_{bowl.step_date:%Y%m%d}" if bowl.step and bowl.step_date else None
    if step_name and bowl.step_date not in model.steps:
        log.warning("%s.step_date %s is not in insar.velocity_model.steps: the step is not"
                    " fitted and biases the recovered velocity", inj.KEY, bowl.step_date)  # fmt: skip
    units = refpoint.phase_to_displacement(np.zeros(1), a.wavelength)[1]
    log.info("injecting a %s", bowl.describe(units))
    configure_jax(x64=True, cache_dir=a.jax_cache)
    if a.deramp != "none":  # refitted with the signal: the deramp may take part of it away
        invert["ramps"] = deramp.ramp_coefficients(deramp.fit_ramps(
            ifgs, a.deramp, block_shape=a.block, mask=a.mask,
            min_correlation=a.deramp_min_correlation, troposphere=invert["troposphere"],
            unwrap=invert["unwrap"], injection=phase), ifgs)  # fmt: skip
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".injection-", dir=Path(a.out).parent))
    try:
        run = chain.run_chain(ifgs, dates, pairs, ref_rc, scratch, invert=invert, gather=gather,
                              velocity=vel, injection=phase)  # fmt: skip
        quantities = [("velocity", run["velocity"], own / "velocity.tif", own / "velocity_std.tif")]
        if step_name and step_name in run:
            quantities.append(("step", run[step_name], own / f"{step_name}.tif",
                               own / f"{step_name}_std.tif"))  # fmt: skip
        table = inj.recovery_files(bowl, ref_rc, dates, grid, quantities, a.temporal_coherence,
                                   a.out_error, units=units, block_shape=a.block)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    io.write_csv(a.out, table)
    for q in table[table["coherence_bin"] == "all"].itertuples():
        log.info("injection-recovery of the %s (peak %.3g %s) over %d pixels: RMS error %.3g,"
                 " largest %.3g, %.0f %% within the reported std", q.quantity, q.injected_peak,
                 q.units, q.n_px, q.rms_error, q.max_abs_error, 100 * q.within_std)  # fmt: skip


if __name__ == "__main__":
    cli.run(main)

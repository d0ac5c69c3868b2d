"""Reference sensitivity (insar.reference_sensitivity): K alternative reference
points chosen like the automatic one (stable, well-connected, low-gradient
ground, spread apart by farthest-point sampling from the reference); the
inversion, gather and velocity fit run again with each (one strip of the whole
stack, the same blocks, in a scratch folder removed at the end), unless the
run's inversion is one whose map another reference only shifts (L2,
unweighted, uncensored, one-pixel reference, no coherence mask, every pixel
using every ifg: exact without re-inversion). Writes reference_sensitivity.tif
(per pixel the standard deviation over the K + 1 maps, each moved by its
median difference to the run's own: where the map changes shape),
reference_sensitivity.csv (the points, their velocity in the run's own map and
each map's shift, whose spread is the offset uncertainty) and a PNG map."""

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sarstack import cli, insar, io, options, refpoint, stagefiles
from sarstack.errors import SarstackError
from sarstack.insar import chain
from sarstack.insar import sensitivity as sens
from sarstack.velocity import DeformationModel, model_error

log = logging.getLogger("insar_reference_sensitivity")

KEY = "insar.reference_sensitivity"


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_reference_sensitivity")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--reference", required=True, help="row,col file from insar_reference")
    chain.add_chain_arguments(p)
    p.add_argument("--quality", default=None, help="quality raster of insar_reference")
    p.add_argument("--ramps", default=None, help="ramps.csv of insar_deramp (as the inversion)")
    p.add_argument("--velocity", required=True, help="the run's own velocity.tif")
    p.add_argument("--n-used", required=True, help="the run's own n_ifgs_used.tif")
    p.add_argument("--out", required=True, help="reference_sensitivity.tif")
    p.add_argument("--out-table", required=True, help="reference_sensitivity.csv")
    p.add_argument("--out-plot", required=True, help="the map, PNG")
    p.add_argument("--always-invert", action="store_true",
                   help="invert again even where the exact shift would do (a check)")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    if a.points < 1:
        raise SarstackError(f"{KEY}.points: must be at least 1, got {a.points}")
    try:  # before any work: a bad model is an error naming its key
        DeformationModel.from_config(a.annual, a.semiannual, a.step or ())
    except SarstackError as e:
        raise model_error(e) from None
    ifgs, dates, pairs = stagefiles.read_ifgs(a.ifgs)
    grid = io.read_grid(ifgs[0].path)
    ref_rc = stagefiles.read_reference_point(a.reference)
    valid, quality, cc = insar.reference_inputs(ifgs, grid, mask=a.mask, quality=a.quality,
                                                block_shape=a.block)  # fmt: skip
    rough = insar.phase_roughness(ifgs, grid, block_shape=a.block)
    points = refpoint.alternative_points(valid, ref_rc, a.points, quality, threshold=a.threshold,
                                         conncomp=cc, roughness=rough)  # fmt: skip
    if not points:
        raise SarstackError(f"{KEY}: no other pixel is a reference candidate"
                            " (valid in every ifg, on stable ground)")  # fmt: skip
    if len(points) < a.points:
        log.warning("%s.points is %d but only %d other candidates exist", KEY, a.points,
                    len(points))  # fmt: skip
    log.info("alternative reference points: %s",
             ", ".join(f"[{r}, {c}]" for r, c in points))  # fmt: skip
    exact = None if a.always_invert else sens.shift_is_exact(
        method=a.method, weighting=a.weighting, conncomp=all(i.conncomp for i in ifgs),
        reference_window=a.reference_window, coherence_mask=a.coherence_mask,
        n_used=a.n_used, n_ifgs=len(ifgs), block_shape=a.block)  # fmt: skip
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".refsens-", dir=Path(a.out).parent))
    try:
        runs = None
        if exact:
            log.info("exact shift, no re-inversion (%s)", exact)
        else:
            from sarstack.jaxcfg import configure_jax

            configure_jax(x64=True, cache_dir=a.jax_cache)
            invert, gather, vel = chain.chain_options(a, ifgs, dates, pairs, grid)
            runs = []
            for k, rc in enumerate(points):
                t0 = time.perf_counter()
                runs.append(chain.run_chain(ifgs, dates, pairs, rc, scratch / f"ref{k}",
                                            invert=invert, gather=gather,
                                            velocity=vel)["velocity"])  # fmt: skip
                log.info("reference [%d, %d]: inverted again in %.1f s", *rc,
                         time.perf_counter() - t0)  # fmt: skip
        table = sens.sensitivity_files(a.velocity, runs, points, ref_rc, a.out,
                                       block_shape=a.block, exact=bool(exact))  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    io.write_csv(a.out_table, table)
    sd = io.read_band(a.out)
    units = str(table["units"].iloc[0])
    spread = sens.offset_spread(table)
    fin = sd[np.isfinite(sd)]
    p50, p95 = (np.percentile(fin, [50, 95]) if fin.size else (np.nan, np.nan))
    log.info("reference sensitivity over %d references: offset spread %.3g %s (the whole map"
             " shifts); shape spread median %.3g, p95 %.3g %s", len(table), spread, units,
             p50, p95, units)  # fmt: skip
    from sarstack.plots.maps import raster_map

    grid = io.read_grid(a.out)
    raster_map(sd, a.out_plot, title=(f"Reference sensitivity ({len(points)} alternative points;"
                                      f" offset spread {spread:.3g} {units})"),
               label=f"std of the re-referenced velocity ({units})", cmap="magma", vmin=0.0,
               ref_rc=ref_rc, transform=grid.transform, crs=grid.crs, points=points)  # fmt: skip


if __name__ == "__main__":
    cli.run(main)

"""Network inversion of one row strip of the interferogram stack (L1 or L2,
optionally correlation-weighted and conncomp-censored): displacement per date,
residuals (optional), residual sum, temporal coherence and ifgs used, written
as intermediate strip rasters that insar_gather assembles. Run alone with
--index (and no --strip), it inverts the whole stack and writes the final
COGs itself."""

import argparse
import logging
from pathlib import Path

from sarstack import cli, deramp, insar, io, options, stagefiles, troposphere, unwrap
from sarstack.jaxcfg import configure_jax

log = logging.getLogger("insar_invert")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_invert")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--reference", required=True, help="row,col file from insar_reference")
    p.add_argument("--strip", default="1-of-1", help="I-of-N: this job's rows (whole block rows)")
    p.add_argument("--out-dir", required=True, help="strip folder (final folder with --index)")
    p.add_argument("--index", default=None,
                   help="also gather: write the final COGs and this time-series table")
    # what --index gathers with, as insar_gather takes it (the strip jobs never gather)
    options.add_config_options(p, "insar_gather", when="with --index",
                               only=("--coherence-mask", "--min-region-px", "--compress-series"))
    p.add_argument("--threads", type=int, default=0, help="host threads (0: the CPUs available)")
    p.add_argument("--ramps", default=None,
                   help="ramps.csv of insar_deramp: each ifg's ramp removed as it is read")
    p.add_argument("--troposphere", default=None,
                   help="folder of insar_troposphere's per-date delays: each ifg's"
                        " d_sec - d_ref removed as it is read")
    p.add_argument("--unwrap", default=None,
                   help="unwrap_ambiguity.tif of insar_unwrap_correction: each ifg's"
                        " 2 pi x cycles added as it is read")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    configure_jax(x64=True, cache_dir=a.jax_cache)
    ifgs, dates, pairs = stagefiles.read_ifgs(a.ifgs)
    grid = io.read_grid(ifgs[0].path)
    height = grid.height
    rows = insar.strip_rows(height, a.block[0], a.strip)
    ref_rc = stagefiles.read_reference_point(a.reference)
    # GDAL's cache: the strip's own tiles while they are written (a quarter
    # of a column of the ifgs' tiles and 32 MB: a 2048² x 174-ifg L2 strip
    # took 5.1-6.1 s with 96-105 MB, 4.1 s with 141 when the reads shared it)
    # and a column of tiles of every companion raster (correlation, conncomp)
    # read per block. The ifgs are read a band of tiles at a time
    # (blocks.BandBuffer), so their tiles need no room: 2048² x 174 ifgs, L2,
    # one strip 9.3-10.0 s user CPU with 141 MB, 9.3 with 32-64 MB.
    phase_mb = io.band_cache_mb(ifgs[0].path, len(ifgs), a.block[1])
    n_companions = len(ifgs) * ((a.weighting == "correlation") + all(i.conncomp for i in ifgs))
    need = io.band_cache_mb(ifgs[0].path, n_companions, a.block[1]) if n_companions else 0
    cli.set_gdal_cache(need + phase_mb // 4 + 32)
    strip_dir = Path(a.out_dir) / ".strip" if a.index else Path(a.out_dir)
    # NumPy's L2 solves blocks on threads; JAX's solvers allocate on their own
    # pool, in huge pages (cli.huge_pages)
    numpy_l2 = a.method == "L2" and not n_companions
    cli.huge_pages(not numpy_l2)
    with cli.one_malloc_arena(numpy_l2):
        insar.invert_strip(
            ifgs, dates, pairs, ref_rc, strip_dir, rows=rows,
            method=a.method, wavelength=a.wavelength, mask=a.mask, block_shape=a.block,
            l1_tolerance=a.l1_tolerance, l1_max_iterations=a.l1_max_iterations,
            weighting=a.weighting, correlation_looks=a.correlation_looks,
            correlation_threshold=a.correlation_threshold, write_residuals=a.write_residuals,
            reference_window=a.reference_window, threads=a.threads if a.threads > 0 else None,
            ramps=deramp.read_ramps(a.ramps, ifgs) if a.ramps else None,
            troposphere=(troposphere.IfgDelays(a.troposphere, dates, pairs, grid)
                         if a.troposphere else None),
            unwrap=unwrap.IfgAmbiguities(a.unwrap, ifgs, grid) if a.unwrap else None,
        )
    if a.index:
        import shutil

        how = insar.describe_method(a.method, a.weighting, all(i.conncomp for i in ifgs))
        index = insar.gather_strips([strip_dir], ifgs, dates, ref_rc, a.out_dir,
                                    wavelength=a.wavelength, how=how, block_shape=a.block,
                                    threads=max(1, a.threads),
                                    coherence_mask=a.coherence_mask,
                                    compress_series=a.compress_series,
                                    min_region_px=a.min_region_px)
        stagefiles.write_index(a.index, index)
        insar.gather_stats([strip_dir], ifgs, a.out_dir)
        shutil.rmtree(strip_dir)


if __name__ == "__main__":
    cli.run(main)

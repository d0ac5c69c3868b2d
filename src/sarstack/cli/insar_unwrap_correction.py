"""Correct unwrapping errors by phase closure (insar.unwrap_correction: closure):
per pixel, the integer closures round(C / 2 pi) of the network's triangles
(of the phase referenced to the reference point, as the inversion sees it)
are explained by the fewest integer 2 pi cycles per ifg (one integer
programme per distinct pattern of closures in a block). Writes the cycles
(one int8 band per ifg), the number of corrected ifgs per pixel
(unwrap_corrected_count.tif), a row per ifg (unwrap_correction.csv) and, on
request, the non-zero closures per pixel before and after and a figure; the
reference values, the deramp fit and insar_invert add 2 pi x the cycles as
they read each ifg. Streamed block by block: memory follows the block."""

import argparse
import logging

from sarstack import cli, insar, io, options, stagefiles, unwrap
from sarstack.errors import SarstackError

log = logging.getLogger("insar_unwrap_correction")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_unwrap_correction")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--out", required=True,
                   help="unwrap_ambiguity.tif: the integer cycles, one int8 band per ifg")
    p.add_argument("--out-count", required=True,
                   help="unwrap_corrected_count.tif: per pixel, the ifgs corrected")
    p.add_argument("--out-table", required=True,
                   help="unwrap_correction.csv: per ifg, the pixels corrected")
    p.add_argument("--reference", default=None,
                   help="reference_point.txt of insar_reference: the closures are taken of the"
                        " phase minus each ifg's value there (without it, of the raw phase)")
    p.add_argument("--out-closures", nargs=2, default=None, metavar=("BEFORE", "AFTER"),
                   help="closure_count_before.tif, closure_count_after.tif: per pixel, the"
                        " triangles with a non-zero integer closure before and after")
    p.add_argument("--out-plot", default=None,
                   help="plots/unwrap_correction.png: the corrected ifgs per pixel, the closure"
                        " counts before and after, the pixels corrected per ifg"
                        " (needs --out-closures)")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    if a.method != "closure":
        raise SarstackError(f"insar.unwrap_correction: {a.method}, so there is nothing to correct"
                            " (--method closure)")  # fmt: skip
    if a.out_plot and not a.out_closures:
        raise SarstackError("--out-plot needs --out-closures (the closure counts it draws)")
    ifgs, _, pairs = stagefiles.read_ifgs(a.ifgs)
    ref = None
    if a.reference:
        ref_rc = stagefiles.read_reference_point(a.reference)
        ref = insar.reference_phase(ifgs, ref_rc, a.reference_window)
    table, totals = unwrap.write_corrections(ifgs, pairs, a.out, a.out_count, block_shape=a.block,
                                             reference=ref, out_closures=a.out_closures)  # fmt: skip
    io.write_csv(a.out_table, table)
    if a.out_plot:
        from sarstack import plots

        grid = io.read_grid(a.out_count)
        plots.unwrap_correction(
            io.read_band(a.out_count), io.read_band(a.out_closures[0]),
            io.read_band(a.out_closures[1]), table, a.out_plot,
            transform=grid.transform, crs=grid.crs,
            ref_rc=stagefiles.read_reference_point(a.reference) if a.reference else None)  # fmt: skip
    alone = table.loc[table["n_triangles"] == 0, "key"].tolist()
    if len(alone) == len(table):
        log.warning("insar.unwrap_correction: the network has no closed triangle (sequential, "
                    "nearest:1 or single-reference?): nothing can be corrected")  # fmt: skip
    elif alone:
        log.warning("%d of %d ifgs are in no closed triangle and cannot be corrected: %s%s",
                    len(alone), len(table), ", ".join(alone[:5]),
                    " ..." if len(alone) > 5 else "")  # fmt: skip
    if totals["unsolved_px"]:
        log.warning("%d pixels left uncorrected: their pattern of closures was beyond the %d "
                    "most frequent of their block (unwrap.MAX_PATTERNS)", totals["unsolved_px"],
                    unwrap.MAX_PATTERNS)  # fmt: skip
    log.info("%d pixels with a non-zero integer closure (%d patterns); %d closed by the "
             "correction, %d still with one; %d ifgs corrected somewhere, %d ifg-pixels in all",
             totals["flagged_px"], totals["patterns"], totals["closed_px"],
             totals["nonzero_after_px"], int((table["corrected_px"] > 0).sum()),
             int(table["corrected_px"].sum()))  # fmt: skip
    log.info("non-zero integer closures (triangle-pixels): %d before, %d after the correction",
             totals["closures_before"], totals["closures_after"])


if __name__ == "__main__":
    cli.run(main)

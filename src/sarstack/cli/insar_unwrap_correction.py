"""Correct unwrapping errors by phase closure (insar.unwrap_correction: closure):
per pixel, the integer closures round(C / 2 pi) of the network's triangles are
explained by the fewest integer 2 pi cycles per ifg (one integer programme per
distinct pattern of closures in a block), computed from the raw phase. Writes
the cycles (one int8 band per ifg), the number of corrected ifgs per pixel
(unwrap_corrected_count.tif) and a row per ifg (unwrap_correction.csv); the
reference values, the deramp fit and insar_invert add 2 pi x the cycles as
they read each ifg. Streamed block by block: memory follows the block."""

import argparse
import logging

from sarstack import cli, insar, io, options, unwrap
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
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    if a.method != "closure":
        raise SarstackError(f"insar.unwrap_correction: {a.method}, so there is nothing to correct"
                            " (--method closure)")  # fmt: skip
    ifgs, _, pairs = insar.read_ifg_table(a.ifgs)
    table, totals = unwrap.write_corrections(ifgs, pairs, a.out, a.out_count, block_shape=a.block)
    io.write_csv(a.out_table, table)
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


if __name__ == "__main__":
    cli.run(main)

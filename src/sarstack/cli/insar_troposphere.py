"""Troposphere delays per date (insar.troposphere): each date's external delay
raster (its date in its name) mapped to the line of sight (zenith: 1 / cos of
the incidence), converted to radians (metres: 4 pi / insar.wavelength) and put
on the interferograms' grid (bilinear when it differs), written as
{out-dir}/{YYYYMMDD}.tif, with the per-ifg table troposphere.csv; insar_invert
subtracts d_sec - d_ref from each ifg as it reads it."""

import argparse
import logging

from sarstack import cli, io, options, stagefiles, troposphere
from sarstack.errors import SarstackError

log = logging.getLogger("insar_troposphere")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_troposphere")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--out-dir", required=True,
                   help="folder of the per-date line-of-sight delays (radians), replaced whole")
    p.add_argument("--out", required=True, help="troposphere.csv: the correction per ifg")
    p.add_argument("--out-plot", default=None,
                   help="plots/troposphere.png: per ifg the phase's std before and after")
    return p


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    if not a.delays:
        raise SarstackError(f"{troposphere.KEY}.delays: not set, so there is no delay to apply (--delays)")
    ifgs, dates, pairs = stagefiles.read_ifgs(a.ifgs)
    table = troposphere.write_delays(
        ifgs, dates, pairs, a.delays, a.out_dir, kind=a.kind, units=a.delay_units,
        incidence=a.incidence, incidence_deg=a.incidence_deg, wavelength=a.wavelength,
        date_format=a.date_format, block_shape=a.block,
    )  # fmt: skip
    io.write_csv(a.out, table)
    if a.out_plot:
        from sarstack import plots

        plots.troposphere(table, a.out_plot)
    lost = int(table["no_delay_px"].sum())
    if lost:
        log.warning("%d ifg pixels have no delay (outside the delay rasters or their nodata) "
                    "and lose their value", lost)  # fmt: skip
    log.info("%d ifgs corrected; median correction std %.3g rad, phase std %.3g -> %.3g rad "
             "(medians)", len(table), table["correction_std_rad"].median(),
             table["phase_std_before_rad"].median(), table["phase_std_after_rad"].median())  # fmt: skip


if __name__ == "__main__":
    cli.run(main)

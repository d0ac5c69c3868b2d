"""Choose the reference point: the manual [row, col] or [lon, lat] if given
(checked: valid in every interferogram), else automatically on stable,
well-connected, low-gradient ground: among pixels valid in every interferogram
(inside the largest non-zero conncomp region) whose 5 x 5 neighbourhood is
valid, with quality above the threshold (else the better half), the quarter
with the lowest local phase-gradient rate; the most interior pixel of the
largest connected region of them. Writes `row,col`."""

import argparse
import logging

from sarstack import cli, insar, io, options, refpoint, stagefiles
from sarstack.errors import SarstackError

log = logging.getLogger("insar_reference")


def create_parser() -> argparse.ArgumentParser:
    """The stage's command-line parser."""
    p = cli.parser(__doc__)
    options.add_config_options(p, "insar_reference")
    p.add_argument("--ifgs", required=True, help="ifg table from insar_select")
    p.add_argument("--out", required=True, help="output text file: row,col")
    p.add_argument("--quality", default=None, help="quality raster (default: mean correlation)")
    return p


def _choose(a: argparse.Namespace, ifgs: list, grid: io.Grid, key: str) -> tuple[int, int]:
    """The reference pixel: a manual point checked at its pixel (the stack is not
    read) when it passes there, else from the full read of the stack (which
    also names what is wrong with a manual point that does not pass)."""
    if a.point is not None and insar.point_valid_everywhere(ifgs, grid, a.point, mask=a.mask):
        r, c = (int(v) for v in a.point)
        log.info("manual reference point [%d, %d] (valid in every ifg)", r, c)
        return r, c
    valid, quality, cc = insar.reference_inputs(
        ifgs, grid, mask=a.mask, quality=a.quality, block_shape=a.block
    )
    if a.point is not None:
        try:
            r, c = refpoint.check_reference_point(a.point, valid)
        except SarstackError as e:
            raise SarstackError(f"{key}: {e}") from None
        log.info("manual reference point [%d, %d]", r, c)
        return r, c
    rough = insar.phase_roughness(ifgs, grid, block_shape=a.block)
    r, c = refpoint.select_reference_point(valid, quality, threshold=a.threshold, conncomp=cc,
                                          roughness=rough)
    q = f"{quality[r, c]:.3f}" if quality is not None else "n/a"
    pct = float((rough[valid] <= rough[r, c]).mean() * 100)
    log.info("automatic reference point [%d, %d] (quality %s, phase-gradient rate %.3g"
             " rad/px/yr, lower than at %.0f%% of the %d pixels valid in every ifg)",
             r, c, q, rough[r, c], 100 - pct, int(valid.sum()))  # fmt: skip
    return r, c


def main(argv=None):
    a = create_parser().parse_args(argv)
    cli.setup_logging(a.verbose)
    ifgs, _, _ = stagefiles.read_ifgs(a.ifgs)
    grid = io.read_grid(ifgs[0].path)
    if a.point is not None and a.lonlat is not None:
        raise SarstackError("insar.reference_point and insar.reference_lonlat are both set;"
                            " give one")  # fmt: skip
    if a.window < 1 or a.window % 2 == 0:
        raise SarstackError(f"insar.reference_window: must be an odd number >= 1, got {a.window}")
    if a.window > min(grid.height, grid.width):
        raise SarstackError(
            f"insar.reference_window: {a.window} is larger than the interferograms "
            f"({grid.height} x {grid.width} px, {ifgs[0].path})"
        )
    key = "insar.reference_point"
    if a.lonlat is not None:
        key = "insar.reference_lonlat"
        lon, lat = a.lonlat
        a.point = io.lonlat_to_rowcol(grid, lon, lat, key=key)
        log.info("[lon, lat] %s is pixel [%d, %d]", a.lonlat, *a.point)
    r, c = _choose(a, ifgs, grid, key)
    if a.window > 1:
        log.info("ifgs are referenced to the median of the %d x %d window around it",
                 a.window, a.window)  # fmt: skip
    stagefiles.write_reference_point(a.out, (r, c))


if __name__ == "__main__":
    cli.run(main)

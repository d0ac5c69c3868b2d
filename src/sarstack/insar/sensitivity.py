"""insar_reference_sensitivity: how much the velocity map depends on the
reference point. The chain (inversion, gather, velocity) is run again with
each of K alternative reference points chosen like the automatic one
(:func:`sarstack.refpoint.alternative_points`); the K + 1 velocity maps (the
run's own and the K others) are each moved by their median difference to the
run's own map, and the map written is their spread per pixel.

Two parts, kept apart on purpose:

- the **offset**: a change of reference moves the whole map by a constant
  (with a plain L2 inversion of pixels that use every interferogram, exactly
  minus the velocity of the new point in the run's own map). Its spread over
  the K + 1 references is one number, in the table and the summary: the whole
  map could shift by about this much.
- the **shape**: what is left per pixel once each map's constant is removed,
  where the inversion is not a linear function of the referenced phase (L1,
  conncomp censoring or missing interferograms at that pixel, the reference
  window's median, the coherence mask). ``reference_sensitivity.tif`` holds
  its standard deviation over the K + 1 maps; 0 where the map only shifts.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rasterio.windows import Window

from sarstack.io import (
    RasterWriter,
    StackReader,
    open_raster,
    process_blocks,
    read_band,
    read_grid,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__package__)

#: Columns of reference_sensitivity.csv, one row per reference (the run's own first).
SENSITIVITY_COLUMNS = ["role", "row", "col", "velocity_main", "shift", "units", "method"]


def shift_is_exact(
    *, method: str, weighting: str, conncomp: bool, reference_window: int,
    coherence_mask: float | None, n_used: str | Path, n_ifgs: int,
    block_shape: Sequence[int],
) -> str | None:
    """Why another reference only shifts the map by a constant (no re-inversion
    needed), or None when it may change its shape: an unweighted, uncensored
    L2 inversion referenced to one pixel, without a coherence mask, in which
    every pixel with a value used all ``n_ifgs`` interferograms
    (``n_ifgs_used.tif``). Then the inversion and the velocity fit are linear
    in the referenced phase and the series at the new point is subtracted
    from every pixel: the velocity moves by minus the new point's velocity."""
    if method != "L2" or weighting != "none" or conncomp or reference_window != 1:
        return None
    if coherence_mask is not None:
        return None
    grid = read_grid(n_used)
    partial = 0
    with StackReader([n_used], nan_nodata=False) as src:

        def count_block(win: Window) -> None:
            nonlocal partial
            n = src.read_one(0, win)
            partial += int(((n > 0) & (n < n_ifgs)).sum())

        process_blocks(grid.shape, block_shape, count_block)
    if partial:
        log.info("%d pixels miss some interferograms: the alternatives are inverted again",
                 partial)  # fmt: skip
        return None
    return "L2, unweighted, every pixel uses every interferogram, one-pixel reference"


def _shift(v0: Path, vk: Path) -> float:
    """Median over the scene of ``vk - v0`` (pixels with both); one band of
    each held at a time, float32 (as the far-field check holds the velocity)."""
    a, b = read_band(v0), read_band(vk)
    d = (b.astype(np.float64) - a)[np.isfinite(a) & np.isfinite(b)]
    return float(np.median(d)) if d.size else float("nan")


def sensitivity_files(
    own: str | Path,
    runs: Sequence[str | Path] | None,
    points: Sequence[tuple[int, int]],
    ref_rc: tuple[int, int],
    out: str | Path,
    *,
    block_shape: Sequence[int],
    exact: bool = False,
) -> pd.DataFrame:
    """Write ``out`` (the shape part: per pixel the standard deviation, ddof 1,
    over the K + 1 velocity maps each moved by its median difference to the
    run's own map ``own``) and return the table of the references.

    ``runs`` are the K alternative runs' velocity rasters (referenced to
    ``points``), or None with ``exact`` (:func:`shift_is_exact`): then each
    alternative map is ``own`` minus ``own`` at its point, the shift is that
    and the shape part is 0 wherever ``own`` has a value. Pixels where fewer
    than two maps have a value are nodata."""
    import pandas as pd

    own = Path(own)
    grid = read_grid(own)
    with open_raster(own) as ds:
        units = (ds.units[0] if ds.units and ds.units[0] else "") or ds.tags().get("units", "")
        tags = {k: v for k, v in ds.tags().items() if k in ("start_date", "end_date")}
    at = [float(read_band(own, Window(c, r, 1, 1))[0, 0]) for r, c in [ref_rc, *points]]
    if exact:
        shifts = [0.0] + [-v for v in at[1:]]
    else:
        assert runs is not None and len(runs) == len(points)
        shifts = [0.0] + [_shift(own, Path(p)) for p in runs]
    tags["quantity"] = (
        "reference sensitivity: standard deviation (ddof 1) over the run's own and "
        f"{len(points)} alternative reference points of the velocity, each map moved by its "
        "median difference to the run's own")
    with contextlib.ExitStack() as st:
        w = st.enter_context(RasterWriter(out, grid, units=units, tags=tags))
        readers = [] if exact else [st.enter_context(StackReader([Path(p)])) for p in runs or ()]
        base = st.enter_context(StackReader([own]))

        def block(win: Window) -> None:
            v0 = base.read_one(0, win).astype(np.float64)
            if exact:
                w.write(np.where(np.isfinite(v0), 0.0, np.nan).astype(np.float32), win)
                return
            maps = np.stack([v0] + [r.read_one(0, win).astype(np.float64) - s
                                    for r, s in zip(readers, shifts[1:], strict=True)])  # fmt: skip
            n = np.isfinite(maps).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"), warnings_off():
                sd = np.nanstd(maps, axis=0, ddof=1)
            w.write(np.where(n >= 2, sd, np.nan).astype(np.float32), win)

        process_blocks(grid.shape, block_shape, block)
    roles = ["reference"] + ["alternative"] * len(points)
    rows = [(role, r, c, v, s) for role, (r, c), v, s in zip(roles, [ref_rc, *points], at, shifts,
                                                              strict=True)]  # fmt: skip
    return pd.DataFrame(
        [{"role": role, "row": r, "col": c, "velocity_main": v, "shift": s, "units": units,
          "method": "exact shift" if exact else "re-inverted"} for role, r, c, v, s in rows],
        columns=SENSITIVITY_COLUMNS,
    )  # fmt: skip


@contextlib.contextmanager
def warnings_off():
    """nanstd's 'Degrees of freedom <= 0' on pixels with fewer than two maps."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def offset_spread(table: pd.DataFrame) -> float:
    """The offset part: standard deviation (ddof 1) of the K + 1 maps' shifts."""
    s = table["shift"].to_numpy(float)
    s = s[np.isfinite(s)]
    return float(np.std(s, ddof=1)) if s.size >= 2 else float("nan")

"""InSAR branch, file level: find and check the interferogram stack, build the
validity / quality / conncomp rasters for the reference point, and run the
block-wise inversion and velocity fit through :mod:`sarstack.io`.

The maths lives in :mod:`sarstack.timeseries`; this module only streams
rasters block by block, so memory follows ``block_shape``, not the scene.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rasterio.windows import Window

from sarstack import dates as sdates
from sarstack import timeseries as ts
from sarstack.errors import SarstackError
from sarstack.io import Grid, RasterWriter, iter_blocks, read_band, read_grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ifg:
    """One unwrapped interferogram and its optional companions."""

    path: Path
    reference: dt.date
    secondary: dt.date
    conncomp: Path | None = None
    correlation: Path | None = None

    @property
    def key(self) -> str:
        return f"{self.reference:%Y%m%d}_{self.secondary:%Y%m%d}"


def _glob(pattern: str) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())


def _by_pair(pattern: str, key: str, date_format: str) -> dict[tuple[dt.date, dt.date], Path]:
    out: dict[tuple[dt.date, dt.date], Path] = {}
    for p in _glob(pattern):
        d = sdates.parse_pair_dates(p, date_format)
        if d in out:
            raise SarstackError(f"{key}: {p} and {out[d]} are both {d[0]}_{d[1]}")
        out[d] = p
    return out


def select_ifgs(
    unwrapped: str,
    *,
    conncomp: str | None = None,
    correlation: str | None = None,
    date_format: str = "%Y%m%d",
) -> tuple[list[Ifg], list[dt.date], list[tuple[int, int]], Grid]:
    """Find the interferograms, date them, check grids and the network.

    Returns
    -------
    ifgs, dates, pairs, grid
        Interferograms sorted by (reference, secondary) date; the sorted
        unique dates; each ifg's ``(i, j)`` date indices; the common grid.

    Raises
    ------
    SarstackError
        No or a single file, undated or duplicate names, a companion raster
        missing for some pair, rasters on different grids, or a network
        that does not connect every date.
    """
    paths = _glob(unwrapped)
    if not paths:
        raise SarstackError(f"insar.unwrapped: no files match {unwrapped!r}")
    if len(paths) < 2:
        raise SarstackError(f"insar.unwrapped: only one interferogram ({paths[0]}); need at least 2")
    by_pair: dict[tuple[dt.date, dt.date], Path] = {}
    for p in paths:
        d1, d2 = sdates.parse_pair_dates(p, date_format)
        if d2 < d1:
            raise SarstackError(f"{p}: secondary date {d2} is before reference date {d1}")
        if (d1, d2) in by_pair:
            raise SarstackError(f"{p}: same pair {d1}_{d2} as {by_pair[(d1, d2)]}")
        by_pair[(d1, d2)] = p
    cc = _by_pair(conncomp, "insar.conncomp", date_format) if conncomp else {}
    cor = _by_pair(correlation, "insar.correlation", date_format) if correlation else {}
    ifgs = []
    for (d1, d2), p in sorted(by_pair.items()):
        if conncomp and (d1, d2) not in cc:
            raise SarstackError(f"insar.conncomp: no conncomp raster for {p.name}")
        if correlation and (d1, d2) not in cor:
            raise SarstackError(f"insar.correlation: no correlation raster for {p.name}")
        ifgs.append(Ifg(p, d1, d2, cc.get((d1, d2)), cor.get((d1, d2))))

    grid = read_grid(ifgs[0].path)
    for ifg in ifgs:
        for f in (ifg.path, ifg.conncomp, ifg.correlation):
            if f is not None and not read_grid(f).same_as(grid):
                raise SarstackError(
                    f"{f}: not on the grid of {ifgs[0].path.name} (all inputs must share one grid)"
                )
    dates = sorted({d for ifg in ifgs for d in (ifg.reference, ifg.secondary)})
    index = {d: k for k, d in enumerate(dates)}
    pairs = [(index[i.reference], index[i.secondary]) for i in ifgs]
    ts.check_network(pairs, len(dates), dates)
    return ifgs, dates, pairs, grid


def ifg_table(ifgs: Sequence[Ifg]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "reference_date": [i.reference.isoformat() for i in ifgs],
            "secondary_date": [i.secondary.isoformat() for i in ifgs],
            "path": [str(i.path) for i in ifgs],
            "conncomp": [str(i.conncomp) if i.conncomp else "" for i in ifgs],
            "correlation": [str(i.correlation) if i.correlation else "" for i in ifgs],
        }
    )


def read_ifg_table(path: str | Path) -> tuple[list[Ifg], list[dt.date], list[tuple[int, int]]]:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    ifgs = [
        Ifg(
            Path(r.path),
            dt.date.fromisoformat(r.reference_date),
            dt.date.fromisoformat(r.secondary_date),
            Path(r.conncomp) if r.conncomp else None,
            Path(r.correlation) if r.correlation else None,
        )
        for r in df.itertuples()
    ]
    dates = sorted({d for i in ifgs for d in (i.reference, i.secondary)})
    index = {d: k for k, d in enumerate(dates)}
    return ifgs, dates, [(index[i.reference], index[i.secondary]) for i in ifgs]


def _read_mask(mask: str | Path | None, window) -> np.ndarray | None:
    if mask is None:
        return None
    m = read_band(mask, window, nan_nodata=False)
    return np.isfinite(m) & (m != 0)


def reference_inputs(
    ifgs: Sequence[Ifg],
    grid: Grid,
    *,
    mask: str | Path | None = None,
    quality: str | Path | None = None,
    block_shape: Sequence[int] = (512, 512),
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """2-D rasters for the reference point, built block by block.

    Returns ``valid`` (finite and not nodata in every ifg, and not masked),
    ``quality`` (the given raster, else the mean correlation when
    correlation rasters exist, else None) and the conncomp intersection
    (non-zero in every ifg; None without conncomps).
    """
    if mask is not None and not read_grid(mask).same_as(grid):
        raise SarstackError(f"{mask}: insar.mask is not on the interferograms' grid")
    if quality is not None and not read_grid(quality).same_as(grid):
        raise SarstackError(f"{quality}: insar.quality is not on the interferograms' grid")
    valid = np.zeros(grid.shape, bool)
    have_cc = all(i.conncomp for i in ifgs)
    have_cor = all(i.correlation for i in ifgs)
    cc_all = np.zeros(grid.shape, bool) if have_cc else None
    qual = None
    if quality is not None:
        qual = np.full(grid.shape, np.nan, np.float32)
    elif have_cor:
        qual = np.full(grid.shape, np.nan, np.float32)
    for win in iter_blocks(grid.shape, block_shape):
        sl = (slice(win.row_off, win.row_off + win.height), slice(win.col_off, win.col_off + win.width))
        v = np.ones((win.height, win.width), bool)
        for i in ifgs:
            v &= np.isfinite(read_band(i.path, win))
        m = _read_mask(mask, win)
        if m is not None:
            v &= m
        valid[sl] = v
        if cc_all is not None:
            c = np.ones_like(v)
            for i in ifgs:
                c &= read_band(i.conncomp, win, nan_nodata=False) != 0
            cc_all[sl] = c
        if quality is not None:
            qual[sl] = read_band(quality, win)
        elif have_cor:
            acc = np.zeros(v.shape, np.float64)
            n = np.zeros(v.shape, np.int32)
            for i in ifgs:
                c = read_band(i.correlation, win)
                ok = np.isfinite(c)
                acc[ok] += c[ok]
                n += ok
            with np.errstate(invalid="ignore", divide="ignore"):
                qual[sl] = np.where(n > 0, acc / n, np.nan)
    return valid, qual, cc_all


def _date_tags(first: dt.date, last: dt.date, **extra: str) -> dict[str, str]:
    return {"start_date": first.isoformat(), "end_date": last.isoformat(), **extra}


def invert_files(
    ifgs: Sequence[Ifg],
    dates: Sequence[dt.date],
    pairs: Sequence[tuple[int, int]],
    ref_rc: tuple[int, int],
    out_dir: str | Path,
    *,
    method: str = "L1",
    wavelength: float | None = None,
    mask: str | Path | None = None,
    block_shape: Sequence[int] = (256, 256),
    l1_tolerance: float = 1e-4,
    l1_max_iterations: int = 500,
) -> pd.DataFrame:
    """Invert the stack block by block and write displacement and residual rasters.

    Interferograms are referenced to ``ref_rc`` first (each ifg minus its
    value there), then inverted (L1 or L2; a single-reference network is
    only re-ordered). Writes ``timeseries/{first}_{date}.tif`` for each later
    date (displacement, positive towards the radar, radians or metres),
    ``residuals/{ref}_{sec}.tif`` per ifg (radians) and ``residual_sum.tif``
    (sum of |residual| over ifgs). Returns the time-series index table.
    """
    out_dir = Path(out_dir)
    grid = read_grid(ifgs[0].path)
    r, c = ref_rc
    ref_vals = np.array([read_band(i.path, Window(c, r, 1, 1))[0, 0] for i in ifgs], np.float64)
    if not np.all(np.isfinite(ref_vals)):
        bad = ifgs[int(np.flatnonzero(~np.isfinite(ref_vals))[0])].path
        raise SarstackError(f"reference point [{r}, {c}] is nodata in {bad}")
    a = sdates.incidence_matrix(pairs, len(dates))
    single = ts.is_single_reference(pairs, len(dates))
    first = dates[0]
    _, units = ts.phase_to_displacement(np.zeros(1), wavelength)
    log.info("%d ifgs over %d dates, %s, reference pixel [%d, %d], method %s%s",
             len(ifgs), len(dates), "single-reference network" if single else "redundant network",
             r, c, method, " (not needed)" if single else "")

    ts_paths = [out_dir / "timeseries" / f"{first:%Y%m%d}_{d:%Y%m%d}.tif" for d in dates[1:]]
    res_paths = [out_dir / "residuals" / f"{i.key}.tif" for i in ifgs]
    tags_common = {"reference_point": f"{r},{c}", "method": "single-reference" if single else method}
    with contextlib.ExitStack() as stack:
        ts_w = [
            stack.enter_context(RasterWriter(p, grid, units=units, tags=_date_tags(
                first, d, **tags_common, quantity="line-of-sight displacement, positive towards the radar")))
            for p, d in zip(ts_paths, dates[1:], strict=True)
        ]
        res_w = [
            stack.enter_context(RasterWriter(p, grid, units="radians", tags=_date_tags(
                i.reference, i.secondary, **tags_common, quantity="network residual (ifg - model)")))
            for p, i in zip(res_paths, ifgs, strict=True)
        ]
        sum_w = stack.enter_context(RasterWriter(out_dir / "residual_sum.tif", grid, units="radians",
                                                 tags=_date_tags(first, dates[-1], **tags_common)))
        blocks = list(iter_blocks(grid.shape, block_shape))
        max_iter_used = 0
        for k, win in enumerate(blocks):
            phase = np.stack([read_band(i.path, win) for i in ifgs]).astype(np.float64)
            phase -= ref_vals[:, None, None]
            m = _read_mask(mask, win)
            if m is not None:
                phase[:, ~m] = np.nan
            flat = phase.reshape(len(ifgs), -1)
            if single:
                x = ts.single_reference_series(pairs, flat)
                res = np.where(np.isnan(x).any(axis=0), np.nan, 0.0) * np.ones_like(flat)
            else:
                kw = {"tol": l1_tolerance, "max_iter": l1_max_iterations} if method == "L1" else {}
                x, res, n_it = ts.invert(a, flat, method, **kw)
                max_iter_used = max(max_iter_used, n_it)
            disp, _ = ts.phase_to_displacement(x, wavelength)
            shape = (int(win.height), int(win.width))
            for w, layer in zip(ts_w, disp, strict=True):
                w.write(layer.reshape(shape).astype(np.float32), win)
            for w, layer in zip(res_w, res, strict=True):
                w.write(layer.reshape(shape).astype(np.float32), win)
            sum_w.write(np.abs(res).sum(axis=0).reshape(shape).astype(np.float32), win)
            log.info("block %d/%d done%s", k + 1, len(blocks),
                     f" (L1 iterations so far <= {max_iter_used})" if method == "L1" and not single else "")
    return pd.DataFrame({"date": [d.isoformat() for d in dates[1:]],
                         "path": [str(p) for p in ts_paths], "units": units})


def velocity_files(
    index: pd.DataFrame,
    first: dt.date,
    out_velocity: str | Path,
    out_std: str | Path,
    *,
    block_shape: Sequence[int] = (512, 512),
) -> str:
    """Per-pixel linear velocity (units per year, 365.25 d) of the time series,
    the first date's zero included; writes velocity and its standard error."""
    dates = [first] + [dt.date.fromisoformat(d) for d in index["date"]]
    t = sdates.years_since(dates)
    paths = list(index["path"])
    units = str(index["units"].iloc[0])
    grid = read_grid(paths[0])
    vunits = f"{units}/year"
    tags = _date_tags(dates[0], dates[-1], quantity="linear LOS velocity, positive towards the radar")
    with RasterWriter(out_velocity, grid, units=vunits, tags=tags) as wv, RasterWriter(
        out_std, grid, units=vunits, tags={**tags, "quantity": "standard error of the velocity"}
    ) as ws:
        for win in iter_blocks(grid.shape, block_shape):
            y = np.stack([np.zeros((win.height, win.width))] + [read_band(p, win) for p in paths])
            shape = y.shape[1:]
            v, s = ts.velocity(y.reshape(len(dates), -1).astype(np.float64), t)[:2]
            wv.write(np.asarray(v).reshape(shape).astype(np.float32), win)
            ws.write(np.asarray(s).reshape(shape).astype(np.float32), win)
    return vunits

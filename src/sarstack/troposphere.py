"""Troposphere correction from external delay rasters (``insar.troposphere``).

The user brings one delay raster per acquisition date (GACOS, ERA5-derived,
...), its date in its name (``insar.date_format``, exactly one date per name).
:func:`write_delays` (stage ``insar_troposphere``) turns each date's delay into
a line-of-sight phase in radians on the interferograms' grid:

- a zenith delay is mapped to the line of sight by ``1 / cos(incidence)``
  (an incidence raster in degrees from the vertical, or a constant angle);
- metres become radians by ``4 pi / wavelength``;
- a raster on another grid is resampled (bilinear, GDAL's warper, window by
  window; same-grid rasters are read as they are).

**Sign.** sarstack's displacement is ``-phase * wavelength / (4 pi)``,
positive towards the radar (:func:`sarstack.refpoint.phase_to_displacement`),
so the phase grows with the range. A delay lengthens the apparent range: a
delay of ``d`` metres is ``+4 pi d / wavelength`` radians of phase, and an
interferogram ``{ref}_{sec}`` (``phase_sec - phase_ref``) holds
``phase(d_sec) - phase(d_ref)``. That difference is what the inversion
subtracts (:class:`IfgDelays`): a stack with known delays added, corrected
with the same delays, inverts to the clean stack's time series.

The per-date rasters are float64: an absolute zenith delay of 2.3 m is about
520 rad at C band, where float32 keeps only 3e-5 rad.

A pixel without a delay (outside the delay raster, its nodata) leaves the
corrected phase without a value there: that ifg is then missing at that pixel,
as with any other nodata.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from sarstack import dates as sdates
from sarstack.blocks import RowMajorSums
from sarstack.errors import SarstackError
from sarstack.io import (
    Grid,
    RasterWriter,
    StackReader,
    open_raster,
    process_blocks,
    read_grid,
    staging_prefix,
)

if TYPE_CHECKING:
    import pandas as pd

    from sarstack.insar import Ifg

log = logging.getLogger(__name__)

#: The config section.
KEY = "insar.troposphere"
#: ``insar.troposphere.kind`` and ``units`` values.
KINDS = ("zenith", "los")
UNITS = ("m", "rad")
#: Columns of ``troposphere.csv`` (one row per ifg).
COLUMNS = ("key", "reference_date", "secondary_date", "n_pixels", "no_delay_px",
           "correction_mean_rad", "correction_std_rad", "phase_std_before_rad",
           "phase_std_after_rad")  # fmt: skip


def check_options(
    *,
    kind: str,
    units: str,
    incidence: str | Path | None,
    incidence_deg: float | None,
    wavelength: float | None,
    prefix: str = "",
) -> None:
    """A one-line error naming the key when the options do not fit together."""
    if kind not in KINDS:
        raise SarstackError(f"{prefix}{KEY}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    if units not in UNITS:
        raise SarstackError(f"{prefix}{KEY}.units: {units!r} is not one of {', '.join(UNITS)}")
    if units == "m" and wavelength is None:
        raise SarstackError(
            f"{prefix}{KEY}.units: m needs insar.wavelength (metres of delay to radians)"
        )
    if kind == "zenith":
        if incidence is None and incidence_deg is None:
            raise SarstackError(
                f"{prefix}{KEY}.incidence: kind zenith needs an incidence raster or "
                f"{KEY}.incidence_deg (zenith to line of sight)"
            )
        if incidence is not None and incidence_deg is not None:
            raise SarstackError(f"{prefix}{KEY}.incidence and {KEY}.incidence_deg are both set; give one")
    if incidence_deg is not None and not 0 <= incidence_deg < 90:
        raise SarstackError(f"{prefix}{KEY}.incidence_deg: {incidence_deg} is not in [0, 90) degrees")


def phase_per_unit(units: str, wavelength: float | None) -> float:
    """Radians of phase per unit of delay: ``4 pi / wavelength`` for metres, 1 for radians."""
    if units == "rad":
        return 1.0
    if wavelength is None or not wavelength > 0:
        raise SarstackError(f"{KEY}.units: m needs a positive insar.wavelength, got {wavelength}")
    return 4.0 * np.pi / float(wavelength)


def match_delays(
    pattern: str, dates: Sequence[dt.date], date_format: str
) -> dict[dt.date, Path]:
    """``{date: raster}`` for each of ``dates``: the glob's files dated by their
    names (one date each). An error names the dates without a raster (all of
    them), a name with no or several dates, and two rasters of one date."""
    from sarstack import storage

    files = [Path(p) for p in storage.glob_files(pattern)]
    if not files:
        raise SarstackError(f"{KEY}.delays: no files match {pattern!r}")
    found: dict[dt.date, Path] = {}
    for p in files:
        ds = sdates.find_dates(p, date_format)
        if len(ds) != 1:
            raise SarstackError(
                f"{p}: {KEY}.delays needs one date ({date_format}) in each file name, "
                f"found {len(ds)}"
            )
        if ds[0] in found:
            raise SarstackError(f"{p}: same date {ds[0].isoformat()} as {found[ds[0]]} ({KEY}.delays)")
        found[ds[0]] = p
    missing = [d for d in dates if d not in found]
    if missing:
        raise SarstackError(
            f"{KEY}.delays: no delay raster for {len(missing)} of the {len(dates)} dates: "
            + ", ".join(d.isoformat() for d in missing) + f" (glob {pattern!r})"
        )
    extra = len(found) - len(dates)
    if extra:
        log.info("%d delay rasters of dates without an interferogram are not used", extra)
    return {d: found[d] for d in dates}


class OnGrid:
    """Band 1 of a raster read window by window on ``grid``: as it is when its
    grid is ``grid``, else resampled by GDAL's warper (bilinear). float64,
    nodata and pixels outside the raster NaN."""

    def __init__(self, path: str | Path, grid: Grid, key: str) -> None:
        self.path, self.grid, self.key = Path(path), grid, key
        self.resampled = False
        self._stack = contextlib.ExitStack()
        self._src: Any = None

    def __enter__(self) -> OnGrid:
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        with contextlib.ExitStack() as st:
            ds = st.enter_context(open_raster(self.path))
            if ds.count != 1:
                raise SarstackError(f"{self.path}: {ds.count} bands; {self.key} reads single-band rasters")
            if Grid(ds.crs, ds.transform, ds.width, ds.height).same_as(self.grid):
                self._src = ds
            else:
                if ds.crs is None or self.grid.crs is None:
                    raise SarstackError(
                        f"{self.path}: not on the interferograms' grid and without a CRS to "
                        f"resample it with ({self.key})"
                    )
                src_nodata = ds.nodata
                if src_nodata is None and np.issubdtype(np.dtype(ds.dtypes[0]), np.floating):
                    src_nodata = float("nan")
                self._src = st.enter_context(WarpedVRT(
                    ds, crs=self.grid.crs, transform=self.grid.transform, width=self.grid.width,
                    height=self.grid.height, resampling=Resampling.bilinear, src_nodata=src_nodata,
                    nodata=float("nan"), dtype="float64"))  # fmt: skip
                self.resampled = True
            self._stack = st.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read(self, win: Window) -> np.ndarray:
        try:
            data = self._src.read(1, window=win).astype(np.float64)
        except Exception as e:  # noqa: BLE001 - rasterio raises several types on bad data
            raise SarstackError(f"{self.path}: cannot read ({e}; {self.key})") from None
        nodata = self._src.nodata
        if nodata is not None and not np.isnan(nodata):
            data[data == nodata] = np.nan
        return data


def _los_factor(incidence: OnGrid | None, incidence_deg: float | None, kind: str,
                win: Window) -> np.ndarray | float:  # fmt: skip
    """``1 / cos(incidence)`` over ``win`` for zenith delays (1 for LOS ones)."""
    if kind == "los":
        return 1.0
    if incidence is None:
        return 1.0 / np.cos(np.deg2rad(float(incidence_deg)))  # type: ignore[arg-type]
    inc = incidence.read(win)
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(inc) & ((inc < 0) | (inc >= 90))
    if bad.any():
        raise SarstackError(
            f"{incidence.path}: incidence {float(inc[bad][0]):.6g} is not in [0, 90) degrees "
            f"from the vertical ({KEY}.incidence)"
        )
    return 1.0 / np.cos(np.deg2rad(inc))


def write_delays(
    ifgs: Sequence[Ifg],
    dates: Sequence[dt.date],
    pairs: Sequence[tuple[int, int]],
    pattern: str,
    out_dir: str | Path,
    *,
    kind: str,
    units: str,
    incidence: str | Path | None,
    incidence_deg: float | None,
    wavelength: float | None,
    date_format: str,
    block_shape: Sequence[int],
) -> pd.DataFrame:
    """Write each date's line-of-sight delay (radians, the ifgs' grid) as
    ``out_dir/{YYYYMMDD}.tif`` and return the per-ifg table (:data:`COLUMNS`).

    ``out_dir`` is replaced whole once every raster is written: on an error
    nothing of this run is left there. The table, per ifg, over the pixels
    where it and its correction have values: their count, the correction's
    mean and standard deviation (the mean goes with the reference point; the
    spread is what the correction changes), and the phase's standard
    deviation before and after; ``no_delay_px`` counts the ifg's pixels that
    lose their value for want of a delay.
    """
    check_options(kind=kind, units=units, incidence=incidence, incidence_deg=incidence_deg,
                  wavelength=wavelength)  # fmt: skip
    scale = phase_per_unit(units, wavelength)
    files = match_delays(pattern, dates, date_format)
    grid = read_grid(ifgs[0].path)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    prefix = staging_prefix(out_dir)
    for stale in out_dir.parent.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir.parent))
    try:
        inc: Any = (OnGrid(incidence, grid, f"{KEY}.incidence") if kind == "zenith" and incidence
                    else contextlib.nullcontext())  # fmt: skip
        if kind == "los" and (incidence is not None or incidence_deg is not None):
            log.warning("%s.kind: los, so the incidence is not used", KEY)
        resampled = 0
        with inc as inc_grid:
            for d in dates:
                with OnGrid(files[d], grid, f"{KEY}.delays") as src, RasterWriter(
                    stage / f"{d:%Y%m%d}.tif", grid, dtype="float64", units="radians",
                    tags={"date": d.isoformat(), "quantity": "line-of-sight delay phase",
                          "source": files[d].name, "kind": kind, "source_units": units},
                ) as w:  # fmt: skip

                    def convert(win: Window, src: OnGrid = src) -> np.ndarray:
                        los = src.read(win) * _los_factor(inc_grid, incidence_deg, kind, win)
                        return los * scale

                    process_blocks(grid.shape, block_shape, convert, writers=[w])
                    resampled += src.resampled
        log.info("%d dates: %s delays in %s to line-of-sight radians%s", len(dates), kind, units,
                 f", {resampled} resampled to the interferograms' grid (bilinear)" if resampled
                 else "")  # fmt: skip
        table = _correction_table(ifgs, pairs, [stage / f"{d:%Y%m%d}.tif" for d in dates],
                                  block_shape)  # fmt: skip
        _replace_dir(stage, out_dir)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return table


def _replace_dir(new: Path, out_dir: Path) -> None:
    """Put folder ``new`` at ``out_dir`` (the old one removed after the rename)."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=staging_prefix(out_dir), dir=out_dir.parent))
        out_dir.rename(old / "old")
    new.rename(out_dir)
    if old is not None:
        shutil.rmtree(old)


def _correction_table(
    ifgs: Sequence[Ifg], pairs: Sequence[tuple[int, int]], date_files: Sequence[Path],
    block_shape: Sequence[int],
) -> pd.DataFrame:  # fmt: skip
    """The per-ifg sums of :func:`write_delays`' table, block by block."""
    import pandas as pd

    n = len(ifgs)
    ri = np.array([p[0] for p in pairs])
    si = np.array([p[1] for p in pairs])
    count = np.zeros(n, np.int64)
    no_delay = np.zeros(n, np.int64)
    sums = np.zeros((3, 2, n))  # (correction, phase, corrected) x (sum, sum of squares)
    grid = read_grid(ifgs[0].path)
    with StackReader([i.path for i in ifgs]) as phase, StackReader(date_files) as delays:

        # Each block's sums, added in row-major block order (the blocks come
        # band by band of the ifgs' tiles): the totals of a row-major loop.
        ordered = RowMajorSums(grid.shape, block_shape, sums)

        def add(win: Window) -> None:
            z = phase.read(win).astype(np.float64).reshape(n, -1)
            d = delays.read(win).astype(np.float64).reshape(len(date_files), -1)
            c = d[si] - d[ri]
            have = np.isfinite(z)
            ok = have & np.isfinite(c)
            count[:] += ok.sum(axis=1)
            no_delay[:] += (have & ~ok).sum(axis=1)
            part = np.zeros_like(sums)
            for k, v in enumerate((c, z, z - c)):
                v = np.where(ok, v, 0.0)
                part[k, 0] = v.sum(axis=1)
                part[k, 1] = np.square(v).sum(axis=1)
            ordered.add(win, part)

        process_blocks(grid.shape, block_shape, add, band_rows=phase.tile_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums[:, 0] / count
        std = np.sqrt(np.maximum(sums[:, 1] / count - mean**2, 0.0))
    return pd.DataFrame({
        "key": [i.key for i in ifgs], "reference_date": [i.reference.isoformat() for i in ifgs],
        "secondary_date": [i.secondary.isoformat() for i in ifgs], "n_pixels": count,
        "no_delay_px": no_delay, "correction_mean_rad": mean[0], "correction_std_rad": std[0],
        "phase_std_before_rad": std[1], "phase_std_after_rad": std[2],
    }, columns=list(COLUMNS))  # fmt: skip


class IfgDelays:
    """Each ifg's correction ``d_sec - d_ref`` (radians, float64), read window by
    window from the per-date rasters of :func:`write_delays` in ``folder``.

    A date without its raster, or a raster off the interferograms' grid, is an
    error naming it (rerun insar_troposphere). Used as a context manager (the
    rasters held open) or not (each read opens them).
    """

    def __init__(self, folder: str | Path, dates: Sequence[dt.date],
                 pairs: Sequence[tuple[int, int]], grid: Grid) -> None:  # fmt: skip
        folder = Path(folder)
        self.paths = [folder / f"{d:%Y%m%d}.tif" for d in dates]
        missing = [d.isoformat() for d, p in zip(dates, self.paths, strict=True) if not p.exists()]
        if missing:
            raise SarstackError(f"{folder}: no delay raster for {', '.join(missing)} "
                                "(rerun insar_troposphere)")  # fmt: skip
        for p in self.paths:
            if not read_grid(p, single_band=True).same_as(grid):
                raise SarstackError(f"{p}: not on the interferograms' grid (rerun insar_troposphere)")
        self.ref = np.array([i for i, _ in pairs], np.intp)
        self.sec = np.array([j for _, j in pairs], np.intp)
        self._reader: StackReader | None = None

    def __enter__(self) -> IfgDelays:
        self._reader = StackReader(self.paths).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.__exit__(*exc)
        self._reader = None

    def read(self, win: Window) -> np.ndarray:
        """``(n_ifg, rows, cols)``: ``d_sec - d_ref`` of each ifg over ``win``."""
        if self._reader is None:
            with StackReader(self.paths) as r:
                d = r.read(win).astype(np.float64)
        else:
            d = self._reader.read(win).astype(np.float64)
        return d[self.sec] - d[self.ref]

    def source(self, k: int) -> str:
        """The two rasters of ifg ``k``, for error messages."""
        return f"{self.paths[self.ref[k]]} / {self.paths[self.sec[k]].name}"

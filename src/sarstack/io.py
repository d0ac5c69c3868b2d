"""File I/O, kept apart from the kernels.

The block engine (:func:`process_blocks`, from :mod:`sarstack.blocks`), the
stack reader (:class:`StackReader`), one atomic raster writer
(:class:`RasterWriter` / :func:`write_raster`) and, from :mod:`sarstack.atomic`,
one atomic text/CSV writer (:func:`atomic_output`). Every output goes to a temporary file in the target
folder first and is renamed into place only when complete, so a failed job
never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

# The block engine lives in sarstack.blocks; io re-exports it, so a stage
# imports its readers, writers and loop from one place.
from sarstack.atomic import LOW_SPACE_BYTES as LOW_SPACE_BYTES
from sarstack.atomic import STAGING_MARKER as STAGING_MARKER
from sarstack.atomic import atomic_output as atomic_output
from sarstack.atomic import free_bytes as free_bytes
from sarstack.atomic import read_rows as read_rows
from sarstack.atomic import staging_prefix as staging_prefix
from sarstack.atomic import write_csv as write_csv
from sarstack.atomic import write_json as write_json
from sarstack.atomic import write_rows as write_rows
from sarstack.atomic import write_text as write_text
from sarstack.blocks import count_blocks as count_blocks
from sarstack.blocks import iter_blocks as iter_blocks
from sarstack.blocks import process_blocks as process_blocks
from sarstack.blocks import read_ahead as read_ahead
from sarstack.errors import SarstackError
from sarstack.stagefiles import read_json as read_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and size in pixels."""

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Pixel width and height in CRS units (both positive)."""
        t = self.transform
        return (float(np.hypot(t.a, t.d)), float(np.hypot(t.b, t.e)))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) for a north-up grid."""
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))

    def same_as(self, other: Grid, tol: float = 1e-6) -> bool:
        return (
            self.shape == other.shape
            and self.crs == other.crs
            and self.transform.almost_equals(other.transform, precision=tol)
        )


def open_raster(path: str | Path) -> rasterio.io.DatasetReader:
    """Open a raster for reading, with a one-line error that names the file."""
    from sarstack import storage

    p = Path(path)
    remote = storage.is_s3(path)  # /vsis3/...: GDAL looks, there is no local file
    if not remote and not p.exists():
        raise SarstackError(f"{p}: no such file")
    try:
        return rasterio.open(str(path) if remote else p)
    except rasterio.errors.RasterioIOError as e:
        msg = str(e).splitlines()[0] if str(e) else "unreadable"
        raise SarstackError(f"{p}: not a readable raster ({msg})") from None


def read_grid(path: str | Path, *, single_band: bool = False) -> Grid:
    """The grid of a raster; ``single_band`` for inputs, which must have one band.

    Raises
    ------
    SarstackError
        Unreadable, or ``single_band`` and more than one band (which band was
        meant cannot be guessed: an ISCE ``.unw`` holds amplitude in band 1).
    """
    from sarstack import openpool

    ds, key = openpool.acquire(path)  # held open for a chain's next stage
    try:
        if single_band and ds.count > 1:
            raise SarstackError(
                f"{path}: {ds.count} bands; sarstack reads single-band rasters "
                "(extract the one you mean, e.g. gdal_translate -b 2)"
            )
        return Grid(ds.crs, ds.transform, ds.width, ds.height)
    finally:
        openpool.release(ds, key)


def lonlat_to_rowcol(grid: Grid, lon: float, lat: float, key: str = "lonlat") -> tuple[int, int]:
    """The pixel ``(row, col)`` of ``grid`` that contains ``lon, lat`` (degrees, WGS84).

    Raises
    ------
    SarstackError
        Naming ``key``: the grid has no CRS, the point is not a longitude /
        latitude, or it falls outside the grid.
    """
    from rasterio.warp import transform as warp

    if grid.crs is None:
        raise SarstackError(f"{key}: the rasters have no CRS to place [lon, lat] with")
    if not (-180.0 <= lon <= 360.0 and -90.0 <= lat <= 90.0):
        raise SarstackError(f"{key}: [{lon}, {lat}] is not [longitude, latitude] in degrees")
    xs, ys = warp("EPSG:4326", grid.crs, [lon], [lat])
    col, row = ~grid.transform @ (xs[0], ys[0])
    r, c = int(np.floor(row)), int(np.floor(col))
    if not (np.isfinite(row) and np.isfinite(col) and 0 <= r < grid.height and 0 <= c < grid.width):
        w, s, e, n = grid.bounds
        raise SarstackError(
            f"{key}: [{lon}, {lat}] is outside the rasters (bounds {w:.6g}, {s:.6g}, {e:.6g}, "
            f"{n:.6g} in {grid.crs.to_string()})"
        )
    return r, c


def read_band(
    path: str | Path, window: Window | None = None, band: int = 1, nan_nodata: bool = True
) -> np.ndarray:
    """Read one band as float32 (float64 stays float64), nodata turned to NaN.

    Opens the file for this one read; loops over blocks of a stack use
    :class:`StackReader`, which keeps the files open.
    """
    with open_raster(path) as ds:
        return _read_window(ds, path, window, band, nan_nodata)


def _read_window(
    ds: rasterio.io.DatasetReader,
    path: str | Path,
    window: Window | None,
    band: int,
    nan_nodata: bool,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The band's window as float32 (float64 stays float64), nodata as NaN;
    with ``out`` (the file's float type), read into it."""
    try:
        data = ds.read(band, window=window, boundless=False, out=out)
    except Exception as e:  # noqa: BLE001 - rasterio raises several types on bad data
        raise SarstackError(f"{path}: cannot read band {band} ({e})") from None
    if data.dtype != np.float64:
        data = data.astype(np.float32, copy=False)
    nodata = ds.nodata
    if nan_nodata and nodata is not None and not np.isnan(nodata):
        data[data == nodata] = np.nan
    return data


def band_cache_mb(path: str | Path, n_files: int, block_cols: int) -> int:
    """MB of GDAL block cache that reading ``n_files`` rasters tiled like
    ``path`` block by block, band by band of their tiles (:func:`iter_blocks`
    with ``band_rows``), keeps every tile decompressed once: the tiles under
    one column of blocks of every file (the writers' tiles not included)."""
    with open_raster(path) as ds:
        th, tw = (int(v) for v in ds.block_shapes[0])
        itemsize = np.dtype(ds.dtypes[0]).itemsize
    bc = int(block_cols)
    tiles = -(-bc // tw) + (1 if bc % tw else 0)
    return int(np.ceil(int(n_files) * tiles * th * tw * itemsize / 2**20))


class StackReader:
    """A stack of single-band rasters opened once, read window by window.

    ``read_band`` opens its file on every call; a block loop over a stack of
    ``n`` files would open ``n`` files per block. This holds them open for the
    life of the ``with`` block (one descriptor per file) and reads the same
    window of each into one array, nodata turned to NaN as :func:`read_band`.

    Parameters
    ----------
    paths
        The rasters (band 1 of each is read).
    nan_nodata
        Turn each file's nodata value into NaN (floats only; False for labels).
    threads
        Rasters read side by side by :meth:`read` with ``dtype`` or ``out``
        (each file by one thread: a GDAL dataset is never read by two at
        once; decompression lets go of the GIL). The same values.

    Examples
    --------
    >>> with StackReader(paths) as stack:                       # doctest: +SKIP
    ...     for win in iter_blocks(stack.shape, (512, 512)):
    ...         block = stack.read(win)   # (n, rows, cols) float32
    """

    def __init__(
        self, paths: Sequence[str | Path], *, nan_nodata: bool = True, threads: int = 1
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.nan_nodata = nan_nodata
        self.threads = max(1, min(int(threads), len(self.paths)))
        self._stack: contextlib.ExitStack | None = None
        self._ds: list[rasterio.io.DatasetReader] = []
        self._pool: Any = None

    def __enter__(self) -> StackReader:
        from sarstack import openpool

        self._stack = contextlib.ExitStack()
        try:
            # Held open for a chain's next stage (sarstack.openpool), else closed on exit.
            self._ds = []
            for p in self.paths:
                ds, key = openpool.acquire(p)
                self._stack.callback(openpool.release, ds, key)
                self._ds.append(ds)
            if self.threads > 1:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = self._stack.enter_context(
                    ThreadPoolExecutor(self.threads - 1, thread_name_prefix="stack-read"))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stack is not None:
            self._stack.close()
        self._ds = []

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the first raster."""
        return (self._ds[0].height, self._ds[0].width)

    @property
    def tile_rows(self) -> int:
        """Rows of the first raster's tiles (its blocks; 1 for a raster in
        scan lines): the ``band_rows`` of :func:`iter_blocks` for a loop over
        this stack's blocks."""
        return int(self._ds[0].block_shapes[0][0])

    @property
    def any_float64(self) -> bool:
        """Whether a raster stores float64 (read as float64; the rest as float32)."""
        return any(np.dtype(ds.dtypes[0]) == np.float64 for ds in self._ds)

    def read_one(self, k: int, window: Window | None = None) -> np.ndarray:
        """Band 1 of raster ``k`` in ``window`` (float32, float64 stays float64)."""
        return _read_window(self._ds[k], self.paths[k], window, 1, self.nan_nodata)

    def _read_into(self, k: int, window: Window | None, dest: np.ndarray) -> None:
        """:meth:`read_one` into ``dest``: read there by GDAL when ``dest`` has
        the file's float type (no array allocated and copied again; the same
        values, nodata turned to NaN in place), else converted into it."""
        ds = self._ds[k]
        if dest.dtype != np.dtype(ds.dtypes[0]) or dest.dtype.kind != "f":
            dest[...] = self.read_one(k, window)
        else:
            _read_window(ds, self.paths[k], window, 1, self.nan_nodata, out=dest)

    def read(
        self, window: Window | None = None, dtype: DTypeLike | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:  # fmt: skip
        """``(n, rows, cols)``: the window of every raster, in order; with
        ``dtype``, in that type, each raster converted as it is put in place
        (no float32 stack copied again: the same values as ``read(w).astype(dtype)``);
        with ``out`` (``(n, rows, cols)``), into it, in its type."""
        if dtype is None and out is None:
            return np.stack([self.read_one(k, window) for k in range(len(self._ds))])
        first = self.read_one(0, window)
        if out is None:
            out = np.empty((len(self._ds), *first.shape), dtype)
        out[0] = first
        filled = out

        def fill(ks: range) -> None:
            for k in ks:
                self._read_into(k, window, filled[k])

        if self._pool is None:
            fill(range(1, len(self._ds)))
            return out
        # Contiguous shares of the files: this thread takes the first.
        n = len(self._ds) - 1
        t = min(self.threads, n)
        cuts = [1 + n * i // t for i in range(t + 1)]
        futures = [self._pool.submit(fill, range(cuts[i], cuts[i + 1])) for i in range(1, t)]
        fill(range(cuts[0], cuts[1]))
        for f in futures:
            f.result()
        return out


def file_fingerprint(*paths: str | Path | None) -> str:
    """``size:mtime_ns`` of each file (``size:ETag`` in S3, ``-`` for a None),
    space-separated (:func:`sarstack.storage.fingerprint`).

    Cheap (one ``stat`` per file, nothing read) and changed by any rewrite of
    a file, even one that keeps its name and size. The select stages write it
    into their tables beside each input's path, so a table's content changes
    whenever an input changes in place, and every stage that reads the table
    (and through it the raster) is rerun. Raises naming a missing file.
    """
    from sarstack import storage

    return " ".join("-" if p is None or p == "" else storage.fingerprint(p) for p in paths)


#: Largest uncompressed raster (bytes) whose COG staging copy RasterWriter
#: keeps in memory (/vsimem/) instead of on disk: a 2048² float32 date is 16 MB;
#: memory still follows a fixed bound, not the scene.
STAGE_IN_MEMORY_BYTES = 64 << 20


class RasterWriter:
    """Block-wise, atomic Cloud-Optimized GeoTIFF writer.

    Blocks are written to a tiled temporary GeoTIFF; on a clean exit it is
    copied to a COG (with overviews) and renamed to ``path``. On error
    nothing is left at ``path``.

    Parameters
    ----------
    path
        Destination ``.tif``.
    grid
        Output grid.
    count, dtype, nodata
        Band count, data type and nodata value (NaN allowed for floats).
    units
        Units string for every band (``"meters"``, ``"radians"``, ``"dB"``...).
    tags
        Dataset-level metadata, e.g. ``{"start_date": "2020-01-01"}``.
    descriptions
        Optional per-band descriptions.
    overviews
        Build overviews in the COG (default true).
    compress
        Compress the COG's tiles (ZSTD level 1, default true); False writes
        them as they are (float32 displacement compresses 1.05-1.2x, and every
        reader then decompresses it).
    cog
        False writes the tiled, uncompressed GeoTIFF itself (an intermediate
        that is read once, e.g. one strip of a scattered stage): no COG copy.
    """

    def __init__(
        self,
        path: str | Path,
        grid: Grid,
        *,
        count: int = 1,
        dtype: str | np.dtype = "float32",
        nodata: float | None = float("nan"),
        units: str | None = None,
        tags: Mapping[str, Any] | None = None,
        descriptions: Sequence[str] | None = None,
        overviews: bool = True,
        compress: bool = True,
        cog: bool = True,
    ) -> None:
        self.path = Path(path)
        self.cog = cog
        self.compress = compress
        self.grid = grid
        self.count = count
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.units = units
        self.tags = {k: str(v) for k, v in (tags or {}).items()}
        self.descriptions = descriptions
        self.overviews = overviews
        self._stack: contextlib.ExitStack | None = None
        self._ds: rasterio.io.DatasetWriter | None = None

    def __enter__(self) -> RasterWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stack = contextlib.ExitStack()
        self._final_tmp = self._stack.enter_context(atomic_output(self.path, suffix=".tif"))
        self._work = self._final_tmp.with_name(self._final_tmp.name + ".work.tif")
        # The COG's staging copy in memory when small (GDAL's /vsimem/), else
        # beside the output: the same COG, without writing and reading back
        # the staging file (the 2048² x 60-date gather 3.7 -> 3.0 s).
        self._mem: str | None = None
        if self.cog and self._raw_bytes() <= STAGE_IN_MEMORY_BYTES:
            import uuid

            self._mem = f"/vsimem/sarstack-{uuid.uuid4().hex}.tif"
        bx = 256 if self.grid.width >= 256 else 16 * max(1, self.grid.width // 16) or 16
        by = 256 if self.grid.height >= 256 else 16 * max(1, self.grid.height // 16) or 16
        profile = dict(
            driver="GTiff",
            width=self.grid.width,
            height=self.grid.height,
            count=self.count,
            dtype=self.dtype.name,
            crs=self.grid.crs,
            transform=self.grid.transform,
            nodata=self.nodata,
            tiled=True,
            blockxsize=max(16, bx),
            blockysize=max(16, by),
            BIGTIFF="IF_SAFER",  # uncompressed: it is only the COG's staging copy
            # One band's tiles apart from the others': a reader of one band (the
            # gather, one output per band of a strip) reads only that band, not
            # every band of each tile (60x the bytes for a 60-date strip).
            INTERLEAVE="BAND" if self.count > 1 else "PIXEL",
        )
        self._ds = rasterio.open(self._mem or self._work, "w", **profile)
        return self

    def write(self, data: np.ndarray, window: Window | None = None, band: int | None = None) -> None:
        """Write a 2-D block to ``band`` (1-based; default all bands for 3-D data)."""
        assert self._ds is not None, "use RasterWriter as a context manager"
        arr = np.asarray(data)
        if arr.dtype != self.dtype:
            arr = arr.astype(self.dtype)
        try:
            if arr.ndim == 2:
                self._ds.write(arr, band or 1, window=window)
            else:
                self._ds.write(arr, window=window)
        except rasterio.errors.RasterioError as e:
            raise self._write_error(e) from None

    def _write_error(self, err: BaseException) -> SarstackError:
        """One line for a failed write (:func:`sarstack.cog.write_error`)."""
        from sarstack.cog import write_error

        need = self.grid.width * self.grid.height * self.count * self.dtype.itemsize
        return write_error(self.path, need, err)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._ds is not None and self._stack is not None
        try:
            if exc_type is None:
                for b in range(1, self.count + 1):
                    if self.units:
                        self._ds.set_band_unit(b, self.units)
                    if self.descriptions:
                        self._ds.set_band_description(b, self.descriptions[b - 1])
                if self.units:
                    self.tags.setdefault("units", self.units)
                self._ds.update_tags(**self.tags)
            self._ds.close()
            if exc_type is None and not self.cog:
                os.replace(self._work, self._final_tmp)
            elif exc_type is None:
                from sarstack.cog import cog_copy

                cog_copy(self._mem or self._work, self._final_tmp, compress=self.compress,
                         overviews=self.overviews)  # fmt: skip
        except BaseException as err:
            # Judge a full disk before the partial files are removed (which frees space).
            wrapped = self._write_error(err) if isinstance(err, Exception) else None
            self._work.unlink(missing_ok=True)
            self._drop_mem()
            self._stack.__exit__(type(err), err, err.__traceback__)
            if wrapped is not None and wrapped is not err:
                raise wrapped from None
            raise
        self._work.unlink(missing_ok=True)
        self._drop_mem()
        self._stack.__exit__(exc_type, exc, tb)

    def _raw_bytes(self) -> int:
        return self.grid.width * self.grid.height * self.count * self.dtype.itemsize

    def _drop_mem(self) -> None:
        if self._mem is not None:
            with contextlib.suppress(Exception):  # never created (a failed open)
                rasterio.shutil.delete(self._mem)
            self._mem = None


def write_raster(
    path: str | Path,
    data: np.ndarray,
    grid: Grid,
    *,
    nodata: float | None = float("nan"),
    units: str | None = None,
    tags: Mapping[str, Any] | None = None,
    descriptions: Sequence[str] | None = None,
) -> None:
    """Atomically write a whole 2-D or 3-D (band-first) array as a COG."""
    arr = np.asarray(data)
    count = 1 if arr.ndim == 2 else arr.shape[0]
    with RasterWriter(
        path,
        grid,
        count=count,
        dtype=arr.dtype,
        nodata=nodata,
        units=units,
        tags=tags,
        descriptions=descriptions,
    ) as w:
        w.write(arr)


def raster_tags(path: str | Path) -> dict[str, str]:
    with open_raster(path) as ds:
        return dict(ds.tags())


def grid_to_dict(grid: Grid) -> dict[str, Any]:
    """JSON-friendly form of a grid (CRS as WKT, transform as 6 GDAL-order numbers)."""
    return {
        "crs": grid.crs.to_wkt() if grid.crs else None,
        "epsg": grid.crs.to_epsg() if grid.crs else None,
        "transform": list(grid.transform.to_gdal()),
        "width": grid.width,
        "height": grid.height,
    }


def grid_from_dict(d: Mapping[str, Any]) -> Grid:
    crs = CRS.from_wkt(d["crs"]) if d.get("crs") else None
    return Grid(crs, Affine.from_gdal(*d["transform"]), int(d["width"]), int(d["height"]))

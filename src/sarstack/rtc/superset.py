"""rtc_superset: each scene on the union grid (a VRT where the grids align,
else a resampled copy), nodata and fill values declared."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
import rasterio.warp
from rasterio.enums import Resampling
from rasterio.windows import Window

from sarstack.errors import SarstackError
from sarstack.io import (
    DEFAULT_BLOCK,
    Grid,
    RasterWriter,
    open_raster,
    process_blocks,
    read_grid,
)
from sarstack.rtc.select import grid_offset

log = logging.getLogger(__package__)


def superset_scene(
    src_path: str | Path,
    dst_path: str | Path,
    grid: Grid,
    *,
    block_shape: Sequence[int] = DEFAULT_BLOCK,
    resampling: str = "bilinear",
    tags: dict[str, str] | None = None,
    fill: float | None = None,
) -> str:
    """Place one scene on the union grid, block by block; nodata → NaN.

    A scene already on the grid's lattice is padded with NaN (never
    resampled: resampling would itself shift it). Any other scene is
    reprojected with ``resampling``. ``fill`` is a value that is nodata
    beside the file's own nodata tag (:func:`detect_fill`, or ``rtc.nodata``).
    Returns ``"padded"`` or ``"reprojected"``.
    """
    src_grid = read_grid(src_path)
    off = grid_offset(src_grid, grid)
    mode = "padded" if off is not None else "reprojected"
    with open_raster(src_path) as ds, RasterWriter(
        dst_path, grid, units="linear power", tags=tags
    ) as out:
        nodatas = _nodata_values(ds.nodata, fill)
        src_nodata = nodatas[0] if len(nodatas) == 1 else ds.nodata
        source: object = rasterio.band(ds, 1)
        reproject_kw: dict[str, object] = {}
        if off is None and len(nodatas) > 1:
            # Two nodata values: GDAL's warper takes one, so both become NaN in memory first.
            arr = ds.read(1).astype(np.float32)
            arr[np.isin(arr, nodatas)] = np.nan
            source, src_nodata = arr, np.nan
            reproject_kw = {"src_transform": ds.transform, "src_crs": ds.crs}

        def warp_block(win: Window) -> None:
            block = np.full((int(win.height), int(win.width)), np.nan, dtype=np.float32)
            if off is not None:
                r0 = int(win.row_off) - off[0]
                c0 = int(win.col_off) - off[1]
                rr0, cc0 = max(r0, 0), max(c0, 0)
                rr1 = min(r0 + int(win.height), src_grid.height)
                cc1 = min(c0 + int(win.width), src_grid.width)
                if rr1 > rr0 and cc1 > cc0:
                    sub = ds.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0)).astype(
                        np.float32
                    )
                    sub[np.isin(sub, nodatas)] = np.nan
                    block[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = sub
            else:
                rasterio.warp.reproject(
                    source=source,
                    destination=block,
                    src_nodata=src_nodata,
                    **reproject_kw,
                    dst_transform=rasterio.windows.transform(win, grid.transform),
                    dst_crs=grid.crs,
                    dst_nodata=np.nan,
                    resampling=Resampling[resampling],
                )
            block[~np.isfinite(block)] = np.nan
            out.write(block, win)

        process_blocks(grid.shape, block_shape, warp_block)
    return mode


def _nodata_values(declared: float | None, fill: float | None) -> list[float]:
    """The distinct non-NaN nodata values of a scene: its tag and a fill value."""
    out: list[float] = []
    for v in (declared, fill):
        if v is not None and not np.isnan(v) and float(v) not in out:
            out.append(float(v))
    return out


def vrt_possible(src_path: str | Path, fill: float | None) -> bool:
    """Whether one VRT source can carry the scene's nodata (a VRT source has one value)."""
    with open_raster(src_path) as ds:
        return len(_nodata_values(ds.nodata, fill)) <= 1


def superset_vrt(
    src_path: str | Path, dst_path: str | Path, grid: Grid, fill: float | None = None
) -> None:
    """Write a VRT that places a scene already on the union grid's lattice.

    Nothing is copied or resampled: the VRT pads the scene with NaN to the
    union grid and maps the scene's own nodata value (if any), or ``fill``,
    to NaN, so readers see exactly the padded float32 raster a superset copy
    would hold. A scene with both a nodata tag and another ``fill`` value
    needs :func:`superset_scene` (see :func:`vrt_possible`).
    """
    from xml.sax.saxutils import escape

    src_grid = read_grid(src_path)
    off = grid_offset(src_grid, grid)
    if off is None:
        raise SarstackError(f"{src_path}: not on the union grid's pixel lattice (needs reprojection)")
    with open_raster(src_path) as ds:
        nodatas = _nodata_values(ds.nodata, fill)
    if len(nodatas) > 1:
        raise SarstackError(f"{src_path}: two nodata values {nodatas}; a VRT holds one")
    row0, col0 = off
    srs = f"  <SRS>{escape(grid.crs.to_wkt())}</SRS>\n" if grid.crs else ""
    nd = f"      <NODATA>{nodatas[0]!r}</NODATA>\n" if nodatas else ""
    gt = ", ".join(repr(float(v)) for v in grid.transform.to_gdal())
    src_abs = escape(str(Path(src_path).resolve()))
    xml = (
        f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">\n'
        f"{srs}"
        f"  <GeoTransform>{gt}</GeoTransform>\n"
        '  <VRTRasterBand dataType="Float32" band="1">\n'
        "    <NoDataValue>nan</NoDataValue>\n"
        "    <ComplexSource>\n"
        f'      <SourceFilename relativeToVRT="0">{src_abs}</SourceFilename>\n'
        "      <SourceBand>1</SourceBand>\n"
        f'      <SrcRect xOff="0" yOff="0" xSize="{src_grid.width}" ySize="{src_grid.height}"/>\n'
        f'      <DstRect xOff="{col0}" yOff="{row0}" xSize="{src_grid.width}" '
        f'ySize="{src_grid.height}"/>\n'
        f"{nd}"
        "    </ComplexSource>\n"
        "  </VRTRasterBand>\n"
        "</VRTDataset>\n"
    )
    from sarstack.io import write_text

    write_text(dst_path, xml)


class _Pad(NamedTuple):
    """What a padding VRT of :func:`superset_vrt` says: its source, where the
    source sits on the union grid, and the source value read as nodata."""

    source: str
    row0: int
    col0: int
    height: int
    width: int
    nodata: float | None


@functools.lru_cache(maxsize=1024)
def _pad_of(path: str, mtime_ns: int, size: int) -> _Pad | None:
    """The padding of a VRT written by :func:`superset_vrt`, None for any other
    raster (then GDAL reads it). Cached by path, mtime and size."""
    import xml.etree.ElementTree as ET

    if not path.endswith(".vrt"):
        return None
    try:
        root = ET.parse(path).getroot()
        bands = root.findall("VRTRasterBand")
        srcs = bands[0].findall("ComplexSource") if len(bands) == 1 else []
        if (len(srcs) != 1 or bands[0].get("dataType") != "Float32" or len(list(bands[0])) != 2
                or bands[0].findtext("NoDataValue") != "nan"):  # fmt: skip
            return None
        src = srcs[0]
        sr, dr = src.find("SrcRect"), src.find("DstRect")
        if (src.findtext("SourceBand") != "1" or sr is None or dr is None
                or sr.get("xOff") != "0" or sr.get("yOff") != "0"
                or (sr.get("xSize"), sr.get("ySize")) != (dr.get("xSize"), dr.get("ySize"))
                or {c.tag for c in src} - {"SourceFilename", "SourceBand", "SrcRect", "DstRect", "NODATA"}):  # fmt: skip
            return None
        source = str(src.findtext("SourceFilename"))
        nd = src.findtext("NODATA")
        with open_raster(source) as ds:
            if ds.count < 1 or ds.dtypes[0] != "float32" or (ds.width, ds.height) != (
                int(str(sr.get("xSize"))), int(str(sr.get("ySize")))):  # fmt: skip
                return None
        return _Pad(source, int(str(dr.get("yOff"))), int(str(dr.get("xOff"))),
                    int(str(sr.get("ySize"))), int(str(sr.get("xSize"))),
                    None if nd is None else float(nd))  # fmt: skip
    except (ET.ParseError, ValueError, IndexError):
        return None


def read_padded(path: str | Path, window: Window) -> np.ndarray | None:
    """``window`` of a padding VRT of :func:`superset_vrt` read from its source
    directly (float32, nodata and padding NaN), None when ``path`` is not one.

    The same values as GDAL's VRT read (the source's ``NODATA`` value and the
    padding become NaN), without the per-pixel work of a VRT source with a
    nodata value: about 1.6x faster on 4096² float32 scenes.
    """
    st = os.stat(path)
    pad = _pad_of(str(path), st.st_mtime_ns, st.st_size)
    if pad is None:
        return None
    r0, c0 = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    out = np.full((h, w), np.nan, np.float32)
    rr0, rr1 = max(r0, pad.row0), min(r0 + h, pad.row0 + pad.height)
    cc0, cc1 = max(c0, pad.col0), min(c0 + w, pad.col0 + pad.width)
    if rr0 < rr1 and cc0 < cc1:
        from sarstack.io import read_band

        data = read_band(pad.source, Window(cc0 - pad.col0, rr0 - pad.row0, cc1 - cc0, rr1 - rr0),
                         nan_nodata=False)  # fmt: skip
        if pad.nodata is not None:
            data[data == np.float32(pad.nodata)] = np.nan
        out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = data
    return out

"""rtc_superset: each scene on the union grid (a VRT where the grids align,
else a resampled copy), nodata and fill values declared."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.warp
from rasterio.enums import Resampling
from rasterio.windows import Window

from sarstack.errors import SarstackError
from sarstack.io import (
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
    block_shape: Sequence[int],
    resampling: str,
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

    Nothing is copied or resampled: the VRT pads the scene to the union grid
    with its nodata value (the scene's own, or ``fill``; NaN without one), the
    band's nodata, so that readers that turn nodata into NaN
    (:func:`sarstack.io.read_band`, :class:`sarstack.io.StackReader`) see
    exactly the padded float32 raster a superset copy would hold (a value
    that float32 does not hold exactly is mapped to NaN by the VRT itself). A scene with both a nodata tag and another ``fill`` value
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
    # A nodata value that float32 holds exactly is the band's own nodata, read
    # through a SimpleSource: the padding and the scene's nodata pixels hold
    # it, and the readers (sarstack.io) turn it into NaN, the same raster as
    # a ComplexSource mapping it to NaN, at 2/3 of the read time (measured on
    # a 4096^2 ZSTD scene). Another value keeps the ComplexSource's mapping.
    simple = not nodatas or float(np.float32(nodatas[0])) == nodatas[0]
    band_nodata = repr(nodatas[0]) if simple and nodatas else "nan"
    source = "SimpleSource" if simple else "ComplexSource"
    nd = f"      <NODATA>{nodatas[0]!r}</NODATA>\n" if nodatas and not simple else ""
    gt = ", ".join(repr(float(v)) for v in grid.transform.to_gdal())
    src_abs = escape(str(Path(src_path).resolve()))
    xml = (
        f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">\n'
        f"{srs}"
        f"  <GeoTransform>{gt}</GeoTransform>\n"
        '  <VRTRasterBand dataType="Float32" band="1">\n'
        f"    <NoDataValue>{band_nodata}</NoDataValue>\n"
        f"    <{source}>\n"
        f'      <SourceFilename relativeToVRT="0">{src_abs}</SourceFilename>\n'
        "      <SourceBand>1</SourceBand>\n"
        f'      <SrcRect xOff="0" yOff="0" xSize="{src_grid.width}" ySize="{src_grid.height}"/>\n'
        f'      <DstRect xOff="{col0}" yOff="{row0}" xSize="{src_grid.width}" '
        f'ySize="{src_grid.height}"/>\n'
        f"{nd}"
        f"    </{source}>\n"
        "  </VRTRasterBand>\n"
        "</VRTDataset>\n"
    )
    from sarstack.io import write_text

    write_text(dst_path, xml)

"""Direct reads of the superset VRTs that place one scene on the union grid.

:func:`sarstack.rtc.superset_vrt` writes a VRT that pads a scene with NaN to
the union grid and maps its nodata value to NaN, without copying it. GDAL
reads such a VRT at about 1.7 times the cost of the source's own window
(4096² ZSTD scenes, 12 scenes by tile rows: 2.2-2.5 s against 1.33 s), so
:func:`sarstack.io.read_band` and :class:`sarstack.io.StackReader` read the
source window and pad it here instead, to the same float32 array.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
import rasterio.errors
from rasterio.windows import Window

from sarstack.errors import SarstackError


class PlacedSource(NamedTuple):
    """A VRT of :func:`sarstack.rtc.superset_vrt`'s form: one float32 source
    raster placed, unscaled, at ``(row0, col0)`` of a larger NaN-padded grid,
    its ``nodata`` (if any) read as NaN."""

    source: str
    row0: int
    col0: int
    height: int  # the source's
    width: int
    out_height: int  # the VRT's
    out_width: int
    nodata: float | None


def placed_source(path: str | Path) -> PlacedSource | None:
    """The placement a ``.vrt`` holds, when it is a :class:`PlacedSource`; else None.

    Reading the source's window directly and padding it in NumPy gives the
    same float32 array as GDAL's VRT (which pads with the band's NaN nodata
    and maps the source's nodata value to it, both by equality), at about
    half the cost (measured on 4096² ZSTD scenes: 12 scenes by tile rows,
    1.33 s against 2.2-2.5 s). Anything else (another layout, scaling, a
    non-float32 source) is left to GDAL.
    """
    text = str(path)
    if not text.lower().endswith(".vrt"):
        return None
    try:
        st = os.stat(text)
    except OSError:
        return None
    return _placed_source(text, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _placed_source(path: str, _mtime_ns: int, _size: int) -> PlacedSource | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    bands = root.findall("VRTRasterBand")
    if root.tag != "VRTDataset" or root.get("subClass") or len(bands) != 1:
        return None
    band = bands[0]
    sources = list(band.iter("ComplexSource"))
    nd = (band.findtext("NoDataValue") or "").strip().lower()
    if band.get("dataType") != "Float32" or nd != "nan" or len(sources) != 1:
        return None
    if len([c for c in band if c.tag.endswith("Source")]) != 1:
        return None
    src = sources[0]
    known = {"SourceFilename", "SourceBand", "SrcRect", "DstRect", "NODATA", "SourceProperties"}
    if any(c.tag not in known for c in src) or src.get("resampling"):
        return None
    name, sband = src.find("SourceFilename"), (src.findtext("SourceBand") or "").strip()
    srect, drect = src.find("SrcRect"), src.find("DstRect")
    if name is None or name.get("relativeToVRT") != "0" or sband != "1":
        return None
    if srect is None or drect is None:
        return None
    try:
        sr = [float(srect.get(k, "nan")) for k in ("xOff", "yOff", "xSize", "ySize")]
        dr = [float(drect.get(k, "nan")) for k in ("xOff", "yOff", "xSize", "ySize")]
        out_w, out_h = int(root.get("rasterXSize", "")), int(root.get("rasterYSize", ""))
        nodata = None if src.find("NODATA") is None else float(src.findtext("NODATA") or "")
    except ValueError:
        return None
    if not all(np.isfinite(v) and float(v).is_integer() for v in sr + dr):
        return None
    if sr[:2] != [0.0, 0.0] or sr[2:] != dr[2:] or (nodata is not None and np.isnan(nodata)):
        return None
    source = (name.text or "").strip()
    try:
        with rasterio.open(source) as ds:
            if ds.count < 1 or ds.dtypes[0] != "float32" or (ds.width, ds.height) != (sr[2], sr[3]):
                return None
    except rasterio.errors.RasterioIOError:
        return None  # GDAL's VRT then says what is wrong with the source
    return PlacedSource(source, int(dr[1]), int(dr[0]), int(sr[3]), int(sr[2]), out_h, out_w,
                        nodata)  # fmt: skip


def read_placed(
    ds: rasterio.io.DatasetReader, path: str | Path, p: PlacedSource, window: Window | None
) -> np.ndarray | None:
    """``window`` of the VRT ``path`` from its source ``ds`` (None: not a plain window inside it)."""
    if window is None:
        r0, c0, h, w = 0, 0, p.out_height, p.out_width
    else:
        vals = (window.row_off, window.col_off, window.height, window.width)
        if not all(float(v).is_integer() for v in vals):
            return None
        r0, c0, h, w = (int(v) for v in vals)
    if r0 < 0 or c0 < 0 or h < 0 or w < 0 or r0 + h > p.out_height or c0 + w > p.out_width:
        return None
    out = np.full((h, w), np.nan, dtype=np.float32)
    rs, re_ = max(r0, p.row0), min(r0 + h, p.row0 + p.height)
    cs, ce = max(c0, p.col0), min(c0 + w, p.col0 + p.width)
    if rs < re_ and cs < ce:
        try:
            data = ds.read(1, window=Window(cs - p.col0, rs - p.row0, ce - cs, re_ - rs))
        except Exception as e:  # noqa: BLE001 - rasterio raises several types on bad data
            raise SarstackError(f"{path}: cannot read band 1 ({e})") from None
        if p.nodata is not None:
            data[data == p.nodata] = np.nan
        out[rs - r0 : re_ - r0, cs - c0 : ce - c0] = data
    return out

"""Input files for the rule benchmarks, generated with sarstack's own writers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import rasterio
from _common import schema_kwargs

from sarstack import insar, io, rtc, synthetic
from sarstack import network as snet


@dataclass
class IfgInputs:
    """What ``insar_invert.py`` needs: the ifg table, the reference point, the rasters."""

    table: Path
    reference: Path
    rasters: list[Path]
    n_dates: int


@dataclass
class RtcInputs:
    """What ``rtc_xcorr.py`` needs: flattened scenes on one grid and ``tile_layout.geojson``."""

    flats: list[Path]
    tiles: Path


def dates_for(n_ifgs: int, network: str = "nearest:3") -> int:
    """Fewest dates whose ``network`` has at least ``n_ifgs`` interferograms."""
    n = 3
    while len(snet.make_pairs(n, network)) < n_ifgs:
        n += 1
    return n


def ifg_stack(root: Path, shape: tuple[int, int], n_ifgs: int, seed: int = 0) -> IfgInputs:
    """Synthetic unwrapped stack (``synthetic.make_ifg_stack``), its table and a reference."""
    n_dates = dates_for(n_ifgs)
    synthetic.make_ifg_stack(
        root, n_dates=n_dates, shape=shape, network="nearest:3", seed=seed, noise_rad=0.3
    )
    ifgs, _, _, _ = insar.select_ifgs(
        str(root / "ifgs" / "*.unw.tif"),
        **schema_kwargs("insar.conncomp", "insar.correlation", "insar.date_format", "block_shape"),
    )
    table = root / "ifgs.csv"
    io.write_csv(table, insar.ifg_table(ifgs))
    reference = root / "reference_point.txt"
    io.write_text(reference, f"{shape[0] // 2},{shape[1] // 2}\n")  # nodata is top-left only
    return IfgInputs(table, reference, [i.path for i in ifgs], n_dates)


def rtc_stack(
    root: Path, shape: tuple[int, int], n_scenes: int, tiles: tuple[int, int] = (8, 8)
) -> RtcInputs:
    """Synthetic RTC scenes on one grid, flattened as ``rtc_flatten`` does, plus the tiles.

    ``synthetic.make_rtc_stack`` with no frame jitter puts every scene on one
    grid, which is what ``rtc_superset`` would produce; ``rtc.flatten_scene``
    then clips each scene at its (1, 99) percentiles.
    """
    truth = synthetic.make_rtc_stack(
        root / "scenes", n_dates=n_scenes, shape=shape, frame_jitter_px=0, seed=1
    )
    flats = []
    for date, path in zip(truth["date"], truth["path"], strict=True):
        flat = root / "flat" / f"{date.replace('-', '')}.tif"
        rtc.flatten_scene(path, flat, (1, 99), tags={"date": date.replace("-", "")},
                          **schema_kwargs("block_shape"))  # fmt: skip
        Path(path).unlink()  # only the flattened scenes are inputs of rtc_xcorr
        flats.append(flat)
    grid = io.read_grid(flats[0])
    layout = rtc.tile_layout(grid.shape, tiles)
    tiles_path = root / "tile_layout.geojson"
    io.write_json(tiles_path, rtc.tiles_geojson(layout, grid))
    return RtcInputs(flats, tiles_path)


def read_all(paths: list[Path]) -> int:
    """Read every band of every file fully once with rasterio; bytes read."""
    n = 0
    for p in paths:
        with rasterio.open(p) as ds:
            n += ds.read().nbytes
    return n

"""Blocks band by band of the inputs' tiles (``process_blocks(band_rows=...)``):
the same windows as the row-major loop, in an order that decompresses each
tile once, and the same results, sums over blocks included, as the row-major
loop (forced here by making the readers report one-row tiles)."""

from __future__ import annotations

import datetime as dt
import filecmp

import numpy as np
import pandas as pd
import pytest
import rasterio
from conftest import with_schema_defaults

from sarstack import deramp, insar, io, synthetic, troposphere
from sarstack.blocks import iter_blocks

pytestmark = pytest.mark.usefixtures("x64")

select_ifgs = with_schema_defaults(insar.select_ifgs)
invert_strip = with_schema_defaults(insar.invert_strip)
fit_ramps = with_schema_defaults(deramp.fit_ramps)

SHAPE = (40, 48)
BLOCK = (8, 16)  # 5 x 3 blocks, all in the inputs' first 256-row tile band


def _key(w):
    return (w.row_off, w.col_off, w.height, w.width)


@pytest.mark.parametrize("shape,block,band,row0", [
    ((40, 48), (8, 16), 256, 0), ((100, 70), (8, 16), 32, 0), ((100, 70), (8, 16), 32, 20),
    ((100, 70), (7, 16), 32, 5), ((3, 5), (8, 16), 256, 0),
])  # fmt: skip
def test_band_order_has_the_row_major_windows(shape, block, band, row0):
    row_major = list(iter_blocks(shape, block))
    banded = list(iter_blocks(shape, block, band_rows=band, row0=row0))
    assert sorted(map(_key, banded)) == sorted(map(_key, row_major))
    assert len(banded) == len(row_major)
    # band by band of the source's rows, column by column, top to bottom
    keys = [((w.row_off + row0) // band, w.col_off, w.row_off) for w in banded]
    assert keys == sorted(keys)
    if shape[0] > band and shape[1] > block[1]:
        assert list(map(_key, banded)) != list(map(_key, row_major))


def test_no_band_order_when_tiles_are_no_taller_than_blocks():
    row_major = list(map(_key, iter_blocks((100, 70), (8, 16))))
    for band in (None, 1, 8):
        assert list(map(_key, iter_blocks((100, 70), (8, 16), band_rows=band))) == row_major


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("order")
    synthetic.make_ifg_stack(d / "s", n_dates=7, shape=SHAPE, network="nearest:2",
                             noise_rad=0.3, seed=4)  # fmt: skip
    ifgs, dates, pairs, _ = select_ifgs(str(d / "s" / "ifgs" / "*.unw.tif"))
    with io.StackReader([ifgs[0].path]) as s:
        assert s.tile_rows > BLOCK[0]  # the band order is in play
    return ifgs, dates, pairs


def _row_major(monkeypatch):
    """Make every StackReader report one-row tiles: the row-major loop."""
    monkeypatch.setattr(io.StackReader, "tile_rows", property(lambda self: 1))


def _strip(stack, out, method):
    ifgs, dates, pairs = stack
    invert_strip(ifgs, dates, pairs, (20, 5), out, method=method, wavelength=None, mask=None,
                 block_shape=BLOCK, l1_tolerance=1e-6, l1_max_iterations=100,
                 weighting="none", correlation_looks=4.0, correlation_threshold=0.0,
                 write_residuals=True)  # fmt: skip


@pytest.mark.parametrize("method", ["L2", "L1"])
def test_strip_is_the_row_major_strip(stack, tmp_path, monkeypatch, method):
    _strip(stack, tmp_path / "band", method)
    _row_major(monkeypatch)
    _strip(stack, tmp_path / "row", method)
    names = sorted(p.name for p in (tmp_path / "band").iterdir())
    assert "ifg_stats.csv" in names
    for name in names:
        a, b = tmp_path / "band" / name, tmp_path / "row" / name
        if name.endswith(".csv"):  # the per-block residual sums, listed in row-major block order
            assert filecmp.cmp(a, b, shallow=False), name
        else:
            with rasterio.open(a) as ra, rasterio.open(b) as rb:
                np.testing.assert_array_equal(ra.read(), rb.read(), err_msg=name)


def test_threaded_l2_strip_is_the_one_thread_strip(stack, tmp_path):
    """An L2 strip's blocks solved on several threads (process_blocks'
    ``workers``) give the one-thread strip: rasters and tables."""
    ifgs, dates, pairs = stack
    for threads in (1, 4):
        invert_strip(ifgs, dates, pairs, (20, 5), tmp_path / f"t{threads}", method="L2",
                     wavelength=None, mask=None, block_shape=BLOCK, l1_tolerance=1e-6,
                     l1_max_iterations=100, weighting="none", correlation_looks=4.0,
                     correlation_threshold=0.0, write_residuals=True, threads=threads)  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "t1").iterdir())
    assert "triangle_stats.csv" in names and "timeseries.tif" in names
    for name in names:
        a, b = tmp_path / "t1" / name, tmp_path / "t4" / name
        if name.endswith(".csv"):
            assert filecmp.cmp(a, b, shallow=False), name
        else:
            with rasterio.open(a) as ra, rasterio.open(b) as rb:
                np.testing.assert_array_equal(ra.read(), rb.read(), err_msg=name)


def test_l2_block_workers_follow_threads_and_memory():
    from sarstack.insar.invert import WORKERS_MEMORY, _block_workers

    assert _block_workers("L2", False, 2, 174, (64, 512)) == 2
    assert _block_workers("L2", False, 8, 174, (64, 512)) == WORKERS_MEMORY // (40 * 174 * 64 * 512)
    assert _block_workers("L2", False, 8, 174, (64, 512)) == 4
    assert _block_workers("L2", False, 8, 900, (64, 512)) == 1  # one block is 1.2 GB
    assert _block_workers("L2", True, 8, 10, (8, 8)) == 1  # weighted: threads inside a block
    assert _block_workers("L1", False, 8, 10, (8, 8)) == 1


def test_process_blocks_workers_commit_in_order_on_the_caller():
    import threading
    import time

    from sarstack.blocks import process_blocks

    shape, block = (40, 30), (8, 10)
    wins = list(iter_blocks(shape, block, band_rows=16))
    caller = threading.current_thread().name
    ran_on, committed = set(), []

    def compute(win, data):
        ran_on.add(threading.current_thread().name)
        # later blocks finish first: commits must still come in block order
        time.sleep(0.002 * (len(wins) - wins.index(win)) / len(wins))
        return data * 2

    def commit(win, out):
        assert threading.current_thread().name == caller
        committed.append((_key(win), out))

    n = process_blocks(shape, block, compute, read=lambda w: w.row_off * 100 + w.col_off,
                       commit=commit, workers=3, band_rows=16)  # fmt: skip
    assert n == len(wins) == len(committed)
    assert [k for k, _ in committed] == list(map(_key, wins))
    assert [o for _, o in committed] == [2 * (w.row_off * 100 + w.col_off) for w in wins]
    assert len(ran_on) > 1 and caller not in ran_on

    def fail(win, data):
        if win.row_off == 16:
            raise ValueError("bad block")
        return data

    with pytest.raises(ValueError, match="bad block"):
        process_blocks(shape, block, fail, read=lambda w: 1, commit=lambda w, o: None, workers=2)


def test_ramp_sums_are_the_row_major_sums(stack, monkeypatch):
    ifgs = stack[0]
    banded = fit_ramps(ifgs, "quadratic", block_shape=BLOCK, mask=None, min_correlation=None)
    _row_major(monkeypatch)
    rows = fit_ramps(ifgs, "quadratic", block_shape=BLOCK, mask=None, min_correlation=None)
    pd.testing.assert_frame_equal(banded, rows, check_exact=True)


def test_delay_table_sums_are_the_row_major_sums(stack, tmp_path, monkeypatch):
    ifgs, dates, pairs = stack
    grid = io.read_grid(ifgs[0].path)
    rng = np.random.default_rng(3)
    files = []
    for k in range(len(dates)):
        files.append(tmp_path / f"d{k}.tif")
        io.write_raster(files[-1], rng.normal(0, 2.0, SHAPE).astype(np.float32), grid)
    banded = troposphere._correction_table(ifgs, pairs, files, BLOCK)
    _row_major(monkeypatch)
    rows = troposphere._correction_table(ifgs, pairs, files, BLOCK)
    pd.testing.assert_frame_equal(banded, rows, check_exact=True)


def test_gdal_cache_follows_the_stack(stack, monkeypatch):
    from sarstack import cli

    path = stack[0][0].path  # 256² float32 tiles (the COG writer's)
    # a column of 512-wide blocks spans two tiles, one more when not aligned
    assert io.band_cache_mb(path, 174, 512) == int(np.ceil(174 * 2 * 256 * 256 * 4 / 2**20))
    assert io.band_cache_mb(path, 174, 300) == int(np.ceil(174 * 3 * 256 * 256 * 4 / 2**20))
    monkeypatch.setattr(cli, "_USER_GDAL_CACHE", False)
    monkeypatch.setenv("GDAL_CACHEMAX", "128")
    cli.set_gdal_cache(97)
    assert cli.os.environ["GDAL_CACHEMAX"] == "97"
    monkeypatch.setattr(cli, "_USER_GDAL_CACHE", True)  # the user's value stays
    cli.set_gdal_cache(900)
    assert cli.os.environ["GDAL_CACHEMAX"] == "97"


def test_row_major_sums_add_in_row_major_order_and_hold_one_band():
    from sarstack.blocks import RowMajorSums

    shape, block = (100, 70), (8, 16)
    rng = np.random.default_rng(9)
    wins = list(iter_blocks(shape, block))
    parts = {_key(w): rng.normal(0, 10.0 ** rng.integers(-3, 4), 5) for w in wins}
    want = np.zeros(5)
    for w in wins:  # a row-major loop's totals
        want += parts[_key(w)]
    got = np.zeros(5)
    sums = RowMajorSums(shape, block, got)
    held = 0
    for w in iter_blocks(shape, block, band_rows=32):
        sums.add(w, parts[_key(w)])
        held = max(held, len(sums._held))
    np.testing.assert_array_equal(got, want)
    assert sums._held == {}
    assert held <= 4 * 5  # at most one band: 4 block rows x 5 block columns
    shuffled = np.zeros(5)
    np.add.reduce([parts[_key(w)] for w in iter_blocks(shape, block, band_rows=32)], out=shuffled)
    assert not np.array_equal(shuffled, want)  # the order matters for these parts


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_block_reader_keeps_each_files_precision(tmp_path, dtype):
    """The reader's read (I/O, the stack in the files' precision) and prepare
    (float64 arithmetic) give each ifg's values minus its reference value,
    exact for float64 files (not rounded through float32), NaN at nodata."""
    from rasterio.transform import from_origin

    from sarstack.insar.reader import BlockReader
    from sarstack.insar.select import Ifg

    rng = np.random.default_rng(5)
    vals = (rng.normal(scale=3.0, size=(3, 6, 7)) + 1e-9).astype(dtype)
    vals[1, 2, 3] = 0.0  # nodata
    ifgs = []
    for k, v in enumerate(vals):
        p = tmp_path / f"2020010{k + 1}_2020011{k + 1}.unw.tif"
        with rasterio.open(p, "w", driver="GTiff", width=7, height=6, count=1, dtype=dtype,
                           nodata=0.0, crs="EPSG:32611",
                           transform=from_origin(5e5, 4e6, 30, 30)) as ds:  # fmt: skip
            ds.write(v, 1)
        ifgs.append(Ifg(p, dt.date(2020, 1, k + 1), dt.date(2020, 1, k + 11)))
    ref = np.array([0.25, -1.5, 3.0])
    with BlockReader(ifgs, ref, None, weighting="none", censor=False, looks=1.0,
                     threshold=0.1) as rd:  # fmt: skip
        raw = rd.read(rasterio.windows.Window(0, 0, 7, 6))
        assert raw.phase.dtype == np.dtype(dtype)
        flat, weights, m = rd.prepare(raw)
    want = vals.astype(np.float64) - ref[:, None, None]
    want[1, 2, 3] = np.nan
    assert flat.dtype == np.float64 and weights is None and m is None
    np.testing.assert_array_equal(flat, want.reshape(3, -1))

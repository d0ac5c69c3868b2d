"""sarstack.io: the block reader, the stack reader, the atomic writer and grids."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from sarstack import io
from sarstack.errors import SarstackError

GRID = io.Grid(CRS.from_epsg(32611), Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0), 40, 30)


def _stack(tmp_path, n=3, nodata=0.0):
    rng = np.random.default_rng(0)
    arrays, paths = [], []
    for k in range(n):
        a = rng.normal(size=GRID.shape).astype(np.float32) + 5
        a[k + 2, :4] = nodata  # a nodata run in each (row 2 + k)
        p = tmp_path / f"r{k}.tif"
        io.write_raster(p, a, GRID, nodata=nodata)
        arrays.append(a)
        paths.append(p)
    return arrays, paths


def test_stack_reader_equals_read_band_per_file(tmp_path):
    arrays, paths = _stack(tmp_path)
    win = Window(3, 2, 17, 11)
    with io.StackReader(paths) as st:
        assert len(st) == 3 and st.shape == GRID.shape
        got = st.read(win)
        one = st.read_one(1, win)
        wide = st.read(win, np.float64)  # converted as each raster is put in place
    assert wide.dtype == np.float64
    np.testing.assert_array_equal(wide, got.astype(np.float64))
    want = np.stack([io.read_band(p, win) for p in paths])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(one, want[1])
    assert np.isnan(got[0, 0, :1]).all() and got.dtype == np.float32
    with io.StackReader(paths, nan_nodata=False) as st:
        assert (st.read_one(0, win)[0, :1] == 0).all()


@pytest.mark.parametrize("threads", [2, 3, 7])
def test_stack_reader_threads_read_the_same(tmp_path, threads):
    """Files read side by side (each by one thread) give the one-thread stack."""
    import threading

    arrays, paths = _stack(tmp_path, 5)
    win = Window(3, 2, 17, 11)
    with io.StackReader(paths) as one:
        want = one.read(win, np.float64)
    seen = set()
    real = io._read_window

    def spy(*a, **k):
        seen.add(threading.current_thread().name)
        return real(*a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(io, "_read_window", spy)
        with io.StackReader(paths, threads=threads) as st:
            got = st.read(win, np.float64)
            out = np.full((5, 11, 17), -1.0, np.float32)
            st.read(win, out=out)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(out, want.astype(np.float32))
    assert len(seen) > 1  # this thread and the pool's


def _tiled_stack(tmp_path, dtypes=("float32", "float32", "float64")):
    """Rasters of 30 x 40 px in 16 x 16 tiles (taller than the 4-row blocks
    below), a nodata run in each; one float64 when ``dtypes`` says so."""
    rng = np.random.default_rng(3)
    paths = []
    for k, dtype in enumerate(dtypes):
        a = (rng.normal(size=GRID.shape) + 5).astype(dtype)
        a[k + 5, 3:9] = -9999.0
        p = tmp_path / f"t{k}.tif"
        with rasterio.open(p, "w", driver="GTiff", height=GRID.height, width=GRID.width, count=1,
                           dtype=dtype, crs=GRID.crs, transform=GRID.transform, nodata=-9999.0,
                           tiled=True, blockxsize=16, blockysize=16) as ds:  # fmt: skip
            ds.write(a, 1)
        paths.append(p)
    return paths


@pytest.mark.parametrize("dtypes", [("float32", "float32"), ("float32", "float64", "int16")])
@pytest.mark.parametrize("rows", [(0, 30), (8, 24), (5, 27), (0, 99)])
def test_band_buffer_reads_what_the_stack_reads(tmp_path, dtypes, rows):
    """BandBuffer: every block of a banded loop over rows ``rows`` (a strip),
    read from the band of tiles it lies in, has the values the stack reads
    for that window directly, in ``dtype`` or into ``out``; a block never
    shares memory with the buffer (it is solved while the next is read)."""
    from sarstack.blocks import BandBuffer

    paths = _tiled_stack(tmp_path, dtypes)
    shape = (min(rows[1], GRID.height) - rows[0], GRID.width)
    with io.StackReader(paths) as st:
        assert st.tile_rows == 16
        buf = BandBuffer(st, rows)
        wins = [Window(w.col_off, w.row_off + rows[0], w.width, w.height)
                for w in io.iter_blocks(shape, (4, 12), band_rows=16, row0=rows[0])]  # fmt: skip
        reads = 0
        real = st.read

        def count(*a, **k):
            nonlocal reads
            reads += 1
            return real(*a, **k)

        st.read = count
        # one read per band of tiles and column of blocks, not one per block;
        # a block across a band's edge (strips off the tiles' rows) read alone
        inside = [w for w in wins if w.row_off // 16 == (w.row_off + w.height - 1) // 16]
        n_reads = len({(w.row_off // 16, w.col_off) for w in inside}) + len(wins) - len(inside)
        for dtype in (np.float32, np.float64, "out"):
            reads = 0
            for w in wins:
                if dtype == "out":
                    got = np.full((len(paths), w.height, w.width), -1.0)
                    assert buf.read(w, out=got) is got
                    want = real(w, np.float64)
                else:
                    got, want = buf.read(w, dtype), real(w, dtype)
                    assert got.dtype == want.dtype and not np.shares_memory(got, buf._band)
                np.testing.assert_array_equal(got, want)
            assert reads == n_reads < len(wins)
        np.testing.assert_array_equal(buf.read(wins[0]), real(wins[0]))  # no dtype: as read
        np.testing.assert_array_equal(buf.read_one(1, wins[0]), st.read_one(1, wins[0]))
        assert np.isnan(real(Window(3, 5, 6, 1), np.float32)[0]).all()  # nodata as NaN


def test_stack_reader_reads_in_place_as_read_one(tmp_path):
    """Into ``out`` of the file's type GDAL reads in place, nodata turned to
    NaN there: the values read_one gives."""
    paths = _tiled_stack(tmp_path, ("float32", "float64", "int16"))
    win = Window(2, 3, 20, 9)
    with io.StackReader(paths) as st:
        for dtype in (np.float32, np.float64):
            out = np.full((3, 9, 20), 7.0, dtype)
            st.read(win, out=out)
            for k in range(3):
                np.testing.assert_array_equal(out[k], st.read_one(k, win).astype(dtype))
        assert np.isnan(out[0, 2, 1:7]).all() and np.isnan(out[2, 4, 1:7]).all()


def test_stack_reader_names_an_unreadable_file(tmp_path):
    _, paths = _stack(tmp_path, 2)
    bad = tmp_path / "bad.tif"
    bad.write_text("not a raster")
    with pytest.raises(SarstackError, match="bad.tif"), io.StackReader([paths[0], bad]):
        pass


def test_iter_blocks_tile_the_grid_once():
    seen = np.zeros(GRID.shape, int)
    for w in io.iter_blocks(GRID.shape, (16, 16)):
        seen[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (seen == 1).all()


@pytest.mark.parametrize("prefetch", [False, True])
def test_process_blocks_reads_computes_and_writes_every_block_once(tmp_path, prefetch):
    """The one block loop: each block read, passed to the function and its
    results written (at the block moved by ``offset``), in row-major order."""
    arrays, paths = _stack(tmp_path, n=2)
    seen, order = np.zeros(GRID.shape, int), []
    top = (GRID.height // 2, 0)  # a strip of the lower half, written into the whole raster
    strip = (GRID.height - top[0], GRID.width)
    out_a, out_b = tmp_path / "a.tif", tmp_path / "b.tif"
    with io.StackReader(paths) as stack, io.RasterWriter(out_a, GRID) as wa, \
            io.RasterWriter(out_b, GRID) as wb:  # fmt: skip

        def read(win):
            return stack.read(Window(win.col_off, win.row_off + top[0], win.width, win.height))

        def func(win, block):
            seen[win.row_off : win.row_off + win.height, win.col_off : win.col_off + win.width] += 1
            order.append((win.row_off, win.col_off))
            return block[0] + block[1], block[0] * 0 + len(order)

        n = io.process_blocks(strip, (8, 12), func, read=read, writers=[wa, wb], offset=top,
                              prefetch=prefetch)  # fmt: skip
    assert n == io.count_blocks(strip, (8, 12)) == len(order) == 2 * 4  # 15 x 40 px
    assert (seen[: strip[0]] == 1).all() and order == sorted(order)
    with rasterio.open(out_a) as a, rasterio.open(out_b) as b:
        got, label = a.read(1), b.read(1)
    lower = slice(top[0], None)
    np.testing.assert_array_equal(got[lower], (arrays[0] + arrays[1])[lower])
    assert np.isnan(got[: top[0]]).all()  # nothing written above the strip
    assert label[top[0], 0] == 1 and label[-1, -1] == 8


def test_process_blocks_needs_one_result_per_writer(tmp_path):
    with io.RasterWriter(tmp_path / "a.tif", GRID) as wa, io.RasterWriter(tmp_path / "b.tif", GRID) as wb, \
            pytest.raises(SarstackError, match="3 results for 2 writers"):  # fmt: skip
        io.process_blocks(GRID.shape, (16, 16), lambda win: (1, 2, 3), writers=[wa, wb])


def test_raster_writer_is_atomic_and_tags(tmp_path):
    out = tmp_path / "o.tif"
    with pytest.raises(RuntimeError), io.RasterWriter(out, GRID, units="meters") as w:
        w.write(np.ones((16, 16), np.float32), Window(0, 0, 16, 16))
        raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with io.RasterWriter(out, GRID, units="meters", tags={"start_date": "2020-01-01"}) as w:
        for win in io.iter_blocks(GRID.shape, (16, 16)):
            w.write(np.full((win.height, win.width), 2.0, np.float32), win)
    with rasterio.open(out) as ds:
        assert ds.units == ("meters",) and ds.tags()["start_date"] == "2020-01-01"
        assert ds.read(1).shape == GRID.shape and (ds.read(1) == 2).all()


def test_read_grid_refuses_multiband_inputs(tmp_path):
    p = tmp_path / "two.tif"
    io.write_raster(p, np.zeros((2, *GRID.shape), np.float32), GRID)
    assert io.read_grid(p).same_as(GRID)
    with pytest.raises(SarstackError, match="2 bands"):
        io.read_grid(p, single_band=True)


def test_lonlat_to_rowcol_on_a_utm_grid():
    from rasterio.warp import transform

    for r, c in ((0, 0), (12, 33), (29, 39)):
        x, y = GRID.transform @ (c + 0.5, r + 0.5)
        lon, lat = transform(GRID.crs, "EPSG:4326", [x], [y])
        assert io.lonlat_to_rowcol(GRID, lon[0], lat[0]) == (r, c)
    with pytest.raises(SarstackError, match="key.x: .* outside the rasters"):
        io.lonlat_to_rowcol(GRID, 10.0, 10.0, key="key.x")
    with pytest.raises(SarstackError, match="not \\[longitude, latitude\\]"):
        io.lonlat_to_rowcol(GRID, 500000.0, 4000000.0)


def test_read_ahead_keeps_order_overlaps_and_raises_where_taken():
    import threading

    from sarstack.io import read_ahead

    started: list[int] = []
    ready = threading.Event()

    def read(i: int) -> int:
        started.append(i)
        if i == 1:
            ready.set()
        if i == 4:
            raise SarstackError("bad block 4")
        return i * i

    got = []
    with pytest.raises(SarstackError, match="bad block 4"):
        for k, v in enumerate(read_ahead(read, list(range(6)))):
            if k == 0:
                # The next item is read while the caller still holds the first.
                assert ready.wait(5)
            got.append(v)
    assert got == [0, 1, 4, 9] and started[:5] == [0, 1, 2, 3, 4]
    assert list(read_ahead(read, [3])) == [9] and list(read_ahead(read, [])) == []


@pytest.mark.parametrize("count", [1, 3])
def test_raster_writer_stages_small_rasters_in_memory_same_file(tmp_path, monkeypatch, count):
    """A small raster's COG staging copy is in /vsimem/, a large one's on disk:
    the COG is the same file, byte for byte, and nothing stays behind."""
    grid = io.Grid(CRS.from_epsg(32611), Affine(30, 0, 500000, 0, -30, 4000000), 300, 280)
    data = np.random.default_rng(2).normal(size=(count, 280, 300)).astype(np.float32)
    data[:, :5, :7] = np.nan
    kw = dict(count=count, units="meters", tags={"date": "2020-01-01"},
              descriptions=[f"b{i}" for i in range(count)])  # fmt: skip
    staged = []

    def write(path):
        with io.RasterWriter(path, grid, **kw) as w:
            staged.append(w._mem)
            w.write(data[0] if count == 1 else data, Window(0, 0, 300, 280))
            # staged beside the output only when not in memory
            assert bool(list(tmp_path.glob("*.work.tif"))) == (w._mem is None)

    write(tmp_path / "mem.tif")
    monkeypatch.setattr(io, "STAGE_IN_MEMORY_BYTES", 0)
    write(tmp_path / "disk.tif")
    assert staged[0] is not None and staged[1] is None
    assert not rasterio.shutil.exists(staged[0])
    assert (tmp_path / "mem.tif").read_bytes() == (tmp_path / "disk.tif").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk.tif", "mem.tif"]


def test_write_columns_is_pandas_to_csv_byte_for_byte(tmp_path):
    """The strip tables written without pandas: the text pandas wrote, so the
    gather reads the same values (floats at full precision, ints as ints)."""
    import pandas as pd

    from sarstack.atomic import read_columns, write_columns

    rng = np.random.default_rng(3)
    for n in (5, 0):
        cols = {"block": np.repeat(np.arange(n), 2)[:n], "ss": rng.normal(size=n) * 1e3,
                "tiny": rng.normal(size=n) * 1e-12, "n_px": np.arange(n, dtype=np.int64) * 7,
                "gap": np.where(np.arange(n) % 2, np.nan, rng.normal(size=n)),
                "text": [f"a, b {k}" if k % 2 else "" for k in range(n)],
                "used": [k % 3 == 0 for k in range(n)], "day": [f"2020-01-0{k + 1}" for k in range(n)]}
        write_columns(tmp_path / "ours.csv", cols)
        pd.DataFrame(cols).to_csv(tmp_path / "pandas.csv", index=False)
        assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()
        back = pd.read_csv(tmp_path / "ours.csv", keep_default_na=False, na_values=[""])
        for k in ("block", "ss", "tiny", "n_px", "gap", "used"):
            np.testing.assert_array_equal(back[k].to_numpy(), cols[k])
        # read back without pandas: each column's text, an empty field for NaN
        text = read_columns(tmp_path / "ours.csv")
        assert list(text) == list(cols) and text["text"] == cols["text"]
        assert text["gap"] == ["" if np.isnan(v) else repr(float(v)) for v in cols["gap"]]
        np.testing.assert_array_equal(np.asarray(text["ss"], float), cols["ss"])
    with pytest.raises(SarstackError, match="no such file"):
        read_columns(tmp_path / "absent.csv")

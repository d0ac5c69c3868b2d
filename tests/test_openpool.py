"""sarstack.openpool: rasters held open from one chained stage to the next."""

from __future__ import annotations

import os

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from sarstack import cli, io, openpool

GRID = io.Grid(CRS.from_epsg(32611), Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0), 20, 10)


def _raster(path, value: float) -> None:
    io.write_raster(path, np.full(GRID.shape, value, np.float32), GRID, nodata=0.0)


def test_outside_a_chain_every_dataset_is_closed(tmp_path):
    _raster(tmp_path / "a.tif", 1.0)
    ds, key = openpool.acquire(tmp_path / "a.tif")
    openpool.release(ds, key)
    assert ds.closed and openpool.held() == 0
    with io.StackReader([tmp_path / "a.tif"]) as st:
        inner = st._ds[0]
    assert inner.closed and openpool.held() == 0


def test_a_chain_hands_the_same_dataset_on_and_closes_it_at_the_end(tmp_path):
    _raster(tmp_path / "a.tif", 1.0)
    with openpool.keep_open():
        with io.StackReader([tmp_path / "a.tif"]) as st:
            first = st._ds[0]
        assert not first.closed and openpool.held() == 1
        assert io.read_grid(tmp_path / "a.tif").shape == GRID.shape  # served from the pool
        with io.StackReader([tmp_path / "a.tif"]) as st:
            assert st._ds[0] is first
            np.testing.assert_array_equal(st.read(Window(0, 0, 3, 2)), np.ones((1, 2, 3), np.float32))
            # a second holder of the same file at the same time gets its own
            with io.StackReader([tmp_path / "a.tif"]) as other:
                assert other._ds[0] is not first
        assert openpool.held() == 2
    assert first.closed and openpool.held() == 0


def test_a_file_rewritten_in_the_chain_is_opened_afresh(tmp_path):
    path = tmp_path / "a.tif"
    _raster(path, 1.0)
    with openpool.keep_open():
        with io.StackReader([path]) as st:
            assert st.read()[0, 0, 0] == 1.0
        old = os.stat(path)
        _raster(path, 2.0)  # the atomic writer: a new file renamed onto the path
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns + 1))
        with io.StackReader([path]) as st:
            assert st.read()[0, 0, 0] == 2.0


def test_the_pool_closes_the_least_recently_returned_beyond_its_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(openpool, "MAX_HELD", 2)
    paths = [tmp_path / f"r{k}.tif" for k in range(3)]
    for k, p in enumerate(paths):
        _raster(p, k + 1.0)
    with openpool.keep_open():
        got = [openpool.acquire(p) for p in paths]
        for ds, key in got:
            openpool.release(ds, key)
        assert got[0][0].closed and not got[1][0].closed and not got[2][0].closed
        assert openpool.held() == 2


def test_a_chain_of_stages_leaves_nothing_open(tmp_path, monkeypatch):
    """``sarstack A :: B`` pools between its stages and closes all at its end."""
    seen = []

    def stage(argv):
        with io.StackReader([tmp_path / "a.tif"]) as st:
            seen.append(st._ds[0])

    _raster(tmp_path / "a.tif", 1.0)
    monkeypatch.setattr(cli, "_stage_main", lambda name: stage)
    cli.main(["insar_select", "::", "insar_reference"])
    assert seen[0] is seen[1] and seen[0].closed and openpool.held() == 0


def test_the_pool_bound_follows_the_file_descriptor_limit(monkeypatch):
    import resource

    monkeypatch.setattr(openpool, "MAX_HELD", None)
    monkeypatch.setattr(resource, "getrlimit", lambda what: (1024, 4096))
    assert openpool._max_held() == 256
    monkeypatch.setattr(resource, "getrlimit", lambda what: (100000, 100000))
    assert openpool._max_held() == 2048

"""File-level InSAR helpers: re-referencing, temporal average, conncomp count."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from conftest import with_schema_defaults
from rasterio.crs import CRS

from sarstack import insar, io
from sarstack.errors import SarstackError

rereference_files = with_schema_defaults(insar.rereference_files)
temporal_average = with_schema_defaults(insar.temporal_average)
conncomp_count = with_schema_defaults(insar.conncomp_count)

D = dt.date
GRID = io.Grid(CRS.from_epsg(32611), Affine(30, 0, 0, 0, -30, 0), 12, 10)


def _write(path, arr, **kw):
    io.write_raster(path, np.asarray(arr, np.float32), GRID, **kw)
    return str(path)


def test_rereference_equals_difference_of_originals(tmp_path):
    rng = np.random.default_rng(0)
    dates = [D(2020, 1, 1), D(2020, 1, 13), D(2020, 1, 25), D(2020, 2, 6)]
    series = {d: rng.normal(size=(10, 12)) for d in dates[1:]}
    index = pd.DataFrame({
        "date": [d.isoformat() for d in dates[1:]],
        "path": [_write(tmp_path / f"{d:%Y%m%d}.tif", series[d]) for d in dates[1:]],
        "units": "radians",
    })
    new_ref = insar.nearest_date(dates, D(2020, 1, 14))
    assert new_ref == D(2020, 1, 13)
    out = rereference_files(index, dates[0], new_ref, tmp_path / "re", block_shape=(4, 5))
    assert list(out["date"]) == ["2020-01-25", "2020-02-06"]
    for d, p in zip(dates[2:], out["path"], strict=True):
        assert p.endswith(f"20200113_{d:%Y%m%d}.tif")
        np.testing.assert_allclose(io.read_band(p), series[d] - series[dates[1]], atol=1e-6)
        assert io.raster_tags(p)["start_date"] == "2020-01-13"
    with pytest.raises(SarstackError, match="no acquisition after"):
        rereference_files(index, dates[0], dates[-1], tmp_path / "x")


def test_temporal_average_nan_aware(tmp_path):
    a = np.ones((10, 12))
    b = np.full((10, 12), 3.0)
    b[0, 0] = np.nan
    out = tmp_path / "m.tif"
    temporal_average([_write(tmp_path / "a.tif", a), _write(tmp_path / "b.tif", b)], out)
    m = io.read_band(out)
    assert m[0, 0] == 1.0 and m[5, 5] == 2.0


def test_conncomp_count_per_date(tmp_path):
    d = [D(2020, 1, 1), D(2020, 1, 13), D(2020, 1, 25)]
    cc1 = np.ones((10, 12))
    cc1[2, 3] = 0
    cc2 = np.ones((10, 12))
    ifgs = [
        insar.Ifg(tmp_path / "u1.tif", d[0], d[1], conncomp=_write(tmp_path / "c1.tif", cc1, nodata=None)),
        insar.Ifg(tmp_path / "u2.tif", d[1], d[2], conncomp=_write(tmp_path / "c2.tif", cc2, nodata=None)),
        insar.Ifg(tmp_path / "u3.tif", d[0], d[2], conncomp=_write(tmp_path / "c3.tif", cc2, nodata=None)),
    ]
    out = tmp_path / "count.tif"
    conncomp_count(ifgs, d, out)
    import rasterio

    with rasterio.open(out) as ds:
        counts = ds.read()
        assert ds.dtypes[0] == "uint16" and ds.descriptions == tuple(x.isoformat() for x in d)
    assert counts[:, 5, 5].tolist() == [2, 2, 2]
    assert counts[:, 2, 3].tolist() == [1, 1, 2]

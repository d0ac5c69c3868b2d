"""Reference point by [lon, lat] and the K x K reference window, on PyRate cropA
(real ifgs, EPSG:4326 grid)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_script
from rasterio.windows import Window

from sarstack import insar, io
from sarstack.errors import SarstackError

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def crop_table(tmp_path_factory):
    from conftest import shared_dataset

    pyrate_crop = shared_dataset("pyrate_cropA")
    out = tmp_path_factory.mktemp("ref") / "ifgs.csv"
    p = run_script("insar_select.py", "--unwrapped",
                   pyrate_crop / "geotiffs" / "cropA_*_unw.tif", "--out", out)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return out


def test_lonlat_selects_the_pixel_that_contains_it(crop_table, tmp_path):
    ifgs, _, _ = insar.read_ifg_table(crop_table)
    grid = io.read_grid(ifgs[0].path)
    for r, c, fr, fc in ((30, 40, 0.5, 0.5), (12, 77, 0.1, 0.9), (0, 0, 0.01, 0.01)):
        lon, lat = grid.transform @ (c + fc, r + fr)
        assert io.lonlat_to_rowcol(grid, lon, lat) == (r, c)
    lon, lat = grid.transform @ (40.5, 30.5)
    out = tmp_path / "ref.txt"
    p = run_script("insar_reference.py", "--ifgs", crop_table, "--lonlat", lon, lat, "--out", out)
    assert p.returncode == 0, p.stderr
    assert out.read_text().strip() == "30,40"
    assert "is pixel [30, 40]" in p.stderr
    # Outside the frame: one line naming the key, no file.
    w, s, e, n = grid.bounds
    p = run_script("insar_reference.py", "--ifgs", crop_table, "--lonlat", e + 0.01, n - 0.01,
                   "--out", tmp_path / "no.txt")  # fmt: skip
    assert p.returncode == 2 and "error: insar.reference_lonlat" in p.stderr
    assert "outside the rasters" in p.stderr and not (tmp_path / "no.txt").exists()


def test_reference_window_is_the_median_of_the_kxk_pixels(crop_table):
    ifgs, _, _ = insar.read_ifg_table(crop_table)
    stack = np.stack([io.read_band(i.path) for i in ifgs]).astype(np.float64)
    r, c = 30, 40
    assert np.isfinite(stack[:, r, c]).all()
    np.testing.assert_array_equal(insar.reference_phase(ifgs, (r, c), 1), stack[:, r, c])
    for k in (3, 5):
        h = k // 2
        want = np.nanmedian(stack[:, r - h : r + h + 1, c - h : c + h + 1], axis=(1, 2))
        np.testing.assert_allclose(insar.reference_phase(ifgs, (r, c), k), want, rtol=1e-12)
    # Clipped at the frame's edge: the 2 x 2 corner for K = 3 at [0, 0].
    assert np.isfinite(stack[:, 0, 0]).all()  # cropA's corner is valid: the edge case runs
    want = np.nanmedian(stack[:, :2, :2], axis=(1, 2))
    np.testing.assert_allclose(insar.reference_phase(ifgs, (0, 0), 3), want, rtol=1e-12)
    with pytest.raises(SarstackError, match="reference window must be an odd number"):
        insar.reference_phase(ifgs, (r, c), 4)


def test_reference_window_is_robust_to_one_noisy_pixel(crop_table, tmp_path):
    ifgs, _, _ = insar.read_ifg_table(crop_table)
    r, c = 30, 40
    first = ifgs[0]
    data = io.read_band(first.path)
    data[r + 1, c - 1] += 40.0  # an unwrapping blunder next to the reference
    noisy = tmp_path / first.path.name
    io.write_raster(noisy, data, io.read_grid(first.path), nodata=0.0)
    from dataclasses import replace

    hit = [replace(first, path=noisy), *ifgs[1:]]
    clean3 = insar.reference_phase(ifgs, (r, c), 3)
    noisy3 = insar.reference_phase(hit, (r, c), 3)
    window = io.read_band(first.path, Window(c - 1, r - 1, 3, 3))
    # The median moves at most to a neighbouring order statistic of the clean window.
    assert abs(noisy3[0] - clean3[0]) <= np.ptp(window) + 1e-9
    np.testing.assert_array_equal(noisy3[1:], clean3[1:])
    assert abs(noisy3[0] - clean3[0]) < 40.0 / 9  # a 3 x 3 mean would move by 4.4 rad

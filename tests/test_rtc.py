"""Unit tests of the RTC kernels against known truth."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from conftest import with_schema_defaults
from rasterio.crs import CRS

from sarstack import io, rtc
from sarstack.errors import SarstackError

superset_scene = with_schema_defaults(rtc.superset_scene)
summarize = with_schema_defaults(rtc.summarize)
aggregate_pairs = with_schema_defaults(rtc.aggregate_pairs)
measure_pairs = with_schema_defaults(rtc.measure_pairs)
# measure_pair passes its keywords on to measure_pairs
measure_pair = with_schema_defaults(
    rtc.measure_pair, upsample_factor="rtc.upsample_factor", max_nan_fraction="rtc.max_nan_fraction",
    preprocess="rtc.preprocess", min_quality="rtc.min_quality", max_shift_px="rtc.max_shift_px",
    iterations="rtc.refine_iterations", scale="rtc.scale",
)
flatten_stats = with_schema_defaults(rtc.flatten_stats)
read_scene = with_schema_defaults(rtc.read_scene)
coarse_offset = with_schema_defaults(rtc.coarse_offset)

UTM = CRS.from_epsg(32611)


def _grid(x0, y0, w, h, px=30.0, crs=UTM):
    return io.Grid(crs, Affine(px, 0, x0, 0, -px, y0), w, h)


def test_union_grid_aligned_to_first_and_covers_all():
    g1 = _grid(1000, 5000, 10, 10)
    g2 = _grid(1000 + 3 * 30, 5000 + 2 * 30, 10, 10)  # moved 3 px east, 2 px north
    u = rtc.union_grid([g1, g2])
    assert u.width == 13 and u.height == 12
    assert u.transform.c == 1000 and u.transform.f == 5000 + 60
    assert rtc.grid_offset(g1, u) == (2, 0)
    assert rtc.grid_offset(g2, u) == (0, 3)


def test_grid_offset_none_for_fractional_or_other_crs():
    u = _grid(0, 0, 10, 10)
    assert rtc.grid_offset(_grid(15, 0, 5, 5), u) is None  # half a pixel
    assert rtc.grid_offset(_grid(30, 0, 5, 5, px=20), u) is None
    assert rtc.grid_offset(_grid(30, 0, 5, 5, crs=CRS.from_epsg(32612)), u) is None


def test_superset_pads_without_resampling_and_masks_nodata(tmp_path):
    src = tmp_path / "s_20200101.tif"
    data = np.arange(1, 26, dtype=np.float32).reshape(5, 5)
    data[0, 0] = -9999
    g = _grid(300, 600, 5, 5)
    io.write_raster(src, data, g, nodata=-9999)
    union = rtc.union_grid([g, _grid(240, 660, 4, 4)])
    out = tmp_path / "o.tif"
    assert superset_scene(src, out, union) == "padded"
    arr = io.read_band(out)
    off = rtc.grid_offset(g, union)
    placed = arr[off[0] : off[0] + 5, off[1] : off[1] + 5]
    assert np.isnan(placed[0, 0])  # nodata -> NaN, not -9999
    np.testing.assert_array_equal(placed.ravel()[1:], data.ravel()[1:])  # bit-exact: not resampled
    assert np.isnan(arr).sum() == arr.size - 24


def _complex_source_vrt(src, dst, grid, nodata):
    """The superset VRT as it was written before its SimpleSource form: NaN
    band nodata, the scene's nodata mapped to NaN by a ComplexSource (oracle)."""
    off = rtc.grid_offset(io.read_grid(src), grid)
    g = io.read_grid(src)
    nd = f"<NODATA>{nodata!r}</NODATA>" if nodata is not None else ""
    dst.write_text(
        f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">'
        f"<GeoTransform>{', '.join(repr(float(v)) for v in grid.transform.to_gdal())}</GeoTransform>"
        '<VRTRasterBand dataType="Float32" band="1"><NoDataValue>nan</NoDataValue><ComplexSource>'
        f'<SourceFilename relativeToVRT="0">{src}</SourceFilename><SourceBand>1</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{g.width}" ySize="{g.height}"/>'
        f'<DstRect xOff="{off[1]}" yOff="{off[0]}" xSize="{g.width}" ySize="{g.height}"/>'
        f"{nd}</ComplexSource></VRTRasterBand></VRTDataset>"
    )


@pytest.mark.parametrize(("declared", "fill"), [
    (0.0, None), (-9999.0, None), (None, -9999.0), (float("nan"), -32768.0), (None, None),
    (1e-10, None), (None, 1e-10),  # the latter no float32 value: the VRT maps it (ComplexSource)
])  # fmt: skip
def test_superset_vrt_reads_as_the_complex_source_vrt(tmp_path, declared, fill):
    """Read through sarstack.io, the padded VRT is the raster of the former
    ComplexSource VRT, value for value and NaN for NaN: padding, nodata and
    fill pixels NaN, the rest bit-exact."""
    rng = np.random.default_rng(0)
    data = rng.random((40, 50)).astype(np.float32) + 0.5
    data[:5, :7] = 0.0  # a zero border: nodata only where declared
    data[20:23, 30:40] = -9999.0
    data[30, :] = -32768.0
    data[10, 10] = np.nan
    data[11, 11] = np.float32(1e-10)
    g = _grid(300, 600, 50, 40)
    src = tmp_path / "s_20200101.tif"
    io.write_raster(src, data, g, nodata=declared)
    union = rtc.union_grid([g, _grid(240, 660, 4, 4)])
    with rasterio.open(src) as ds:
        nodatas = rtc.superset._nodata_values(ds.nodata, fill)
    new, old = tmp_path / "new.vrt", tmp_path / "old.vrt"
    rtc.superset_vrt(src, new, union, fill=fill)
    _complex_source_vrt(src, old, union, nodatas[0] if nodatas else None)
    simple = "<SimpleSource>" in new.read_text()
    assert simple == (not nodatas or float(np.float32(nodatas[0])) == nodatas[0])
    assert simple == (fill != 1e-10)
    a, b = io.read_band(new), io.read_band(old)
    assert a.shape == (union.height, union.width)
    np.testing.assert_array_equal(a, b)  # NaN where NaN, every value bit-exact
    with io.StackReader([new]) as st:
        np.testing.assert_array_equal(st.read_one(0, None), b)
    assert np.isnan(a).sum() > union.width * union.height - 50 * 40  # the padding


def test_superset_reprojects_off_grid_scene(tmp_path):
    src = tmp_path / "s.tif"
    yy, xx = np.mgrid[0:20, 0:20].astype(np.float32)
    io.write_raster(src, xx, _grid(15, 600, 20, 20))  # half-pixel east of the lattice
    union = _grid(0, 600, 22, 20)
    assert superset_scene(src, tmp_path / "o.tif", union) == "reprojected"
    arr = io.read_band(tmp_path / "o.tif")
    # Column k of the union grid lies half a source pixel west of source column k.
    np.testing.assert_allclose(arr[5, 3:15], np.arange(3, 15) - 0.5, atol=1e-4)


def test_flatten_at_percentiles_is_nan_aware(tmp_path):
    v = np.linspace(0, 1, 10000, dtype=np.float32).reshape(100, 100)
    v[:10] = np.nan
    src = tmp_path / "a.tif"
    io.write_raster(src, v, _grid(0, 0, 100, 100))
    lo, hi = rtc.flatten_scene(src, tmp_path / "b.tif", (5, 95), block_shape=(32, 32))
    finite = v[np.isfinite(v)]
    assert lo == pytest.approx(np.percentile(finite, 5), rel=1e-5)
    assert hi == pytest.approx(np.percentile(finite, 95), rel=1e-5)
    out = io.read_band(tmp_path / "b.tif")
    assert np.nanmin(out) >= lo and np.nanmax(out) <= hi
    assert np.isnan(out).sum() == 1000 + int(((finite < lo) | (finite > hi)).sum())


def test_tile_layout_and_geojson_roundtrip():
    g = _grid(0, 1000, 103, 97)
    lay = rtc.tile_layout(g.shape, (4, 5))
    assert (lay.tile_height, lay.tile_width) == (24, 20)
    assert (lay.row0, lay.col0) == (0, 1)
    fc = rtc.tiles_geojson(lay, g, {"2020-01-01": np.ones((4, 5))})
    fc = json.loads(json.dumps(fc))
    assert len(fc["features"]) == 20
    assert rtc.layout_from_geojson(fc) == lay
    f = fc["features"][0]
    assert f["geometry"]["coordinates"][0][0] == [30.0, 1000.0]
    assert f["properties"]["valid_2020-01-01"] == 1.0
    assert "32611" in fc["crs"]["properties"]["name"]
    with pytest.raises(SarstackError, match="rtc.tiles"):
        rtc.tile_layout(g.shape, (20, 20))


def test_shifts_to_map_sign_and_axes():
    t = Affine(30, 0, 0, 0, -20, 0)  # 30 m wide, 20 m tall pixels
    # skimage shift (row, col) = (0, -1): the feature moved +1 column (east).
    e, n = rtc.shifts_to_map(np.array([[0.0, -1.0]]), t)
    assert (e[0], n[0]) == (30.0, 0.0)
    # shift (+1, 0): the feature moved one row up = north.
    e, n = rtc.shifts_to_map(np.array([[1.0, 0.0]]), t)
    assert (e[0], n[0]) == (0.0, 20.0)
    # A south-up grid (positive e) flips the row sense.
    e, n = rtc.shifts_to_map(np.array([[1.0, 0.0]]), Affine(30, 0, 0, 0, 20, 0))
    assert n[0] == -20.0


def test_classify_nan_verdict_is_never_overwritten():
    status = rtc.classify_tiles(
        np.array([0.5, 1.0, 1.0, 1.0]),
        np.array([1.0, 1.0, 1.0, 1.0]),
        np.array([0.1, 0.1, 9.0, 9.0]),  # the NaN tile also has low quality
        np.array([[0, 0], [0, 0], [0, 20.0], [0, 0.3]]),
        max_nan_fraction=0.1,
        min_quality=2.0,
        max_shift_px=5.0,
    )
    assert list(status) == ["too_many_nan", "low_correlation", "shift_too_large", "ok"]


def test_robust_stats_rejects_outliers_and_keeps_mean_efficiency():
    v = np.r_[np.full(20, 1.0), np.full(20, 1.1), 50.0, np.nan]
    mean, spread = rtc.robust_stats(v)
    assert mean == pytest.approx(1.05)
    assert spread == pytest.approx(1.4826 * 0.1)


def _offsets(ref, sec, east, north, status):
    n = len(east)
    return pd.DataFrame(
        {
            "reference_date": ref,
            "secondary_date": sec,
            "tile_row": np.arange(n) // 2,
            "tile_col": np.arange(n) % 2,
            "east_m": east,
            "north_m": north,
            "status": status,
        }
    )


def test_aggregate_pairs_status_and_requirement():
    ok = ["ok"] * 4
    a = _offsets("2020-01-01", "2020-01-13", [1.0, 1.2, 0.8, 1.0], [2.0, 2, 2, 2], ok)
    b = _offsets("2020-01-13", "2020-01-25", [30.0] * 4, [0.0] * 4, ["low_correlation"] * 4)
    pairs = aggregate_pairs(pd.concat([a, b]), min_ok_tiles=3, requirement_m=5.0)
    assert list(pairs["status"]) == ["ok", "unreliable"]
    assert pairs["east_m"].iloc[0] == pytest.approx(1.0)
    assert math.isnan(pairs["east_m"].iloc[1])  # unreliable pairs report no shift
    assert list(pairs["passes"]) == [True, None]  # an unreliable pair is not judged
    # One pair could not be measured: never a pass (issue 10), and the pair is named.
    s = summarize(pairs, 5.0)
    assert s["verdict"].iloc[0] == "incomplete"
    assert s["unmeasured_pairs"].iloc[0] == "2020-01-13_2020-01-25"
    assert summarize(pairs.iloc[:1], 5.0)["verdict"].iloc[0] == "pass"
    assert summarize(pairs.iloc[1:], 5.0)["verdict"].iloc[0] == "not_measurable"


def test_pairs_csv_passes_is_empty_for_unmeasured_pairs(tmp_path):
    from sarstack import io

    ok = _offsets("2020-01-01", "2020-01-13", [1.0] * 4, [2.0] * 4, ["ok"] * 4)
    far = _offsets("2020-01-13", "2020-01-25", [9.0] * 4, [0.0] * 4, ["ok"] * 4)
    bad = _offsets("2020-01-25", "2020-02-06", [0.0] * 4, [0.0] * 4, ["low_correlation"] * 4)
    pairs = aggregate_pairs(pd.concat([ok, far, bad]), requirement_m=5.0)
    io.write_csv(tmp_path / "pairs.csv", pairs)
    lines = (tmp_path / "pairs.csv").read_text().splitlines()
    col = lines[0].split(",").index("passes")
    assert [ln.split(",")[col] for ln in lines[1:]] == ["True", "False", ""]


def test_verdict_without_requirement():
    """Without a requirement: not_measurable when nothing was measured, else no_requirement."""
    ok = _offsets("2020-01-01", "2020-01-13", [1.0] * 4, [2.0] * 4, ["ok"] * 4)
    bad = _offsets("2020-01-13", "2020-01-25", [0.0] * 4, [0.0] * 4, ["low_correlation"] * 4)
    pairs = aggregate_pairs(pd.concat([ok, bad]))
    assert "passes" not in pairs
    assert summarize(pairs.iloc[1:], None)["verdict"].iloc[0] == "not_measurable"
    assert summarize(pairs, None)["verdict"].iloc[0] == "no_requirement"
    assert summarize(pairs.iloc[:1], None)["verdict"].iloc[0] == "no_requirement"


def test_summary_fails_when_an_ok_pair_exceeds_requirement():
    a = _offsets("2020-01-01", "2020-01-13", [10.0] * 4, [0.0] * 4, ["ok"] * 4)
    pairs = aggregate_pairs(a, requirement_m=5.0)
    assert summarize(pairs, 5.0)["verdict"].iloc[0] == "fail"
    # A measured failure stays a failure when another pair is unmeasurable.
    b = _offsets("2020-01-13", "2020-01-25", [0.0] * 4, [0.0] * 4, ["low_correlation"] * 4)
    pairs = aggregate_pairs(pd.concat([a, b]), requirement_m=5.0)
    assert summarize(pairs, 5.0)["verdict"].iloc[0] == "fail"


def test_select_scenes_sorts_by_date_not_string(tmp_path):
    names = ["b_20200110.tif", "a_20200201.tif", "c_20191231.tif"]
    scenes = rtc.select_scenes([tmp_path / n for n in names])
    assert [s.date.isoformat() for s in scenes] == ["2019-12-31", "2020-01-10", "2020-02-01"]


@pytest.mark.parametrize(
    ("names", "match"),
    [
        ([], "no files match"),
        (["x_20200101.tif"], "only one scene"),
        (["x_20200101.tif", "undated.tif"], "undated.tif: no date"),
        (["a_20200101.tif", "b_20200101T120000.tif"], "same date 2020-01-01"),
    ],
)
def test_select_scenes_errors(tmp_path, names, match):
    with pytest.raises(SarstackError, match=match):
        rtc.select_scenes([tmp_path / n for n in names])


def test_measure_pair_known_shift(tmp_path):
    """A whole-scene Fourier shift is recovered per tile, in metres, with the right sign."""
    from scipy import ndimage

    rng = np.random.default_rng(1)
    base = ndimage.gaussian_filter(rng.standard_normal((256, 256)), 2.0)
    base = np.exp(base / base.std())
    de, dn = 0.37, -0.61  # feature moves 0.37 px east and 0.61 px south in the secondary
    moved = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(base), (-dn, de))).real
    g = _grid(0, 0, 256, 256, px=20.0)
    io.write_raster(tmp_path / "r.tif", base.astype(np.float32), g)
    io.write_raster(tmp_path / "s.tif", np.maximum(moved, 1e-6).astype(np.float32), g)
    lay = rtc.tile_layout(g.shape, (4, 4))
    df = measure_pair(tmp_path / "r.tif", tmp_path / "s.tif", lay, upsample_factor=10)
    assert (df["status"] == "ok").all()
    assert df["east_m"].median() == pytest.approx(de * 20, abs=0.02 * 20)
    assert df["north_m"].median() == pytest.approx(dn * 20, abs=0.02 * 20)


def test_measure_pairs_equals_each_pair_alone(tmp_path, monkeypatch):
    """A chunk of pairs shares each scene's read, preparation and spectra: the
    tables are those of measuring every pair alone, bit for bit (a nearest-2
    network with NaN holes, one pair with a coarse offset, several tile bands)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    base = np.exp(ndimage.gaussian_filter(rng.standard_normal((160, 160)), 2.0) * 3)
    g = _grid(0, 0, 160, 160, px=20.0)
    paths = []
    for k, (dr, dc) in enumerate([(0, 0), (0.3, -0.2), (-0.4, 0.5), (12, -9), (0.1, 0.1)]):
        img = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(base), (dr, dc))).real
        img = np.maximum(img * rng.gamma(20, 1 / 20, img.shape), 1e-6).astype(np.float32)
        img[5 * k : 5 * k + 9, 30:50] = np.nan
        paths.append(tmp_path / f"s{k}.tif")
        io.write_raster(paths[-1], img, g)
    lay = rtc.tile_layout(g.shape, (4, 4))
    pairs = [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]
    kw = dict(upsample_factor=10, max_batch_pixels=2 * 40 * 160)
    together = measure_pairs(paths, pairs, lay, **kw)
    assert together[3]["coarse_d_row_px"].iloc[0] != 0  # the (12, -9) scene is searched around
    for (i, j), df in zip(pairs, together, strict=True):
        alone = measure_pair(paths[i], paths[j], lay, **kw)
        pd.testing.assert_frame_equal(df, alone, check_exact=True)
    # A share of the pairs' tile rows (bands of two rows cut across): the same
    # rows, bit for bit, whichever share measured them.
    for share in ([range(1, 4)] * 7, [range(0, 1), range(3, 4), range(0, 4), range(2, 3),
                                       range(1, 3), range(0, 2), range(3, 4)]):  # fmt: skip
        part = measure_pairs(paths, pairs, lay, tile_rows=share, **kw)
        for df, whole, rows in zip(part, together, share, strict=True):
            want = whole[whole["tile_row"].isin(rows)].reset_index(drop=True)
            assert len(want) == 4 * len(rows)
            pd.testing.assert_frame_equal(df, want, check_exact=True)
    # Fewer scenes held open than the chunk reads (closed and opened again): the same.
    monkeypatch.setattr(rtc.correlate, "OPEN_SCENES", 2)
    for df, whole in zip(measure_pairs(paths, pairs, lay, **kw), together, strict=True):
        pd.testing.assert_frame_equal(df, whole, check_exact=True)


def test_measure_pair_rejects_different_grids(tmp_path):
    io.write_raster(tmp_path / "r.tif", np.ones((32, 32), np.float32), _grid(0, 0, 32, 32))
    io.write_raster(tmp_path / "s.tif", np.ones((32, 32), np.float32), _grid(30, 0, 32, 32))
    with pytest.raises(SarstackError, match="same grid"):
        measure_pair(tmp_path / "r.tif", tmp_path / "s.tif", rtc.tile_layout((32, 32), (2, 2)))


def test_raster_writer_cog_metadata_and_atomicity(tmp_path):
    g = _grid(0, 0, 600, 400)
    path = tmp_path / "x.tif"
    io.write_raster(path, np.zeros((400, 600), np.float32), g, units="meters",
                    tags={"start_date": "2020-01-01", "end_date": "2020-02-01"})
    with rasterio.open(path) as ds:
        assert ds.units == ("meters",)
        assert ds.tags()["start_date"] == "2020-01-01"
        assert np.isnan(ds.nodata)
        assert ds.overviews(1)  # COG with overviews
        assert ds.profile["tiled"]
    with pytest.raises(RuntimeError), io.RasterWriter(tmp_path / "y.tif", g) as w:
        w.write(np.zeros((400, 600), np.float32))
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tif"]  # nothing partial


def test_iter_blocks_covers_each_pixel_once():
    hits = np.zeros((37, 53), int)
    for w in io.iter_blocks(hits.shape, (16, 20)):
        hits[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (hits == 1).all()


def test_fast_tile_size_and_centred_layout():
    """Tile sides are the largest 2-3-5-smooth lengths that fit (fast FFTs), centred."""
    assert [rtc.fast_tile_size(n) for n in (514, 515, 512, 1029, 100, 97, 7)] == [
        512, 512, 512, 1024, 100, 96, 6,
    ]  # fmt: skip
    lay = rtc.tile_layout((4119, 4120), (8, 8))
    assert (lay.tile_height, lay.tile_width) == (512, 512)
    assert (lay.row0, lay.col0) == ((4119 - 4096) // 2, (4120 - 4096) // 2)


def test_fast_tiles_agree_with_the_full_tiles(tmp_path):
    """The previous kernel measured tiles of exactly grid // tiles px (here 130 x 129);
    the FFT-friendly 128 x 128 tiles inside them give the same offsets within
    0.005 px per tile (0.0015 px measured; each tile is 0.02 px from the truth)
    on a sub-pixel shifted speckled pair."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    base = np.exp(ndimage.gaussian_filter(rng.standard_normal((260, 258)), 2.0) * 2)
    g = _grid(0, 0, 258, 260, px=30.0)
    paths = []
    for k, (dr, dc) in enumerate([(0, 0), (0.35, -0.45)]):
        img = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(base), (dr, dc))).real
        img = np.maximum(img * rng.gamma(200, 1 / 200, img.shape), 1e-6).astype(np.float32)
        paths.append(tmp_path / f"s{k}.tif")
        io.write_raster(paths[-1], img, g)
    new = rtc.tile_layout(g.shape, (2, 2))
    assert (new.tile_height, new.tile_width) == (128, 128)
    old = rtc.TileLayout(2, 2, 130, 129, 0, 0)
    a = measure_pair(paths[0], paths[1], new, upsample_factor=20)
    b = measure_pair(paths[0], paths[1], old, upsample_factor=20)
    assert (a["status"] == "ok").all() and (b["status"] == "ok").all()
    for col in ("d_row_px", "d_col_px"):
        assert np.abs(a[col] - b[col]).max() <= 0.005
    assert a["d_row_px"].median() == pytest.approx(0.35, abs=0.03)
    assert a["d_col_px"].median() == pytest.approx(-0.45, abs=0.03)


def test_coarse_cache_from_flatten_equals_reading(tmp_path):
    """rtc_flatten's pass saves the decimated scene coarse_offset needs; it is
    the strided read exactly, and the coarse offset is the same with or without it."""
    from scipy import ndimage

    rng = np.random.default_rng(2)
    base = np.exp(ndimage.gaussian_filter(rng.standard_normal((1100, 60)), 2.0))
    base[:7, :] = np.nan
    g = _grid(0, 0, 60, 1100, px=30.0)
    paths = [tmp_path / "a.tif", tmp_path / "b.tif"]
    io.write_raster(paths[0], base.astype(np.float32), g)
    io.write_raster(paths[1], np.roll(base, (40, 0), axis=(0, 1)).astype(np.float32), g)
    lay = rtc.tile_layout(g.shape, (2, 1))
    stride = rtc.coarse_stride(g.shape)
    assert stride == 2
    clips = []
    for p in paths:
        lo, hi, _ = flatten_stats(p, (1, 99), lay, block_shape=(96, 48),
                                  coarse_path=rtc.coarse_cache_path(p, stride))  # fmt: skip
        clips.append((lo, hi))
        cached = np.load(rtc.coarse_cache_path(p, stride))
        np.testing.assert_array_equal(cached, read_scene(p)[::stride, ::stride])
    rtc._strided_scene.cache_clear()
    with_cache = coarse_offset(*paths, clip_ref=clips[0], clip_sec=clips[1])
    for p in paths:
        rtc.coarse_cache_path(p, stride).unlink()
    rtc._strided_scene.cache_clear()
    assert coarse_offset(*paths, clip_ref=clips[0], clip_sec=clips[1]) == with_cache
    assert with_cache[:2] == (40, 0)


def test_injected_shifts_are_recovered_with_the_right_sign(tmp_path):
    """rtc.injection: a scene's tiles moved by a known (rows, cols) shift as they
    are prepared; the pair's measured displacement changes by that shift (a
    column east is one pixel east), and injected_shift depends on the seed and
    the date only, within its bounds."""
    from scipy import ndimage

    rng = np.random.default_rng(8)
    base = np.exp(ndimage.gaussian_filter(rng.standard_normal((128, 128)), 2.0) * 2)
    g = _grid(0, 0, 128, 128, px=30.0)
    paths = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for p in paths:
        io.write_raster(p, np.maximum(base * rng.gamma(100, 1 / 100, base.shape), 1e-6).astype(np.float32), g)
    lay = rtc.tile_layout(g.shape, (2, 2))
    plain = measure_pairs(paths, [(0, 1)], lay)[0]
    moved = measure_pairs(paths, [(0, 1)], lay, inject=[(0.0, 0.0), (0.3, -0.2)])[0]
    assert (moved["status"] == "ok").all()
    np.testing.assert_allclose(moved["d_row_px"] - plain["d_row_px"], 0.3, atol=0.02)
    np.testing.assert_allclose(moved["d_col_px"] - plain["d_col_px"], -0.2, atol=0.02)
    np.testing.assert_allclose(moved["east_m"] - plain["east_m"], -0.2 * 30, atol=0.6)
    np.testing.assert_allclose(moved["north_m"] - plain["north_m"], -0.3 * 30, atol=0.6)
    a = rtc.injected_shift("2021-01-15", 0.5, 0)
    assert a == rtc.injected_shift("2021-01-15", 0.5, 0) != rtc.injected_shift("2021-01-15", 0.5, 1)
    draws = np.array([rtc.injected_shift(f"2021-02-{d:02d}", 0.5, 0) for d in range(1, 29)])
    assert np.abs(draws).max() <= 0.5 and draws.std() > 0.15


@pytest.mark.parametrize("clip", [None, (0.05, 0.7)])
def test_read_scene_one_pass_is_the_stepwise_read(tmp_path, clip):
    """read_scene's one-mask path (float32 power) gives the values of the
    stepwise path it replaced: fill and non-finite values, then the clip."""
    from sarstack.rtc.flatten import FILL_ABS, flatten_block, read_scene

    rng = np.random.default_rng(5)
    a = rng.random((40, 56), dtype=np.float32)
    a[0, :5] = [np.nan, np.inf, -np.inf, 1e31, -1e35]
    a[1, :3] = [0.05, 0.7, np.float32(0.7) + np.float32(1e-7)]  # on and just off the bounds
    a[2, :4] = 0.0  # the file's nodata
    path = tmp_path / "s.tif"
    io.write_raster(path, a, io.Grid(CRS.from_epsg(32611), Affine(30, 0, 0, 0, -30, 0), 56, 40),
                    nodata=0.0)  # fmt: skip
    got = read_scene(path, clip=clip, scale="power")
    want = io.read_band(path)
    with np.errstate(invalid="ignore"):
        want[~(np.abs(want) < FILL_ABS)] = np.nan
    if clip is not None:
        want = flatten_block(want, clip[0], clip[1])
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[2, :4]).all() and np.isnan(got[0, :5]).all()


@pytest.mark.parametrize("dtype,scale", [("float32", "power"), ("float64", "power"),
                                         ("float32", "db")])  # fmt: skip
def test_flatten_valid_fractions_are_the_flattened_tiles_finite_share(tmp_path, dtype, scale):
    """Each tile's valid fraction after flattening is the finite share of the
    scene as read_scene flattens it (counted without the flattened copy for
    float32 power): NaN holes, nodata, an undeclared fill value and the
    values beyond the percentiles all excluded."""
    rng = np.random.default_rng(9)
    img = rng.gamma(2.0, 0.05, (64, 96))
    img[:5, :20] = np.nan
    img[30:34, 50:60] = 0.0  # nodata
    img[10, 10:15] = -9999.0  # undeclared fill
    if scale == "db":
        with np.errstate(divide="ignore"):
            img = np.where(img > 0, 10 * np.log10(np.abs(img)), img)
    g = _grid(0, 0, 96, 64, px=30.0)
    p = tmp_path / "s.tif"
    io.write_raster(p, img.astype(dtype), g)
    lay = rtc.tile_layout(g.shape, (2, 3))
    lo, hi, valid = flatten_stats(p, (5, 95), lay, block_shape=(32, 32), scale=scale)
    flat = read_scene(p, None, (lo, hi), scale=scale)
    want = np.array([[np.isfinite(flat[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32]).mean()
                      for c in range(3)] for r in range(2)])  # fmt: skip
    np.testing.assert_array_equal(valid, want)
    assert 0.5 < valid.min() < valid.max() < 1.0

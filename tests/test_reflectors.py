"""sarstack.reflectors: point-target geolocation on synthetic UTM scenes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from conftest import with_schema_defaults
from rasterio.crs import CRS
from rasterio.warp import transform as warp

from sarstack import reflectors as rf
from sarstack.errors import SarstackError
from sarstack.io import Grid

measure_scene = with_schema_defaults(rf.measure_scene)
locate_peak = with_schema_defaults(rf.locate_peak)
expected_positions = with_schema_defaults(rf.expected_positions)

PX = 30.0
GRID = Grid(CRS.from_epsg(32611), Affine(PX, 0.0, 500000.0, 0.0, -PX, 4000000.0), 256, 256)
# The same ground, south-up (positive y pixel size, origin at the bottom-left).
GRID_FLIP = Grid(
    CRS.from_epsg(32611), Affine(PX, 0.0, 500000.0, 0.0, PX, 4000000.0 - 256 * PX), 256, 256
)
CLUTTER = 0.05  # linear power, about -13 dB
DATE = "2021-06-15"

# Known target positions as (row, col) pixel-is-area on GRID, deliberately off-centre.
TARGETS_RC = [(40.3, 50.8), (60.5, 200.1), (128.0, 128.0), (190.7, 40.45), (210.2, 215.9)]


def _xy(grid: Grid, row: float, col: float) -> tuple[float, float]:
    return grid.transform @ (col, row)


def _targets_frame(points_xy, ids=None) -> pd.DataFrame:
    ids = ids or [f"CR{k}" for k in range(len(points_xy))]
    return pd.DataFrame(
        {
            "id": ids,
            "x": [p[0] for p in points_xy],
            "y": [p[1] for p in points_xy],
            "crs": "EPSG:32611",
        }
    )


def _render(grid, points_xy, shift_en_m=(0.0, 0.0), psf="gauss", db_above=35.0, seed=0):
    """Gamma speckle (4 looks) plus additive PSFs centred at ``points_xy``
    moved by ``shift_en_m`` (east, north metres), sampled at pixel centres."""
    rng = np.random.default_rng(seed)
    img = rng.gamma(4.0, CLUTTER / 4.0, size=grid.shape)
    rr, cc = np.mgrid[0 : grid.height, 0 : grid.width] + 0.5  # pixel centres
    inv = ~grid.transform
    amp = CLUTTER * 10 ** (db_above / 10)
    for x, y in points_xy:
        c, r = inv @ (x + shift_en_m[0], y + shift_en_m[1])
        if psf == "gauss":
            sig = 1.2
            img += amp * np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * sig**2))
        else:  # separable sinc^2, main lobe 2.2 px: spectrum inside +-0.45 cycles/px
            img += amp * np.sinc((rr - r) / 2.2) ** 2 * np.sinc((cc - c) / 2.2) ** 2
    return img


@pytest.mark.parametrize("psf", ["gauss", "sinc2"])
@pytest.mark.parametrize("grid", [GRID, GRID_FLIP], ids=["north_up", "south_up"])
def test_subpixel_shift_recovered_with_signs(psf, grid):
    # Scene displaced +0.37 px east and -0.21 px north: targets appear at
    # expected + shift, so measured minus expected is (+11.1 m, -6.3 m).
    de, dn = 0.37 * PX, -0.21 * PX
    pts = [_xy(GRID, r, c) for r, c in TARGETS_RC]
    img = _render(grid, pts, (de, dn), psf=psf)
    out = measure_scene(img, grid, _targets_frame(pts), DATE)
    assert list(out["status"]) == ["ok"] * len(pts)
    assert (out["date"] == DATE).all()
    assert (out["pcr_db"] > 25).all()
    np.testing.assert_allclose(out["east_m"], de, atol=0.02 * PX)  # 0.1 px required, ~0.002 px seen
    np.testing.assert_allclose(out["north_m"], dn, atol=0.02 * PX)
    # Pixel offsets: north-up rows grow southwards, south-up rows northwards.
    row_sign = 1.0 if grid.transform.e < 0 else -1.0
    np.testing.assert_allclose(out["col_px"], 0.37, atol=0.02)
    np.testing.assert_allclose(out["row_px"], row_sign * 0.21, atol=0.02)


def test_unshifted_scene_gives_zero_offsets():
    pts = [_xy(GRID, r, c) for r, c in TARGETS_RC]
    out = measure_scene(_render(GRID, pts, seed=3), GRID, _targets_frame(pts), DATE)
    assert (out["status"] == "ok").all()
    assert np.abs(out[["east_m", "north_m"]].to_numpy()).max() < 0.05 * PX


def test_statuses_outside_near_edge_low_contrast_nodata():
    bright = [_xy(GRID, 100.5, 100.5), _xy(GRID, 1.7, 120.2), _xy(GRID, 150.5, 60.5)]
    img = _render(GRID, bright)
    img[150:160, 62:70] = np.nan  # nodata 2 px right of the third target
    refl = _targets_frame(
        [*bright, _xy(GRID, -20.0, 50.0), _xy(GRID, 200.5, 200.5)],
        ids=["good", "edge", "nodata", "outside", "dark"],
    )
    out = measure_scene(img, GRID, refl, DATE).set_index("id")
    assert list(out["status"]) == ["ok", "near_edge", "near_edge", "outside", "low_contrast"]
    bad = out.drop(index="good")
    for col in ("east_m", "north_m", "row_px", "col_px"):
        assert bad[col].isna().all(), col
        assert np.isfinite(out.loc["good", col])
    assert out.loc["dark", "pcr_db"] < 10


def test_a_brighter_scatterer_beside_the_target_is_never_taken_for_it():
    """The peak is searched within search_px of the expected position: a
    return 10 dB brighter 8 px away neither displaces a real target nor turns
    an empty position into an 'ok' offset of 8 px (240 m)."""
    target, other = _xy(GRID, 100.5, 100.5), _xy(GRID, 100.5, 108.5)
    img = _render(GRID, [target]) + _render(GRID, [other], db_above=45.0, seed=1) - _render(
        GRID, [], seed=1)
    out = measure_scene(img, GRID, _targets_frame([target]), DATE).iloc[0]
    # The neighbour sits in the clutter ring, so the target's contrast is judged
    # low (the clutter is the ring's mean power); what must never happen is an
    # 'ok' offset towards the neighbour.
    assert out["status"] == "low_contrast" or (
        abs(out["east_m"]) < 0.05 * PX and abs(out["north_m"]) < 0.05 * PX)
    lone = _render(GRID, [other], db_above=45.0)  # nothing at the expected position
    out = measure_scene(lone, GRID, _targets_frame([target]), DATE)
    assert out["status"].iloc[0] == "low_contrast" and np.isnan(out["east_m"].iloc[0])
    # A search disc that reaches the bright return finds it (the radius is what guards).
    out = measure_scene(lone, GRID, _targets_frame([target]), DATE, search_px=12.0)
    assert out["status"].iloc[0] == "ok" and out["east_m"].iloc[0] == pytest.approx(8 * PX, abs=1.0)


def test_locate_peak_nan_for_non_ok_and_result_types():
    img = np.full((64, 64), 1.0)
    res = locate_peak(img, 32.5, 32.5)  # flat: no peak at all
    assert res.status is rf.ReflectorStatus.LOW_CONTRAST
    assert np.isnan(res.row) and np.isnan(res.col)
    res = locate_peak(img, 70.0, 10.0)
    assert res.status == "outside" and np.isnan(res.row) and np.isnan(res.pcr_db)
    img[32, 32] = 1e4
    res = locate_peak(img, 32.5, 32.5)
    assert res.status == "ok"
    assert abs(res.row - 32.5) < 0.05 and abs(res.col - 32.5) < 0.05


def test_fft_oversample_interpolates_the_samples():
    # Element [k * f] of the oversampled chip is the chip's element k (the
    # zero-padding keeps the original samples); mid-way values are smooth.
    rng = np.random.default_rng(1)
    chip = rng.normal(size=(16, 16))
    from sarstack.reflectors.measure import _fft_oversample

    up = _fft_oversample(chip, 4)
    np.testing.assert_allclose(up[::4, ::4], chip, atol=1e-10)
    assert up.shape == (64, 64)


def test_lonlat_input_lands_on_the_known_pixel(tmp_path):
    known = [(100.5, 50.5), (17.25, 233.75), (0.0, 0.0)]  # (row, col), incl. a corner
    xs, ys = zip(*(_xy(GRID, r, c) for r, c in known), strict=True)
    lons, lats = warp("EPSG:32611", "EPSG:4326", list(xs), list(ys))
    p = tmp_path / "cr.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "lon": lons, "lat": lats}).to_csv(p, index=False)
    refl = rf.read_reflectors(p)
    assert list(refl["crs"]) == ["EPSG:4326"] * 3
    exp = expected_positions(refl, GRID, DATE)
    np.testing.assert_allclose(exp["row"], [k[0] for k in known], atol=1e-6)
    np.testing.assert_allclose(exp["col"], [k[1] for k in known], atol=1e-6)
    np.testing.assert_allclose(exp["x"], xs, atol=1e-4)


def test_pixel_is_point_shifts_by_half_a_pixel():
    refl = _targets_frame([_xy(GRID, 10.25, 20.75)])
    area = expected_positions(refl, GRID, DATE)
    point = expected_positions(refl, GRID, DATE, pixel_is_point=True)
    assert area["row"].iloc[0] == pytest.approx(10.25, abs=1e-9)
    assert point["row"].iloc[0] - area["row"].iloc[0] == pytest.approx(0.5, abs=1e-9)
    assert point["col"].iloc[0] - area["col"].iloc[0] == pytest.approx(0.5, abs=1e-9)
    # Same map position either way; only its pixel changes.
    assert point["x"].iloc[0] == area["x"].iloc[0]


def test_pixel_is_point_changes_measured_offset_by_half_a_pixel():
    pts = [_xy(GRID, r, c) for r, c in TARGETS_RC]
    img = _render(GRID, pts)
    out = measure_scene(img, GRID, _targets_frame(pts), DATE, pixel_is_point=True)
    np.testing.assert_allclose(out["col_px"], -0.5, atol=0.1)
    np.testing.assert_allclose(out["east_m"], -0.5 * PX, atol=0.1 * PX)
    np.testing.assert_allclose(out["north_m"], +0.5 * PX, atol=0.1 * PX)


def test_plate_motion_moves_expected_position():
    refl = _targets_frame([_xy(GRID, 100.0, 100.0)]).assign(
        east_velocity_m_yr=-0.03, north_velocity_m_yr=0.05, epoch=dt.date(2011, 6, 15)
    )
    still = expected_positions(
        refl.drop(columns=["epoch"]).assign(east_velocity_m_yr=0.0, north_velocity_m_yr=0.0),
        GRID,
        DATE,
    )
    moved = expected_positions(refl, GRID, DATE)
    years = (dt.date(2021, 6, 15) - dt.date(2011, 6, 15)).days / 365.25
    assert moved["x"].iloc[0] - still["x"].iloc[0] == pytest.approx(-0.03 * years, abs=1e-9)
    assert moved["y"].iloc[0] - still["y"].iloc[0] == pytest.approx(0.05 * years, abs=1e-9)
    assert moved["row"].iloc[0] - still["row"].iloc[0] == pytest.approx(-0.05 * years / PX)


def test_read_reflectors_good_xy_and_velocities(tmp_path):
    p = tmp_path / "cr.csv"
    p.write_text(
        "id,x,y,crs,east_velocity_m_yr,north_velocity_m_yr,epoch\n"
        "A,500100,3999000,EPSG:32611,0.01,-0.02,2015-01-01\n"
        "B,500200.5,3998000,EPSG:32611,,,\n"
    )
    r = rf.read_reflectors(p)
    assert list(r.columns) == list(rf.REFLECTOR_COLUMNS)
    assert list(r["id"]) == ["A", "B"]
    assert r["x"].tolist() == [500100.0, 500200.5]
    assert r["east_velocity_m_yr"].tolist() == [0.01, 0.0]
    assert r["epoch"].tolist() == [dt.date(2015, 1, 1), None]


BAD = {
    "no_id": ("name,lon,lat\nA,1,2\n", "no 'id' column"),
    "no_lat": ("id,lon\nA,1\n", "missing column(s) lat"),
    "no_crs": ("id,x,y\nA,1,2\n", "missing column(s) crs"),
    "both": ("id,lon,lat,x,y,crs\nA,1,2,3,4,EPSG:32611\n", "not both"),
    "duplicate": ("id,lon,lat\nA,1,2\nB,1,2\nA,3,4\n", "line 4, column id: duplicate id 'A'"),
    "empty_id": ("id,lon,lat\nA,1,2\n,1,2\n", "line 3, column id: empty id"),
    "text_lon": ("id,lon,lat\nA,1,2\nB,east,2\n", "line 3, column lon: 'east' is not a number"),
    "empty_lat": ("id,lon,lat\nA,1,\n", "line 2, column lat: '' is not a number"),
    "nan_x": ("id,x,y,crs\nA,nan,2,EPSG:32611\n", "line 2, column x: 'nan' is not a number"),
    "lat_95": ("id,lon,lat\nA,1,2\nB,10,95\n", "line 3, column lat: 95 is outside [-90, 90]"),
    "lon_400": ("id,lon,lat\nA,400,2\n", "line 2, column lon: 400 is outside"),
    "bad_crs": ("id,x,y,crs\nA,1,2,EPSG:999999\n", "line 2, column crs: 'EPSG:999999'"),
    "bad_epoch": (
        "id,lon,lat,east_velocity_m_yr,north_velocity_m_yr,epoch\nA,1,2,0.01,0,2015/01/01\n",
        "line 2, column epoch: '2015/01/01' is not a date",
    ),
    "no_epoch": (
        "id,lon,lat,east_velocity_m_yr,north_velocity_m_yr\nA,1,2,0.01,0\n",
        "line 2, column epoch: a velocity is given but no epoch",
    ),
    "one_velocity": ("id,lon,lat,east_velocity_m_yr\nA,1,2,0.01\n", "without north_velocity"),
    "bad_velocity": (
        "id,lon,lat,east_velocity_m_yr,north_velocity_m_yr,epoch\nA,1,2,fast,0,2015-01-01\n",
        "line 2, column east_velocity_m_yr: 'fast' is not a number",
    ),
    "header_only": ("id,lon,lat\n", "no reflectors"),
    "empty_file": ("", "empty file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_read_reflectors_rejects_bad_csv(tmp_path, case):
    text, expect = BAD[case]
    p = tmp_path / f"bad_{case}.csv"
    p.write_text(text)
    with pytest.raises(SarstackError) as ei:
        rf.read_reflectors(p)
    msg = str(ei.value)
    assert str(p) in msg and expect in msg, msg
    assert "\n" not in msg


def test_read_reflectors_missing_file(tmp_path):
    with pytest.raises(SarstackError, match="nope.csv: no such file"):
        rf.read_reflectors(tmp_path / "nope.csv")


def test_kernel_argument_errors():
    with pytest.raises(SarstackError, match="no CRS"):
        expected_positions(_targets_frame([(0, 0)]), Grid(None, GRID.transform, 4, 4), DATE)
    with pytest.raises(SarstackError, match="not the grid's"):
        measure_scene(np.zeros((3, 3)), GRID, _targets_frame([(0, 0)]), DATE)
    with pytest.raises(SarstackError, match="clutter_ring"):
        locate_peak(np.zeros((64, 64)), 30, 30, clutter_ring=(5, 2))

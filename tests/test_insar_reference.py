"""The reference point: by [lon, lat] and the K x K reference window on PyRate
cropA (real ifgs, EPSG:4326 grid); the automatic choice on stable,
well-connected, low-gradient ground (a synthetic subsidence bowl with a
high-quality rim, and cropA); the far-field check of the velocity map."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest
from affine import Affine
from conftest import run_script, with_schema_defaults
from rasterio.crs import CRS
from rasterio.windows import Window

from sarstack import insar, io, refpoint
from sarstack import velocity as svel
from sarstack.errors import SarstackError

select_reference_point = with_schema_defaults(refpoint.select_reference_point)
reference_inputs = with_schema_defaults(insar.reference_inputs)
phase_roughness = with_schema_defaults(insar.phase_roughness)


@pytest.fixture(scope="module")
def crop_table(tmp_path_factory):
    from conftest import shared_dataset

    pyrate_crop = shared_dataset("pyrate_cropA")
    out = tmp_path_factory.mktemp("ref") / "ifgs.csv"
    p = run_script("insar_select.py", "--unwrapped",
                   pyrate_crop / "geotiffs" / "cropA_*_unw.tif", "--out", out)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return out


@pytest.mark.realdata
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


@pytest.mark.realdata
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


@pytest.mark.realdata
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


# --------------------------------------------------------------------------- #
# Stable, well-connected, low-gradient reference (synthetic subsidence bowl)
# --------------------------------------------------------------------------- #

SHAPE = (60, 90)
CENTRE = (30, 55)
SIGMA = 7.0


def bowl_velocity() -> np.ndarray:
    """Phase velocity (rad/yr) of a Gaussian subsidence bowl; 0 far from it."""
    r, c = np.mgrid[: SHAPE[0], : SHAPE[1]]
    d2 = (r - CENTRE[0]) ** 2 + (c - CENTRE[1]) ** 2
    return 40.0 * np.exp(-d2 / (2 * SIGMA**2))


def bowl_stack(seed=0):
    """Nearest-3 network over 10 dates 24 days apart: phase, spans (years)."""
    rng = np.random.default_rng(seed)
    t = np.arange(10) * 24 / 365.25
    pairs = [(i, j) for i in range(10) for j in range(i + 1, min(i + 4, 10))]
    v = bowl_velocity()
    phase = np.stack([v * (t[j] - t[i]) + rng.normal(0, 0.1, SHAPE) + 3.0 * k
                      for k, (i, j) in enumerate(pairs)])  # fmt: skip
    return phase, np.array([t[j] - t[i] for i, j in pairs])


def rim_distance(rc) -> float:
    return float(np.hypot(rc[0] - CENTRE[0], rc[1] - CENTRE[1]))


def test_gradient_rate_of_a_ramp_is_its_slope():
    # phase_k = (0.3 r - 0.4 c) * dt_k + constant_k: |grad| = 0.5 dt_k per pixel.
    dt_years = np.array([0.1, 0.2, 0.5])
    r, c = np.mgrid[:6, :7]
    phase = np.stack([(0.3 * r - 0.4 * c) * d + 7.0 * k for k, d in enumerate(dt_years)])
    phase[1, 2, 3] = np.nan  # nodata in one ifg: that ifg and its time span drop out there
    g = refpoint.gradient_rate(phase, dt_years)
    np.testing.assert_allclose(g, 0.5, rtol=1e-12)
    phase[:, 4, 4] = np.nan
    assert np.isnan(refpoint.gradient_rate(phase, dt_years)[4, 4])
    with pytest.raises(SarstackError, match="positive time span"):
        refpoint.gradient_rate(phase, np.array([0.1, 0.0, 0.5]))


def test_phase_roughness_does_not_depend_on_the_block(tmp_path):
    phase, _ = bowl_stack()
    phase = phase[:5]
    phase[2, 10:14, 20:23] = np.nan
    grid = io.Grid(CRS.from_epsg(32611), Affine(30.0, 0, 5e5, 0, -30.0, 4e6), SHAPE[1], SHAPE[0])
    d0 = dt.date(2020, 1, 1)
    ifgs = []
    for k, x in enumerate(phase):
        path = tmp_path / f"{k}.tif"
        io.write_raster(path, x.astype(np.float32), grid)
        ifgs.append(insar.Ifg(path, d0, d0 + dt.timedelta(days=12 * (k + 1))))
    years = np.array([12 * (k + 1) / 365.25 for k in range(5)])
    want = refpoint.gradient_rate(phase.astype(np.float32), years)
    for block in ((512, 512), (7, 11)):
        got = phase_roughness(ifgs, grid, block_shape=block)
        np.testing.assert_allclose(got, want, rtol=1e-5, equal_nan=True)


def test_reference_avoids_the_high_gradient_rim():
    phase, years = bowl_stack()
    valid = np.ones(SHAPE, bool)
    valid[20:26, 8:14] = False  # a nodata hole on the stable ground
    rough = refpoint.gradient_rate(phase, years)
    rr, cc = np.mgrid[: SHAPE[0], : SHAPE[1]]
    d = np.hypot(rr - CENTRE[0], cc - CENTRE[1])
    # Quality below the threshold everywhere, best on the rim (steepest slope
    # at SIGMA from the centre): the old rule takes that pixel.
    quality = 0.7 + 0.2 * np.exp(-((d - SIGMA) ** 2) / 2.0)
    old = select_reference_point(valid, quality, threshold=0.95)
    assert abs(rim_distance(old) - SIGMA) < 1.5
    v = bowl_velocity()
    assert v[old] > 0.5 * v.max() * np.exp(-0.5) - 1  # on moving ground
    new = select_reference_point(valid, quality, threshold=0.95, roughness=rough)
    r, c = new
    assert valid[r - 2 : r + 3, c - 2 : c + 3].all()  # well connected, never on nodata
    assert rim_distance(new) > 3.5 * SIGMA
    assert v[new] < 1e-3 * v.max()  # stable ground
    # Uniform quality above the threshold: the old centroid rule lands in the
    # bowl's slope; the stable rule still finds the far field.
    q1 = np.ones(SHAPE)
    assert rim_distance(select_reference_point(valid, q1)) < 3 * SIGMA
    assert rim_distance(select_reference_point(valid, q1, roughness=rough)) > 3.5 * SIGMA
    # Deterministic.
    assert select_reference_point(valid, quality, threshold=0.95, roughness=rough) == new


def test_reference_with_roughness_is_never_on_nodata():
    rng = np.random.default_rng(3)
    valid = rng.random((30, 30)) > 0.3  # no 5 x 5 neighbourhood wholly valid
    rough = rng.random((30, 30))
    quality = rng.random((30, 30))
    for q in (quality, None):
        r, c = select_reference_point(valid, q, roughness=rough)
        assert valid[r, c]
    with pytest.raises(SarstackError, match="roughness has shape"):
        select_reference_point(valid, quality, roughness=rough[:5])


# --------------------------------------------------------------------------- #
# Far-field check of the velocity map
# --------------------------------------------------------------------------- #


def bowl_map(seed=1):
    rng = np.random.default_rng(seed)
    vel = -bowl_velocity() / 40.0 * 0.25 + rng.normal(0, 0.004, SHAPE)  # m/yr, 0.25 m/yr bowl
    std = np.full(SHAPE, 0.004)
    return vel, std


def test_far_field_is_quiet_with_a_stable_reference_and_flags_a_rim_reference():
    vel, std = bowl_map()
    rr, cc = np.mgrid[: SHAPE[0], : SHAPE[1]]
    far = np.hypot(rr - CENTRE[0], cc - CENTRE[1]) > 5 * SIGMA
    good = svel.far_field(vel - vel[5, 5], std)
    assert good is not None and not good.suspicious
    assert far[good.rows[0] : good.rows[1], good.cols[0] : good.cols[1]].all()
    # Referenced on the rim (moving at -0.15 m/yr): stable ground reads +0.15.
    rim = (CENTRE[0], CENTRE[1] - 7)
    v_rim = vel[rim]
    assert v_rim < -0.1
    bad = svel.far_field(vel - v_rim, std)
    assert bad is not None and bad.suspicious
    assert bad.median == pytest.approx(-v_rim, abs=0.01)
    p2, p98 = np.percentile(vel, [2, 98])
    assert bad.spread == pytest.approx(p98 - p2, rel=1e-9)


def test_far_field_ignores_noise_and_pixels_without_std():
    rng = np.random.default_rng(2)
    vel = rng.normal(0, 0.01, SHAPE)  # no deformation: pure noise
    std = np.full(SHAPE, 0.01)
    ref = np.unravel_index(np.argmax(np.abs(vel) * (np.abs(vel) < 0.02)), SHAPE)
    ff = svel.far_field(vel - vel[ref], std)  # a pixel 2 sigma off as reference
    assert ff is not None and not ff.suspicious
    # A cell whose pixels have no std (two dates) is never the far field,
    # however quiet: here it would read 0.5 m/yr off.
    vel2, std2 = bowl_map()
    vel2[:15, :22] = 0.5
    std2[:15, :22] = np.nan
    assert not svel.well_constrained(vel2, std2)[:15, :22].any()
    ff2 = svel.far_field(vel2 - vel2[50, 5], std2)
    assert ff2 is not None and ff2.rows[0] >= 15 or ff2.cols[0] >= 22
    assert not ff2.suspicious
    assert svel.far_field(vel2, np.full(SHAPE, np.nan)) is None


def test_velocity_stage_warns_on_a_moving_far_field(caplog):
    from sarstack.cli.insar_velocity import check_far_field

    vel, std = bowl_map()
    with caplog.at_level(logging.INFO, logger="insar_velocity"):
        check_far_field(vel - vel[5, 5], std, "meters/year")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "far-field median velocity" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="insar_velocity"):
        check_far_field(vel - vel[CENTRE[0], CENTRE[1] - 7], std, "meters/year")
    warn = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warn) == 1 and "reference point is likely on moving ground" in warn[0]


@pytest.mark.realdata
def test_cropA_reference_is_on_quiet_well_connected_ground(crop_table):
    ifgs, _, _ = insar.read_ifg_table(crop_table)
    grid = io.read_grid(ifgs[0].path)
    valid, quality, cc = reference_inputs(ifgs, grid)
    rough = phase_roughness(ifgs, grid)
    r, c = select_reference_point(valid, quality, roughness=rough)
    assert valid[r - 2 : r + 3, c - 2 : c + 3].all()
    assert rough[r, c] <= np.nanpercentile(rough[valid], 25)


def test_manual_point_read_at_the_pixel_agrees_with_the_full_read(tmp_path):
    """point_valid_everywhere (the manual point's fast path) accepts exactly the
    points the full read (reference_inputs + check_reference_point) accepts where
    every conncomp is non-zero; elsewhere it defers to the full read."""
    rng = np.random.default_rng(3)
    grid = io.Grid(CRS.from_epsg(32611), Affine(30.0, 0, 5e5, 0, -30.0, 4e6), 12, 10)
    d0 = dt.date(2020, 1, 1)
    phase = rng.normal(size=(4, 10, 12)).astype(np.float32)
    phase[1, 2, 3] = np.nan
    cc = np.ones((4, 10, 12), np.uint16)
    cc[2, 5, 6] = 0
    mask = np.ones((10, 12), np.uint8)
    mask[7, 8] = 0
    io.write_raster(tmp_path / "mask.tif", mask, grid, nodata=None)
    ifgs, plain = [], []
    for k in range(4):
        p, c = tmp_path / f"{k}.unw.tif", tmp_path / f"{k}.cc.tif"
        io.write_raster(p, phase[k], grid)
        io.write_raster(c, cc[k], grid, nodata=None)
        day = d0 + dt.timedelta(days=12 * (k + 1))
        ifgs.append(insar.Ifg(p, d0, day, conncomp=c))
        plain.append(insar.Ifg(p, d0, day))

    def full(stack, rc, m):
        valid, _, cc_all = reference_inputs(stack, grid, mask=m)
        try:
            refpoint.check_reference_point(rc, valid)
        except SarstackError:
            return False
        # The manual point needs valid data; a zero conncomp label there makes the
        # fast path defer to the full read (which then censors, not refuses).
        return cc_all is None or bool(cc_all[rc[0], rc[1]])

    m = tmp_path / "mask.tif"
    for rc in ((0, 0), (2, 3), (5, 6), (7, 8), (9, 11), (10, 0), (-1, 4)):
        for stack in (ifgs, plain):
            for mk in (None, m):
                fast = insar.point_valid_everywhere(stack, grid, rc, mask=mk)
                assert fast == full(stack, rc, mk), (rc, stack is ifgs, mk)

"""Terrain vs timing in RTC offsets (sarstack.terrain; issue 27 item 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from affine import Affine

from sarstack import io, rtc, synthetic, terrain
from sarstack import network as snet

pytestmark = pytest.mark.usefixtures("x64")


def _offsets(term, pairs, d, timing, coef, noise=0.0, seed=0):
    """Tile offsets of each pair: timing[p] + coef[p] * term[tile] (east and north)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p, (i, j) in enumerate(pairs):
        for (r, c), x in np.ndenumerate(term):
            e = timing[p][0] + coef[p][0] * x + rng.normal(0, noise)
            n = timing[p][1] + coef[p][1] * x + rng.normal(0, noise)
            rows.append({"reference_date": d[i], "secondary_date": d[j], "tile_row": r,
                         "tile_col": c, "east_m": e, "north_m": n, "status": "ok"})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_known_constant_and_terrain_coefficient_are_recovered():
    rng = np.random.default_rng(1)
    term = rng.uniform(0, 800, (5, 5))  # h cot(theta), m
    d = ["2021-01-03", "2021-01-15", "2021-01-27", "2021-02-08"]
    pairs = snet.make_pairs(4, "nearest:2")
    timing = rng.normal(0, 3, (len(pairs), 2))
    coef = rng.normal(0, 0.01, (len(pairs), 2))
    off = _offsets(term, pairs, d, timing, coef, noise=0.05)
    off.loc[3, "status"] = "low_correlation"  # not ok: left out
    off.loc[3, "east_m"] = 1e3
    split = terrain.split_pairs(off, term, "m")
    np.testing.assert_allclose(split[["east_timing_m", "north_timing_m"]], timing, atol=0.1)
    np.testing.assert_allclose(split[["east_coef", "north_coef"]], coef, atol=3e-4)
    np.testing.assert_allclose(split["east_terrain_m"], coef[:, 0] * term.mean(), atol=0.15)
    assert list(split["n_tiles"]) == [24] + [25] * (len(pairs) - 1)
    # per date: the timing parts inverted over the network (exact pairs: exact dates)
    x = [0.0, 1.0, -2.0, 4.0]
    per_date = terrain.split_dates(terrain.split_pairs(
        _offsets(term, pairs, d, np.array([[x[j] - x[i], 0.0] for i, j in pairs]),
                 np.zeros((len(pairs), 2))), term, "m"))  # fmt: skip
    np.testing.assert_allclose(per_date["east_timing_m"], x, atol=1e-9)
    assert list(per_date["scope"]) == ["date"] * 4 and (per_date["reference_date"] == d[0]).all()


def test_a_flat_term_gives_no_split():
    term = np.full((3, 3), 100.0)
    off = _offsets(term, [(0, 1)], ["2021-01-03", "2021-01-15"], [[1.0, 2.0]], [[0.0, 0.0]])
    split = terrain.split_pairs(off, term, "m").iloc[0]
    assert np.isnan(split["east_timing_m"]) and np.isnan(split["east_coef"])


def test_terrain_term_from_a_dem_and_an_incidence_raster_warped_onto_the_grid(tmp_path):
    g = io.Grid("EPSG:32611", Affine(30, 0, 400000, 0, -30, 4000000), 64, 64)
    layout = rtc.tile_layout((64, 64), (2, 2))
    h = np.zeros((64, 64), np.float32)
    h[:32, :32], h[:32, 32:], h[32:, :32], h[32:, 32:] = 100, 200, 300, 400
    io.write_raster(tmp_path / "dem.tif", h, g)
    # the incidence raster on a coarser grid (60 m): read warped onto the 30 m grid
    g60 = io.Grid("EPSG:32611", Affine(60, 0, 400000, 0, -60, 4000000), 32, 32)
    io.write_raster(tmp_path / "inc.tif", np.full((32, 32), 45.0, np.float32), g60)
    term, units = terrain.tile_terrain_term(g, layout, dem=tmp_path / "dem.tif",
                                            incidence=tmp_path / "inc.tif")  # fmt: skip
    assert units == "m"
    np.testing.assert_allclose(term, [[100, 200], [300, 400]], rtol=1e-5)  # cot 45 = 1
    term, units = terrain.tile_terrain_term(g, layout, dem=None, incidence=tmp_path / "inc.tif")
    assert units == "1"
    np.testing.assert_allclose(term, 1.0, rtol=1e-6)
    io.write_raster(tmp_path / "bad.tif", np.full((64, 64), 0.5, np.float32), g)  # radians?
    with pytest.raises(terrain.SarstackError, match="rtc.incidence: .*degrees"):
        terrain.tile_terrain_term(g, layout, dem=None, incidence=tmp_path / "bad.tif")
    with pytest.raises(terrain.SarstackError, match="rtc.dem: .*nope.tif"):
        terrain.tile_terrain_term(g, layout, dem=tmp_path / "nope.tif", incidence=None)


@pytest.mark.workflow
def test_terrain_split_through_the_workflow(tmp_path):
    from test_workflow import snakemake, write_config

    synthetic.make_rtc_stack(tmp_path / "s", n_dates=3, shape=(192, 192), seed=2, max_shift_px=0.3)
    scene = sorted((tmp_path / "s").rglob("*_VV.tif"))[0]
    grid = io.read_grid(scene)
    yy, xx = np.mgrid[0 : grid.height, 0 : grid.width]
    io.write_raster(tmp_path / "dem.tif", (5.0 * xx + 2.0 * yy).astype(np.float32), grid)
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "c.yaml", {
        "output_dir": str(out), "insar": {"enabled": False},
        "rtc": {"inputs": f"{tmp_path}/s/**/*_VV.tif", "tiles": [3, 3],
                "dem": str(tmp_path / "dem.tif")},
    })  # fmt: skip
    snakemake("rtc", "--configfile", str(cfg))
    split = pd.read_csv(out / "rtc" / "terrain_split.csv")
    pairs = pd.read_csv(out / "rtc" / "pairs.csv")
    assert (split["scope"] == "pair").sum() == len(pairs)
    assert (split["scope"] == "date").sum() == 3 and (split["term_units"] == "m").all()
    # timing + terrain-explained = the mean of the pair's ok tiles (least squares
    # with a constant), close to the pair's clipped mean
    by_pair = split[split["scope"] == "pair"].merge(pairs, on=["reference_date", "secondary_date"])
    assert len(by_pair) == len(pairs) and by_pair["east_timing_m"].notna().all()
    for comp in ("east", "north"):
        total = by_pair[f"{comp}_timing_m"] + by_pair[f"{comp}_terrain_m"]
        assert np.abs(total - by_pair[f"{comp}_m"]).max() < 0.05 * 30.0
        assert np.isfinite(by_pair[f"{comp}_coef"]).all()

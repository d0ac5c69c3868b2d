"""Figures of sarstack.plots on small in-memory tables: each writes a PNG, and
draws what the issue-14 review asked for (what is judged, masked few-pair
tiles, arrows inside the map, "not measurable" instead of empty axes, map
coordinates on the velocity map)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from conftest import with_schema_defaults
from matplotlib.text import Text
from rasterio.crs import CRS

from sarstack import plots, rtc

aggregate_pairs = with_schema_defaults(rtc.aggregate_pairs)

DATES = ["2021-01-01", "2021-01-13", "2021-01-25", "2021-02-06", "2021-02-18", "2021-03-02"]


def texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def png_ok(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 2000


def make_offsets(n_rows=4, n_cols=4, unreliable_pair=None, seed=0) -> pd.DataFrame:
    """Sequential pairs over DATES on an n_rows x n_cols tile grid. Interior
    tiles are ok in every pair, edge tiles only in the first pair."""
    rng = np.random.default_rng(seed)
    rows = []
    for p, (ref, sec) in enumerate(zip(DATES[:-1], DATES[1:], strict=True)):
        for r in range(n_rows):
            for c in range(n_cols):
                edge = r in (0, n_rows - 1) or c in (0, n_cols - 1)
                ok = (not edge or p == 0) and p != unreliable_pair
                rows.append({
                    "reference_date": ref, "secondary_date": sec, "tile_row": r, "tile_col": c,
                    "east_m": 2.0 + rng.normal(0, 0.5) + (30.0 if edge else 0.0),
                    "north_m": -1.0 + rng.normal(0, 0.5),
                    "status": "ok" if ok else "low_correlation",
                })
    return pd.DataFrame(rows)


def centres_for(tiles: pd.DataFrame, size_m=750.0, x0=244920.0, y0=3816660.0) -> pd.DataFrame:
    return pd.DataFrame({
        "tile_row": tiles["tile_row"], "tile_col": tiles["tile_col"],
        "x": x0 + (tiles["tile_col"] + 0.5) * size_m,
        "y": y0 - (tiles["tile_row"] + 0.5) * size_m,
    })


# ------------------------------------------------------------------ pair offsets


def test_pair_offsets_judges_the_horizontal_norm(tmp_path):
    # east = north = 8 m is inside ±10 m per component but √128 = 11.3 m fails.
    pairs = pd.DataFrame({
        "reference_date": DATES[:3], "secondary_date": DATES[1:4],
        "east_m": [8.0, 1.0, np.nan], "north_m": [8.0, -2.0, np.nan],
        "east_spread_m": [1.0, 1.0, np.nan], "north_spread_m": [1.0, 1.0, np.nan],
        "status": ["ok", "ok", "unreliable"],
    })
    out = tmp_path / "pair.png"
    fig = plots.pair_offsets(pairs, out, requirement_m=10.0)
    png_ok(out)
    _, axh = fig.axes
    lines = {ln.get_label(): ln for ln in axh.get_lines()}
    assert lines["requirement 10 m"].get_ydata()[0] == pytest.approx(10.0)
    assert list(lines["fails"].get_xdata()) == [0]
    assert list(lines["fails"].get_ydata()) == pytest.approx([math.hypot(8, 8)])
    assert list(lines["passes"].get_xdata()) == [1]
    assert "1 of 2 ok pairs pass" in axh.get_title()
    assert axh.get_ylim()[1] > math.hypot(8, 8)


def test_pair_offsets_follows_the_passes_column(tmp_path):
    pairs = pd.DataFrame({
        "reference_date": DATES[:2], "secondary_date": DATES[1:3],
        "east_m": [3.0, 1.0], "north_m": [4.0, 0.0], "east_spread_m": [1.0, 1.0],
        "north_spread_m": [1.0, 1.0], "status": ["ok", "ok"], "passes": [True, True],
    })
    fig = plots.pair_offsets(pairs, tmp_path / "pair.png", requirement_m=5.0)
    assert "2 of 2 ok pairs pass" in fig.axes[1].get_title()
    assert "fails" not in [ln.get_label() for ln in fig.axes[1].get_lines()]


def test_pair_offsets_not_measurable(tmp_path):
    pairs = aggregate_pairs(make_offsets(unreliable_pair=None).assign(status="low_correlation"),
                            requirement_m=10.0)
    out = tmp_path / "pair.png"
    fig = plots.pair_offsets(pairs, out, requirement_m=10.0)
    png_ok(out)
    assert plots.NOT_MEASURABLE in texts(fig)


# ------------------------------------------------------------------ tile maps


def test_tile_mean_maps_mask_tiles_with_few_pairs(tmp_path):
    offsets = make_offsets()
    tiles = rtc.aggregate_tiles(offsets, aggregate_pairs(offsets))
    assert set(tiles["n_ok"]) == {1, 5}
    out = tmp_path / "tile.png"
    fig = plots.tile_mean_maps(tiles, out)
    png_ok(out)
    east = fig.axes[0].get_images()[0].get_array()
    interior = np.zeros(east.shape, bool)
    interior[1:-1, 1:-1] = True
    # Edge tiles (1 ok pair of 5, east offset +30 m) are not coloured ...
    east = np.ma.filled(east.astype(float), np.nan)
    assert np.isnan(east[~interior]).all()
    assert np.isfinite(east[interior]).all()
    # ... so the colour scale is that of the interior, not of the +30 m edge.
    assert fig.axes[0].get_images()[0].get_clim()[1] < 5
    counts = [ax for ax in fig.axes if ax.get_title().startswith("pairs in which")]
    assert len(counts) == 1
    assert "fewer than 3 of 5 pairs" in texts(fig)
    for ax in fig.axes[:1] + counts:
        for ticks in (ax.get_xticks(), ax.get_yticks()):
            assert np.allclose(ticks, np.round(ticks))


def test_tile_mean_maps_threshold_is_a_parameter(tmp_path):
    offsets = make_offsets()
    tiles = rtc.aggregate_tiles(offsets, aggregate_pairs(offsets))
    fig = plots.tile_mean_maps(tiles, tmp_path / "tile.png", min_ok_pairs=1)
    assert np.isfinite(fig.axes[0].get_images()[0].get_array().filled(np.nan)).all()


def test_tile_mean_maps_not_measurable(tmp_path):
    offsets = make_offsets().assign(status="low_correlation")
    tiles = rtc.aggregate_tiles(offsets, aggregate_pairs(offsets))
    out = tmp_path / "tile.png"
    fig = plots.tile_mean_maps(tiles, out)
    png_ok(out)
    assert plots.NOT_MEASURABLE in texts(fig)


# ------------------------------------------------------------------ quiver


def arrow_extents(q) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) points of every arrow of a Quiver drawn with scale_units="xy"."""
    assert q.scale_units == "xy"
    vec = np.c_[q.U, q.V] / q.scale
    frac = {"tail": (0.0, 1.0), "middle": (-0.5, 0.5), "mid": (-0.5, 0.5), "tip": (-1.0, 0.0)}
    a, b = frac[q.pivot]
    return q.XY + a * vec, q.XY + b * vec


@pytest.mark.parametrize("min_ok_pairs", [None, 1])
def test_tile_quiver_arrows_stay_in_their_tiles_on_plain_km_axes(tmp_path, min_ok_pairs):
    offsets = make_offsets(n_rows=5, n_cols=4)
    tiles = rtc.aggregate_tiles(offsets, aggregate_pairs(offsets))
    out = tmp_path / "quiver.png"
    # 60 m tiles: a map 240 m wide, where matplotlib would put a "+3.816e3" offset
    fig = plots.tile_quiver(tiles, centres_for(tiles, size_m=60.0), out, min_ok_pairs=min_ok_pairs)
    png_ok(out)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "easting (km)" and ax.get_ylabel() == "northing (km)"
    # plain km tick labels: no "+3.8e3" offset text, no "- 3814035" in the label
    assert ax.xaxis.get_major_formatter().get_offset() == ""
    # plain tick labels (no "+4e3" offset text) even on a map 80 m tall
    assert ax.yaxis.get_major_formatter().get_offset() == ""
    # the map is the tile footprints
    assert ax.get_xlim() == pytest.approx((244.92, 244.92 + 0.24))
    assert ax.get_ylim() == pytest.approx((3816.66 - 0.30, 3816.66))
    (q,) = [c for c in ax.collections if hasattr(c, "U")]
    # interior tiles only by default: edge tiles are ok in 1 pair of 5
    assert len(q.U) == (20 if min_ok_pairs == 1 else 6)
    start, end = arrow_extents(q)
    for p in (start, end):
        assert (np.abs(p - q.XY) <= 0.06 / 2 + 1e-9).all()  # within the arrow's own tile
    if min_ok_pairs is None:
        assert "fewer than 3 of 5 pairs" in texts(fig)


def test_tile_quiver_names_the_crs(tmp_path):
    from sarstack.cli.rtc_plots import crs_name

    offsets = make_offsets()
    tiles = rtc.aggregate_tiles(offsets, aggregate_pairs(offsets))
    fig = plots.tile_quiver(tiles, centres_for(tiles), tmp_path / "q.png", crs="EPSG:32611")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "easting (km), EPSG:32611"
    assert ax.get_ylabel() == "northing (km), EPSG:32611"
    layout = {"crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32611"}}}
    assert crs_name(layout) == "EPSG:32611"
    assert crs_name({}) is None


def test_tile_quiver_not_measurable(tmp_path):
    offsets = make_offsets().assign(status="low_correlation")
    tiles = rtc.aggregate_tiles(offsets, aggregate_pairs(offsets))
    out = tmp_path / "quiver.png"
    fig = plots.tile_quiver(tiles, centres_for(tiles), out)
    png_ok(out)
    assert plots.NOT_MEASURABLE in texts(fig)


# ------------------------------------------------------------------ against time


def test_offsets_vs_time_names_the_clipped_mean_and_breaks_at_gaps(tmp_path):
    offsets = make_offsets(unreliable_pair=2)
    pairs = aggregate_pairs(offsets)
    assert (pairs["status"] == "unreliable").sum() == 1
    out = tmp_path / "time.png"
    fig = plots.offsets_vs_time(offsets, pairs, out)
    png_ok(out)
    labels = texts(fig)
    assert "median" not in labels
    assert "clipped mean" in labels and "unreliable pair" in labels
    assert "not cumulative" in labels
    import matplotlib.dates as mdates
    from matplotlib.collections import LineCollection

    ok = pairs[pairs["status"] == "ok"]
    for ax, comp in zip(fig.axes, ("east", "north"), strict=True):
        # Each ok pair is its own bar from its reference to its secondary date ...
        (bars,) = [c for c in ax.collections if isinstance(c, LineCollection)
                   and c.get_label().startswith("pair offset")]  # fmt: skip
        segs = bars.get_segments()
        assert len(segs) == len(ok) == len(pairs) - 1
        for seg, r in zip(segs, ok.itertuples(index=False), strict=True):
            (x0, y0), (x1, y1) = seg
            assert x0 == pytest.approx(mdates.date2num(pd.Timestamp(r.reference_date)))
            assert x1 == pytest.approx(mdates.date2num(pd.Timestamp(r.secondary_date)))
            assert y0 == y1 == pytest.approx(getattr(r, f"{comp}_m"))
        # ... and no drawn line joins one pair's offset to another's.
        for ln in ax.get_lines():
            joined = ln.get_linestyle() not in ("None", "", " ") and len(ln.get_xdata()) > 2
            assert not joined, ln.get_label()


def test_offsets_vs_time_not_measurable(tmp_path):
    offsets = make_offsets().assign(status="low_correlation")
    pairs = aggregate_pairs(offsets)
    out = tmp_path / "time.png"
    fig = plots.offsets_vs_time(offsets, pairs, out)
    png_ok(out)
    assert plots.NOT_MEASURABLE in texts(fig)
    assert all(not ax.axison for ax in fig.axes)


def dates_table(values) -> pd.DataFrame:
    v = np.asarray(values, float)
    return pd.DataFrame({
        "date": DATES[: len(v)], "east_m": v, "north_m": -v, "east_sd_m": 0.1 + 0 * v,
        "north_sd_m": 0.1 + 0 * v, "n_pairs_used": int(np.isfinite(v[1:]).sum()),
    })


def test_date_offsets_marks_unconnected_dates(tmp_path):
    out = tmp_path / "dates.png"
    fig = plots.date_offsets(dates_table([0.0, 1.0, np.nan, 2.0]), out, None)
    png_ok(out)
    labels = texts(fig)
    assert plots.NOT_MEASURABLE not in labels
    assert "no estimate" in labels


def test_date_offsets_draws_the_requirement(tmp_path):
    # east = v, north = -v: horizontal offset √2 |v|; requirement 2 m.
    fig = plots.date_offsets(dates_table([0.0, 1.0, 2.0, np.nan, -0.5]), tmp_path / "d.png",
                             requirement_m=2.0)  # fmt: skip
    axh = fig.axes[1]
    lines = {ln.get_label(): ln for ln in axh.get_lines()}
    assert lines["requirement 2 m"].get_ydata()[0] == pytest.approx(2.0)
    assert list(lines["beyond"].get_ydata()) == pytest.approx([2 * math.sqrt(2)])
    # the datum (0 m by definition) is not judged; the NaN date has no estimate
    assert list(lines["within"].get_ydata()) == pytest.approx([math.sqrt(2), 0.5 * math.sqrt(2)])
    assert "2 of 3 estimated dates within" in axh.get_title()
    assert axh.get_ylim()[1] > 2 * math.sqrt(2)
    fig = plots.date_offsets(dates_table([0.0, 1.0]), tmp_path / "d.png", None)
    assert "no requirement set" in fig.axes[1].get_title()


def test_date_offsets_not_measurable(tmp_path):
    # the datum is 0 by definition; nothing else estimated (the sea burst)
    out = tmp_path / "dates.png"
    fig = plots.date_offsets(dates_table([0.0, np.nan, np.nan]), out, None)
    png_ok(out)
    assert plots.NOT_MEASURABLE in texts(fig)


# ------------------------------------------------------------------ InSAR


def velocity(shape=(40, 60)):
    r, c = np.mgrid[: shape[0], : shape[1]]
    v = (c - shape[1] / 2) / 10.0
    v[:3, :3] = np.nan
    return v


def colorbar_fits(fig) -> None:
    ax, cax = fig.axes[0], fig.axes[1]
    a, b = ax.get_position(), cax.get_position()
    assert b.height == pytest.approx(a.height, rel=0.02)
    assert b.y0 == pytest.approx(a.y0, abs=0.01)


def test_velocity_map_projected_axes_in_km(tmp_path):
    vel = velocity()
    out = tmp_path / "vel.png"
    t = Affine(2.0, 0.0, 500000.0, 0.0, -2.0, 4000000.0)  # 2 m pixels: a small map
    pts = {"max velocity": (10, 59), "centre": (20, 30)}
    fig = plots.velocity_map(vel, (5, 5), "mm/year", out, pts, transform=t,
                             crs=CRS.from_epsg(32611))
    png_ok(out)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("easting (km)") and "EPSG:32611" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("northing (km)")
    assert ax.get_images()[0].get_extent() == pytest.approx([500.0, 500.12, 3999.92, 4000.0])
    marker = [ln for ln in ax.get_lines() if ln.get_label().startswith("max velocity")][0]
    assert marker.get_xdata()[0] == pytest.approx(500.0 + 59.5 * 0.002)
    assert not marker.get_clip_on()  # an edge pixel's marker is drawn whole
    # plain tick labels (no "+4e3" offset text) even on a map 80 m tall
    assert ax.yaxis.get_major_formatter().get_offset() == ""
    assert "[row 10, col 59]" in marker.get_label()
    colorbar_fits(fig)


def test_velocity_map_geographic_axes(tmp_path):
    vel = velocity()
    t = Affine(0.001, 0.0, -99.19, 0.0, -0.001, 19.45)
    fig = plots.velocity_map(vel, (5, 5), "m/year", tmp_path / "vel.png", transform=t,
                             crs=CRS.from_epsg(4326))
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("longitude") and ax.get_ylabel().startswith("latitude")
    assert ax.get_images()[0].get_extent()[0] == pytest.approx(-99.19)
    colorbar_fits(fig)


def test_velocity_map_without_transform_falls_back_to_pixels(tmp_path):
    out = tmp_path / "vel.png"
    fig = plots.velocity_map(velocity(), (5, 5), "mm/year", out, {"centre": (20, 30)})
    png_ok(out)
    assert fig.axes[0].get_xlabel() == "column" and fig.axes[0].get_ylabel() == "row"
    colorbar_fits(fig)


def test_series_and_network_write_pngs(tmp_path):
    dates = [d.replace("-", "") for d in DATES[:4]]
    plots.point_series(dates, {"a": np.arange(4.0)}, "mm", tmp_path / "s.png")
    plots.network(dates, [(0, 1), (1, 2), (0, 2), (2, 3)], tmp_path / "n.png")
    png_ok(tmp_path / "s.png")
    png_ok(tmp_path / "n.png")


def legend_text(fig) -> str:
    return "\n".join(t.get_text() for ax in fig.axes if ax.get_legend()
                     for t in ax.get_legend().get_texts())  # fmt: skip


def backdrop(ax) -> np.ndarray:
    """The RGBA layer painted under the data (no data, masked, no std)."""
    return np.asarray(ax.get_images()[0].get_array())


def test_velocity_map_masks_pixels_without_std_and_never_says_nan(tmp_path):
    from sarstack.cli.insar_plots import sample_points

    vel = velocity()  # (40, 60), NaN in the 3 x 3 corner
    std = np.full(vel.shape, 0.1)
    std[np.isnan(vel)] = np.nan
    vel[30:35, 50:60] = 50.0  # the largest velocities, fitted on two dates: no std
    std[30:35, 50:60] = np.nan
    vel[20, 30] = np.nan  # the centre pixel is nodata
    std[20, 30] = np.nan
    pts = sample_points(vel, (5, 5), std)
    assert np.isfinite(std[pts["max velocity"]]) and vel[pts["max velocity"]] < 50
    assert pts["max velocity"][1] == 59  # the largest of the pixels with a std
    assert pts["centre"] != (20, 30) and np.isfinite(vel[pts["centre"]])
    assert abs(pts["centre"][0] - 20) + abs(pts["centre"][1] - 30) == 1
    out = tmp_path / "vel.png"
    fig = plots.velocity_map(vel, (5, 5), "mm/year", out,
                             {k: v for k, v in pts.items() if k != "reference"}, std=std,
                             model="fit offset + velocity + annual")  # fmt: skip
    png_ok(out)
    ax = fig.axes[0]
    legend = legend_text(fig)
    assert "nan" not in legend.lower()
    assert "too few dates for a std: not shown (50 px)" in legend
    assert "no data (10 px)" in legend  # the 3 x 3 corner and the centre
    assert "fit offset + velocity + annual" in ax.get_title()
    data = ax.get_images()[1].get_array()
    assert np.ma.getmaskarray(data)[30:35, 50:60].all()  # not drawn
    assert ax.get_images()[1].get_clim()[1] < 50  # nor in the colour scale
    rgba = backdrop(ax)
    assert (rgba[32, 55, :3] == 0).all() and rgba[32, 55, 3] == 1  # black
    assert rgba[0, 0, :3] == pytest.approx([0.85] * 3)  # no data: light grey
    # A point placed on a pixel without a value says so, without "nan".
    fig = plots.velocity_map(vel, (5, 5), "mm/year", tmp_path / "v2.png", {"x": (0, 0)}, std=std)
    assert "x [row 0, col 0]: no value" in legend_text(fig)


def test_velocity_map_outlines_the_far_field(tmp_path):
    from sarstack import velocity as svel

    rng = np.random.default_rng(0)
    vel = np.where(np.arange(60) < 30, 0.0, -0.2)[None, :] + rng.normal(0, 0.002, (40, 60))
    std = np.full(vel.shape, 0.002)
    ff = svel.far_field(vel + 0.1, std)  # referenced on the moving half
    assert ff is not None and ff.suspicious and ff.cols[1] <= 30
    fig = plots.velocity_map(vel + 0.1, (5, 5), "m/year", tmp_path / "v.png", std=std,
                             far_field=ff)  # fmt: skip
    assert "CHECK THE REFERENCE" in fig.axes[0].get_title()
    assert f"far field: median {ff.median:.3g} m/year" in legend_text(fig)
    ok = svel.far_field(vel, std)
    fig = plots.velocity_map(vel, (5, 5), "m/year", tmp_path / "v.png", std=std, far_field=ok)
    assert "CHECK" not in fig.axes[0].get_title()


def test_raster_and_mask_maps_tell_masked_from_nodata(tmp_path):
    amp = np.abs(velocity())  # NaN corner = no data
    mask = np.ones(amp.shape, np.uint8)
    mask[10:14, 10:20] = 0
    has = np.isfinite(amp)
    amp[10:14, 10:20] = np.nan  # masked outputs are nodata too
    masked = has & (mask == 0)
    t = Affine(0.001, 0.0, -99.19, 0.0, -0.001, 19.45)
    out = tmp_path / "amp.png"
    fig = plots.raster_map(amp, out, title="amplitude", label="m", masked=masked, ref_rc=(30, 30),
                           transform=t, crs=CRS.from_epsg(4326))  # fmt: skip
    png_ok(out)
    legend = legend_text(fig)
    assert "masked (mask.tif = 0) (40 px)" in legend and "no data (9 px)" in legend
    rgba = backdrop(fig.axes[0])
    assert not np.allclose(rgba[11, 11], rgba[0, 0])  # masked and no data differ
    assert rgba[20, 20, 3] == 0  # under a value: nothing painted
    out = tmp_path / "mask.png"
    fig = plots.mask_map(mask, has, out)
    png_ok(out)
    assert f"{int((has & (mask == 1)).sum())} of {int(has.sum())} pixels" in fig.axes[0].get_title()
    legend = legend_text(fig)
    assert "masked (0) (40 px)" in legend and "no data (9 px)" in legend
    rgba = backdrop(fig.axes[0])
    assert len({tuple(rgba[r, c]) for r, c in ((0, 0), (11, 11), (30, 30))}) == 3


def test_model_name_from_the_velocity_tags():
    from sarstack.cli.insar_plots import model_name

    assert model_name({"model": "fit offset + velocity + annual"}) == "fit offset + velocity + annual"
    assert model_name({"quantity": "linear LOS velocity, positive towards the radar"}) == (
        "fit offset + velocity")
    assert "weighted by mean correlation" in model_name(
        {"quantity": "linear LOS velocity, positive towards the radar, dates weighted by mean"
                     " correlation"})  # fmt: skip


# ------------------------------------------------------------------ many stacks, absolute


def stacks_tables(n_ok_stacks: int, n_empty: int):
    rows, pairs = [], {}
    for i in range(n_ok_stacks + n_empty):
        name = f"burst_{i:02d}_with_a_long_name"
        if i < n_ok_stacks:
            p = aggregate_pairs(make_offsets(seed=i))
            pairs[name] = p
            h = np.hypot(p["east_m"], p["north_m"])
            rows.append({"stack": name, "status": "ok", "verdict": "pass", "east_rms_m": 1.0,
                         "north_rms_m": 1.0, "max_offset_m": float(h.max())})
        else:
            pairs[name] = aggregate_pairs(make_offsets(seed=i).assign(status="low_correlation"))
            rows.append({"stack": name, "status": "ok", "verdict": "not_measurable",
                         "east_rms_m": np.nan, "north_rms_m": np.nan, "max_offset_m": np.nan})
    return pd.DataFrame(rows), pairs


def test_stacks_summary_labels_styles_and_legends(tmp_path):
    per_stack, pairs = stacks_tables(12, 2)
    per_stack.loc[13, "status"] = "not_run"
    out = tmp_path / "stacks.png"
    fig = plots.stacks_summary(per_stack, pairs, out, requirement_m=10.0)
    png_ok(out)
    ax, axb = fig.axes[:2]
    # 12 drawn stacks, 12 distinct (colour, marker) styles
    drawn = [ln for ln in ax.get_lines() if ln.get_label().startswith("burst_")]
    assert len(drawn) == 12
    styles = {(tuple(np.round(plt_rgba(ln.get_color()), 3)), ln.get_marker()) for ln in drawn}
    assert len(styles) == 12
    # the stacks without offsets are labelled in their row, in words
    words = [t.get_text() for t in axb.texts]
    assert "not measurable: no ok pair" in words and "not_run: no offsets" in words
    # legends sit below their axes: they overlap neither the data nor the tick labels
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the saved figure is closed: a canvas to measure it on
    canvas.draw()
    r = canvas.get_renderer()
    for a in (ax, axb):
        leg = a.get_legend().get_window_extent(r)
        assert leg.y1 <= a.xaxis.get_tightbbox(r).y0 + 0.5  # below the ticks and the x label
        assert not leg.overlaps(a.yaxis.get_tightbbox(r))
        assert not leg.overlaps(a.get_window_extent(r))


def plt_rgba(c):
    from matplotlib.colors import to_rgba

    return to_rgba(c)


def test_absolute_offsets_dates_and_the_per_scene_rule(tmp_path):
    from sarstack import reflectors

    summarize_offsets = with_schema_defaults(reflectors.summarize_offsets)

    m = pd.DataFrame({
        "date": ["2021-01-01"] * 2 + ["2021-01-13"] * 2 + ["2021-01-25"] * 2,
        "id": ["a", "b"] * 3, "east_m": [2, 4, 7, 9, np.nan, np.nan],
        "north_m": [3, 5, 8, 8, np.nan, np.nan],
        "status": ["ok"] * 4 + ["low_contrast"] * 2,
    })
    absolute = summarize_offsets(m, 10.0)
    assert list(absolute["verdict"][:2]) == ["pass", "fail"]  # |(3, 4)| = 5, |(8, 8)| = 11.3
    out = tmp_path / "abs.png"
    fig = plots.absolute_offsets(m, absolute, out, requirement_m=10.0)
    png_ok(out)
    ax = fig.axes[0]
    title = ax.get_title()
    assert "verdict: fail: 1 of 2 measured scenes pass, 1 not measured" in title
    assert "a scene passes when |its mean offset| ≤ 10 m" in title
    assert "stack passes when every scene does" in title
    notes = {t.get_text(): t.xy for t in ax.texts}
    assert notes["2021-01-01"] == pytest.approx((3.0, 4.0))
    assert notes["2021-01-13"] == pytest.approx((8.0, 8.0))
    assert "scene fails (1)" in legend_text(fig)
    assert "stack mean (not judged)" in legend_text(fig)


# ------------------------------------------------------- InSAR corrections
def _ifg_rows(n: int) -> pd.DataFrame:
    d = pd.to_datetime(DATES)
    rows = [(d[i], d[i + s]) for s in (1, 2) for i in range(len(d) - s)][:n]
    return pd.DataFrame({"key": [f"{a:%Y%m%d}_{b:%Y%m%d}" for a, b in rows],
                         "reference_date": [f"{a:%Y-%m-%d}" for a, _ in rows],
                         "secondary_date": [f"{b:%Y-%m-%d}" for _, b in rows]})  # fmt: skip


def test_ramp_range_over_the_scene():
    lin = pd.DataFrame({"cx": [2.0, -1.0], "cy": [-3.0, 0.5]})
    np.testing.assert_allclose(plots.ramp_peak_to_peak(lin), [5.0, 1.5])
    quad = pd.DataFrame({"cx": [0.0, 1.0], "cy": [0.0, 0.0], "cxx": [4.0, 0.0], "cxy": [0.0, 2.0],
                         "cyy": [0.0, 0.0]})  # fmt: skip
    # 4 x^2 over [-0.5, 0.5]: 0 to 1; x + 2 x y: -1 to 1 at the corners
    np.testing.assert_allclose(plots.ramp_peak_to_peak(quad), [1.0, 2.0])


def test_ramps_figure_names_the_spread_and_the_time_span(tmp_path):
    t = _ifg_rows(7)
    span = (pd.to_datetime(t["secondary_date"]) - pd.to_datetime(t["reference_date"])).dt.days
    t = t.assign(model="linear", n_pixels=100, c0=1.0, cx=0.1 * span, cy=0.0, ramp_rms_rad=1.0,
                 residual_rms_rad=[0.5] * 6 + [3.0], phase_std_rad=[2.0] * 7)  # fmt: skip
    fig = plots.ramps(t, tmp_path / "ramps.png")
    png_ok(tmp_path / "ramps.png")
    txt = texts(fig)
    assert "medians 2 -> 0.5 rad" in txt and f"largest {0.1 * span.max():.3g} rad" in txt
    assert "r = 1.00; grows with it: deformation?" in txt and "grew (1 ifgs)" in txt


def test_troposphere_figure_counts_the_ifgs_it_helped(tmp_path):
    t = _ifg_rows(5).assign(n_pixels=100, no_delay_px=0, correction_mean_rad=0.0,
                            correction_std_rad=0.4, phase_std_before_rad=[1.0, 1.0, 1.0, 1.0, 0.2],
                            phase_std_after_rad=[0.5, 0.6, 0.7, 0.8, 0.4])  # fmt: skip
    fig = plots.troposphere(t, tmp_path / "tropo.png")
    png_ok(tmp_path / "tropo.png")
    txt = texts(fig)
    assert "medians 1 -> 0.6 rad" in txt and "4 of 5 ifgs reduced" in txt
    assert "grew (1 ifgs)" in txt


def test_unwrap_correction_figure_counts_before_and_after(tmp_path):
    corrected = np.zeros((20, 30))
    corrected[2:5, 3:7] = 1  # 12 px
    corrected[0, 0] = np.nan
    before = np.zeros((20, 30))
    before[2:5, 3:7] = 3
    before[10, 10] = 2
    after = np.zeros((20, 30))
    after[10, 10] = 2
    t = _ifg_rows(4).assign(n_triangles=[2, 0, 1, 1], corrected_px=[12, 0, 0, 0],
                            cycles_added=[12, 0, 0, 0], cycles_removed=0)  # fmt: skip
    fig = plots.unwrap_correction(corrected, before, after, t, tmp_path / "u.png",
                                  transform=Affine(30.0, 0, 5e5, 0, -30.0, 4e6),
                                  crs=CRS.from_epsg(32611), ref_rc=(15, 20))  # fmt: skip
    png_ok(tmp_path / "u.png")
    txt = texts(fig)
    assert "12 ifg-pixels, on 12 px" in txt
    assert "sum 38, on 13 px" in txt and "sum 2, on 1 px" in txt
    assert "cannot be corrected (1)" in txt and "1 of 4 ifgs corrected somewhere" in txt


def test_sample_points_centre_is_the_nearest_valid_pixel_first_in_row_major_order():
    """The centre point against the list of every valid pixel (the oracle the
    function used before: distances over np.nonzero, first minimum)."""
    from sarstack.cli.insar_plots import sample_points

    rng = np.random.default_rng(3)
    for shape in [(40, 60), (41, 61), (7, 5), (1, 9)]:
        for frac in (0.05, 0.5, 0.95):
            vel = rng.normal(size=shape)
            vel[rng.random(shape) < frac] = np.nan
            if not np.isfinite(vel).any():
                continue
            rr, cc = np.nonzero(np.isfinite(vel))
            d2 = (rr - shape[0] // 2) ** 2 + (cc - shape[1] // 2) ** 2
            j = int(np.argmin(d2))
            assert sample_points(vel, (0, 0))["centre"] == (int(rr[j]), int(cc[j]))
    ring = np.full((5, 5), np.nan)
    ring[1, 2] = ring[2, 1] = ring[2, 3] = ring[3, 2] = 1.0  # four at distance 1: the first
    assert sample_points(ring, (0, 0))["centre"] == (1, 2)


def test_velocity_map_without_backdrop_layers_is_the_png_drawn_with_a_transparent_one(
    tmp_path, monkeypatch
):
    """Every pixel has a value and a std: no backdrop image is drawn, and the
    PNG is byte for byte the one drawn with the transparent backdrop image of
    the earlier code (the oracle below)."""
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    from sarstack.plots import maps

    vel = velocity()
    vel[np.isnan(vel)] = 0.5
    std = np.full(vel.shape, 0.1)
    transform = Affine(30.0, 0, 500000.0, 0, -30.0, 4000000.0)
    new = tmp_path / "new.png"
    fig = plots.velocity_map(vel, (5, 5), "mm/year", new, std=std, transform=transform,
                             crs=CRS.from_epsg(32611))  # fmt: skip
    assert len(fig.axes[0].get_images()) == 1  # the data alone

    def always_drawn(ax, layers, kw):
        rgba = np.zeros((*layers[0][0].shape, 4))
        handles = []
        for m, colour, label in layers:
            if m.any():
                rgba[m] = to_rgba(colour)
                handles.append(Patch(facecolor=colour, edgecolor="0.3", label=f"{label} ({int(m.sum())} px)"))
        ax.imshow(rgba, interpolation="nearest", zorder=0, **kw)
        return handles

    monkeypatch.setattr(maps, "_backdrop", always_drawn)
    old = tmp_path / "old.png"
    fig = plots.velocity_map(vel, (5, 5), "mm/year", old, std=std, transform=transform,
                             crs=CRS.from_epsg(32611))  # fmt: skip
    assert len(fig.axes[0].get_images()) == 2
    assert new.read_bytes() == old.read_bytes()


def test_draw_figures_in_two_processes_gives_the_same_pngs_and_reports_a_child_failure(tmp_path):
    pairs = aggregate_pairs(make_offsets(), requirement_m=10.0)

    def tasks(d):
        d.mkdir()
        return [lambda k=k: plots.pair_offsets(pairs, d / f"p{k}.png", 10.0) for k in range(3)]

    plots.draw_figures(tasks(tmp_path / "one"), workers=1)
    plots.draw_figures(tasks(tmp_path / "two"), workers=2)
    for k in range(3):
        png_ok(tmp_path / "two" / f"p{k}.png")
        assert (tmp_path / "two" / f"p{k}.png").read_bytes() == (tmp_path / "one" / f"p{k}.png").read_bytes()

    def fail():
        raise ValueError("no such column")

    # the failing task is the second one: drawn by the child process
    with pytest.raises(RuntimeError, match="ValueError: no such column"):
        plots.draw_figures([lambda: None, fail, lambda: None], workers=2)

"""The rtc_reflectors stage (absolute geolocation at point targets), its windowed
reader and the demo's point targets, on small synthetic GeoTIFFs."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from conftest import schema_defaults, with_schema_defaults
from rasterio.crs import CRS

from sarstack import reflectors as rf
from sarstack import synthetic
from sarstack.cli import demo_rtc_check, rtc_reflectors
from sarstack.errors import SarstackError
from sarstack.io import Grid, write_raster, write_rows
from sarstack.options import config_args

summarize_offsets = with_schema_defaults(rf.summarize_offsets)
target_window = with_schema_defaults(rf.target_window)
measure_scene = with_schema_defaults(rf.measure_scene)
measure_scene_file = with_schema_defaults(rf.measure_scene_file)

PX = 30.0
SHAPE = (160, 180)
NODATA = -9999.0
CLUTTER = 0.05
# (row, col) pixel-is-area on the unshifted scene; 5 well inside, then one
# outside the raster and one 1.6 px from its top edge.
TARGETS_RC = [(30.3, 40.8), (45.5, 140.1), (80.0, 90.0), (125.7, 35.45), (130.2, 150.9)]
OUTSIDE_RC = (-25.0, 60.0)
EDGE_RC = (1.6, 100.3)
# Per-date sub-pixel shift of the whole scene (east_px, north_px).
SHIFTS = [(0.37, -0.21), (-0.45, 0.12), (0.08, 0.33)]
DATES = ["2021-03-01", "2021-03-13", "2021-03-25"]


def _grid(shape=SHAPE) -> Grid:
    return Grid(CRS.from_epsg(32611), Affine(PX, 0.0, 500000.0, 0.0, -PX, 4000000.0),
                shape[1], shape[0])  # fmt: skip


def _xy(grid: Grid, row: float, col: float) -> tuple[float, float]:
    return grid.transform @ (col, row)


def _scene(grid, rcs, shift_px=(0.0, 0.0), seed=0, db_above=35.0):
    """4-look speckle plus gaussian targets at ``rcs`` moved by ``shift_px``
    (east, north pixels: +east is +col, +north is -row)."""
    rng = np.random.default_rng(seed)
    img = rng.gamma(4.0, CLUTTER / 4.0, size=grid.shape)
    rr, cc = np.mgrid[0 : grid.height, 0 : grid.width] + 0.5
    amp = CLUTTER * 10 ** (db_above / 10)
    for r, c in rcs:
        r1, c1 = r - shift_px[1], c + shift_px[0]
        img += amp * np.exp(-((rr - r1) ** 2 + (cc - c1) ** 2) / (2 * 1.2**2))
    return img


def _write_stack(tmp_path, rcs=TARGETS_RC, db_above=35.0, edge_targets=True):
    """GeoTIFFs (nodata -9999 in a corner), scenes.csv and the target list."""
    grid = _grid()
    rows = []
    for k, (date, shift) in enumerate(zip(DATES, SHIFTS, strict=True)):
        img = _scene(grid, rcs, shift, seed=k, db_above=db_above)
        img[150:, :20] = NODATA
        path = tmp_path / f"S1_{date.replace('-', '')}_VV.tif"
        write_raster(path, img.astype(np.float32), grid, nodata=NODATA)
        rows.append({"date": date, "key": date.replace("-", ""), "path": str(path)})
    write_rows(tmp_path / "scenes.csv", rows)
    pts = [_xy(grid, r, c) for r, c in rcs]
    ids = [f"CR{k}" for k in range(len(rcs))]
    if edge_targets:
        pts += [_xy(grid, *OUTSIDE_RC), _xy(grid, *EDGE_RC)]
        ids += ["outside", "edge"]
    refl = tmp_path / "cr.csv"
    pd.DataFrame({"id": ids, "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                  "crs": "EPSG:32611"}).to_csv(refl, index=False)  # fmt: skip
    return tmp_path / "scenes.csv", refl


def _run(tmp_path, scenes, refl, *extra):
    out = tmp_path / "out"
    argv = [
        "--scenes", scenes, "--reflectors", refl, "--out-reflectors", out / "reflectors.csv",
        "--out-absolute", out / "absolute.csv", "--plot", out / "absolute_offsets.png", *extra,
    ]  # fmt: skip
    argv = [str(a) for a in argv]
    rtc_reflectors.main(argv + config_args("rtc_reflectors", schema_defaults(), given=argv))
    return out


def test_stage_recovers_per_scene_shifts_with_signs(tmp_path):
    scenes, refl = _write_stack(tmp_path)
    out = _run(tmp_path, scenes, refl, "--requirement-m", "20")
    m = pd.read_csv(out / "reflectors.csv", dtype={"date": str})
    assert len(m) == len(DATES) * (len(TARGETS_RC) + 2)
    assert {"date", "id", "east_m", "north_m", "status", "pcr_db", "row_px"} <= set(m.columns)
    for date, (de, dn) in zip(DATES, SHIFTS, strict=True):
        scene = m[m["date"] == date].set_index("id")
        good = scene.loc[[f"CR{k}" for k in range(len(TARGETS_RC))]]
        assert (good["status"] == "ok").all()
        # Measured minus expected, east = +x, north = +y; within 0.1 px.
        np.testing.assert_allclose(good["east_m"], de * PX, atol=0.1 * PX)
        np.testing.assert_allclose(good["north_m"], dn * PX, atol=0.1 * PX)
        assert scene.loc["outside", "status"] == "outside"
        assert scene.loc["edge", "status"] == "near_edge"
        for tid in ("outside", "edge"):
            assert np.isnan(scene.loc[tid, "east_m"]) and np.isnan(scene.loc[tid, "north_m"])
    # NaN offsets are empty cells in the CSV, not a number.
    with open(out / "reflectors.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["id"] in ("outside", "edge")]
    assert rows and all(r["east_m"] == "" and r["north_m"] == "" for r in rows)

    ab = pd.read_csv(out / "absolute.csv", dtype={"date": str})
    scene_rows = ab[ab["scope"] == "scene"]
    assert list(scene_rows["date"]) == DATES
    assert (scene_rows["n_targets"] == len(TARGETS_RC) + 2).all()
    assert (scene_rows["n_ok"] == len(TARGETS_RC)).all()
    truth = np.array(SHIFTS) * PX
    np.testing.assert_allclose(scene_rows["east_mean_m"], truth[:, 0], atol=0.02 * PX)
    np.testing.assert_allclose(scene_rows["north_mean_m"], truth[:, 1], atol=0.02 * PX)
    stack = ab[ab["scope"] == "stack"].iloc[0]
    np.testing.assert_allclose(stack["east_mean_m"], truth[:, 0].mean(), atol=0.02 * PX)
    np.testing.assert_allclose(stack["north_mean_m"], truth[:, 1].mean(), atol=0.02 * PX)
    rms = np.sqrt(np.mean((truth**2).sum(axis=1)))
    np.testing.assert_allclose(stack["rms_m"], rms, atol=0.02 * PX)
    # Largest scene offset is hypot(-13.5, 3.6) = 14 m < 20 m.
    assert stack["verdict"] == "pass" and scene_rows["passes"].all()
    assert (out / "absolute_offsets.png").stat().st_size > 1000
    # The same measurements against 12 m: scenes off by 12.8 m and 14.0 m fail, 10.2 m passes.
    strict = summarize_offsets(m, 12.0)
    assert list(strict["verdict"]) == ["fail", "fail", "pass", "fail"]


def test_verdict_not_measurable_when_no_target_is_ok(tmp_path):
    # Targets 5 dB above the clutter mean: all low_contrast (or outside / near_edge).
    scenes, refl = _write_stack(tmp_path / "dark", db_above=5.0)
    out = _run(tmp_path / "dark", scenes, refl, "--requirement-m", "1000")
    m = pd.read_csv(out / "reflectors.csv")
    assert set(m["status"]) == {"low_contrast", "outside", "near_edge"}
    ab = pd.read_csv(out / "absolute.csv", dtype={"date": str}, keep_default_na=False)
    assert set(ab["verdict"]) == {"not_measurable"}
    assert ab.iloc[-1]["unmeasured_dates"] == " ".join(DATES)
    assert (out / "absolute_offsets.png").exists()


def test_summarize_offsets_incomplete_and_no_requirement():
    m = pd.DataFrame({"date": ["2021-01-01"] * 2 + ["2021-01-13"],
                      "east_m": [1.0, 3.0, np.nan], "north_m": [-1.0, -1.0, np.nan],
                      "status": ["ok", "ok", "low_contrast"]})  # fmt: skip
    ab = summarize_offsets(m, 5.0)
    assert list(ab["scope"]) == ["scene", "scene", "stack"]
    assert list(ab["verdict"]) == ["pass", "not_measurable", "incomplete"]
    assert ab.loc[0, "east_mean_m"] == 2.0 and ab.loc[0, "east_std_m"] == pytest.approx(2**0.5)
    assert ab.loc[0, "offset_m"] == pytest.approx(5**0.5)
    assert ab.loc[2, "unmeasured_dates"] == "2021-01-13"
    # Without a requirement: no_requirement where something was measured.
    assert list(summarize_offsets(m, None)["verdict"]) == [
        "no_requirement", "not_measurable", "no_requirement"]
    assert list(summarize_offsets(m.iloc[2:], None)["verdict"]) == ["not_measurable"] * 2


def test_windowed_file_measurement_equals_whole_image(tmp_path):
    grid = _grid()
    # Targets in the middle, by the nodata corner, and near every raster edge
    # (windows clipped by the raster), plus outside.
    rcs = [*TARGETS_RC, (5.5, 5.5), (3.2, 90.0), (156.9, 100.0), (80.0, 176.4), (80.0, 2.7),
           (147.0, 24.0), (12.0, 170.0)]  # fmt: skip
    img = _scene(grid, rcs, (0.2, -0.3))
    img[150:, :20] = NODATA
    path = tmp_path / "scene.tif"
    write_raster(path, img.astype(np.float32), grid, nodata=NODATA)
    refl = pd.DataFrame({"id": [f"T{k}" for k in range(len(rcs) + 1)],
                         "x": [_xy(grid, r, c)[0] for r, c in [*rcs, OUTSIDE_RC]],
                         "y": [_xy(grid, r, c)[1] for r, c in [*rcs, OUTSIDE_RC]],
                         "crs": "EPSG:32611"})  # fmt: skip
    from sarstack.rtc import read_scene

    whole = read_scene(path, scale="power")  # nodata -> NaN, as the windows are read
    # (oversample does not touch the windows; small keeps the test fast.)
    for kw in ({"edge_px": 3}, {"chip": 16, "edge_px": 5}, {"chip": 40, "edge_px": 0}):
        expected = measure_scene(whole, grid, refl, DATES[0], oversample=8, **kw)
        got = measure_scene_file(path, refl, DATES[0], oversample=8, **kw)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        statuses = set(got["status"])
        assert {"ok", "outside"} <= statuses and ("near_edge" in statuses) == (kw["edge_px"] > 0)


def test_target_window_is_clipped_to_the_raster():
    assert target_window(50.5, 60.2, (100, 120), chip=32, edge_px=3) == (31, 41, 38, 38)
    assert target_window(1.0, 118.9, (100, 120), chip=32, edge_px=3) == (0, 99, 20, 21)
    assert target_window(-0.1, 5.0, (100, 120)) is None
    assert target_window(5.0, 120.0, (100, 120)) is None


def test_demo_point_targets_recovered_by_the_stage(tmp_path):
    demo = tmp_path / "demo"
    truth = synthetic.make_rtc_stack(demo, n_dates=3, shape=(200, 200), frame_jitter_px=4,
                                     looks=20, seed=1, point_targets=4)  # fmt: skip
    assert list(pd.read_csv(demo / "reflectors.csv").columns) == ["id", "x", "y", "crs"]
    write_rows(tmp_path / "scenes.csv", [{"date": d, "key": d.replace("-", ""), "path": p}
                                         for d, p in zip(truth["date"], truth["path"],
                                                         strict=True)])  # fmt: skip
    out = _run(tmp_path, tmp_path / "scenes.csv", demo / "reflectors.csv")
    ab = pd.read_csv(out / "absolute.csv", dtype={"date": str})
    scenes = ab[ab["scope"] == "scene"]
    assert (scenes["n_ok"] == 4).all()
    m = pd.read_csv(out / "reflectors.csv", dtype={"date": str}).merge(truth, on="date",
                                                                      suffixes=("", "_true"))
    assert (np.abs(m["east_m"] - m["east_m_true"]) < 0.1 * PX).all()
    assert (np.abs(m["north_m"] - m["north_m_true"]) < 0.1 * PX).all()
    # demo_rtc_check's absolute table against the truth.
    pairs = synthetic.expected_pair_offsets(truth, [(0, 1), (1, 2)]).assign(status="ok")
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    demo_rtc_check.main(["--truth", str(demo / "truth.csv"), "--pairs", str(tmp_path / "pairs.csv"),
                         "--out", str(tmp_path / "acc.csv"), "--absolute", str(out / "absolute.csv"),
                         "--out-absolute", str(tmp_path / "abs_acc.csv")])  # fmt: skip
    acc = pd.read_csv(tmp_path / "abs_acc.csv")
    assert acc["passes"].all() and (acc["tolerance_px"] == 0.1).all()
    assert (acc[["err_east_px", "err_north_px"]].abs() < 0.1).all().all()


def test_no_point_targets_by_default_and_too_many_refused(tmp_path):
    synthetic.make_rtc_stack(tmp_path, n_dates=2, shape=(64, 64), seed=1)
    assert not (tmp_path / "reflectors.csv").exists()
    assert synthetic.simulate_rtc_stack(n_dates=2, shape=(64, 64)).reflectors is None
    with pytest.raises(SarstackError, match="point targets do not fit"):
        synthetic.simulate_rtc_stack(n_dates=2, shape=(100, 100), point_targets=9)


@pytest.mark.parametrize("case", ["missing_reflectors", "bad_csv", "unreadable_scene"])
def test_bad_input_one_line_exit_2_no_outputs(tmp_path, case, capsys):
    from sarstack import cli

    scenes, refl = _write_stack(tmp_path)
    if case == "missing_reflectors":
        refl, named = tmp_path / "nope.csv", "nope.csv: no such file"
    elif case == "bad_csv":
        refl.write_text("id,lon\nA,1\n")
        named = f"{refl}: missing column(s) lat"
    else:
        bad = tmp_path / "S1_20210313_VV.tif"
        bad.write_text("not a tiff")
        named = f"{bad}: not a readable raster"
    out = tmp_path / "out"
    argv = ["--scenes", str(scenes), "--reflectors", str(refl),
            "--out-reflectors", str(out / "r.csv"), "--out-absolute", str(out / "a.csv"),
            "--plot", str(out / "p.png")]  # fmt: skip
    argv += config_args("rtc_reflectors", schema_defaults(), given=argv)
    with pytest.raises(SystemExit) as e:
        cli.run(rtc_reflectors.main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and named in err[-1], err
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_pixel_is_point_option_round_trips_from_the_config():
    files = ["--scenes", "s", "--reflectors", "r", "--out-reflectors", "a", "--out-absolute", "b",
             "--plot", "c"]  # fmt: skip
    argv = config_args("rtc_reflectors", schema_defaults())
    assert "--no-pixel-is-point" in argv and "--pixel-is-point" not in argv
    a = rtc_reflectors.create_parser().parse_args([*argv, *files])
    assert a.pixel_is_point is False and a.chip_px == 32 and a.min_pcr_db == 15.0
    assert a.edge_px == 3 and a.scale == "power" and a.requirement_m is None
    argv[argv.index("--no-pixel-is-point")] = "--pixel-is-point"
    assert rtc_reflectors.create_parser().parse_args([*argv, *files]).pixel_is_point is True
    argv.remove("--pixel-is-point")  # a boolean option is required, as every other
    with pytest.raises(SystemExit):
        rtc_reflectors.create_parser().parse_args([*argv, *files])

"""Tests for the synthetic RTC stack generator (sarstack.synthetic)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from skimage.filters import window
from skimage.registration import phase_cross_correlation

from sarstack.dates import parse_scene_date
from sarstack.errors import SarstackError
from sarstack.io import read_band, read_grid
from sarstack.synthetic import (
    TRUTH_COLUMNS,
    expected_pair_offsets,
    make_rtc_stack,
    simulate_rtc_stack,
)

PS = 30.0
NAME = re.compile(r"^S1A_IW_(\d{8})T(\d{6})_DVP_RTC30_G_gpuned_([0-9A-F]{4})$")


def _read(path: str) -> tuple[np.ndarray, rasterio.Affine, float | None]:
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform, ds.nodata


def _measure(ref: np.ndarray, sec: np.ndarray, **kw: object) -> tuple[float, float]:
    """Displacement (east_px, north_px) of ``sec`` relative to ``ref`` by phase correlation.

    skimage returns the shift that registers ``sec`` onto ``ref``, i.e. minus the
    displacement in (row, col); +col is east and +row is south.
    """
    w = window("hann", ref.shape)
    shift, _, _ = phase_cross_correlation(
        (ref - ref.mean()) * w, (sec - sec.mean()) * w, upsample_factor=200, **kw
    )
    return float(-shift[1]), float(shift[0])


def _overlap(paths: list[str]) -> list[np.ndarray]:
    """Crop each raster to the common map-coordinate overlap (aligned grids assumed)."""
    arrays, transforms = [], []
    for p in paths:
        a, t, _ = _read(p)
        arrays.append(a)
        transforms.append(t)
    left = max(t.c for t in transforms)
    top = min(t.f for t in transforms)
    right = min(t.c + a.shape[1] * PS for t, a in zip(transforms, arrays, strict=True))
    bottom = max(t.f - a.shape[0] * PS for t, a in zip(transforms, arrays, strict=True))
    nc, nr = round((right - left) / PS), round((top - bottom) / PS)
    assert nc > 100 and nr > 100
    out = []
    for a, t in zip(arrays, transforms, strict=True):
        c0, r0 = round((left - t.c) / PS), round((t.f - top) / PS)
        out.append(a[r0 : r0 + nr, c0 : c0 + nc].astype(np.float64))
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("syn")
    return out, make_rtc_stack(out, seed=3)


def test_files_names_and_truth_csv(stack: tuple[Path, pd.DataFrame]) -> None:
    out, truth = stack
    assert list(truth.columns) == TRUTH_COLUMNS
    assert len(truth) == 6
    tifs = sorted(out.glob("*/*_VV.tif"))
    assert len(tifs) == 6
    assert not list(out.glob("*/*_VH.tif"))
    dates = []
    for p in truth["path"]:
        p = Path(p)
        assert p.exists()
        m = NAME.match(p.parent.name)
        assert m, p.parent.name
        assert p.name == f"{p.parent.name}_VV.tif"
        dates.append(parse_scene_date(p, "%Y%m%d"))
    assert dates == sorted(dates)
    assert dates[0] == dt.date(2021, 1, 3)
    assert all((b - a).days == 12 for a, b in zip(dates, dates[1:], strict=False))
    assert [d.isoformat() for d in dates] == list(truth["date"])
    on_disk = pd.read_csv(out / "truth.csv")
    pd.testing.assert_frame_equal(on_disk, truth, check_dtype=False)
    np.testing.assert_allclose(truth["east_m"], truth["east_px"] * PS)
    np.testing.assert_allclose(truth["north_m"], truth["north_px"] * PS)
    # Default errors: uniform in [-0.8, 0.8], first date included and not forced to zero.
    err = truth[["east_px", "north_px"]].to_numpy()
    assert np.all(np.abs(err) <= 0.8)
    assert np.any(err[0] != 0)


def test_rasters_nodata_and_wedges(stack: tuple[Path, pd.DataFrame]) -> None:
    _, truth = stack
    masks = []
    for p in truth["path"]:
        with rasterio.open(p) as ds:
            assert ds.nodata == 0.0
            assert ds.dtypes[0] == "float32"
            assert ds.crs.to_epsg() == 32611
            assert ds.shape == (320, 320)
            a = ds.read(1)
        invalid = a == 0.0
        masks.append(invalid)
        assert np.all(np.isfinite(a))
        assert np.all(a[~invalid] > 0)
        # No invalid pixels in the middle; wedges on both sides, 1-8 % of the width.
        assert not invalid[:, 40:-40].any()
        left = invalid[:, :40].sum(axis=1)
        right = invalid[:, -40:].sum(axis=1)
        for w in (left, right):
            assert w.min() >= 1 and w.max() <= 0.08 * 320 + 1
            assert w.max() - w.min() >= 5  # slanted, not a straight strip
        assert 0.01 < invalid.mean() < 0.16
    assert not all(np.array_equal(masks[0], m) for m in masks[1:])
    valid = [a for p in truth["path"] for a in [_read(p)[0]]]
    v = np.concatenate([a[a > 0] for a in valid])
    assert 0.01 < np.median(v) < 1.0


def test_no_wedges_when_disabled(tmp_path: Path) -> None:
    truth = make_rtc_stack(tmp_path, n_dates=2, shape=(64, 80), nan_edge=False, seed=1)
    for p in truth["path"]:
        a, _, _ = _read(p)
        assert a.shape == (64, 80)
        assert np.all(a > 0)


def test_frames_move_on_one_grid(stack: tuple[Path, pd.DataFrame]) -> None:
    _, truth = stack
    bounds = []
    for k, p in enumerate(truth["path"]):
        with rasterio.open(p) as ds:
            t = ds.transform
            bounds.append(tuple(ds.bounds))
        assert t.a == PS and t.e == -PS and t.b == 0 and t.d == 0
        col = (t.c - 400000.0) / PS
        row = (4000000.0 - t.f) / PS
        assert col == pytest.approx(round(col), abs=1e-9)
        assert row == pytest.approx(round(row), abs=1e-9)
        assert round(col) == truth["frame_col_off"][k]
        assert round(row) == truth["frame_row_off"][k]
        assert abs(round(col)) <= 12 and abs(round(row)) <= 12
    assert truth["frame_row_off"][0] == 0 and truth["frame_col_off"][0] == 0
    assert len(set(bounds)) > 1


def test_deterministic(tmp_path: Path) -> None:
    kw = dict(n_dates=3, shape=(64, 64))
    t1 = make_rtc_stack(tmp_path / "a", seed=7, **kw)
    t2 = make_rtc_stack(tmp_path / "b", seed=7, **kw)
    t3 = make_rtc_stack(tmp_path / "c", seed=8, **kw)
    cols = [c for c in TRUTH_COLUMNS if c != "path"]
    pd.testing.assert_frame_equal(t1[cols], t2[cols])
    assert [Path(p).name for p in t1["path"]] == [Path(p).name for p in t2["path"]]
    for p1, p2 in zip(t1["path"], t2["path"], strict=True):
        np.testing.assert_array_equal(_read(p1)[0], _read(p2)[0])
    assert not np.array_equal(_read(t1["path"][0])[0], _read(t3["path"][0])[0])
    assert [Path(p).name for p in t1["path"]] != [Path(p).name for p in t3["path"]]


def test_convention_integer_shift_exact(tmp_path: Path) -> None:
    """With whole-pixel errors the content moves exactly: independent of any registration tool."""
    shifts = np.array([[0.0, 0.0], [2.0, 3.0]])  # date 1: 2 px east, 3 px north
    truth = make_rtc_stack(
        tmp_path, n_dates=2, shape=(96, 96), shifts_px=shifts, speckle=False, nan_edge=False,
        frame_jitter_px=0, seed=2,
    )  # fmt: skip
    a, b = (_read(p)[0].astype(np.float64) for p in truth["path"])
    # Feature at (row r, col c) in date 0 shows at (r - 3, c + 2) in date 1.
    np.testing.assert_allclose(b[10:-10, 10:-10], a[13:-7, 8:-12], rtol=1e-4, atol=1e-6)
    assert not np.allclose(a, b, rtol=1e-2)


@pytest.mark.parametrize("seed", [0, 5])
def test_convention_phase_correlation(tmp_path: Path, seed: int) -> None:
    truth = make_rtc_stack(tmp_path, seed=seed, speckle=False, nan_edge=False)
    pairs = [(0, 1), (1, 3), (2, 5), (0, 4)]
    expected = expected_pair_offsets(truth, pairs)
    for (i, j), row in zip(pairs, expected.itertuples(), strict=True):
        ref, sec = _overlap([truth["path"][i], truth["path"][j]])
        assert ref.min() > 1e-3 and sec.min() > 1e-3  # the positivity guard never clips
        east_px, north_px = _measure(ref, sec)
        want_e = truth["east_px"][j] - truth["east_px"][i]
        want_n = truth["north_px"][j] - truth["north_px"][i]
        assert abs(want_e) > 0.05 or abs(want_n) > 0.05
        assert east_px == pytest.approx(want_e, abs=0.05)
        assert north_px == pytest.approx(want_n, abs=0.05)
        assert row.east_m == pytest.approx(want_e * PS)
        assert row.north_m == pytest.approx(want_n * PS)
        assert row.reference_date == truth["date"][i]
        assert row.secondary_date == truth["date"][j]


def test_convention_with_speckle(stack: tuple[Path, pd.DataFrame]) -> None:
    """Default scenes (speckle, wedges) still register to the truth, away from the edges."""
    _, truth = stack
    ref, sec = _overlap([truth["path"][0], truth["path"][2]])
    ref, sec = ref[:, 40:-40], sec[:, 40:-40]
    assert (ref > 0).all() and (sec > 0).all()
    # dB and no spectral whitening: speckle is white, so whitening would amplify it.
    east_px, north_px = _measure(10 * np.log10(ref), 10 * np.log10(sec), normalization=None)
    assert east_px == pytest.approx(truth["east_px"][2] - truth["east_px"][0], abs=0.15)
    assert north_px == pytest.approx(truth["north_px"][2] - truth["north_px"][0], abs=0.15)


def test_expected_pair_offsets_and_errors(stack: tuple[Path, pd.DataFrame]) -> None:
    _, truth = stack
    exp = expected_pair_offsets(truth, [(0, 1), (2, 1)])
    assert list(exp.columns) == ["reference_date", "secondary_date", "east_m", "north_m"]
    assert exp["east_m"][1] == pytest.approx(truth["east_m"][1] - truth["east_m"][2])
    assert exp["north_m"][0] == pytest.approx(truth["north_m"][1] - truth["north_m"][0])
    with pytest.raises(SarstackError):
        expected_pair_offsets(truth, [(0, 6)])


def _no_io(*args: object, **kwargs: object) -> None:
    raise AssertionError("the simulation must not write files")


def test_simulation_matches_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """simulate_rtc_stack alone (no I/O) gives exactly what make_rtc_stack writes."""
    kw: dict = dict(n_dates=3, shape=(48, 64), seed=4, nodata=float("nan"), frame_jitter_px=4)
    with monkeypatch.context() as m:
        m.setattr("sarstack.synthetic.rtc.write_raster", _no_io)
        m.setattr("sarstack.synthetic.rtc.write_csv", _no_io)
        sim = simulate_rtc_stack(**kw)
    truth = make_rtc_stack(tmp_path, **kw)
    assert sim.images.shape == (3, 48, 64) and sim.images.dtype == np.float32
    assert np.isnan(sim.images).any()  # the wedges, as nodata NaN
    assert sim.dates == [dt.date.fromisoformat(d) for d in truth["date"]]
    for k, p in enumerate(truth["path"]):
        np.testing.assert_array_equal(read_band(p, nan_nodata=False), sim.images[k], strict=True)
        assert read_grid(p) == sim.grids[k]
        assert Path(p).parent.name == sim.names[k]
        assert p == str((tmp_path / sim.truth["path"][k]).resolve())
    cols = [c for c in TRUTH_COLUMNS if c != "path"]
    pd.testing.assert_frame_equal(sim.truth[cols], truth[cols], check_exact=True)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SarstackError, match="shifts_px"):
        make_rtc_stack(tmp_path, n_dates=3, shifts_px=np.zeros((2, 2)))
    with pytest.raises(SarstackError, match="start_date"):
        make_rtc_stack(tmp_path, start_date="2021-13-01")
    with pytest.raises(SarstackError, match="n_dates"):
        make_rtc_stack(tmp_path, n_dates=0)
    with pytest.raises(SarstackError, match="looks"):
        simulate_rtc_stack(looks=0.0)

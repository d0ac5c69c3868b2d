"""Outlier tiles (rtc.outlier_sigma): tiles that disagree with their pair's
consensus or with their neighbours get a status naming why and leave the
pair's offset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import schema_defaults, with_schema_defaults

from sarstack import rtc
from sarstack.errors import SarstackError

aggregate_pairs = with_schema_defaults(rtc.aggregate_pairs)

# The schema's defaults: the behaviour tested is the shipped one.
SIGMA, FLOOR = (schema_defaults()["rtc"][k] for k in ("outlier_sigma", "outlier_floor_px"))


def _pair(field: np.ndarray, rng: np.random.Generator, noise: float = 0.03) -> pd.DataFrame:
    """A pair's tile table (30 m north-up pixels) whose tiles measure ``field``
    (rows × cols × (east px, north px)) plus Gaussian noise."""
    h, w, _ = field.shape
    rr, cc = (a.ravel() for a in np.indices((h, w)))
    e = field[..., 0].ravel() + rng.normal(0, noise, h * w)
    n = field[..., 1].ravel() + rng.normal(0, noise, h * w)
    return pd.DataFrame({
        "reference_date": "2020-01-01", "secondary_date": "2020-01-13", "tile_row": rr,
        "tile_col": cc, "east_m": 30 * e, "north_m": 30 * n, "d_col_px": e, "d_row_px": -n,
        "status": "ok",
    })  # fmt: skip


def _flat(h: int, w: int, east: float = 0.4, north: float = -0.25) -> np.ndarray:
    return np.broadcast_to(np.array([east, north]), (h, w, 2)).copy()


def test_corrupted_tiles_are_consensus_outliers_and_leave_the_pair():
    field = _flat(6, 6)
    bad = [(0, 0), (2, 3), (5, 1)]
    for r, c in bad:
        field[r, c] += (2.0, -1.5)  # a wrong large offset
    offsets = _pair(field, np.random.default_rng(0))
    marked = rtc.mark_outliers(offsets, sigma=SIGMA, floor_px=FLOOR, min_keep=3)
    flagged = marked.loc[marked["status"] != "ok", ["tile_row", "tile_col"]]
    assert sorted(map(tuple, flagged.to_numpy())) == bad
    assert set(marked["status"]) == {"ok", "outlier_consensus"}
    pair = aggregate_pairs(marked).iloc[0]
    assert pair["east_m"] / 30 == pytest.approx(0.4, abs=0.02)
    assert pair["north_m"] / 30 == pytest.approx(-0.25, abs=0.02)
    assert (pair["n_ok"], pair["n_outlier_consensus"], pair["n_outlier_neighbours"]) == (33, 3, 0)


def test_clean_pairs_reject_nothing():
    rng = np.random.default_rng(1)
    for _ in range(20):  # 20 clean 8 x 8 pairs at 0.05 px tile noise: no tile rejected
        offsets = _pair(_flat(8, 8), rng, noise=0.05)
        marked = rtc.mark_outliers(offsets, sigma=SIGMA, floor_px=FLOOR)
        assert (marked["status"] == "ok").all()


def test_neighbour_outlier_on_a_ramp():
    """A ramp of 3 px across the grid inflates the consensus spread: a tile
    1 px off is no consensus outlier, but its neighbours give it away; the
    ramp's edge tiles (whose neighbours lie on one side) are not outliers."""
    r, c = np.indices((8, 8))
    field = np.stack([3.0 * c / 7, 1.5 * r / 7], axis=-1)
    field[3, 4, 0] += 1.0
    marked = rtc.mark_outliers(_pair(field, np.random.default_rng(2)), sigma=SIGMA, floor_px=FLOOR)
    out = marked[marked["status"] != "ok"]
    assert out[["tile_row", "tile_col", "status"]].to_numpy().tolist() == [
        [3, 4, "outlier_neighbours"]
    ]


def test_only_ok_tiles_are_tested_and_other_statuses_stay():
    field = _flat(4, 4)
    field[1, 1] += 3.0
    offsets = _pair(field, np.random.default_rng(3))
    offsets.loc[offsets.index[:3], "status"] = ["too_many_nan", "low_correlation", "shift_too_large"]
    marked = rtc.mark_outliers(offsets, sigma=SIGMA, floor_px=FLOOR)
    assert marked["status"].tolist()[:6] == ["too_many_nan", "low_correlation", "shift_too_large",
                                             "ok", "ok", "outlier_consensus"]  # fmt: skip
    assert offsets["status"].iloc[5] == "ok"  # the input is not changed


def test_few_tiles_skip_the_test_and_none_means_off():
    field = _flat(1, 3)
    field[0, 2] += 5.0  # 3 ok tiles: one cannot tell which is the outlier
    offsets = _pair(field, np.random.default_rng(4))
    assert (rtc.mark_outliers(offsets, sigma=SIGMA, floor_px=FLOOR)["status"] == "ok").all()
    field = _flat(3, 3)
    field[0, 0] += 5.0
    offsets = _pair(field, np.random.default_rng(4))
    assert (rtc.mark_outliers(offsets, sigma=None, floor_px=FLOOR)["status"] == "ok").all()
    assert (rtc.mark_outliers(offsets, sigma=SIGMA, floor_px=FLOOR)["status"] != "ok").sum() == 1
    # A test that would leave fewer than min_keep ok tiles is not applied.
    kept = rtc.mark_outliers(offsets, sigma=SIGMA, floor_px=FLOOR, min_keep=9)
    assert (kept["status"] == "ok").all()


def test_floor_keeps_a_perfectly_consistent_pair():
    field = _flat(4, 4)
    field[2, 2] += 0.05  # MAD 0: without the floor any departure would be an outlier
    offsets = _pair(field, np.random.default_rng(5), noise=0.0)
    assert (rtc.mark_outliers(offsets, sigma=SIGMA, floor_px=FLOOR)["status"] == "ok").all()
    assert (rtc.mark_outliers(offsets, sigma=SIGMA, floor_px=0.0)["status"] != "ok").sum() == 1


def test_aggregate_stage_marks_outliers_end_to_end(tmp_path):
    """rtc_aggregate writes the statuses into offsets.csv and the counts into
    pairs.csv; --outlier-sigma is the config's rtc.outlier_sigma."""
    from sarstack import options, stagefiles
    from sarstack.cli import rtc_aggregate

    field = _flat(5, 5)
    field[4, 4] += (0.0, 2.0)
    _pair(field, np.random.default_rng(6)).to_csv(tmp_path / "x.csv", index=False)
    out = {k: str(tmp_path / f"{k}.csv") for k in ("offsets", "pairs", "tiles", "summary")}
    args = options.config_args("rtc_aggregate", schema_defaults())
    rtc_aggregate.main([*args, str(tmp_path / "x.csv"),
                        *(a for k, v in out.items() for a in (f"--{k}", v))])  # fmt: skip
    offsets = stagefiles.read_table(out["offsets"])
    assert offsets.loc[offsets["status"] != "ok", ["tile_row", "tile_col"]].values.tolist() == [[4, 4]]
    pairs = stagefiles.read_table(out["pairs"])
    assert (pairs["n_ok"].iloc[0], pairs["n_outlier_consensus"].iloc[0]) == (24, 1)


@pytest.mark.parametrize(("rtc_cfg", "key"), [
    ({"outlier_sigma": 0}, "rtc.outlier_sigma"),
    ({"outlier_sigma": "high"}, "rtc.outlier_sigma"),
    ({"outlier_floor_px": -0.1}, "rtc.outlier_floor_px"),
])  # fmt: skip
def test_bad_outlier_key_is_named(tmp_path, rtc_cfg, key):
    from sarstack.config import load_schema, validate_config

    schema = load_schema()
    with pytest.raises(SarstackError, match=key.replace(".", r"\.")):
        validate_config({"output_dir": str(tmp_path), "rtc": rtc_cfg}, schema)
    cfg = validate_config({"output_dir": str(tmp_path), "rtc": {"outlier_sigma": None}}, schema)
    assert cfg["rtc"]["outlier_sigma"] is None  # null: no test

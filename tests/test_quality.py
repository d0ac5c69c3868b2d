"""The per-date quality table of both branches (sarstack.quality; issue 27 item 6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from conftest import pipeline

from sarstack import quality, synthetic


def _tables(rms, bad_closure=None):
    """ifgs / residuals / triangles tables of a nearest-2 network over the dates of ``rms``."""
    d = [f"2021-01-{k + 1:02d}" for k in range(len(rms))]
    pairs = [(i, j) for i in range(len(d)) for j in (i + 1, i + 2) if j < len(d)]
    ifgs = pd.DataFrame({"reference_date": [d[i] for i, _ in pairs],
                         "secondary_date": [d[j] for _, j in pairs], "used": "True"})  # fmt: skip
    res = ifgs[["reference_date", "secondary_date"]].copy()
    # an ifg's residual: the larger of its two dates' (a bad date spoils its ifgs)
    res["residual_rms_rad"] = [max(rms[i], rms[j]) for i, j in pairs]
    key = [f"{a}_{b}" for a, b in zip(res["reference_date"], res["secondary_date"], strict=True)]
    tri = pd.DataFrame([(key[pairs.index((i, i + 1))], key[pairs.index((i + 1, i + 2))],
                         key[pairs.index((i, i + 2))]) for i in range(len(d) - 2)],
                       columns=["ifg_a", "ifg_b", "ifg_c"])  # fmt: skip
    tri["measured_px"] = 100
    tri["nonzero_px"] = [60 if bad_closure is not None and bad_closure in (i, i + 1, i + 2) else 0
                         for i in range(len(d) - 2)]  # fmt: skip
    return d, ifgs, res, tri


def test_a_date_the_network_cannot_fit_is_suggested_with_its_reason():
    rms = [0.1, 0.12, 0.11, 0.1, 1.5, 0.09, 0.1, 0.12, 0.11, 0.1]
    d, ifgs, res, tri = _tables(rms)
    per_date = quality.insar_dates(ifgs, res, tri)
    assert list(per_date["insar_n_ifgs"]) == [2, 3, 4, 4, 4, 4, 4, 4, 3, 2]
    table = quality.date_table({}, per_date, residual_mads=5.0, closure_fraction=0.5)
    flagged = table[table["suggest_exclude"]]
    # the bad date, and no other: its neighbours share only part of their ifgs with it
    assert list(flagged["date"]) == [d[4]], table[["date", "insar_residual_rms_rad"]]
    assert flagged["reason"].iloc[0].startswith("residual RMS 1.5 rad")


def test_closure_errors_flag_their_dates_and_rtc_rows_join_by_date():
    d, ifgs, res, tri = _tables([0.1] * 8, bad_closure=3)
    per_date = quality.insar_dates(ifgs, res, tri)
    rtc_dates = pd.DataFrame({"date": d[:6], "east_m": [0, 1, 2, 3, 4, 5.0],
                              "north_m": [0.0] * 6, "east_sd_m": 0.5, "north_sd_m": 0.5})  # fmt: skip
    events = pd.DataFrame({"date": [d[3]], "kind": ["step"], "note": ["platform S1A -> S1C"]})
    table = quality.date_table({"land": (rtc_dates, events)}, per_date, residual_mads=5.0,
                               closure_fraction=0.5)  # fmt: skip
    assert len(table) == 8 and list(table["date"]) == d
    assert table.loc[3, "rtc_events"] == "step: platform S1A -> S1C"
    assert table.loc[5, "rtc_offset_m"] == 5.0 and table.loc[7, "rtc_stack"] != "land"
    # date 3 is in the three bad triangles (1-2-3, 2-3-4, 3-4-5): 60 of 100 px each
    assert table.loc[3, "insar_closure_fraction"] == pytest.approx(0.6)
    flagged = table[table["suggest_exclude"]]
    assert 3 in flagged.index and "non-zero closure in 60%" in flagged.loc[3, "reason"]


def test_noisy_date_in_a_real_inversion_is_the_one_suggested(tmp_path):
    """A synthetic stack whose 6th date carries 1 rad of noise in every ifg
    with it: the inversion's per-ifg residuals point at that date."""
    synthetic.make_ifg_stack(tmp_path / "s", n_dates=12, shape=(32, 32), seed=3, noise_rad=0.05)
    rng = np.random.default_rng(0)
    noisy = sorted((tmp_path / "s" / "ifgs").glob("*.unw.tif"))
    date = "20200301"  # the 6th date: 2020-01-01 + 5 x 12 days (a leap year)
    for f in noisy:
        if date in f.name:
            with rasterio.open(f) as ds:
                a, profile = ds.read(1), ds.profile
            with rasterio.open(f, "w", **{**profile, "driver": "GTiff"}) as ds:
                ds.write((a + rng.normal(0, 1.0, a.shape)).astype(a.dtype), 1)
    out = pipeline(tmp_path, str(tmp_path / "s" / "ifgs" / "*.unw.tif"), "--method", "L2",
                   point=(16, 16))  # fmt: skip
    per_date = quality.insar_dates(pd.read_csv(out / "ifgs.csv"),
                                   pd.read_csv(out / "ifg_residuals.csv"),
                                   pd.read_csv(out / "closure_triangles.csv"))  # fmt: skip
    table = quality.date_table({}, per_date, residual_mads=5.0, closure_fraction=0.5)
    assert list(table.loc[table["suggest_exclude"], "date"]) == ["2020-03-01"], table

"""Network editing from the config (insar_select): exactly the expected ifgs
and dates go, each with its reason in ifgs.csv, and the time series follows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_script

from sarstack import io, synthetic


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    d = tmp_path_factory.mktemp("edit")
    table = synthetic.make_ifg_stack(d / "s", n_dates=10, shape=(16, 16), network="nearest:3",
                                     noise_rad=0.0, seed=4)  # fmt: skip
    return d, table


def _select(d, *edit):
    out = d / "ifgs.csv"
    p = run_script("insar_select.py", "--unwrapped", d / "s" / "ifgs" / "*.unw.tif",
                   "--correlation", d / "s" / "cor" / "*.cor.tif", "--out", out, *edit)  # fmt: skip
    return p, out


def test_exclude_dates_and_max_baseline_remove_exactly_the_expected(stack, tmp_path):
    d, table = stack
    all_dates = sorted(set(table.reference_date) | set(table.secondary_date))
    drop = all_dates[4]
    p, out = _select(d, "--exclude-dates", drop, "--max-temporal-baseline", "30",
                     "--exclude-pairs", "20200101_20200113")  # fmt: skip
    assert p.returncode == 0, p.stderr
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(got) == len(table)  # excluded ifgs keep their row, with the reason
    days = (pd.to_datetime(table.secondary_date) - pd.to_datetime(table.reference_date)).dt.days
    expect_out = ((table.reference_date == drop) | (table.secondary_date == drop)
                  | (days > 30)
                  | ((table.reference_date == "2020-01-01")
                     & (table.secondary_date == "2020-01-13"))).to_numpy()  # fmt: skip
    key = table.reference_date + table.secondary_date
    got = got.set_index(got.reference_date + got.secondary_date).loc[key]
    np.testing.assert_array_equal(got.used.to_numpy() == "False", expect_out)
    reasons = got.excluded_reason.to_numpy()
    assert all(r for r in reasons[expect_out]) and not any(reasons[~expect_out])
    assert all("exclude_dates" in r for r, a, b in
               zip(reasons, table.reference_date, table.secondary_date, strict=True)
               if drop in (a, b))  # fmt: skip
    assert any("max_temporal_baseline 36 d > 30 d" in r for r in reasons)
    # The time series: one file per kept date after the first, the dropped date absent.
    ref = tmp_path / "ref.txt"
    assert run_script("insar_reference.py", "--ifgs", out, "--point", 8, 8,
                      "--out", ref).returncode == 0  # fmt: skip
    p = run_script("insar_invert.py", "--ifgs", out, "--reference", ref, "--out-dir",
                   tmp_path / "o", "--index", tmp_path / "ts.csv", "--method", "L2")  # fmt: skip
    assert p.returncode == 0, p.stderr
    index = pd.read_csv(tmp_path / "ts.csv")
    want = [x for x in all_dates[1:] if x != drop]
    assert list(index.date) == want
    names = sorted(f.name for f in (tmp_path / "o" / "timeseries").glob("*.tif"))
    assert names == [f"20200101_{x.replace('-', '')}.tif" for x in want]
    # Noise-free synthetic: the kept network still recovers the truth exactly.
    k = all_dates.index(want[3])
    truth = [io.read_band(d / "s" / "truth_phase.tif", band=b + 1) for b in (0, k)]
    got_d = io.read_band(index.path.iloc[3])
    exp = -((truth[1] - truth[0]) - (truth[1] - truth[0])[8, 8])
    ok = np.isfinite(got_d)  # the synthetic nodata corner of ifg 1 may cut a date off
    assert ok.mean() > 0.98
    np.testing.assert_allclose(got_d[ok], exp[ok], atol=2e-5)


def test_min_mean_correlation_and_period(stack):
    d, table = stack
    cor = {r.reference_date + r.secondary_date: float(np.nanmean(io.read_band(r.cor_path)))
           for r in table.itertuples()}  # fmt: skip
    levels = np.unique(np.round(list(cor.values()), 6))
    limit = float(levels[len(levels) // 2 - 1 : len(levels) // 2 + 1].mean())  # between two
    p, out = _select(d, "--min-mean-correlation", str(limit), "--start-date", "2020-01-13",
                     "--end-date", "2020-03-20")  # fmt: skip
    assert p.returncode == 0, p.stderr
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    early = got.reference_date < "2020-01-13"
    late = got.secondary_date > "2020-03-20"
    assert got[early].excluded_reason.str.contains("start_date").all()
    assert got[late].excluded_reason.str.contains("end_date").all()
    low = np.array([cor[a + b] < limit for a, b in zip(got.reference_date, got.secondary_date,
                                                       strict=True)])  # fmt: skip
    assert low.any() and not low.all()
    has = got.excluded_reason.str.contains("min_mean_correlation").to_numpy()
    np.testing.assert_array_equal(has, low & ~(early | late).to_numpy())


@pytest.mark.parametrize(("edit", "expect"), [
    (("--exclude-dates", "2020-01-02"), "insar.exclude_dates: 2020-01-02 is not an acquisition"),
    (("--exclude-pairs", "20200101_20200201"), "insar.exclude_pairs: 20200101_20200201"),
    (("--max-temporal-baseline", "5"), "leaves 0 of"),
    (("--exclude-pairs", "20200218_20200325", "20200301_20200325", "20200301_20200406",
      "20200313_20200325", "20200313_20200406", "20200313_20200418"),
     "after network editing (exclude_pairs: 6): the interferogram network is disconnected"),
])  # fmt: skip
def test_bad_editing_is_one_line_naming_the_key(stack, tmp_path, edit, expect):
    d, _ = stack
    p = run_script("insar_select.py", "--unwrapped", d / "s" / "ifgs" / "*.unw.tif",
                   "--out", tmp_path / "ifgs.csv", *edit)  # fmt: skip
    assert p.returncode == 2 and expect in p.stderr, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and p.stderr.strip().splitlines()[-1] == errors[0]
    assert not (tmp_path / "ifgs.csv").exists()

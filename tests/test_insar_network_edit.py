"""Network editing from the config (insar_select): exactly the expected ifgs
and dates go, each with its reason in ifgs.csv, and the time series follows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_script, with_schema_defaults

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


def test_loop_closure_qc_leaves_out_the_ifg_with_a_jump(tmp_path, x64):
    """insar.closure_qc (issue 26 item 3): one ifg with +2 pi over half the scene
    (a patch its conncomps do not mark) has the largest loop RMS (about pi) and
    alone is left out, excluded_reason loop_closure, its triangle partners kept;
    the time series without it equals the clean stack's (noise-free stacks, so
    any connected network gives the truth)."""
    from sarstack import insar
    from sarstack.closure import closure_exclusions, loop_rms, network_triangles

    invert_strip = with_schema_defaults(insar.invert_strip)
    select_ifgs = with_schema_defaults(insar.select_ifgs)

    shape, bad = (24, 32), 4
    for name, jump in (("clean", None), ("jump", (bad, slice(12, None), slice(None)))):
        synthetic.make_ifg_stack(tmp_path / name, n_dates=9, shape=shape, network="nearest:3",
                                 noise_rad=0.0, seed=3, jump_patch=jump)  # fmt: skip
    edit = insar.NetworkEdit(max_loop_rms_rad=1.0)
    every, dates, pairs, _ = select_ifgs(str(tmp_path / "jump" / "ifgs" / "*.unw.tif"),
                                         edit=edit, block_shape=(10, 32))  # fmt: skip
    out = [k for k, i in enumerate(every) if i.excluded]
    assert out == [bad] and every[bad].excluded.startswith("loop_closure ")
    assert every[bad].loop_rms_rad == pytest.approx(np.pi, rel=0.05)
    assert max(i.loop_rms_rad for i in every if not i.excluded) > 1.0  # partners were flagged too ...
    table = insar.ifg_table(every)
    assert list(table["used"]).count(False) == 1 and "loop_rms_rad" in table
    # ... and with the culprit out, their remaining triangles close.
    tri = network_triangles([p for k, p in enumerate(pairs)])
    assert len(pairs) == len(every) - 1 and len(tri) > 0
    # Report only: recorded, nothing excluded.
    rep = select_ifgs(str(tmp_path / "jump" / "ifgs" / "*.unw.tif"), block_shape=(10, 32),
                      edit=insar.NetworkEdit(max_loop_rms_rad=1.0, loop_exclude=False))[0]
    assert not any(i.excluded for i in rep) and rep[bad].loop_rms_rad == every[bad].loop_rms_rad

    def series(root, ifgs, dates, pairs):
        o = tmp_path / f"o_{root}"
        invert_strip(ifgs, dates, pairs, (2, 2), o, method="L2", wavelength=None,
                     mask=None, block_shape=(8, 32), l1_tolerance=1e-6,
                     l1_max_iterations=50, weighting="none", correlation_looks=4.0,
                     correlation_threshold=0.0, write_residuals=False)  # fmt: skip
        return np.stack([io.read_band(o / "timeseries.tif", band=b + 1)
                         for b in range(len(dates) - 1)])  # fmt: skip

    kept = [i for i in every if not i.excluded]
    clean, cd, cp, _ = select_ifgs(str(tmp_path / "clean" / "ifgs" / "*.unw.tif"))
    np.testing.assert_allclose(series("jump", kept, dates, pairs), series("clean", clean, cd, cp),
                               atol=1e-4)  # fmt: skip
    # The worst-first rule on its own: two bad triangles sharing one ifg leave out only it.
    net = [(0, 1), (1, 2), (0, 2), (2, 3), (1, 3)]
    var = np.array([9.0, 9.0])  # both triangles contain ifg (1, 2)
    rms, gone = closure_exclusions(net, var, 1.0)
    assert gone == [1] and rms[1] == pytest.approx(3.0)
    assert np.isnan(loop_rms(network_triangles(net), var, 5, np.array([1, 0, 1, 1, 1], bool))).all()

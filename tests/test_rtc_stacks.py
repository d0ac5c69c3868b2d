"""Many RTC stacks in one run (rtc.stacks, issue 13): the per-stack and overall
summaries, and the two shared OPERA bursts plus a corrupted copy in one
``--keep-going`` invocation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import schema_defaults, with_schema_defaults
from test_workflow import ROOT, snakemake, write_config

from sarstack import rtc
from sarstack.cli import rtc_stacks_summary
from sarstack.options import config_args

summarize = with_schema_defaults(rtc.summarize)
summarize_stacks = with_schema_defaults(rtc.summarize_stacks)

OK, FAILED, NOT_RUN = rtc.StackOutcome.OK, rtc.StackOutcome.FAILED, rtc.StackOutcome.NOT_RUN


def _pairs(offsets_m, requirement_m=10.0, bad=0):
    rows = [{"reference_date": f"2021-01-{i + 1:02d}", "secondary_date": f"2021-01-{i + 2:02d}",
             "east_m": e, "north_m": n, "status": "ok",
             "passes": bool(np.hypot(e, n) <= requirement_m)} for i, (e, n) in enumerate(offsets_m)]
    rows += [{"reference_date": "2021-02-01", "secondary_date": "2021-02-02", "east_m": np.nan,
              "north_m": np.nan, "status": "low_correlation", "passes": False}] * bad
    return pd.DataFrame(rows)


def _result(name, offsets_m, bad=0, requirement_m=10.0):
    pairs = _pairs(offsets_m, bad=bad)
    if requirement_m is None:
        pairs = pairs.drop(columns="passes")
    scenes = pd.DataFrame({"date": [f"2021-01-{i + 1:02d}" for i in range(len(pairs) + 1)]})
    return rtc.StackResult(name, OK, summarize(pairs, requirement_m), pairs, scenes)


def test_summarize_stacks_counts_means_rms_and_fractions():
    a = _result("a", [(3.0, 4.0), (-3.0, -4.0)])  # both 5 m: within 10 m
    b = _result("b", [(6.0, 8.0), (12.0, 0.0)])  # 10 m within, 12 m not
    c = rtc.StackResult("c", FAILED, error="error: x.tif: cannot read")
    d = rtc.StackResult("d", NOT_RUN, error="did not finish")
    per, overall = summarize_stacks([a, b, c, d], 10.0)
    assert list(per["stack"]) == ["a", "b", "c", "d"]
    assert list(per["status"]) == ["ok", "ok", "failed", "not_run"]
    assert list(per["verdict"]) == ["pass", "fail", "not_measurable", "not_measurable"]
    ra, rb = per.iloc[0], per.iloc[1]
    assert (ra.n_pairs, ra.n_pairs_ok, ra.n_pairs_within, ra.n_dates) == (2, 2, 2, 3)
    assert ra.east_mean_m == pytest.approx(0.0) and ra.east_rms_m == pytest.approx(3.0)
    assert ra.north_rms_m == pytest.approx(4.0)
    assert rb.n_pairs_within == 1 and rb.max_offset_m == pytest.approx(12.0)
    assert ra.fraction_pairs_within == 1.0 and rb.fraction_pairs_within == 0.5
    assert rb.east_rms_m == pytest.approx(np.sqrt((36 + 144) / 2))
    assert per.iloc[2].error.startswith("error: x.tif") and pd.isna(per.iloc[2].n_pairs)
    o = overall.iloc[0]
    assert (o.n_stacks, o.n_stacks_ok, o.n_stacks_pass) == (4, 2, 1)
    assert o.fraction_stacks_pass == pytest.approx(0.25)
    assert (o.n_pairs_ok, o.n_pairs_within) == (4, 3)
    assert o.fraction_pairs_within == pytest.approx(0.75)


def test_summarize_stacks_never_passes_the_unmeasured_or_without_requirement():
    sea = _result("sea", [], bad=3)
    per, overall = summarize_stacks([sea], 10.0)
    assert per.iloc[0].verdict == "not_measurable" and per.iloc[0].n_pairs_ok == 0
    assert np.isnan(overall.iloc[0].fraction_pairs_within)
    per, overall = summarize_stacks([_result("a", [(1.0, 1.0)], requirement_m=None)], None)
    assert per.iloc[0].verdict == "no_requirement"
    assert np.isnan(overall.iloc[0].fraction_stacks_pass)


def test_last_error_picks_the_newest_error_line_since_the_start(tmp_path):
    logs = tmp_path / "land"
    logs.mkdir()
    (logs / "select.log").write_text("10:00 INFO fine\n")
    (logs / "flatten_1-of-2.log").write_text("INFO reading\nerror: a.tif: cannot read band 1\n")
    assert rtc_stacks_summary.last_error(logs, None).startswith("error: a.tif: cannot read band 1")
    assert rtc_stacks_summary.last_error(logs, since=4e9) == ""  # older than the run
    assert rtc_stacks_summary.last_error(tmp_path / "none", None) == ""


@pytest.mark.workflow
def test_two_opera_bursts_and_a_corrupted_stack_in_one_keep_going_run(tmp_path, land_burst, sea_burst):
    """land: measurable, pass; sea: nothing measurable, said so; broken (the sea
    burst with one file truncated): fails with its one-line error while the
    other two complete, each in a job of its own (rtc.stacks_per_job: 1);
    stacks_summary.csv says which and why."""
    broken = tmp_path / "broken"
    shutil.copytree(sea_burst, broken)
    victim = sorted(broken.rglob("*_VV.tif"))[2]
    victim.write_bytes(victim.read_bytes()[:3000])
    out = tmp_path / "res"
    cfg = write_config(tmp_path / "c.yaml", {
        "output_dir": str(out),
        "rtc": {"stacks": {"land": f"{land_burst}/**/*_VV.tif", "sea": f"{sea_burst}/**/*_VV.tif",
                           "broken": f"{broken}/**/*_VV.tif"},
                "tiles": [4, 4], "requirement_m": 10.0, "stacks_per_job": 1,
                "reflectors": str(ROOT / "config" / "examples" / "opera_points.csv"),
                "injection": {"enabled": True}},
    })
    p = snakemake("rtc", "--keep-going", "--configfile", str(cfg), check=False)
    assert p.returncode != 0
    assert f"{victim}" in p.stderr and "stacks_summary.csv" in p.stderr  # one line, on the terminal

    for name, verdict, n_ok in (("land", "pass", 26), ("sea", "not_measurable", 0)):
        pairs = pd.read_csv(out / "rtc" / name / "pairs.csv")
        summary = pd.read_csv(out / "rtc" / name / "summary.csv")
        # 21 dates, the default network sequential+long:4: 20 + 5 + first-last
        assert len(pairs) == 26 and int((pairs["status"] == "ok").sum()) == n_ok
        ok = pairs[pairs["status"] == "ok"]
        assert (np.hypot(ok["east_m"], ok["north_m"]) < 30.0).all()  # sub-pixel at 30 m
        assert summary["verdict"].iloc[0] == verdict
        assert (out / "rtc" / name / "plots" / "pair_offsets.png").is_file()
    assert not (out / "rtc" / "broken" / "summary.csv").exists()

    # Injection-recovery (issue 25): the land burst gives back known shifts of up
    # to 0.5 px within 0.05 px RMS; on the sea burst nothing is measurable, and
    # it says so instead of giving a number.
    land = pd.read_csv(out / "rtc" / "land" / "summary.csv").iloc[0]
    assert land.injection_n_dates == 20 and land.injection_rms_px <= 0.05
    assert land.injection_within_requirement == 1.0
    inj = pd.read_csv(out / "rtc" / "land" / "injection.csv")
    assert len(inj) == 21 and np.abs(inj["injected_east_m"]).max() > 5.0  # shifts were injected
    assert np.sqrt(np.mean(inj["error_m"] ** 2)) == pytest.approx(land.injection_rms_m * np.sqrt(20 / 21))
    sea = pd.read_csv(out / "rtc" / "sea" / "summary.csv", keep_default_na=False).iloc[0]
    assert sea.injection_note == "nothing measurable" and sea.injection_rms_m == ""

    # Absolute geolocation on the real bursts: the listed points are not corner
    # reflectors, so nothing may be 'ok' and the verdict is not_measurable.
    for name, inside in (("land", {"land_centre", "land_nw"}), ("sea", {"sea_centre"})):
        refl = pd.read_csv(out / "rtc" / name / "reflectors.csv")
        assert len(refl) == 21 * 4 and {"date", "id", "east_m", "north_m", "status"} <= set(refl)
        assert (refl.loc[refl["id"].isin(inside), "status"] == "low_contrast").all()
        assert (refl.loc[~refl["id"].isin(inside), "status"] == "outside").all()
        assert refl["east_m"].isna().all()
        absolute = pd.read_csv(out / "rtc" / name / "absolute.csv")
        assert absolute.loc[absolute["scope"] == "stack", "verdict"].item() == "not_measurable"

    per = pd.read_csv(out / "rtc" / "stacks_summary.csv", keep_default_na=False).set_index("stack")
    per = per.loc[["land", "sea", "broken"]]  # in config order (here sorted by the YAML dump)
    assert list(per["status"]) == ["ok", "ok", "failed"]
    assert list(per["verdict"]) == ["pass", "not_measurable", "not_measurable"]
    assert per.loc["land", "n_pairs"] == "26" and per.loc["land", "n_pairs_ok"] == "26"
    assert per.loc["sea", "n_pairs_ok"] == "0" and per.loc["land", "n_dates"] == "21"
    assert victim.name in per.loc["broken", "error"] and per.loc["land", "error"] == ""
    assert list(per["absolute_verdict"]) == ["not_measurable"] * 3
    overall = pd.read_csv(out / "rtc" / "stacks_overall.csv").iloc[0]
    assert (overall.n_stacks, overall.n_stacks_ok, overall.n_stacks_pass) == (3, 2, 1)
    assert overall.fraction_pairs_within == 1.0

    # The rule's path (every stack completed) gives the same rows for the two good stacks.
    rtc_stacks_summary.main(["--stack", "land", str(out / "rtc" / "land"), "--stack", "sea",
                             str(out / "rtc" / "sea"), "--requirement-m", "10", "--absolute",
                             "--out", str(tmp_path / "s.csv"), "--out-overall", str(tmp_path / "o.csv"),
                             "--plot", str(tmp_path / "s.png")])
    again = pd.read_csv(tmp_path / "s.csv").set_index("stack")
    first = pd.read_csv(out / "rtc" / "stacks_summary.csv").set_index("stack").loc[["land", "sea"]]
    pd.testing.assert_frame_equal(again, first, check_dtype=False)

    # Map-ready offsets: each tile's temporal mean, spread and count; a point per tile and pair.
    tiles = json.loads((out / "rtc" / "land" / "tiles.geojson").read_text())
    table = pd.read_csv(out / "rtc" / "land" / "tiles.csv")
    assert len(tiles["features"]) == 16 and "crs" in tiles
    for f in tiles["features"]:
        pr = f["properties"]
        row = table[(table.tile_row == pr["tile_row"]) & (table.tile_col == pr["tile_col"])].iloc[0]
        assert pr["east_mean_m"] == pytest.approx(row.east_mean_m)
        assert pr["north_spread_m"] == pytest.approx(row.north_spread_m) and pr["n_ok"] == row.n_ok
    vectors = json.loads((out / "rtc" / "land" / "tile_vectors.geojson").read_text())
    assert len(vectors["features"]) == 26 * 16
    v = vectors["features"][0]["properties"]
    assert v["azimuth_deg"] == pytest.approx(np.degrees(np.arctan2(v["east_m"], v["north_m"])) % 360)


def test_a_stack_whose_glob_matches_nothing_is_named_by_its_key(tmp_path):
    from sarstack.cli import rtc_select
    from sarstack.errors import SarstackError

    argv = ["--inputs", str(tmp_path / "none" / "*.tif"), "--scenes", str(tmp_path / "s.csv"),
            "--grid", str(tmp_path / "g.json")]
    with pytest.raises(SarstackError, match=r"^rtc\.stacks\.land: no files match"):
        rtc_select.main([*argv, "--key", "rtc.stacks.land",
                         *config_args("rtc_select", schema_defaults())])
    assert not (tmp_path / "s.csv").exists()


def test_small_stacks_in_batches_equal_the_per_stage_jobs(tmp_path):
    """Small stacks run their whole chain, select to plots, in rtc_batch_N jobs
    of rtc.stacks_per_job stacks (the default); rtc.fuse_small_stacks: false
    runs one job per stage and stack. Every table is the same, byte for byte,
    and each stack keeps its own logs."""
    from sarstack import synthetic

    names = ("a", "b", "c")
    for i, name in enumerate(names):
        synthetic.make_rtc_stack(tmp_path / name, n_dates=3, shape=(64, 64), seed=5 + i)
    tables = ["offsets.csv", "pairs.csv", "tiles.csv", "summary.csv", "dates.csv",
              "dates_tiles.csv", "date_events.csv", "tiles.geojson", "tile_vectors.geojson"]
    runs = {}
    for fuse in (True, False):
        out = tmp_path / f"fuse-{fuse}"
        cfg = write_config(tmp_path / f"c-{fuse}.yaml", {
            "output_dir": str(out), "insar": {"enabled": False},
            "rtc": {"stacks": {n: f"{tmp_path}/{n}/**/*_VV.tif" for n in names},
                    "tiles": [2, 2], "fuse_small_stacks": fuse, "stacks_per_job": 2},
        })  # fmt: skip
        snakemake("rtc", "--configfile", str(cfg))
        bench = {p.name for p in (out / "benchmarks" / "rtc").rglob("*.tsv")}
        if fuse:
            assert bench == {"batch_1.tsv", "batch_2.tsv", "stacks_summary.tsv"}, bench
            for name in names:
                logs = out / "logs" / "rtc" / name
                assert "rtc_xcorr" in (logs / "stack.log").read_text()
                assert "rtc_select" in (logs / "select.log").read_text()
        else:
            assert "batch_1.tsv" not in bench and "xcorr_1-of-1.tsv" in bench, bench
        runs[fuse] = out / "rtc"
    for name in names:
        for table in tables:
            fused, alone = runs[True] / name / table, runs[False] / name / table
            assert fused.read_bytes() == alone.read_bytes(), f"{name}/{table}"


def test_a_failed_stack_stops_its_batch_only(tmp_path):
    """Batched small stacks (rtc.stacks_per_job: 2): a broken stack fails its
    job, with its one-line error on the terminal; the stack sharing that job is
    reported as not finished (and is redone on the next run), the other job's
    stack completes."""
    from sarstack import synthetic

    names = ("a", "b", "c")
    for i, name in enumerate(names):
        synthetic.make_rtc_stack(tmp_path / name, n_dates=3, shape=(64, 64), seed=5 + i)
    victim = sorted((tmp_path / "b").rglob("*_VV.tif"))[1]
    victim.write_bytes(b"II*\x00junk")
    out = tmp_path / "res"
    cfg = write_config(tmp_path / "c.yaml", {
        "output_dir": str(out), "insar": {"enabled": False},
        "rtc": {"stacks": {n: f"{tmp_path}/{n}/**/*_VV.tif" for n in names}, "tiles": [2, 2],
                "stacks_per_job": 2},
    })  # fmt: skip
    p = snakemake("rtc", "--keep-going", "--configfile", str(cfg), check=False)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert p.returncode != 0 and len(errors) == 1 and str(victim) in errors[0], p.stderr[-3000:]
    per = pd.read_csv(out / "rtc" / "stacks_summary.csv", keep_default_na=False).set_index("stack")
    assert per.loc["b", "status"] == "failed" and victim.name in per.loc["b", "error"]
    assert per.loc["a", "status"] == "not_run" and "sharing its job" in per.loc["a", "error"]
    assert per.loc["c", "status"] == "ok" and not (out / "rtc" / "a" / "summary.csv").exists()


@pytest.mark.workflow
def test_opera_preset_on_the_two_shared_bursts(tmp_path, land_burst, sea_burst):
    """rtc.requirement: opera: 6 m, met by >= 80 % of the products. The land
    burst's products are all within; the sea burst measures nothing and says
    so; across the stacks the cal/val criterion is met on the land burst's 20
    products."""
    out = tmp_path / "res"
    cfg = write_config(tmp_path / "c.yaml", {
        "output_dir": str(out), "insar": {"enabled": False},
        "rtc": {"stacks": {"land": f"{land_burst}/**/*_VV.tif", "sea": f"{sea_burst}/**/*_VV.tif"},
                "tiles": [4, 4], "requirement": "opera"},
    })  # fmt: skip
    p = snakemake("rtc", "--configfile", str(cfg))
    land = pd.read_csv(out / "rtc" / "land" / "summary.csv").iloc[0]
    assert land.requirement_m == 6.0 and land.verdict == "pass"
    assert (land.n_dates_judged, land.n_dates_within) == (20, 20)
    sea = pd.read_csv(out / "rtc" / "sea" / "summary.csv").iloc[0]
    assert sea.verdict == "not_measurable" and sea.n_dates_judged == 0
    overall = pd.read_csv(out / "rtc" / "stacks_overall.csv").iloc[0]
    assert overall.min_fraction_within == 0.8 and overall.requirement_m == 6.0
    assert (overall.n_dates_judged, overall.fraction_dates_within) == (20, 1.0)
    assert overall.calval_met == "yes"
    assert "calval_met yes" in p.stdout + p.stderr  # the terminal summary

"""Steps and drift in an RTC stack's geolocation, found on the pairs and
attributed (sarstack.events; issue 27 item 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sarstack import events, synthetic

PX = 30.0  # OPERA / HyP3 RTC pixel (m)


def _stack(rng, *, spec="sequential+long:4", **kw):
    """(pairs, scenes, dates) of synthetic.simulate_event_pairs."""
    return synthetic.simulate_event_pairs(rng, network=spec, **kw)


def test_platform_and_version_from_hyp3_and_opera_names():
    assert events.scene_platform("S1A_IW_20210103T184544_DVP_RTC30_G_gpuned_13FA_VV.tif") == "S1A"
    opera = "OPERA_L2_RTC-S1_T137-292319-IW2_20211119T015858Z_20250830T120333Z_S1C_30_v1.0_VV.tif"
    assert events.scene_platform(opera) == "S1C" and events.scene_version(opera) == "1.0"
    assert events.scene_platform("/d/S1B_IW_20210103T1_VV/scene_20210103.tif") == "S1B"  # folder
    assert events.scene_platform("scene_20210103.tif") == "" == events.scene_version("x.tif")
    assert events.scene_platform("S1AB_20210103.tif") == ""


def test_a_step_at_the_first_s1c_date_is_found_and_attributed():
    """+0.6 px east (18 m at 30 m), starting at the first S1C date."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        p, scenes, ds = _stack(rng, step=0.6 * PX)
        found = events.find_events(p, scenes, significance=0.01)
        step = found[found["kind"] == "step"]
        assert len(step) == 1, found
        r = step.iloc[0]
        assert r["date"] == ds[15] and r["platform_before"] == "S1A" and r["platform_after"] == "S1C"
        assert r["note"] == "platform S1A -> S1C" and r["significance"] < 1e-6
        assert abs(r["east_m"] - 0.6 * PX) < 4 * r["sigma_m"] and abs(r["north_m"]) < 4 * r["sigma_m"]


def test_false_alarms_at_most_one_in_twenty_stacks():
    rng = np.random.default_rng(1)
    for jitter, meas in ((0.5, 0.9), (3.0, 0.9), (1.0, 2.0)):
        n_alarms = sum(len(events.find_events(*_stack(rng, jitter=jitter, meas=meas)[:2],
                                              significance=0.01)) > 0 for _ in range(20))  # fmt: skip
        assert n_alarms <= 1, (jitter, meas, n_alarms)


def test_a_drift_is_found_and_a_step_without_a_platform_change_says_so():
    rng = np.random.default_rng(2)
    p, scenes, ds = _stack(rng, jitter=0.5, drift_m_per_yr=10.0)
    found = events.find_events(p, scenes, significance=0.01)
    assert list(found["kind"]) == ["drift"] and found["date"].iloc[0] == ds[0]
    span_yr = (pd.Timestamp(ds[-1]) - pd.Timestamp(ds[0])).days / 365.25
    assert found["east_m"].iloc[0] == pytest.approx(10.0 * span_yr, abs=4 * found["sigma_m"].iloc[0])
    p, scenes, ds = _stack(rng, step=20.0, platforms=("S1A", "S1A"))
    found = events.find_events(p, scenes, significance=0.01)
    assert found["note"].iloc[0] == "nothing known changed" and found["date"].iloc[0] == ds[15]
    assert events.find_events(p, None, significance=0.01)["note"].iloc[0] == "nothing known changed"


def test_a_network_without_loops_is_not_searched():
    """Sequential pairs: a step is measured by one pair only, as is that
    pair's own error; nothing is claimed (the default network has loops)."""
    rng = np.random.default_rng(3)
    p, scenes, _ = _stack(rng, step=0.6 * PX, spec="sequential")
    assert not events.redundant(p)
    assert events.find_events(p, scenes, significance=0.01).empty
    p, _, _ = _stack(rng, spec="sequential+long:4")
    assert events.redundant(p)
    p.loc[~p["reference_date"].isin(p["reference_date"].iloc[:1]), "status"] = "unreliable"
    assert not events.redundant(p)  # only the first date's pairs: a star, no loop


def test_one_platforms_offset_in_an_interleaved_stack_is_found():
    """S1A and S1B alternating (6-day pairs), the S1B scenes 10 m east of the
    S1A ones: a platform offset, not a step."""
    rng = np.random.default_rng(4)
    p, scenes, ds = _stack(rng, jitter=1.0)
    plat = ["S1A" if q % 2 == 0 else "S1B" for q in range(len(ds))]
    scenes["path"] = [f"/d/{pl}_IW_{d.replace('-', '')}T1_VV.tif" for pl, d in zip(plat, ds, strict=True)]
    is_b = {d: pl == "S1B" for d, pl in zip(ds, plat, strict=True)}
    p["east_m"] += 10.0 * (p["secondary_date"].map(is_b).astype(float)
                           - p["reference_date"].map(is_b).astype(float))  # fmt: skip
    found = events.find_events(p, scenes, significance=0.01)
    assert list(found["kind"]) == ["platform"], found
    r = found.iloc[0]
    assert (r["platform_before"], r["platform_after"], r["date"]) == ("S1A", "S1B", ds[1])
    assert abs(r["east_m"] - 10.0) < 4 * r["sigma_m"]
    assert r["note"] == "S1B scenes offset from the S1A scenes"
    # the same stack without the offset: nothing
    p2, _, _ = _stack(np.random.default_rng(4), jitter=1.0)
    assert events.find_events(p2, scenes, significance=0.01).empty

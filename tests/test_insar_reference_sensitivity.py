"""Reference sensitivity (insar.reference_sensitivity, issue 25 item 4): the
alternative points (chosen like the automatic one, distinct, valid, spread,
deterministic); a plain L2 run only shifts (the map is 0 and the shifts are
minus the points' velocities, checked against re-inverting with each point);
missing interferograms make the map non-zero only where the censoring
differs; bad config is one line naming the key; the terminal line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import schema_defaults, with_schema_defaults

from sarstack import insar, io, refpoint, synthetic
from sarstack.insar import chain
from sarstack.insar import sensitivity as sens

select_ifgs = with_schema_defaults(insar.select_ifgs)
reference_inputs = with_schema_defaults(insar.reference_inputs)
select_reference_point = with_schema_defaults(refpoint.select_reference_point)
alternative_points = with_schema_defaults(refpoint.alternative_points)

pytestmark = pytest.mark.usefixtures("x64")

SHAPE = (40, 48)
BLOCK = (16, 48)
N_DATES = 8
K = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A synthetic stack (nearest:3, 0.3 rad of noise; ifg 1 has a nodata block
    in its top-left corner), its ifg table, the automatic reference point and a
    mask that leaves the nodata block out."""
    d = tmp_path_factory.mktemp("refsens")
    synthetic.make_ifg_stack(d / "s", n_dates=N_DATES, shape=SHAPE, network="nearest:3",
                             noise_rad=0.3, seed=11)  # fmt: skip
    ifgs, dates, pairs, grid = select_ifgs(str(d / "s" / "ifgs" / "*.unw.tif"))
    table = d / "ifgs.csv"
    io.write_csv(table, insar.ifg_table(ifgs))
    valid, _, _ = reference_inputs(ifgs, grid, block_shape=BLOCK)
    rough = insar.phase_roughness(ifgs, grid, block_shape=BLOCK)
    ref = select_reference_point(valid, roughness=rough)
    (d / "ref.txt").write_text(f"{ref[0]},{ref[1]}\n")
    mask = np.ones(SHAPE, np.uint8)
    mask[: SHAPE[0] // 16 + 1, : SHAPE[1] // 16 + 1] = 0
    io.write_raster(d / "mask.tif", mask, grid, nodata=None)
    return d, ifgs, dates, pairs, grid, table, ref, valid, rough


def _opts(**invert):
    base = dict(method="L2", wavelength=None, mask=None, block_shape=BLOCK, l1_tolerance=1e-6,
                l1_max_iterations=100, weighting="none", correlation_looks=4.0,
                correlation_threshold=0.0, reference_window=1)  # fmt: skip
    base.update(invert)
    return base


def _run(stack, rc, folder, **invert):
    """The chain (invert, gather, velocity) referenced to ``rc``: the oracle."""
    d, ifgs, dates, pairs, *_ = stack
    ins = schema_defaults()["insar"]
    gather = {"coherence_mask": ins["coherence_mask"], "min_region_px": ins["min_region_px"],
              "compress_series": ins["compress_series"]}
    return chain.run_chain(ifgs, dates, pairs, rc, folder, invert=_opts(**invert), gather=gather,
                           velocity={"uncertainty": ins["velocity_uncertainty"]})["velocity"]  # fmt: skip


def _stage(stack, own, tmp_path, *extra, mask=None, **invert):
    from sarstack import cli, options

    d, ifgs, dates, pairs, grid, table, ref, *_ = stack
    cfg = schema_defaults()
    cfg["insar"].update(method=invert.get("method", "L2"), block_shape=list(BLOCK), mask=mask)
    cfg["insar"]["reference_sensitivity"]["points"] = K
    argv = [*options.config_args("insar_reference_sensitivity", cfg), "--ifgs", str(table),
            "--reference", str(d / "ref.txt"), "--velocity", str(own),
            "--n-used", str(own.parent / "run" / "n_ifgs_used.tif"),
            "--out", str(tmp_path / "rs.tif"), "--out-table", str(tmp_path / "rs.csv"),
            "--out-plot", str(tmp_path / "rs.png"), *extra]  # fmt: skip
    cli.main(["insar_reference_sensitivity", *argv])
    return io.read_band(tmp_path / "rs.tif"), pd.read_csv(tmp_path / "rs.csv")


def test_points_are_distinct_valid_spread_and_deterministic(stack):
    d, ifgs, dates, pairs, grid, table, ref, valid, rough = stack
    pts = alternative_points(valid, ref, K, roughness=rough)
    assert pts == alternative_points(valid, ref, K, roughness=rough)
    assert len(pts) == K and len(set(pts)) == K and ref not in pts
    stable, _ = refpoint.stable_ground(valid, None, 0.95, rough)
    assert all(valid[p] and stable[p] for p in pts)
    allp = np.array([ref, *pts], float)
    dist = np.hypot(*(allp[:, None] - allp[None]).transpose(2, 0, 1))
    assert dist[np.triu_indices(K + 1, 1)].min() >= 8  # spread over a 40 x 48 scene
    # The first is the stable candidate farthest from the reference.
    rr, cc = np.nonzero(stable & (refpoint._depth(stable) >= refpoint.ALTERNATIVE_MIN_DEPTH))
    far = np.hypot(rr - ref[0], cc - ref[1]).max()
    assert np.hypot(pts[0][0] - ref[0], pts[0][1] - ref[1]) == pytest.approx(far)
    # More points than candidates: as many as there are.
    one = np.zeros(SHAPE, bool)
    one[5, 5] = one[30, 40] = True
    assert alternative_points(one, (5, 5), 4) == [(30, 40)]


def test_plain_l2_only_shifts_the_map(stack, tmp_path):
    """With the nodata block masked every pixel uses every ifg: the exact shift
    (no re-inversion) gives a zero map and shifts of minus the points' own
    velocity, equal to re-inverting with each point (the oracle), and the
    stage's own re-inversion (--always-invert) agrees."""
    d, ifgs, dates, pairs, grid, table, ref, *_ = stack
    own = _run(stack, ref, tmp_path / "own", mask=d / "mask.tif")
    sd, t = _stage(stack, own, tmp_path, mask=str(d / "mask.tif"))
    assert (t["method"] == "exact shift").all() and list(t["role"]) == ["reference"] + ["alternative"] * K
    v0 = io.read_band(own).astype(np.float64)
    has = np.isfinite(v0)
    assert np.array_equal(np.isfinite(sd), has) and (sd[has] == 0).all()
    for k, p in enumerate(t.itertuples()):
        if k == 0:
            assert (p.row, p.col) == ref and p.shift == 0
            continue
        assert p.shift == pytest.approx(-v0[p.row, p.col], abs=1e-7)
        vk = io.read_band(_run(stack, (p.row, p.col), tmp_path / f"alt{k}", mask=d / "mask.tif"))
        np.testing.assert_allclose((vk - v0)[has], p.shift, atol=2e-5)
    spread = sens.offset_spread(t)
    alt = t[t["role"] == "alternative"]
    want = np.std([0.0, *(-v0[r, c] for r, c in zip(alt["row"], alt["col"], strict=True))], ddof=1)
    assert spread == pytest.approx(want, rel=1e-6)
    assert spread > 0.01  # the offsets are real: the points move
    sd2, t2 = _stage(stack, own, tmp_path, "--always-invert", mask=str(d / "mask.tif"))
    assert (t2["method"] == "re-inverted").all()
    assert np.nanmax(sd2) < 2e-5
    np.testing.assert_allclose(t2["shift"], t["shift"], atol=2e-5)


def test_missing_ifgs_change_the_map_only_where_censored(stack, tmp_path):
    """Without the mask, the nodata block's pixels miss ifg 1 (censored L2):
    there the velocity is not shifted by the same constant, so the map is
    non-zero there and 0 elsewhere; it equals the oracle's."""
    d, ifgs, dates, pairs, grid, table, ref, *_ = stack
    own = _run(stack, ref, tmp_path / "own")
    sd, t = _stage(stack, own, tmp_path)
    assert (t["method"] == "re-inverted").all()
    n_used = io.read_band(own.parent / "run" / "n_ifgs_used.tif")
    partial = n_used < len(ifgs)
    assert partial.sum() == (SHAPE[0] // 16) * (SHAPE[1] // 16)
    assert np.nanmax(sd[~partial]) < 2e-5
    assert sd[partial].min() > 1e-3
    v0 = io.read_band(own).astype(np.float64)
    maps = [v0]
    for k, p in enumerate(t.itertuples()):
        if k:
            vk = io.read_band(_run(stack, (p.row, p.col), tmp_path / f"alt{k}")).astype(np.float64)
            assert p.shift == pytest.approx(np.median(vk - v0), abs=1e-9)
            maps.append(vk - p.shift)
    np.testing.assert_allclose(sd, np.std(maps, axis=0, ddof=1), atol=1e-6)
    assert (tmp_path / "rs.png").stat().st_size > 1000


def test_bad_config_is_one_line_naming_the_key(stack, tmp_path, capsys):
    from sarstack.config import SCHEMA_PATH, load_schema, validate_config
    from sarstack.errors import SarstackError

    cfg = {"output_dir": "x", "insar": {"reference_sensitivity": {"points": 0}}}
    with pytest.raises(SarstackError, match="insar.reference_sensitivity.points"):
        validate_config(cfg, load_schema(SCHEMA_PATH))
    cfg = {"output_dir": "x", "insar": {"reference_sensitivity": {"point": 2}}}
    with pytest.raises(SarstackError, match="insar.reference_sensitivity"):
        validate_config(cfg, load_schema(SCHEMA_PATH))
    assert schema_defaults()["insar"]["reference_sensitivity"] == {"enabled": False, "points": 3}


def test_summary_line(stack, tmp_path):
    from sarstack import summary

    d, ifgs, dates, pairs, grid, table, ref, *_ = stack
    own = _run(stack, ref, tmp_path / "own")
    _stage(stack, own, tmp_path)
    line = summary.reference_sensitivity_line(tmp_path / "rs.tif", tmp_path / "rs.csv")
    assert line.startswith(f"insar reference sensitivity ({K} alternative points")
    assert "offset spread" in line and "shape" in line


def test_dry_run_has_the_job_only_when_on(tmp_path):
    """Off by default: no job; on: the job, after insar_velocity, with the points."""
    from test_workflow import snakemake, write_config

    for on in (False, True):
        cfg = {"output_dir": str(tmp_path / "o"), "rtc": {"enabled": False}, "demo": {"enabled": True}}
        if on:
            cfg["insar"] = {"reference_sensitivity": {"enabled": True, "points": 2}}
        path = write_config(tmp_path / f"{on}.yaml", cfg)
        p = snakemake("insar", "-n", "-p", "--configfile", str(path))
        text = p.stdout + p.stderr
        assert ("rule insar_reference_sensitivity" in text) is on
        assert ("--points 2" in text) is on

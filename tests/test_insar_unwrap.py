"""insar.unwrap_correction (issue 26 item 2): integer 2 pi ambiguities per ifg
and pixel from the network's triangle closures (the fewest cycles that close
every triangle, one integer programme per distinct pattern of closures),
added to each ifg as the reference values, the deramp fit and the inversion
read it."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from conftest import with_schema_defaults

from sarstack import closure, insar, io, synthetic, unwrap
from sarstack.dates import years_since
from sarstack.errors import SarstackError
from sarstack.network import make_pairs

reference_phase = with_schema_defaults(insar.reference_phase)

select_ifgs = with_schema_defaults(insar.select_ifgs)
invert_strip = with_schema_defaults(insar.invert_strip)

SHAPE = (48, 56)
REF = (40, 50)
N_DATES = 12


# ------------------------------------------------------------------ kernel
def _network_phase(pairs, n_dates, npix, noise, rng):
    """Closure-consistent ifgs (differences of per-date phases) plus noise."""
    dates = rng.normal(0.0, 5.0, (n_dates, npix))
    return np.stack([dates[j] - dates[i] for i, j in pairs]) + rng.normal(0, noise, (len(pairs), npix))


def test_injected_cycles_are_recovered_and_clean_data_untouched():
    rng = np.random.default_rng(0)
    pairs = make_pairs(12, "nearest:3")
    tri = closure.network_triangles(pairs)
    n, npix = len(pairs), 4000
    clean = _network_phase(pairs, 12, npix, 0.3, rng)
    err = np.zeros((n, npix), np.int64)
    for _ in range(20):  # patches of +-1 or +-2 cycles, some overlapping
        i, a = rng.integers(n), rng.integers(npix - 300)
        err[i, a : a + 300] += rng.choice([-2, -1, 1, 2])
    u, st = unwrap.ambiguities(clean + 2 * np.pi * err, tri)
    assert u.dtype == np.int8 and u.shape == (n, npix)
    np.testing.assert_array_equal(u, -err)  # every ifg of nearest:3 is in >= 2 triangles
    assert st["flagged_px"] == int((err != 0).any(axis=0).sum()) == st["closed_px"]
    assert st["nonzero_after_px"] == st["unsolved_px"] == 0
    assert 0 < st["patterns"] < 100  # one programme per pattern, not per pixel
    # Noise well below pi: nothing changes.
    u0, st0 = unwrap.ambiguities(clean, tri)
    assert not u0.any() and st0["flagged_px"] == 0
    # A missing phase: its triangles are left out at that pixel; the other
    # ifgs are still corrected there.
    dirty = clean + 2 * np.pi * err
    px = int(np.flatnonzero((err != 0).sum(axis=0) == 1)[0])
    bad = int(np.flatnonzero(err[:, px])[0])
    other = (bad + 7) % n
    dirty[other, px] = np.nan
    u1, _ = unwrap.ambiguities(dirty, tri)
    assert u1[bad, px] == -err[bad, px] and u1[other, px] == 0
    # Beyond the cap, the rarer patterns' pixels are left as they are, and counted.
    u2, st2 = unwrap.ambiguities(clean + 2 * np.pi * err, tri, max_patterns=2)
    assert st2["unsolved_px"] > 0 and st2["unsolved_px"] == int(((u2 == 0) & (err != 0)).any(axis=0).sum())


def test_unidentifiable_networks_change_nothing():
    rng = np.random.default_rng(1)
    for spec in ("sequential", "reference"):
        pairs = make_pairs(8, spec)
        tri = closure.network_triangles(pairs)
        phase = _network_phase(pairs, 8, 50, 0.1, rng)
        phase[2, :20] += 2 * np.pi
        u, st = unwrap.ambiguities(phase, tri)
        assert not u.any() and st["flagged_px"] == 0


def test_inconsistent_closures_are_left_not_explained():
    """Four dates, all six pairs: the four triangles' closures are dependent; a
    single noisy closure rounded to 1 cannot be closed by any cycles, and no
    ifg is 'corrected' for it (the slack takes it)."""
    pairs = make_pairs(4, "nearest:3")  # all six pairs
    tri = closure.network_triangles(pairs)
    k = np.zeros(len(tri), np.int64)
    k[0] = 1
    u, left = unwrap.solve_pattern(k, unwrap.incidence(tri, len(pairs)))
    assert not u.any() and left.tolist() == k.tolist()


# ------------------------------------------------------------------ files
@pytest.fixture(scope="module")
def stack(tmp_path_factory, x64):
    """The clean synthetic stack and the same ifgs with 2 pi patches in 10 % of
    them (3 of 30, no conncomps: nothing labels the patches)."""
    d = tmp_path_factory.mktemp("unwrap")
    synthetic.make_ifg_stack(d / "s", n_dates=N_DATES, shape=SHAPE, network="nearest:3",
                             noise_rad=0.2, seed=4)  # fmt: skip
    ifgs, dates, pairs, grid = select_ifgs(str(d / "s" / "ifgs" / "*.unw.tif"))
    rng = np.random.default_rng(7)
    n_bad = round(0.1 * len(ifgs))
    err = np.zeros((len(ifgs), *SHAPE), np.int64)
    for k in rng.choice(len(ifgs), n_bad, replace=False):
        r0, c0 = rng.integers(0, SHAPE[0] - 20), rng.integers(0, SHAPE[1] - 24)
        err[k, r0 : r0 + rng.integers(10, 20), c0 : c0 + rng.integers(12, 24)] = rng.choice([-1, 1])
    assert not err[:, REF[0], REF[1]].any()
    dirty = _with_cycles(ifgs, err, d / "dirty")
    return d, ifgs, dirty, dates, pairs, grid, err


def _with_cycles(ifgs, err, folder):
    folder.mkdir()
    grid = io.read_grid(ifgs[0].path)
    out = []
    for i, e in zip(ifgs, err, strict=True):
        phase = io.read_band(i.path).astype(np.float64) + 2 * np.pi * e
        io.write_raster(folder / i.path.name, phase.astype(np.float32), grid, nodata=0.0)
        out.append(dataclasses.replace(i, path=folder / i.path.name))
    return out


def _invert(ifgs, dates, pairs, out, cycles=None):
    """L2 velocity (rad/yr, a line through each pixel's series) and the closure count."""
    invert_strip(ifgs, dates, pairs, REF, out, method="L2", wavelength=None, mask=None,
                 block_shape=(16, 56), l1_tolerance=1e-6, l1_max_iterations=100,
                 weighting="none", correlation_looks=4.0, correlation_threshold=0.0,
                 write_residuals=False, unwrap=cycles)  # fmt: skip
    series = np.stack([np.zeros(SHAPE)] + [io.read_band(out / "timeseries.tif", band=b + 1)
                                           for b in range(len(dates) - 1)])  # fmt: skip
    t = years_since(dates)
    g = np.stack([np.ones_like(t), t], axis=1)
    coef = np.linalg.lstsq(g, series.reshape(len(t), -1), rcond=None)[0]
    return coef[1].reshape(SHAPE), io.read_band(out / "closure_nonzero_count.tif")


def test_acceptance_velocity_equals_the_clean_one(stack, tmp_path):
    """The issue's test: after correction the L2 velocity equals the clean one
    (|dv| <= 1e-3 rad/yr) on >= 95 % of pixels, and the closure count is zero there."""
    d, ifgs, dirty, dates, pairs, grid, err = stack
    out, count = tmp_path / "u.tif", tmp_path / "n.tif"
    table, totals = unwrap.write_corrections(dirty, pairs, out, count, block_shape=(16, 56))
    assert list(table.columns) == list(unwrap.COLUMNS)
    assert (table["n_triangles"] >= 2).all()
    np.testing.assert_array_equal(table["corrected_px"].to_numpy() > 0, err.any(axis=(1, 2)))
    cycles = unwrap.IfgAmbiguities(out, dirty, grid)
    v_clean, cc_clean = _invert(ifgs, dates, pairs, tmp_path / "clean")
    v_raw, cc_raw = _invert(dirty, dates, pairs, tmp_path / "raw")
    v_fix, cc_fix = _invert(dirty, dates, pairs, tmp_path / "fix", cycles)
    touched = err.any(axis=0)
    assert (np.abs(v_raw - v_clean)[touched] > 1e-3).mean() > 0.9  # the errors do matter
    assert (cc_raw[touched] > 0).all()
    ok = np.abs(v_fix - v_clean) <= 1e-3
    frac = ok.mean()
    print(f"within 1e-3 rad/yr: {100 * frac:.2f} % of pixels ({100 * ok[touched].mean():.2f} % "
          f"of the {int(touched.sum())} with an error); closure count max {int(cc_fix[ok].max())}")
    assert frac >= 0.95
    assert (cc_fix[ok] == 0).all() and cc_clean.max() == 0
    n = io.read_band(count)
    np.testing.assert_array_equal(n, (err != 0).sum(axis=0))
    assert totals["closed_px"] == totals["flagged_px"] == int(touched.sum())


def test_error_at_the_reference_point_is_corrected_there_too(stack, tmp_path):
    """A patch over the reference pixel shifts the whole ifg by 2 pi once
    referenced; the reference values read the corrected phase, so the velocity
    is the clean one everywhere."""
    d, ifgs, _, dates, pairs, grid, _ = stack
    err = np.zeros((len(ifgs), *SHAPE), np.int64)
    err[4, REF[0] - 5 : REF[0] + 5, REF[1] - 6 : REF[1] + 4] = 1
    dirty = _with_cycles(ifgs, err, tmp_path / "dirty")
    unwrap.write_corrections(dirty, pairs, tmp_path / "u.tif", tmp_path / "n.tif", block_shape=(16, 56))
    cycles = unwrap.IfgAmbiguities(tmp_path / "u.tif", dirty, grid)
    v_clean, _ = _invert(ifgs, dates, pairs, tmp_path / "clean")
    v_raw, _ = _invert(dirty, dates, pairs, tmp_path / "raw")
    v_fix, cc = _invert(dirty, dates, pairs, tmp_path / "fix", cycles)
    assert np.median(np.abs(v_raw - v_clean)) > 1e-2  # every pixel is off without it
    assert np.abs(v_fix - v_clean).max() <= 1e-3 and cc.max() == 0


def test_closures_of_the_referenced_phase_ignore_per_ifg_constants(stack, tmp_path):
    """Real ifgs carry a constant per ifg that is not a whole number of cycles
    (PyRate's cropA: triangles closing at -1.53 cycles over the scene), which
    the reference point takes out. The closures are taken of the referenced
    phase: the same cycles and closure counts as without the constants, where
    the raw closures, rounding either way from pixel to pixel, go wrong."""
    d, ifgs, dirty, dates, pairs, grid, err = stack
    rng = np.random.default_rng(3)
    shifted = []
    (tmp_path / "shifted").mkdir()
    for i in dirty:
        path = tmp_path / "shifted" / i.path.name
        phase = io.read_band(i.path).astype(np.float64) + rng.uniform(-np.pi, np.pi)
        io.write_raster(path, phase.astype(np.float32), grid, nodata=0.0)
        shifted.append(dataclasses.replace(i, path=path))
    ref = reference_phase(shifted, REF)
    closures = (tmp_path / "before.tif", tmp_path / "after.tif")
    table, totals = unwrap.write_corrections(shifted, pairs, tmp_path / "u.tif", tmp_path / "n.tif",
                                             block_shape=(16, 56), reference=ref,
                                             out_closures=closures)  # fmt: skip
    np.testing.assert_array_equal(io.read_band(tmp_path / "n.tif"), (err != 0).sum(axis=0))
    tri = closure.network_triangles(pairs)
    k = unwrap.closure_integers(np.stack([io.read_band(i.path).astype(np.float64).ravel()
                                          for i in dirty]), tri)  # fmt: skip
    before = ((k != 0) & (k != unwrap.UNMEASURED)).sum(axis=0).reshape(SHAPE)
    np.testing.assert_array_equal(io.read_band(closures[0]), before)
    assert before.sum() > 0 and not io.read_band(closures[1]).any()
    assert totals["closures_before"] == before.sum() and totals["closures_after"] == 0
    # the raw closures of the shifted stack: wrong cycles on pixels with no error
    _, raw = unwrap.write_corrections(shifted, pairs, tmp_path / "u2.tif", tmp_path / "n2.tif",
                                      block_shape=(16, 56))  # fmt: skip
    assert (io.read_band(tmp_path / "n2.tif") != (err != 0).sum(axis=0)).mean() > 0.1


def test_deramp_fit_sees_the_corrected_phase(stack, tmp_path):
    from sarstack import deramp

    fit_ramps = with_schema_defaults(deramp.fit_ramps)

    d, ifgs, dirty, dates, pairs, grid, err = stack
    unwrap.write_corrections(dirty, pairs, tmp_path / "u.tif", tmp_path / "n.tif", block_shape=(16, 56))
    cycles = unwrap.IfgAmbiguities(tmp_path / "u.tif", dirty, grid)
    coef = list(deramp.terms("linear"))
    clean = fit_ramps(ifgs, "linear", block_shape=(16, 56))[coef].to_numpy()
    fixed = fit_ramps(dirty, "linear", block_shape=(16, 56), unwrap=cycles)[coef].to_numpy()
    raw = fit_ramps(dirty, "linear", block_shape=(16, 56))[coef].to_numpy()
    np.testing.assert_allclose(fixed, clean, atol=1e-5)
    assert np.abs(raw - clean).max() > 0.1


def _argv(table, tmp_path, cfg_update=None):
    from conftest import schema_defaults

    from sarstack import options

    cfg = schema_defaults()
    cfg["insar"]["unwrap_correction"] = "closure"
    cfg["insar"].update(cfg_update or {})
    return [*options.config_args("insar_unwrap_correction", cfg), "--ifgs", str(table),
            "--out", str(tmp_path / "u.tif"), "--out-count", str(tmp_path / "n.tif"),
            "--out-table", str(tmp_path / "u.csv")]  # fmt: skip


def test_nearest1_says_nothing_can_be_corrected(tmp_path, caplog):
    import pandas as pd

    from sarstack import cli

    synthetic.make_ifg_stack(tmp_path / "s", n_dates=6, shape=(16, 16), network="nearest:1",
                             noise_rad=0.1, seed=1, jump_patch=(2, slice(2, 8), slice(3, 9)))  # fmt: skip
    ifgs, _, _, _ = select_ifgs(str(tmp_path / "s" / "ifgs" / "*.unw.tif"))
    table = tmp_path / "ifgs.csv"
    io.write_csv(table, insar.ifg_table(ifgs))
    with caplog.at_level(logging.WARNING):
        cli.main(["insar_unwrap_correction", *_argv(table, tmp_path)])
    assert "no closed triangle" in caplog.text and "nothing can be corrected" in caplog.text
    got = pd.read_csv(tmp_path / "u.csv")
    assert (got["n_triangles"] == 0).all() and (got["corrected_px"] == 0).all()
    n = io.read_band(tmp_path / "n.tif")
    assert np.nanmax(n) == 0
    assert not io.read_band(tmp_path / "u.tif").any()


def test_bad_input_is_one_line_and_leaves_nothing(stack, tmp_path, capsys):
    from sarstack import cli

    d, ifgs, dirty, dates, pairs, grid, err = stack
    table = tmp_path / "ifgs.csv"
    io.write_csv(table, insar.ifg_table(dirty))
    argv = _argv(table, tmp_path)
    # Off: the stage refuses, naming the key.
    off = [*argv]
    off[off.index("--method") + 1] = "none"
    with pytest.raises(SystemExit) as e:
        cli.main(["insar_unwrap_correction", *off])
    assert e.value.code == 2
    assert "insar.unwrap_correction: none" in capsys.readouterr().err.strip().splitlines()[-1]
    # An unreadable ifg: named, nothing written.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / dirty[5].path.name).write_text("not a raster")
    bad = [dataclasses.replace(i, path=broken / i.path.name) if k == 5 else i
           for k, i in enumerate(dirty)]  # fmt: skip
    io.write_csv(table, insar.ifg_table(bad))
    with pytest.raises(SystemExit) as e:
        cli.main(["insar_unwrap_correction", *argv])
    assert e.value.code == 2
    assert dirty[5].path.name in capsys.readouterr().err.strip().splitlines()[-1]
    assert not list(tmp_path.glob("u.*")) and not (tmp_path / "n.tif").exists()
    # The inversion's reader: a raster of other ifgs, or on another grid, is named.
    io.write_csv(table, insar.ifg_table(dirty))
    cli.main(["insar_unwrap_correction", *argv])
    with pytest.raises(SarstackError, match="bands are not the 29 ifgs"):
        unwrap.IfgAmbiguities(tmp_path / "u.tif", dirty[1:], grid)
    other = io.Grid(grid.crs, grid.transform, grid.width - 1, grid.height)
    with pytest.raises(SarstackError, match="not on the interferograms' grid"):
        unwrap.IfgAmbiguities(tmp_path / "u.tif", dirty, other)


@pytest.mark.workflow
def test_workflow_corrects_to_the_clean_velocity(stack, tmp_path):
    """Through Snakemake: the stack with 2 pi patches, run with
    insar.unwrap_correction: closure, gives the clean run's velocity on >= 95 %
    of pixels; the run without the option has no such stage nor --unwrap."""
    from test_workflow import snakemake, write_config

    d, ifgs, dirty, dates, pairs, grid, err = stack
    base = {"rtc": {"enabled": False}, "demo": {"enabled": False}}
    ins = {"method": "L2", "reference_point": list(REF)}
    runs = {
        "clean": {"unwrapped": str(d / "s" / "ifgs" / "*.unw.tif")},
        "fixed": {"unwrapped": str(d / "dirty" / "*.unw.tif"), "unwrap_correction": "closure"},
    }
    vel = {}
    for name, extra in runs.items():
        out = tmp_path / name
        cfg = write_config(tmp_path / f"{name}.yaml",
                           {**base, "output_dir": str(out), "insar": {**ins, **extra}})  # fmt: skip
        run = snakemake("insar", "-p", "--configfile", str(cfg))
        text = run.stdout + run.stderr
        assert ("rule insar_unwrap_correction" in text) is (name == "fixed")
        assert ("--unwrap " in text) is (name == "fixed")
        vel[name] = io.read_band(out / "insar" / "velocity.tif")
    assert (np.abs(vel["fixed"] - vel["clean"]) <= 1e-3).mean() >= 0.95
    assert (tmp_path / "fixed" / "insar" / "unwrap_corrected_count.tif").exists()
    assert (tmp_path / "fixed" / "insar" / "plots" / "unwrap_correction.png").stat().st_size > 0
    after = io.read_band(tmp_path / "fixed" / "insar" / "closure_count_after.tif")
    cc = io.read_band(tmp_path / "fixed" / "insar" / "closure_nonzero_count.tif")
    np.testing.assert_array_equal(after, cc)  # the inversion counts the same closures
    assert not (tmp_path / "clean" / "insar" / "unwrap_correction.csv").exists()

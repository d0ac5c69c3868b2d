"""The inversion's output spec: a new raster is one entry of INVERSION_OUTPUTS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import with_schema_defaults

from sarstack import insar
from sarstack.insar import outputs as spec
from sarstack.synthetic import make_ifg_stack

select_ifgs = with_schema_defaults(insar.select_ifgs)
invert_strip = with_schema_defaults(insar.invert_strip)
gather_strips = with_schema_defaults(insar.gather_strips)

SHAPE = (40, 36)


def test_a_new_raster_is_one_entry(tmp_path, monkeypatch):
    """One entry (the largest |residual| per pixel) is written by every strip,
    gathered with its units and quantity, and listed by the workflow's rule
    helper; the existing rasters are unchanged by it."""
    make_ifg_stack(tmp_path / "stack", n_dates=8, shape=SHAPE, network="nearest:3",
                   noise_rad=0.3, seed=2)  # fmt: skip
    ifgs, dates, pairs, _ = select_ifgs(str(tmp_path / "stack" / "ifgs" / "*.unw.tif"))
    ref = (20, 18)

    def run(out):
        strips = []
        for label in ("1-of-2", "2-of-2"):
            strips.append(out / "strips" / label)
            invert_strip(
                ifgs, dates, pairs, ref, strips[-1], rows=insar.strip_rows(SHAPE[0], 8, label),
                method="L2", wavelength=None, mask=None, block_shape=(8, 36),
                l1_tolerance=1e-4, l1_max_iterations=100, weighting="none",
                correlation_looks=1.0, correlation_threshold=0.1, write_residuals=True,
            )  # fmt: skip
        gather_strips(strips, ifgs, dates, ref, out / "gathered", wavelength=None,
                      how="L2", block_shape=(8, 36))  # fmt: skip
        return out / "gathered"

    before = run(tmp_path / "before")
    new = spec.InversionOutput(
        "max_abs_residual", "pixel", "radians", "largest |network residual|",
        lambda b: np.nanmax(np.abs(b.res), axis=0).astype(np.float32),
    )  # fmt: skip
    monkeypatch.setattr(spec, "INVERSION_OUTPUTS", (*spec.INVERSION_OUTPUTS, new))
    after = run(tmp_path / "after")

    assert all((s / "max_abs_residual.tif").exists() for s in (tmp_path / "after" / "strips").iterdir())
    with rasterio.open(after / "max_abs_residual.tif") as ds:
        got, tags = ds.read(1), ds.tags()
    assert tags["units"] == "radians" and tags["quantity"] == "largest |network residual|"
    res = []
    for i in ifgs:
        with rasterio.open(after / "residuals" / f"{i.key}.tif") as ds:
            res.append(ds.read(1))
    np.testing.assert_array_equal(got, np.nanmax(np.abs(np.array(res)), axis=0))
    # the others are the same files' contents as without the entry
    for name in ("residual_sum.tif", "temporal_coherence.tif", "n_ifgs_used.tif",
                 "ifg_residual_std.tif", "closure_nonzero_count.tif"):  # fmt: skip
        with rasterio.open(before / name) as a, rasterio.open(after / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())
            assert a.tags() == b.tags()
    assert not (before / "max_abs_residual.tif").exists()


def test_series_compressed_only_with_compress_series(tmp_path):
    """insar.compress_series: the per-date and per-ifg COGs are uncompressed by
    default, ZSTD with it; the single rasters are always compressed; the values
    are the same either way."""
    make_ifg_stack(tmp_path / "stack", n_dates=6, shape=SHAPE, network="nearest:2",
                   noise_rad=0.3, seed=3)  # fmt: skip
    ifgs, dates, pairs, _ = select_ifgs(str(tmp_path / "stack" / "ifgs" / "*.unw.tif"))
    strip = tmp_path / "strip"
    invert_strip(ifgs, dates, pairs, (20, 18), strip, method="L2", wavelength=None, mask=None,
                 block_shape=(8, 36), l1_tolerance=1e-4, l1_max_iterations=100,
                 weighting="none", correlation_looks=1.0, correlation_threshold=0.1,
                 write_residuals=True)  # fmt: skip
    got = {}
    for compress in (False, True):
        out = tmp_path / f"c{compress}"
        index = gather_strips([strip], ifgs, dates, (20, 18), out, wavelength=None, how="L2",
                              block_shape=(8, 36), compress_series=compress)  # fmt: skip
        files = [*index["path"], *sorted((out / "residuals").glob("*.tif"))]
        assert len(files) == len(dates) - 1 + len(ifgs)
        for f in files:
            with rasterio.open(f) as ds:
                assert (ds.compression is not None) == compress, f
                got.setdefault(Path(f).relative_to(out), []).append(ds.read())
        for single in ("residual_sum.tif", "temporal_coherence.tif", "velocity_std.tif"):
            if (out / single).exists():
                with rasterio.open(out / single) as ds:
                    assert ds.compression is not None, single
    for name, (a, b) in got.items():
        np.testing.assert_array_equal(a, b, err_msg=str(name))


def test_spec_names_every_gathered_raster_once():
    names = [o.name for o in spec.INVERSION_OUTPUTS]
    assert len(names) == len(set(names))
    assert {o.per for o in spec.INVERSION_OUTPUTS} <= {"date", "ifg", "pixel"}
    assert spec.OUTPUTS_BY_NAME["timeseries"].final == "timeseries"
    assert spec.OUTPUTS_BY_NAME["n_ifgs_used"].final == "n_ifgs_used.tif"


def test_residual_sum_is_the_summed_absolute_residuals_bit_for_bit():
    """The row-by-row residual sum of a complete block is np.sum(|res|, axis=0)
    bit for bit (the previous kernel), in float64 and float32."""
    rng = np.random.default_rng(4)
    for dtype in (np.float64, np.float32):
        res = (rng.normal(size=(57, 700)) * rng.uniform(0.01, 50, size=(57, 1))).astype(dtype)
        b = spec.SolvedBlock((7, 100), np.zeros((9, 700)), res, np.full(700, 57), None,
                             np.zeros(700, np.uint16), 10, 1.0, complete=True)  # fmt: skip
        np.testing.assert_array_equal(spec._residual_sum(b),
                                      np.sum(np.abs(res), axis=0).astype(np.float32))  # fmt: skip
        part = res.copy()
        part[3, :10] = np.nan
        b = spec.SolvedBlock((7, 100), np.zeros((9, 700)), part, np.full(700, 57), None,
                             np.zeros(700, np.uint16), 10, 1.0, complete=False)  # fmt: skip
        np.testing.assert_array_equal(spec._residual_sum(b),
                                      np.nansum(np.abs(part), axis=0).astype(np.float32))  # fmt: skip


def test_residual_stats_match_the_block_wide_reductions_bit_for_bit():
    """The one-pass row statistics of complete float64 residuals are the
    previous kernels' values bit for bit: per-ifg and per-pixel sums of
    squares, the absolute sum, the float32 temporal coherence; and the
    outputs take them when a block carries them."""
    from sarstack import timeseries as ts

    rng = np.random.default_rng(7)
    for n in (1, 2, 57):
        res = rng.normal(size=(n, 700)) * rng.uniform(0.01, 5, size=(n, 1))
        st = spec.residual_stats(res)
        sq = np.square(res)
        np.testing.assert_array_equal(st.ifg_ss, np.sum(sq, axis=1))
        np.testing.assert_array_equal(st.pixel_ss, spec.residual_square_sums(res, True, sq)[0])
        np.testing.assert_array_equal(st.abs_sum, np.sum(np.abs(res), axis=0))
        np.testing.assert_array_equal(st.coherence, ts.temporal_coherence(res, np.float32))
        assert st.coherence.dtype == np.float32
        b = spec.SolvedBlock((7, 100), np.zeros((9, 700)), res, np.full(700, n), None,
                             np.zeros(700, np.uint16), 10, 1.0, True, None, st)  # fmt: skip
        plain = spec.SolvedBlock((7, 100), np.zeros((9, 700)), res, np.full(700, n), None,
                                 np.zeros(700, np.uint16), 10, 1.0, True)  # fmt: skip
        np.testing.assert_array_equal(spec._residual_sum(b), spec._residual_sum(plain))
        np.testing.assert_array_equal(spec._temporal_coherence(b), spec._temporal_coherence(plain))


def test_residual_stats_of_float32_residuals_are_the_float64_sums_of_their_values():
    """A single-precision solve's float32 residuals: the sums are float64, bit
    for bit those of the same values held in float64, and the coherence is the
    float32 one of those values."""
    from sarstack import timeseries as ts

    rng = np.random.default_rng(8)
    res = (rng.normal(size=(57, 700)) * rng.uniform(0.01, 5, size=(57, 1))).astype(np.float32)
    st, st64 = spec.residual_stats(res), spec.residual_stats(res.astype(np.float64))
    for name in ("ifg_ss", "pixel_ss", "abs_sum", "coherence"):
        got, want = getattr(st, name), getattr(st64, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(st.coherence, ts.temporal_coherence(res, np.float32))


def _l2_strips(tmp_path):
    """A 12-date nearest-3 stack with a nodata block under ``tmp_path``, and
    a function that inverts it by plain L2 as one strip into ``tmp_path/name``
    and returns the strip's rasters (by output name) and tables (bytes)."""
    make_ifg_stack(tmp_path / "stack", n_dates=12, shape=SHAPE, network="nearest:3",
                   noise_rad=0.4, seed=5, velocity_rad_per_year=np.tile(np.linspace(0, 200, SHAPE[1]), (SHAPE[0], 1)))  # fmt: skip
    ifgs, dates, pairs, _ = select_ifgs(str(tmp_path / "stack" / "ifgs" / "*.unw.tif"))

    def strip(name):
        out = tmp_path / name
        invert_strip(ifgs, dates, pairs, (3, 4), out, method="L2", wavelength=None, mask=None,
                     block_shape=(8, 36), l1_tolerance=1e-4, l1_max_iterations=100,
                     weighting="none", correlation_looks=1.0, correlation_threshold=0.1,
                     write_residuals=False)  # fmt: skip
        got: dict = {p.name: p.read_bytes() for p in out.glob("*.csv")}
        for o in spec.INVERSION_OUTPUTS:
            if (out / o.strip_file).exists():
                with rasterio.open(out / o.strip_file) as ds:
                    got[o.name] = ds.read()
        return got

    strip.n_ifgs = len(ifgs)  # type: ignore[attr-defined]
    return strip


def test_single_precision_l2_is_within_its_stated_tolerance_of_the_float64_solve(
    tmp_path, monkeypatch
):
    """insar.invert.L2_SINGLE_PRECISION: the float32 plain-L2 strip against the
    previous kernel (float64), on a stack with a nodata block (pixels missing
    one ifg go through the censored solver): the time series within
    SINGLE_L2_TOL of its largest |value|, coherence within 1e-6, residual sums
    and noise within float32 rounding, the same counts and nodata."""
    from sarstack.insar import invert as inv

    strip = _l2_strips(tmp_path)
    single = strip("single")
    monkeypatch.setattr(inv, "L2_SINGLE_PRECISION", False)
    double = strip("double")
    ts32, ts64 = single["timeseries"], double["timeseries"]
    scale = np.nanmax(np.abs(ts64))
    assert scale > 20  # a series large enough for float32 rounding to show
    np.testing.assert_array_equal(np.isnan(ts32), np.isnan(ts64))
    assert (double["n_ifgs_used"] < strip.n_ifgs).any()  # pixels of the censored solver
    diff = np.nanmax(np.abs(ts32 - ts64))
    assert 0 < diff <= inv.SINGLE_L2_TOL * scale  # float32 was used, within the tolerance
    np.testing.assert_allclose(single["temporal_coherence"], double["temporal_coherence"],
                               atol=1e-6, rtol=0)  # fmt: skip
    for name in ("residual_sum", "ifg_residual_std"):
        np.testing.assert_allclose(single[name], double[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for name in ("n_ifgs_used", "closure_nonzero_count"):
        np.testing.assert_array_equal(single[name], double[name], err_msg=name)


@pytest.mark.parametrize("compress_series, coherence_mask", [(False, None), (True, 0.9)])
def test_gather_by_mosaic_writes_the_same_files_as_the_raster_writer(
    tmp_path, monkeypatch, compress_series, coherence_mask
):
    """insar.gather.GATHER_BY_MOSAIC: two strips' bands copied to the COGs through
    a VRT give the files the RasterWriter route gives, byte for byte: per-date
    and per-ifg float32 (compressed or not), single rasters with overviews,
    uint16 counts with their nodata, the closure count's own tags; with the
    coherence mask the masked rasters still go through the writer."""
    from sarstack.insar import gather as gather_mod

    make_ifg_stack(tmp_path / "stack", n_dates=7, shape=SHAPE, network="nearest:3",
                   noise_rad=0.5, seed=9)  # fmt: skip
    ifgs, dates, pairs, _ = select_ifgs(str(tmp_path / "stack" / "ifgs" / "*.unw.tif"))
    ref = (20, 18)
    strips = []
    for label in ("1-of-2", "2-of-2"):
        strips.append(tmp_path / "strips" / label)
        invert_strip(ifgs, dates, pairs, ref, strips[-1], rows=insar.strip_rows(SHAPE[0], 8, label),
                     method="L2", wavelength=None, mask=None, block_shape=(8, 36),
                     l1_tolerance=1e-4, l1_max_iterations=100, weighting="none",
                     correlation_looks=1.0, correlation_threshold=0.1, write_residuals=True)  # fmt: skip
    from sarstack import cog

    calls = []
    monkeypatch.setattr(cog, "mosaic_cog", lambda *a, _f=cog.mosaic_cog, **k: (calls.append(a[0]),
                                                                            _f(*a, **k)))  # fmt: skip
    got = {}
    for mosaic in (True, False):
        monkeypatch.setattr(gather_mod, "GATHER_BY_MOSAIC", mosaic)
        out = tmp_path / f"g{mosaic}"
        gather_strips(strips, ifgs, dates, ref, out, wavelength=None, how="L2",
                      block_shape=(8, 36), compress_series=compress_series,
                      coherence_mask=coherence_mask, min_region_px=None)  # fmt: skip
        got[mosaic] = {f.relative_to(out): f.read_bytes() for f in sorted(out.rglob("*.tif"))}
    # by the mosaic: every raster, or with the mask those it leaves unmasked
    n_masked = len(dates) - 1 + len(ifgs) + 3 if coherence_mask is not None else 0
    assert len(calls) == len(got[True]) - n_masked - (coherence_mask is not None)
    assert got[True].keys() == got[False].keys()
    assert len(got[True]) == len(dates) - 1 + len(ifgs) + 5 + (coherence_mask is not None)
    for name, data in got[True].items():
        assert data == got[False][name], name


@pytest.mark.parametrize("single", [True, False])
def test_strip_by_residual_rows_is_the_block_wide_strip_bit_for_bit(tmp_path, monkeypatch, single):
    """insar.invert._StripBlocks._solve_by_rows (plain L2, complete blocks:
    the residuals made and summed a row at a time) against the block-wide
    path it stands in for, on a stack with a nodata block (those blocks keep
    the block-wide path): every strip raster and scene sum the same bit for
    bit, in float32 and in float64; and the rows path was taken."""
    from sarstack.insar import invert as inv

    strip = _l2_strips(tmp_path)
    monkeypatch.setattr(inv, "L2_SINGLE_PRECISION", single)
    by_rows = []
    orig = inv._StripBlocks._solve_by_rows
    monkeypatch.setattr(inv._StripBlocks, "_solve_by_rows",
                        lambda self, *a: (by_rows.append(1), orig(self, *a))[1])  # fmt: skip
    rows = strip("rows")
    n_rows = len(by_rows)
    monkeypatch.setattr(inv._StripBlocks, "_rows_path", False)
    wide = strip("wide")
    assert 0 < n_rows < 5 and len(by_rows) == n_rows  # some blocks by rows, then none
    assert rows.keys() == wide.keys() and "temporal_coherence" in rows
    for name in rows:
        np.testing.assert_array_equal(rows[name], wide[name], err_msg=name)


def test_l2_residual_rows_are_invert_l2s_residuals_bit_for_bit():
    """timeseries.invert_l2_rows: x and each residual row as invert_l2 gives
    them (all_finite), for a network with a row of the first date, one with
    a -1 alone (the datum second) and a design that is not an incidence matrix."""
    from sarstack import network as snet
    from sarstack import timeseries as ts

    rng = np.random.default_rng(3)
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3), (1, 3), (2, 4), (3, 4), (1, 4)]
    inc = snet.incidence_matrix(pairs, 5)
    flipped = inc.copy()
    flipped[0] *= -1  # the datum minus date 1: a row of a -1 alone
    other = inc + 0.25 * rng.standard_normal(inc.shape)
    for a in (inc, flipped, other):
        for dtype in (np.float32, np.float64):
            phase = rng.normal(0, 3, (len(pairs), 257)).astype(dtype)
            x0, res0 = ts.invert_l2(a, phase, all_finite=True)
            x1, rows = ts.invert_l2_rows(a, phase)
            np.testing.assert_array_equal(x0, x1)
            got = np.array([r.copy() for r in rows])
            assert got.dtype == res0.dtype
            np.testing.assert_array_equal(got, res0)
            st = spec.residual_row_stats(iter(res0), *res0.shape, res0.dtype)
            ref = spec.residual_stats(res0)
            for f in ("ifg_ss", "pixel_ss", "abs_sum", "coherence"):
                np.testing.assert_array_equal(getattr(st, f), getattr(ref, f), err_msg=f)

"""Phase-closure unwrapping-error count: kernel, file level and script."""

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import with_schema_defaults

from sarstack import closure, insar, io
from sarstack.errors import SarstackError
from sarstack.network import make_pairs
from sarstack.synthetic import make_ifg_stack

select_ifgs = with_schema_defaults(insar.select_ifgs)
closure_count = with_schema_defaults(insar.closure_count)
invert_strip = with_schema_defaults(insar.invert_strip)
gather_strips = with_schema_defaults(insar.gather_strips)

ROOT = Path(__file__).resolve().parents[1]
NODATA = insar.COUNT_NODATA


# ------------------------------------------------------------------ kernel
def test_network_triangles_hand_made():
    # ifg k:   0       1       2       3       4       5       6
    pairs = [(0, 1), (1, 2), (0, 2), (2, 3), (1, 3), (0, 3), (3, 4)]
    tri = closure.network_triangles(pairs)
    # date triples (0,1,2), (0,1,3), (0,2,3), (1,2,3); date 4 is in no triangle
    expected = [[0, 1, 2], [0, 4, 5], [2, 3, 5], [1, 3, 4]]
    assert tri.dtype == np.int64 and tri.tolist() == expected
    # the order of the pairs does not change the triangles (only the ifg indices)
    perm = [6, 5, 4, 3, 2, 1, 0]
    tri_p = closure.network_triangles([pairs[k] for k in perm])
    assert sorted(tuple(perm[k] for k in t) for t in tri_p) == sorted(map(tuple, expected))
    for spec in ("sequential", "reference"):
        assert closure.network_triangles(make_pairs(6, spec)).shape == (0, 3)
    # nearest:3 over 10 dates: 8 triangles spanning 2 days, 2 x 7 spanning 3 days
    assert len(closure.network_triangles(make_pairs(10, "nearest:3"))) == 22
    with pytest.raises(SarstackError, match="before"):
        closure.network_triangles([(0, 1), (2, 1)])
    with pytest.raises(SarstackError, match="also pair 0"):
        closure.network_triangles([(0, 1), (1, 2), (0, 1)])


def _oracle(phase, pairs):
    """Per pixel, loop over every date triple and look the three pairs up by name."""
    index = {p: k for k, p in enumerate(pairs)}
    n_dates = max(j for _, j in pairs) + 1
    out = np.zeros(phase.shape[1:], np.int64)
    measured = np.zeros(phase.shape[1:], np.int64)
    for px in np.ndindex(*phase.shape[1:]):
        for i in range(n_dates):
            for j in range(i + 1, n_dates):
                for k in range(j + 1, n_dates):
                    if (i, j) in index and (j, k) in index and (i, k) in index:
                        v = [phase[(index[p], *px)] for p in ((i, j), (j, k), (i, k))]
                        if not np.all(np.isfinite(v)):
                            continue
                        measured[px] += 1
                        out[px] += abs(v[0] + v[1] - v[2]) > np.pi
    return out, measured


def test_closure_count_matches_brute_force_oracle():
    rng = np.random.default_rng(3)
    pairs = make_pairs(7, "nearest:3") + [(0, 5), (1, 6)]
    rng.shuffle(pairs)
    pairs = [tuple(map(int, p)) for p in pairs]
    # closures spread around +-pi, so that many but not all count
    phase = rng.normal(0.0, 1.5, size=(len(pairs), 6, 7))
    phase[rng.random(phase.shape) < 0.15] = np.nan
    phase[:, 0, 0] = np.nan  # no triangle measurable
    tri = closure.network_triangles(pairs)
    want, want_measured = _oracle(phase, pairs)
    assert 0 < want.max() < len(tri) and want_measured[0, 0] == 0
    got = closure.closure_nonzero_count(phase, tri)
    assert got.dtype == np.uint16 and got.shape == (6, 7)
    np.testing.assert_array_equal(got, want)
    nonzero, measured = closure.closure_counts(phase, tri)
    np.testing.assert_array_equal(nonzero, want)
    np.testing.assert_array_equal(measured, want_measured)
    # any trailing shape; no triangles: zeros
    np.testing.assert_array_equal(closure.closure_nonzero_count(phase[:, 2], tri), want[2])
    none = closure.closure_nonzero_count(phase, np.zeros((0, 3), np.int64))
    assert none.shape == (6, 7) and not none.any()
    # every phase finite (the unmasked path): the same counts and per-triangle totals
    full = np.nan_to_num(phase, nan=0.7)
    want_full, want_full_measured = _oracle(full, pairs)
    totals = np.zeros((len(tri), 2), np.int64)
    nonzero, measured = closure.closure_counts(full, tri, totals=totals)
    np.testing.assert_array_equal(nonzero, want_full)
    np.testing.assert_array_equal(measured, want_full_measured)
    assert (measured == len(tri)).all() and 0 < nonzero.max() < len(tri)
    slow = np.zeros_like(totals)
    with_nan = np.concatenate([full, np.full((len(pairs), 1, 7), np.nan)], axis=1)
    closure.closure_counts(with_nan, tri, totals=slow)  # the masked path
    np.testing.assert_array_equal(totals, slow)


# ------------------------------------------------------------------ files
SHAPE = (48, 56)


def _stack(tmp_path, network, **kw):
    """Synthetic stack -> (ifgs, dates, pairs, df); ifg order as insar_select gives it."""
    df = make_ifg_stack(tmp_path / "stack", n_dates=10, shape=SHAPE, network=network,
                        noise_rad=0.3, seed=4, **kw)  # fmt: skip
    ifgs, dates, pairs, _ = select_ifgs(str(tmp_path / "stack" / "ifgs" / "*.unw.tif"))
    return ifgs, dates, pairs, df


def _add(path, rows, cols, value):
    """Add ``value`` to a window of an interferogram file (nodata kept)."""
    with rasterio.open(path) as ds:
        arr, nodata = ds.read(1), ds.nodata
    grid = io.read_grid(path)
    valid = arr != nodata
    patch = np.zeros_like(valid)
    patch[rows, cols] = True
    arr[patch & valid] += np.float32(value)
    io.write_raster(path, arr, grid, nodata=nodata, units="radians")


def _set_nodata(path, rows, cols):
    with rasterio.open(path) as ds:
        arr, nodata = ds.read(1), ds.nodata
    arr[rows, cols] = nodata
    io.write_raster(path, arr, io.read_grid(path), nodata=nodata, units="radians")


def _read(path):
    with rasterio.open(path) as ds:
        assert ds.dtypes[0] == "uint16" and ds.nodata == NODATA
        return ds.read(1), ds.tags()


def test_closure_finds_known_unwrapping_errors(tmp_path, caplog):
    # jump_patch: +2 pi on ifg 5; three more error patches written into ifgs 0, 12, 20
    patches = {
        5: (slice(20, 30), slice(8, 20)),
        0: (slice(4, 14), slice(30, 44)),
        12: (slice(34, 44), slice(26, 40)),
        20: (slice(16, 28), slice(40, 52)),
    }
    k0, (r0, c0) = 5, patches[5]
    ifgs, dates, pairs, df = _stack(tmp_path, "nearest:3", jump_patch=(k0, r0, c0))
    by_key = {i.key: i for i in ifgs}
    keys = [Path(p).name.split(".")[0] for p in df["path"]]  # make_ifg_stack's ifg order
    for k, (rows, cols) in patches.items():
        if k != k0:
            _add(by_key[keys[k]].path, rows, cols, 2 * np.pi)
    # a region where every sequential ifg is nodata: data, but no triangle measurable
    seq = [i for i, (a, b) in zip(ifgs, pairs, strict=True) if b == a + 1]
    for i in seq:
        _set_nodata(i.path, slice(40, 46), slice(2, 8))
    mask = np.ones(SHAPE, np.uint8)
    mask[0:3, 50:56] = 0
    io.write_raster(tmp_path / "mask.tif", mask, io.read_grid(ifgs[0].path), nodata=None)

    ref = (44, 50)
    out = tmp_path / "closure.tif"
    with caplog.at_level(logging.INFO, logger="sarstack.insar"):
        n_tri = closure_count(ifgs, pairs, out, ref_rc=ref, block_shape=(16, 24),
                              mask=tmp_path / "mask.tif")  # fmt: skip
    assert n_tri == 22 and "22 triangles" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    count, tags = _read(out)
    assert tags["triangles"] == "22" and tags["units"] == "count"
    assert tags["start_date"] == dates[0].isoformat() and tags["end_date"] == dates[-1].isoformat()

    # The workflow's closure raster comes from the inversion strips (which hold
    # the referenced blocks already) and the gather: the same file, whatever
    # the strips.
    strips = []
    for label in ("1-of-2", "2-of-2"):
        strips.append(tmp_path / "strips" / label)
        invert_strip(
            ifgs, dates, pairs, ref, strips[-1], rows=insar.strip_rows(SHAPE[0], 16, label),
            method="L2", wavelength=None, mask=tmp_path / "mask.tif", block_shape=(16, 24),
            l1_tolerance=1e-4, l1_max_iterations=100, weighting="none", correlation_looks=1.0,
            correlation_threshold=0.1, write_residuals=False,
        )  # fmt: skip
    gather_strips(strips, ifgs, dates, ref, tmp_path / "gathered", wavelength=None,
                  how="L2", block_shape=(16, 24))  # fmt: skip
    count2, tags2 = _read(tmp_path / "gathered" / "closure_nonzero_count.tif")
    assert np.array_equal(count2, count) and tags2 == tags

    in_patch = np.zeros(SHAPE, bool)
    for rows, cols in patches.values():
        in_patch[rows, cols] = True
    nodata = np.zeros(SHAPE, bool)
    nodata[40:46, 2:8] = True
    nodata[0:3, 50:56] = True
    np.testing.assert_array_equal(count == NODATA, nodata)
    inside = count[in_patch]
    outside = count[~in_patch & ~nodata]
    assert (inside > 0).mean() >= 0.9, (inside > 0).mean()
    assert (outside == 0).mean() >= 0.99, (outside == 0).mean()
    # each error patch is seen by every triangle holding its ifg (one error per triangle)
    tri = closure.network_triangles(pairs)
    for k, (rows, cols) in patches.items():
        ki = ifgs.index(by_key[keys[k]])
        assert np.median(count[rows, cols]) == (tri == ki).any(axis=1).sum()

    # the block size does not change the result
    out2 = tmp_path / "closure_one_block.tif"
    closure_count(ifgs, pairs, out2, ref_rc=ref, block_shape=(512, 512),
                  mask=tmp_path / "mask.tif")  # fmt: skip
    np.testing.assert_array_equal(_read(out2)[0], count)

    # referenced first: with the reference point inside patch 5, that patch is
    # the consistent phase and every other measurable pixel of ifg 5 is off by 2 pi
    out3 = tmp_path / "closure_ref_in_patch.tif"
    closure_count(ifgs, pairs, out3, ref_rc=(25, 14), block_shape=(16, 24))
    c3 = _read(out3)[0]
    assert c3[25, 14] == 0 and (c3[r0, c0] == 0).mean() >= 0.99
    clean = ~in_patch & (c3 != NODATA)
    assert (c3[clean] > 0).mean() >= 0.9


def test_no_triangle_network_gives_zero_with_warning(tmp_path, caplog):
    ifgs, dates, pairs, df = _stack(
        tmp_path, "sequential", jump_patch=(3, slice(10, 20), slice(10, 20))
    )
    mask = np.ones(SHAPE, np.uint8)
    mask[:, -2:] = 0
    io.write_raster(tmp_path / "mask.tif", mask, io.read_grid(ifgs[0].path), nodata=None)
    out = tmp_path / "closure.tif"
    with caplog.at_level(logging.INFO, logger="sarstack.insar"):
        closure_count(ifgs, pairs, out, ref_rc=(30, 30), block_shape=(20, 32),
                      mask=tmp_path / "mask.tif")  # fmt: skip
    assert "no triangle" in caplog.text
    assert [r for r in caplog.records if r.levelno == logging.WARNING]
    count, tags = _read(out)
    assert tags["triangles"] == "0"
    # 0 wherever there is data (also on the 2 pi jump: nothing can see it), nodata where masked;
    # ifg 1's nodata corner still has data in the other ifgs
    assert (count[:, -2:] == NODATA).all()
    assert (count[:, :-2] == 0).all()


def test_reference_on_nodata_is_an_error(tmp_path):
    ifgs, dates, pairs, df = _stack(tmp_path, "nearest:2")
    with pytest.raises(SarstackError, match=r"reference point \[0, 0\] is nodata"):
        closure_count(ifgs, pairs, tmp_path / "c.tif", ref_rc=(0, 0))  # nodata corner
    assert not (tmp_path / "c.tif").exists()


def test_closure_counts_told_complete_give_the_same_counts():
    """A caller that knows every phase is finite skips the check: the same
    counts and totals as the check's own answer."""
    rng = np.random.default_rng(3)
    pairs = [(0, 1), (1, 2), (0, 2), (2, 3), (1, 3)]
    tri = closure.network_triangles(pairs)
    phase = rng.normal(scale=3.0, size=(len(pairs), 9, 11))
    a, b = np.zeros((len(tri), 2), np.int64), np.zeros((len(tri), 2), np.int64)
    got = closure.closure_counts(phase, tri, totals=a, complete=True)
    want = closure.closure_counts(phase, tri, totals=b)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(a, b)
    assert want[0].max() > 0  # some closures are non-zero: the counts are exercised

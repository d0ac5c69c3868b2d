"""Quality mask from temporal coherence (insar.coherence_mask, min_region_px):
mask.tif and every inversion output and the velocity masked with it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import pipeline, run_script

from sarstack import io, synthetic


def test_coherence_mask_and_small_regions(tmp_path):
    table = synthetic.make_ifg_stack(tmp_path / "s", n_dates=12, shape=(48, 48),
                                     network="nearest:3", noise_rad=0.05, seed=5)  # fmt: skip
    rng = np.random.default_rng(1)
    grid = io.read_grid(table.path[0])
    big = (slice(10, 30), slice(25, 45))  # incoherent: random phase in every ifg
    speck = (slice(40, 43), slice(5, 8))  # a 3 x 3 coherent island inside an incoherent ring
    ring = (slice(38, 45), slice(3, 10))
    for p in table.path:
        d = io.read_band(p)
        for sl in (big, ring):
            d[sl] += rng.uniform(-np.pi, np.pi, d[sl].shape)
        d[speck] = io.read_band(p)[speck]
        io.write_raster(p, d.astype(np.float32), grid, nodata=0.0)
    out = pipeline(tmp_path, str(tmp_path / "s" / "ifgs" / "*.unw.tif"), "--method", "L2",
                   "--coherence-mask", "0.7", "--min-region-px", "10", point=(5, 20))
    tc = io.read_band(out / "temporal_coherence.tif")
    mask = io.read_band(out / "mask.tif", nan_nodata=False)
    assert set(np.unique(mask)) == {0, 1}
    low = ~(tc >= 0.7)
    assert low[big].mean() > 0.95 and not low[speck].any()
    from skimage.measure import label

    lab = label(~low, connectivity=2)
    sizes = np.bincount(lab.ravel())
    want = ~low & (sizes[lab] >= 10)  # the 9 px island (and lucky specks in the patch) dropped
    assert not want[speck].any() and want.sum() > 0.7 * want.size
    np.testing.assert_array_equal(mask == 1, want)
    assert np.isfinite(tc[big]).all()  # the coherence itself stays whole
    index = pd.read_csv(out / "ts.csv")
    for f in [*index.path, out / "velocity.tif", out / "velocity_std.tif",
              out / "residual_sum.tif"]:  # fmt: skip
        v = io.read_band(f)
        assert np.isnan(v[~want]).all() and np.isfinite(v[want]).all(), f
    n_used = io.read_band(out / "n_ifgs_used.tif")  # 65535 = nodata -> NaN
    assert np.isnan(n_used[~want]).all() and np.isfinite(n_used[want]).all()
    # Without the option: no mask.tif, the incoherent patch keeps its values.
    out2 = tmp_path / "out2"
    p = run_script("insar_invert.py", "--ifgs", out / "ifgs.csv", "--reference", out / "ref.txt",
                   "--out-dir", out2, "--index", out2 / "ts.csv", "--method", "L2")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert not (out2 / "mask.tif").exists()
    assert np.isfinite(io.read_band(pd.read_csv(out2 / "ts.csv").path.iloc[-1])[big]).all()

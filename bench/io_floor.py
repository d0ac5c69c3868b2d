"""The least the InSAR L2 branch can cost on this machine, whoever writes it.

Whatever the design, an L2 time series of a stack must read every
interferogram once, solve one least-squares system per pixel and write one
raster per date, and a user's run starts Python and (here) Snakemake. This
times those four alone, at their cheapest, on the stack's own files:

- start: ``snakemake -n`` of a one-rule workflow plus ``import numpy, rasterio``
  (``bench/floor.py`` measures chains of jobs);
- read: every interferogram whole (the cheapest read; in strips of rows it
  costs 2.5-3 times as much here), files read side by side in ``--threads``
  threads (GDAL decompressing), the stack held in memory;
- solve: ``x = pinv(A) @ phase`` by strips of rows, float32 through NumPy's BLAS
  (one factorization, the cheapest L2 there is; no residuals, no masks);
- write: one float32 raster per date, ZSTD level 1 (sarstack's COG
  compression), tiled GeoTIFF (no overviews), written side by side.

It prints each, their sum, and what a speed target against an anchor
leaves: with ``--anchor-s 41.2 --target 3`` the branch must finish in
13.7 s, and if the floor is above that, no implementation meets the target
on this machine.

    .venv/bin/python bench/io_floor.py "/work/bench/inputs/ifg-1024x1024x60/ifgs/*.unw.tif" \\
        --anchor-s 12.9 --target 2
"""

from __future__ import annotations

import argparse
import glob
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio

SNAKEFILE = 'rule a:\n    output: "a"\n    shell: "touch {output:q}"\n'


def _design(files: list[str]) -> tuple[np.ndarray, int]:
    """Incidence matrix (first date's column dropped) from ``YYYYMMDD_YYYYMMDD`` names."""
    from sarstack import dates as sdates
    from sarstack import network as snet

    keys = [sdates.parse_pair_dates(f, "%Y%m%d") for f in files]
    dates = sorted({d for k in keys for d in k})
    idx = {d: i for i, d in enumerate(dates)}
    pairs = [(idx[d1], idx[d2]) for d1, d2 in keys]
    return snet.incidence_matrix(pairs, len(dates)), len(dates)


def _start(work: Path) -> float:
    (work / "Snakefile").write_text(SNAKEFILE)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "-n", "-q", "--cores", "1"], cwd=work,
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([sys.executable, "-c", "import numpy, rasterio"], check=True)
        best = min(best, time.perf_counter() - t0)
    return best


def _measure(files: list[str], pinv: np.ndarray, n_dates: int, height: int, width: int,
             profile: dict, pool: ThreadPoolExecutor, rows: int) -> dict[str, float]:  # fmt: skip
    stack = np.zeros((len(files), height, width), np.float32)  # touched before the clock

    def read(k: int) -> None:
        with rasterio.open(files[k]) as ds:
            ds.read(1, out=stack[k])

    t0 = time.perf_counter()
    list(pool.map(read, range(len(files))))
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = np.empty((n_dates - 1, height, width), np.float32)
    for r0 in range(0, height, rows):
        r1 = min(r0 + rows, height)
        x = pinv @ stack[:, r0:r1].reshape(len(files), -1)
        out[:, r0:r1] = x.reshape(n_dates - 1, r1 - r0, width)
    t_solve = time.perf_counter() - t0
    profile.update(driver="GTiff", dtype="float32", compress="ZSTD", zstd_level=1, tiled=True,
                   blockxsize=512, blockysize=512, nodata=None)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sarstack-iofloor-") as tmp:
        work = Path(tmp)

        def write(k: int) -> None:
            with rasterio.open(work / f"d{k}.tif", "w", **profile) as ds:
                ds.write(out[k], 1)

        t0 = time.perf_counter()
        list(pool.map(write, range(n_dates - 1)))
        t_write = time.perf_counter() - t0
        t_start = _start(work)
    return {"read": t_read, "solve": t_solve, "write": t_write, "start": t_start}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("ifgs", help="glob of the unwrapped interferograms (YYYYMMDD_YYYYMMDD in names)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=256, help="rows per solve")
    p.add_argument("--repeats", type=int, default=2, help="rounds; each phase's fastest is kept")
    p.add_argument("--anchor-s", type=float, help="the anchor's wall time, s")
    p.add_argument("--target", type=float, help="the speed ratio asked for")
    a = p.parse_args(argv)
    files = sorted(glob.glob(a.ifgs))
    if not files:
        p.error(f"{a.ifgs}: no file matches")
    design, n_dates = _design(files)
    pinv = np.linalg.pinv(design).astype(np.float32)
    with rasterio.open(files[0]) as ds:
        height, width, profile = ds.height, ds.width, ds.profile
    pool = ThreadPoolExecutor(a.threads)
    best: dict[str, float] = {}
    for _ in range(a.repeats):
        for k, v in _measure(files, pinv, n_dates, height, width, profile, pool, a.rows).items():
            best[k] = min(best.get(k, v), v)
    t_read, t_solve, t_write, t_start = (best[k] for k in ("read", "solve", "write", "start"))

    total = t_start + t_read + t_solve + t_write
    print(f"{len(files)} ifgs, {n_dates} dates, {height} x {width}, {a.threads} threads, "
          f"fastest of {a.repeats} rounds")
    for name, t in (("start (snakemake -n + imports)", t_start), ("read", t_read),
                    ("solve (pinv @ phase)", t_solve), ("write per-date rasters", t_write),
                    ("floor (sum)", total)):  # fmt: skip
        print(f"  {name:32s} {t:6.2f} s")
    if a.anchor_s and a.target:
        need = a.anchor_s / a.target
        verdict = "reachable" if total < need else "NOT reachable on this machine"
        print(f"  target {a.target:g}x of {a.anchor_s:g} s: the branch must take <= {need:.2f} s; "
              f"floor {total:.2f} s: {verdict} (at best {a.anchor_s / total:.2f}x)")  # fmt: skip
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

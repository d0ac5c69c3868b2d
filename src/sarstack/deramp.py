"""Ramps of interferograms (``insar.deramp``): a plane or a quadratic surface
per interferogram, fitted by least squares on its valid pixels and removed
before the reference point and the inversion.

Orbit errors and long-wavelength atmosphere leave a ramp across an
interferogram that the network inversion carries into the time series as a
tilt of every date. The fit is streamed block by block (memory follows the
block, not the scene): per interferogram the normal equations ``G^T G`` and
``G^T z`` of its valid pixels (finite, not masked, optionally with a
correlation at least ``min_correlation``) are summed over the blocks, then
solved. Coordinates are the pixel centres scaled to ``[-0.5, 0.5]`` across the
raster (``x`` along columns, ``y`` along rows), so the coefficients are
radians across the whole scene and the system is well conditioned.

The fit is linear in the phase: a stack with extra ramps added gives, after
deramping, the same interferograms as the clean stack after deramping (up
to rounding). The stage writes the coefficients (``ramps.csv``); the
inversion subtracts each ramp as it reads a block (nothing else is written).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from sarstack.blocks import RowMajorSums
from sarstack.errors import SarstackError
from sarstack.io import StackReader, process_blocks, read_grid

if TYPE_CHECKING:
    import pandas as pd

    from sarstack.insar import Ifg
    from sarstack.insar.injection import InjectedPhase
    from sarstack.troposphere import IfgDelays
    from sarstack.unwrap import IfgAmbiguities

#: ``insar.deramp`` values; the terms of each surface, in coefficient order.
MODELS = ("none", "linear", "quadratic")
TERMS = {"linear": ("c0", "cx", "cy"), "quadratic": ("c0", "cx", "cy", "cxx", "cxy", "cyy")}
#: Fewest valid pixels per coefficient for a fit; below, the ifg is refused.
MIN_PIXELS_PER_TERM = 10


def terms(model: str) -> tuple[str, ...]:
    """The coefficient names of ``model`` (an error names ``insar.deramp`` otherwise)."""
    if model not in TERMS:
        raise SarstackError(f"insar.deramp: {model!r} is not one of {', '.join(MODELS[1:])}")
    return TERMS[model]


def design(win: Window, shape: Sequence[int], model: str) -> np.ndarray:
    """``(pixels, k)`` design matrix of the surface over window ``win`` of a
    raster of ``shape`` (rows, cols), row-major like a block read."""
    k = len(terms(model))
    h, w = int(shape[0]), int(shape[1])
    y = (np.arange(int(win.row_off), int(win.row_off) + int(win.height)) + 0.5) / h - 0.5
    x = (np.arange(int(win.col_off), int(win.col_off) + int(win.width)) + 0.5) / w - 0.5
    yy, xx = np.meshgrid(y, x, indexing="ij")
    cols = [np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy][:k]
    return np.stack([c.reshape(-1) for c in cols], axis=1)


def evaluate(coeffs: np.ndarray, win: Window, shape: Sequence[int], model: str) -> np.ndarray:
    """``(n_ifg, height, width)`` ramps of ``coeffs`` ``(n_ifg, k)`` over ``win``."""
    g = design(win, shape, model)
    out = np.asarray(coeffs, np.float64) @ g.T
    return out.reshape(len(coeffs), int(win.height), int(win.width))


def fit_ramps(
    ifgs: Sequence[Ifg],
    model: str,
    *,
    block_shape: Sequence[int],
    mask: str | Path | None,
    min_correlation: float | None,
    troposphere: IfgDelays | None = None,
    unwrap: IfgAmbiguities | None = None,
    injection: InjectedPhase | None = None,
) -> pd.DataFrame:
    """One row per interferogram: ``key, reference_date, secondary_date, model,
    n_pixels``, the coefficients (:data:`TERMS`, radians), ``ramp_rms_rad`` (of
    the fitted surface over the pixels used: what is removed),
    ``residual_rms_rad`` (of the phase about it: its spread after) and
    ``phase_std_rad`` (the phase's std about its mean: its spread before).

    ``mask`` (a raster, 0 = leave out, as ``insar.mask``) and
    ``min_correlation`` (needs each ifg's correlation raster) restrict the
    pixels of the fit; the ramp is removed everywhere. ``troposphere``
    (:class:`sarstack.troposphere.IfgDelays`): the ramps are fitted to the
    phase minus each ifg's delay difference, the phase the inversion corrects
    (so a ramp of the delays is not removed twice). ``unwrap``
    (:class:`sarstack.unwrap.IfgAmbiguities`): each ifg's ``2 pi U`` is added
    first, so a corrected 2 pi patch does not tilt the fit.
    ``injection``
    (:class:`sarstack.insar.injection.InjectedPhase`, insar.injection): fitted
    to the phase with the injected signal added, as the inversion reads it.
    """
    import pandas as pd

    from sarstack.insar import read_mask

    names = terms(model)
    k = len(names)
    grid = read_grid(ifgs[0].path)
    n = len(ifgs)
    nm = np.zeros((n, k, k))
    rhs = np.zeros((n, k))
    zz = np.zeros(n)
    count = np.zeros(n, np.int64)
    cor_paths = None
    if min_correlation is not None:
        cor_paths = [i.need("correlation") for i in ifgs]
    cor_reader: Any = StackReader(cor_paths) if cor_paths else contextlib.nullcontext()
    tropo: Any = troposphere if troposphere is not None else contextlib.nullcontext()
    cyc: Any = unwrap if unwrap is not None else contextlib.nullcontext()
    with (
        StackReader([i.path for i in ifgs]) as phase, cor_reader as cors, tropo as delays,
        cyc as cycles,
    ):
        # Each block's sums, added in row-major block order (the blocks come
        # band by band of the ifgs' tiles): the totals of a row-major loop.
        sums = RowMajorSums(grid.shape, block_shape, nm, rhs, zz, count)

        def ramp_block(win: Window) -> None:
            z = phase.read(win).astype(np.float64).reshape(n, -1)
            if cycles is not None:
                z += cycles.read(win).reshape(n, -1)
            if injection is not None:
                z += injection.read(win).reshape(n, -1)
            if delays is not None:
                z -= delays.read(win).reshape(n, -1)
            ok = np.isfinite(z)
            m = read_mask(mask, win)
            if m is not None:
                ok &= m.reshape(1, -1)
            if cors is not None:
                with np.errstate(invalid="ignore"):
                    ok &= cors.read(win).reshape(n, -1) >= min_correlation
            g = design(win, grid.shape, model)
            w = ok.astype(np.float64)
            zw = np.where(ok, z, 0.0)
            gg = (g[:, :, None] * g[:, None, :]).reshape(len(g), k * k)  # (pixels, k^2)
            sums.add(win, (w @ gg).reshape(n, k, k), zw @ g, np.einsum("ip,ip->i", zw, zw),
                     ok.sum(axis=1))  # fmt: skip

        process_blocks(grid.shape, block_shape, ramp_block, band_rows=phase.tile_rows)
    rows = [_solve_ramp(ifg, model, nm[i], rhs[i], float(zz[i]), int(count[i]))
            for i, ifg in enumerate(ifgs)]  # fmt: skip
    return pd.DataFrame(rows)


def _solve_ramp(
    ifg: Ifg, model: str, nm: np.ndarray, rhs: np.ndarray, zz: float, count: int
) -> dict[str, Any]:
    """One ifg's row of :func:`fit_ramps` from its normal equations ``nm c = rhs``,
    its sum of squares ``zz`` and its number of pixels ``count``."""
    names = terms(model)
    k = len(names)
    if count < MIN_PIXELS_PER_TERM * k:
        raise SarstackError(
            f"{ifg.path}: {count} valid pixels for the insar.deramp: {model} fit "
            f"(at least {MIN_PIXELS_PER_TERM * k} needed; insar.deramp_min_correlation?)"
        )
    try:
        c = np.linalg.solve(nm, rhs)
    except np.linalg.LinAlgError:
        raise SarstackError(
            f"{ifg.path}: its valid pixels do not determine a {model} ramp (a line of pixels?)"
        ) from None
    fitted = float(c @ nm @ c)
    mean = float(rhs[0] / count)  # the design's first column is 1
    resid = max(float(zz - 2.0 * c @ rhs + fitted), 0.0)
    return {
        "key": ifg.key, "reference_date": ifg.reference.isoformat(),
        "secondary_date": ifg.secondary.isoformat(), "model": model, "n_pixels": int(count),
        **{name: float(v) for name, v in zip(names, c, strict=True)},
        "ramp_rms_rad": float(np.sqrt(fitted / count)),
        "residual_rms_rad": float(np.sqrt(resid / count)),
        "phase_std_rad": float(np.sqrt(max(zz / count - mean * mean, 0.0))),
    }  # fmt: skip


def read_ramps(path: str | Path, ifgs: Sequence[Ifg]) -> tuple[str, np.ndarray]:
    """``(model, coefficients (n_ifg, k))`` of ``ramps.csv`` in the order of ``ifgs``;
    an error names the file if an ifg has no row."""
    from sarstack import stagefiles

    return ramp_coefficients(stagefiles.read_table(path), ifgs, str(path))


def ramp_coefficients(table: pd.DataFrame, ifgs: Sequence[Ifg],
                      source: str = "ramps") -> tuple[str, np.ndarray]:  # fmt: skip
    """``(model, coefficients (n_ifg, k))`` of a :func:`fit_ramps` table in the
    order of ``ifgs``; an error names ``source`` if an ifg has no row."""
    models = set(table["model"])
    if len(models) != 1:
        raise SarstackError(f"{source}: expected one model, found {sorted(models)}")
    model = models.pop()
    by_key = table.set_index("key")
    missing = [i.key for i in ifgs if i.key not in by_key.index]
    if missing:
        raise SarstackError(f"{source}: no ramp for {', '.join(missing[:3])} (rerun insar_deramp)")
    coeffs = by_key.loc[[i.key for i in ifgs], list(terms(model))].to_numpy(np.float64)
    return model, coeffs

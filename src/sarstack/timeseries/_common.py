"""Shared helpers of the time-series solvers: working precision, input checks
and the fixed-size chunking of pixels that lets each network shape compile once."""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from sarstack.errors import SarstackError
from sarstack.jaxcfg import x64_enabled
from sarstack.network import _check_design


class Method(str, enum.Enum):
    """Network inversion method (``insar.method``)."""

    L1 = "L1"  #: least absolute deviations (robust to unwrapping errors)
    L2 = "L2"  #: least squares


class Inversion(NamedTuple):
    """Result of :func:`invert` / :func:`invert_l1`."""

    #: ``(n_dates - 1, ...)`` phase of each later date relative to the first.
    x: np.ndarray
    #: ``(n_ifg, ...)`` ``phase - A @ x``.
    residual: np.ndarray
    #: Iterations of the slowest pixel (0 for L2).
    n_iter: int


class LeastSquares(NamedTuple):
    """Result of :func:`invert_l2`."""

    x: np.ndarray
    residual: np.ndarray


def _work_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 when x64 is enabled and any input is float64, else float32."""
    want64 = any(np.asarray(a).dtype == np.float64 for a in arrays)
    return np.dtype(np.float64 if (want64 and x64_enabled()) else np.float32)


def _prepare(
    a: np.ndarray, phase: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], np.dtype, np.ndarray]:
    """Validate, flatten to (n_ifg, P) and compute the pseudo-inverse of A (float64)."""
    a = np.asarray(a, dtype=np.float64)
    phase = np.asarray(phase)
    if phase.ndim < 1 or phase.shape[0] != a.shape[0]:
        _check_design(a)
        raise SarstackError(
            f"phase has shape {phase.shape}; expected ({a.shape[0]}, ...) to match A {a.shape}"
        )
    pinv = _design_pinv(a.shape, a.tobytes())
    tail = phase.shape[1:]
    dtype = _work_dtype(phase)
    flat = phase.reshape(a.shape[0], -1)
    return a, flat, tail, dtype, pinv


@functools.lru_cache(maxsize=16)
def _design_pinv(shape: tuple[int, ...], data: bytes) -> np.ndarray:
    """The checked design matrix's pseudo-inverse through QR, in float64
    (read-only): once per network in a process, not once per block (the
    check and the factorization took about 3 ms of a 174-ifg block's 100)."""
    a: np.ndarray = np.frombuffer(data, np.float64).reshape(shape)
    _check_design(a)
    if a.shape[0] < a.shape[1]:
        raise SarstackError(f"{a.shape[0]} interferograms cannot determine {a.shape[1]} dates")
    q, r = np.linalg.qr(a)
    pinv = np.linalg.solve(r, q.T)
    pinv.setflags(write=False)
    return pinv


def _pad(block: np.ndarray, chunk: int, fill: float, dtype: np.dtype) -> np.ndarray:
    """``block`` (``(k, <= chunk)``) in ``dtype``, padded with ``fill`` to ``chunk`` columns."""
    block = block.astype(dtype, copy=False)
    if block.shape[1] < chunk:
        block = np.pad(block, ((0, 0), (0, chunk - block.shape[1])), constant_values=fill)
    return block


def _run_chunks(
    kernel: Callable[..., Sequence[Any]],
    inputs: Sequence[tuple[np.ndarray, float]],
    outputs: Sequence[np.ndarray],
    chunk: int,
    dtype: np.dtype,
    *,
    pixels: np.ndarray | None = None,
    threads: int = 1,
) -> list[tuple[Any, ...]]:
    """Call ``kernel`` on fixed-size chunks of pixels, so that each network compiles once.

    Each call gets the same ``chunk`` columns of every input, in ``dtype``; the
    last chunk is padded, and only the columns of real pixels are stored.

    Parameters
    ----------
    kernel
        Called as ``kernel(*blocks)``, one ``(k, chunk)`` device array per
        input. Returns a sequence whose first ``len(outputs)`` items have the
        ``chunk`` pixels on their last axis; any further items are returned.
    inputs
        ``(array, fill)`` pairs: a ``(k, n_pix)`` array, pixels on the last
        axis, and the value that pads its last chunk.
    outputs
        Arrays ``(..., n_pix)`` that receive the first items of every call.
    chunk
        Pixels per call.
    dtype
        dtype of the blocks passed to ``kernel``.
    pixels
        Indices of the pixels to solve, taken ``chunk`` at a time in this
        order; default: all, as contiguous slices.
    threads
        With more than 1, the first chunk runs alone (it compiles the kernel)
        and the others run side by side in this many host threads.

    Returns
    -------
    list of tuple
        The further items of each call, in chunk order.
    """
    import jax.numpy as jnp

    n_pix = inputs[0][0].shape[1]
    groups: list[slice | np.ndarray]
    if pixels is None:
        groups = [slice(p0, min(p0 + chunk, n_pix)) for p0 in range(0, n_pix, chunk)]
    else:
        groups = [pixels[p0 : p0 + chunk] for p0 in range(0, pixels.size, chunk)]

    def one(cols: slice | np.ndarray) -> tuple[Any, ...]:
        size = cols.stop - cols.start if isinstance(cols, slice) else cols.size
        blocks = [jnp.asarray(_pad(arr[:, cols], chunk, fill, dtype)) for arr, fill in inputs]
        res = tuple(kernel(*blocks))
        for out, r in zip(outputs, res[: len(outputs)], strict=True):
            out[..., cols] = np.asarray(r)[..., :size]
        return res[len(outputs) :]

    if not groups:
        return []
    done = [one(groups[0])]
    if threads <= 1:
        return done + [one(cols) for cols in groups[1:]]
    with ThreadPoolExecutor(threads) as pool:
        return done + list(pool.map(one, groups[1:]))

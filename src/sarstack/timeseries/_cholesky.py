"""Batched Cholesky solvers of the normal equations, pixels on the last axis.

Band Cholesky (L1 interior point: ``A^T D A`` has the band of ``A^T A``), the
unrolled sparse Cholesky with the Takahashi diagonal of the inverse over a
static elimination plan (weighted L2 on a small-baseline network), and the
batched library Cholesky of dense normal matrices (weighted L2 fallback).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sarstack.jaxcfg import start_backend

# Every JAX kernel module imports this one: the backend starts here, with its
# one-thread compute pool (sarstack.jaxcfg.start_backend), before any computation.
start_backend()


def _half_bandwidth(a: np.ndarray) -> int:
    """Half-bandwidth of ``A^T D A`` for any diagonal ``D``: the widest column span of a row."""
    bw = 0
    for row in a != 0:
        cols = np.flatnonzero(row)
        if cols.size:
            bw = max(bw, int(cols[-1] - cols[0]))
    return bw


def _band_cholesky(band: jax.Array) -> jax.Array:
    """Batched Cholesky factor of symmetric positive definite band matrices.

    ``band`` is ``(w, n, C)``, pixels on the last axis, with
    ``band[d, j] = M[j, j + d]`` (zero past the matrix) and ``w - 1`` the
    half-bandwidth. Returns ``low`` of shape ``(n, w, C)`` with
    ``low[j, d] = L[j + d, j]``, ``M = L L^T``. One ``lax.scan`` step per
    column updates a ``(w, w)`` window of the Schur complement: ``n w^2``
    multiply-adds per pixel, and a program whose size does not grow with ``n``.
    """
    w, n, c = band.shape
    # Identity rows past the end keep the window inside the (padded) matrix.
    up = jnp.concatenate([band, jnp.zeros((w, w, c), band.dtype).at[0].set(1.0)], axis=1)
    p = np.arange(w)
    # Window at column 0: S[p, q] = M[p, q].
    s0 = up[np.abs(p[:, None] - p[None, :]), np.minimum(p[:, None], p[None, :])]
    # Entering at step j: column j + w of the window, M[j + 1 + p, j + w].
    enter = up[(w - 1 - p)[None, :], np.arange(n)[:, None] + 1 + p[None, :]]

    def step(s: jax.Array, new: jax.Array) -> tuple[jax.Array, jax.Array]:
        col = s[:, 0] / jnp.sqrt(s[0, 0])
        rest = s[1:, 1:] - col[1:, None] * col[None, 1:]
        top = jnp.concatenate([rest, new[:-1, None]], axis=1)
        return jnp.concatenate([top, new[None]], axis=0), col

    return jax.lax.scan(step, s0, enter)[1]


def _band_solve(low: jax.Array, rhs: jax.Array) -> jax.Array:
    """Solve ``L L^T x = rhs`` for ``low`` from :func:`_band_cholesky`, ``rhs`` ``(n, C)``."""
    n, w, c = low.shape
    r = jnp.concatenate([rhs, jnp.zeros((w, c), rhs.dtype)])

    def forward(win: jax.Array, xs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        col, new = xs  # win: updated rows j .. j + w - 1 of the right-hand side
        y = win[0] / col[0]
        return jnp.concatenate([win[1:] - col[1:] * y, new[None]]), y

    def backward(win: jax.Array, xs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        col, y = xs  # win: x[j + 1 .. j + w - 1]
        x = (y - jnp.sum(col[1:] * win, axis=0)) / col[0]
        return jnp.concatenate([x[None], win])[: w - 1], x

    _, y = jax.lax.scan(forward, r[:w], (low, r[w:]))
    _, x = jax.lax.scan(backward, jnp.zeros((w - 1, c), rhs.dtype), (low, y), reverse=True)
    return x


def _key(i: int, j: int) -> tuple[int, int]:
    return (i, j) if i <= j else (j, i)


@functools.lru_cache(maxsize=32)
def _elimination_plan(
    n: int, edges: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, ...], dict[int, tuple[int, ...]], int]:
    """Static sparse Cholesky plan for the normal matrix of a pair network.

    The unknowns are dates ``1 .. n`` (index ``d - 1``); ``A^T W A`` can only be
    non-zero on the diagonal and at the date pairs of the network, whatever the
    weights. Returns the elimination order (greedy minimum degree, ties: lowest
    index; a small-baseline network stays banded), the filled structure of each
    column of the factor (the later-eliminated rows, in elimination order) and
    the number of multiply-adds of the factorisation plus the diagonal of the
    inverse.
    """
    adj: list[set[int]] = [set() for _ in range(n)]
    for i, j in edges:
        if i > 0 and j > 0 and i != j:
            adj[i - 1].add(j - 1)
            adj[j - 1].add(i - 1)
    left = set(range(n))
    order: list[int] = []
    struct: dict[int, tuple[int, ...]] = {}
    for _ in range(n):
        k = min(left, key=lambda v: (len(adj[v]), v))
        nbrs = adj[k]
        for u in nbrs:
            adj[u] |= nbrs - {u}
            adj[u].discard(k)
        left.remove(k)
        order.append(k)
        struct[k] = tuple(nbrs)  # sorted by elimination position below
    pos = {k: p for p, k in enumerate(order)}
    struct = {k: tuple(sorted(s, key=pos.__getitem__)) for k, s in struct.items()}
    ops = sum(len(s) * (len(s) + 3) for s in struct.values())
    return tuple(order), struct, ops


def _sparse_solve(
    entries: dict[tuple[int, int], jax.Array],
    rhs: jax.Array,
    order: tuple[int, ...],
    struct: dict[int, tuple[int, ...]],
) -> tuple[jax.Array, jax.Array]:
    """Solve ``N x = rhs`` and ``diag(N^-1)`` for a batch of sparse SPD ``N``.

    ``entries`` holds the ``(C,)`` vectors of the non-zero entries of ``N``
    (keys ``(i, j)``, ``i <= j``; missing = 0), ``rhs`` is ``(n, C)``. Unrolled
    right-looking Cholesky ``N = L L^T`` over the static filled structure, then
    forward and back substitution, and the Takahashi recurrence for the entries
    of ``Sigma = N^-1`` on the structure of ``L`` (which needs no other entry):
    ``Sigma_jk = (delta_jk / L_kk - sum_q L_qk Sigma_jq) / L_kk``, ``q`` over the
    structure of column ``k``. Cost: ``sum |struct|^2`` per pixel, no fill
    outside the structure.
    """
    work: dict[tuple[int, int], jax.Array] = dict(entries)
    low: dict[tuple[int, int], jax.Array] = {}  # (row, col) of L
    diag: dict[int, jax.Array] = {}
    for k in order:
        d = jnp.sqrt(work[k, k])
        diag[k] = d
        inv = 1.0 / d
        col = struct[k]
        for i in col:
            v = work.get(_key(i, k))
            low[i, k] = v * inv if v is not None else jnp.zeros_like(d)
        for p, i in enumerate(col):
            for j in col[p:]:
                kk = _key(i, j)
                prod = low[i, k] * low[j, k]
                work[kk] = work[kk] - prod if kk in work else -prod
    n = len(order)
    r = [rhs[i] for i in range(n)]
    y: dict[int, jax.Array] = {}
    for k in order:
        y[k] = r[k] / diag[k]
        for i in struct[k]:
            r[i] = r[i] - low[i, k] * y[k]
    x: dict[int, jax.Array] = {}
    sig: dict[tuple[int, int], jax.Array] = {}
    for k in reversed(order):
        acc = y[k]
        for i in struct[k]:
            acc = acc - low[i, k] * x[i]
        x[k] = acc / diag[k]
        col = struct[k]
        for j in col:
            acc = jnp.zeros_like(diag[k])
            for q in col:
                acc = acc + low[q, k] * sig[_key(j, q)]
            sig[_key(j, k)] = -acc / diag[k]
        acc = 1.0 / diag[k]
        for q in col:
            acc = acc - low[q, k] * sig[_key(k, q)]
        sig[k, k] = acc / diag[k]
    return jnp.stack([x[k] for k in range(n)]), jnp.stack([sig[k, k] for k in range(n)])


def _dense_solve(
    a: jax.Array, wz: jax.Array, rhs: jax.Array, ground: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """As :func:`_sparse_solve` for dense networks: batched library Cholesky."""
    m, n = a.shape
    outer = (a[:, :, None] * a[:, None, :]).reshape(m, n * n)
    eye = jnp.eye(n, dtype=wz.dtype)
    mat = (wz.T @ outer).reshape(-1, n, n) + ground.T[:, :, None] * eye
    low = jax.lax.linalg.cholesky(mat, symmetrize_input=False)
    linv = jax.lax.linalg.triangular_solve(
        low, jnp.broadcast_to(eye, low.shape), left_side=True, lower=True
    )
    y = jnp.sum(linv * rhs.T[:, None, :], axis=-1)
    x = jnp.sum(linv * y[:, :, None], axis=-2)
    return x.T, jnp.sum(linv * linv, axis=-2).T

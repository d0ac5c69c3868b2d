"""Pair networks: the pairs of a network spec, the incidence matrix, connected
components, the NumPy network solve (weighted, per column) and the one IRLS
for L1, and the network checks. Both branches use it (RTC pairs, InSAR
interferograms); dates themselves live in :mod:`sarstack.dates`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from sarstack.errors import SarstackError

log = logging.getLogger(__name__)


def parse_network(spec: str) -> tuple[str, int]:
    """Validate a pair-network spec: ``sequential``, ``reference``, ``nearest:K``
    or ``sequential+long:K``."""
    if spec in ("sequential", "reference"):
        return spec, 1
    m = re.fullmatch(r"(nearest|sequential\+long):(\d+)", spec)
    if m and int(m.group(2)) >= 1:
        return m.group(1), int(m.group(2))
    raise SarstackError(
        f"network {spec!r} is not 'sequential', 'reference', 'nearest:K' or 'sequential+long:K'"
        " (K >= 1)"
    )


def make_pairs(n_dates: int, spec: str) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of a date-sorted stack.

    ``sequential``: each date with the next; ``reference``: every date against
    the first; ``nearest:K``: each date with its K following dates;
    ``sequential+long:K``: the sequential pairs plus long ones that measure
    drift directly instead of accumulating it through the chain: every K-th
    date with the date K later (dates 0-K, K-2K, ...) and the first with the
    last (the cal/val notebook's network).
    """
    kind, k = parse_network(spec)
    if n_dates < 2:
        raise SarstackError(f"a pair network needs at least 2 dates, got {n_dates}")
    if kind == "reference":
        return [(0, j) for j in range(1, n_dates)]
    if kind == "sequential+long":
        pairs = {(i, i + 1) for i in range(n_dates - 1)}
        pairs |= {(i, i + k) for i in range(0, n_dates - k, k)}
        pairs.add((0, n_dates - 1))
        return sorted(pairs)
    return [(i, j) for i in range(n_dates) for j in range(i + 1, min(i + k, n_dates - 1) + 1)]


def incidence_matrix(pairs: Sequence[tuple[int, int]], n_dates: int) -> np.ndarray:
    """Incidence matrix of a pair network, with the first date as datum.

    Row ``k`` of the result models ``x[j] - x[i]`` for pair ``(i, j)``; the
    first date's unknown is fixed at zero, so the matrix has ``n_dates - 1``
    columns (one per later date).

    Returns
    -------
    np.ndarray
        Shape ``(n_pairs, n_dates - 1)``, float64, entries in {-1, 0, 1}.
    """
    a = np.zeros((len(pairs), n_dates), dtype=np.float64)
    for k, (i, j) in enumerate(pairs):
        if not (0 <= i < n_dates and 0 <= j < n_dates) or i == j:
            raise SarstackError(f"pair {k} ({i}, {j}) is not two distinct dates of {n_dates}")
        a[k, i] = -1.0
        a[k, j] = 1.0
    return a[:, 1:]


def network_components(pairs: Sequence[tuple[int, int]], n_dates: int) -> np.ndarray:
    """Label of the connected component of each date (union-find over pairs)."""
    parent = list(range(n_dates))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in pairs:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(n_dates)])


class NetworkSolution(NamedTuple):
    """Result of a weighted network solve (:func:`solve_network_columns`,
    ``timeseries.invert_weighted``); fields are also read by name,
    ``result["x"]``, like the dict these functions returned before."""

    #: ``(n_dates - 1, ...)`` each later date relative to the first (NaN where unreachable).
    x: np.ndarray
    #: ``(n_obs, ...)`` observation minus model on used rows, NaN on dropped ones.
    residual: np.ndarray
    #: Rows used per column / pixel.
    n_used: np.ndarray
    #: ``(n_dates - 1, ...)`` diagonal of ``(A^T W A)^-1`` over the reachable dates.
    x_var: np.ndarray

    def __getitem__(self, key):
        if isinstance(key, str):
            return getattr(self, key)
        return tuple.__getitem__(self, key)


def distinct_columns(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct columns of a 2-D float array and each column's group:
    ``(groups (n_groups, rows), inverse (cols,))`` with ``m[:, j] ==
    groups[inverse[j]]``, the groups of ``np.unique(m.T, axis=0,
    return_inverse=True)`` (its rows in another order) found by comparing
    each column's bytes, 20x faster on a block of partial pixels. ``-0.0`` is
    taken as ``0.0``; NaN is not expected (weights and masks)."""
    cols = np.ascontiguousarray(np.asarray(m, dtype=np.float64).T) + 0.0  # -0.0 -> 0.0
    if cols.shape[0] == 0 or cols.shape[1] == 0:
        groups, inverse = np.unique(cols, axis=0, return_inverse=True)
        return groups, np.asarray(inverse).reshape(-1)
    keys = cols.view(np.dtype((np.void, cols.itemsize * cols.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return cols[first], np.asarray(inverse).reshape(-1)


def solve_network_columns(
    pairs: Sequence[tuple[int, int]], n_dates: int, values: np.ndarray, weights: np.ndarray
) -> NetworkSolution:
    """Weighted least squares of a few series over a pair network, in NumPy.

    The small-problem counterpart of :func:`sarstack.timeseries.invert_weighted`
    (same model, same outputs, no JAX), for a handful of columns such as the
    RTC per-date offsets, or for many columns that share a few weight
    patterns (pixels missing the same interferograms: one solve per pattern,
    all its columns as right-hand sides): each column ``p`` solves
    ``min sum_k w[k, p] (values[k, p] - (x[j_k] - x[i_k]))^2`` with the first
    date fixed at 0. Rows with weight 0 are dropped for that column; dates not
    connected to the first date through the remaining rows are NaN, and the
    other dates are solved as if the lost dates were not in the network.

    Parameters
    ----------
    pairs
        ``(i, j)`` date indices of each row.
    n_dates
        Number of dates.
    values
        ``(n_pairs, P)`` observations; a NaN drops that row for that column,
        like a zero weight.
    weights
        ``(n_pairs, P)`` finite, non-negative weights.

    Returns
    -------
    dict
        ``x`` ``(n_dates - 1, P)``, ``residual`` ``(n_pairs, P)`` (NaN on dropped
        rows), ``n_used`` ``(P,)`` rows used, ``x_var`` ``(n_dates - 1, P)`` the
        diagonal of ``(A^T W A)^-1`` over the reachable dates.
    """
    b = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if b.ndim != 2 or w.shape != b.shape or b.shape[0] != len(pairs):
        raise SarstackError(
            f"values {b.shape} and weights {w.shape} must both be (n_pairs={len(pairs)}, P)"
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise SarstackError("weights must be finite and non-negative")
    a_full = incidence_matrix(pairs, n_dates)
    m, p_cols = b.shape
    n = n_dates - 1
    x = np.full((n, p_cols), np.nan)
    var = np.full((n, p_cols), np.nan)
    res = np.full((m, p_cols), np.nan)
    # Columns with the same effective weights (a NaN observation weighs 0)
    # share one system: solved once, with all their columns as right-hand sides.
    w_eff = np.where(np.isfinite(b), w, 0.0)
    used = np.count_nonzero(w_eff > 0, axis=0).astype(np.int32)
    groups, inverse = distinct_columns(w_eff)
    for g, wg in enumerate(groups):
        rows = np.flatnonzero(wg > 0)
        if rows.size == 0:
            continue
        cols = np.flatnonzero(inverse == g)
        labels = network_components([pairs[int(k)] for k in rows], n_dates)
        reach = labels[1:] == labels[0]
        sw = np.sqrt(wg[rows])
        a = a_full[rows]
        obs = b[np.ix_(rows, cols)]
        sol = np.linalg.lstsq(a * sw[:, None], obs * sw[:, None], rcond=None)[0]
        res[np.ix_(rows, cols)] = obs - a @ sol
        if reach.any():
            ar = a[:, reach] * sw[:, None]
            x[np.ix_(np.flatnonzero(reach), cols)] = sol[reach]
            var[np.ix_(np.flatnonzero(reach), cols)] = np.diag(np.linalg.inv(ar.T @ ar))[:, None]
    return NetworkSolution(x=x, residual=res, n_used=used, x_var=var)


# --------------------------------------------------------------------------- #
# Network
# --------------------------------------------------------------------------- #


def irls_l1(
    solve: Callable[..., NetworkSolution],
    weights: np.ndarray,
    values: np.ndarray,
    *,
    floor: float,
    max_iter: int,
    tol: float | None = None,
) -> tuple[NetworkSolution, int]:
    """Iteratively reweighted least squares towards least absolute deviations.

    The one IRLS of sarstack, for the RTC per-date offsets and the censored
    InSAR L1: starting from ``solve(weights)``, re-solves with weights
    ``weights / max(|residual|, floor * scale)`` (``scale`` the median
    ``|values|``, at least 1e-6), so each observation's weight approaches
    ``1 / |residual|`` and the weighted squares approach the absolute sum.

    Parameters
    ----------
    solve
        Weighted least squares for given weights, returning a dict with at
        least ``"x"`` and ``"residual"`` (NaN where unused), as
        :func:`solve_network_columns` or ``timeseries.invert_weighted``. With
        ``tol`` it is called as ``solve(weights, columns)``: the columns (an
        index array) still open, and their weights.
    weights
        The base weights (0 = unused), as ``solve`` takes them.
    values
        The observations the residual floor is scaled by (NaN ignored); with
        ``tol``, of the residual's shape ``(n_obs, P)``.
    floor
        Smallest residual, as a fraction of ``scale``, in the reweighting
        (keeps weights finite where an observation is fitted exactly).
    max_iter
        Most reweighted solves.
    tol
        None: always ``max_iter`` solves. Else each column stops, its result
        kept, as soon as its weighted L1 objective ``sum w |residual|`` is
        proven within a factor ``1 + tol`` of its optimum
        (:func:`l1_lower_bound`, a duality gap as the interior-point L1's of
        ``timeseries.invert_l1``); meanwhile its floor shrinks towards
        ``tol x`` its mean weighted ``|residual|`` (the floor's smoothing then
        leaves at most about ``tol / 4`` of gap). Only the open columns are
        solved again. A column that reaches ``max_iter`` unproven keeps its
        last solve, and is counted in a logged warning.

    Returns
    -------
    result, n_iter
        ``solve``'s dict of the last solve (with ``tol``: of each column's
        proven solve) and the number of reweighted solves.
    """
    v = np.abs(np.asarray(values, dtype=np.float64))
    scale = max(float(np.nanmedian(v)) if np.isfinite(v).any() else 1.0, 1e-6)
    if tol is not None:
        return _irls_l1_certified(solve, weights, values, floor=floor * scale, max_iter=max_iter,
                                  lowest=_IRLS_MIN_FLOOR * max(scale, 1.0), tol=tol)  # fmt: skip
    out = solve(weights)
    n_it = 0
    while n_it < max_iter:
        n_it += 1
        r = np.nan_to_num(np.abs(out["residual"]), nan=0.0)
        out = solve(weights / np.maximum(r, floor * scale))
    return out, n_it


#: Smallest residual floor of the certified IRLS, relative to ``max(scale, 1)``:
#: keeps the reweighted normal equations well conditioned in float64.
_IRLS_MIN_FLOOR = 1e-9
#: Absolute slack of the IRLS duality-gap test, in units of the rounding level
#: of the residual (as ``timeseries._l1._GAP_SLACK``).
_IRLS_GAP_SLACK = 4.0


def l1_lower_bound(
    values: np.ndarray, residual: np.ndarray, weights: np.ndarray, solved: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted L1 objective, a lower bound on its optimum and the rounding
    slack, per column, for a weighted least-squares solve.

    For ``min_x sum_i w_i |b_i - (A x)_i|`` (``w`` = ``weights``), any ``z``
    with ``A^T z = 0`` and ``|z_i| <= w_i`` gives the lower bound ``b^T z``
    (weak duality: ``b^T z = r^T z <= sum w |r|`` for every ``x``). The
    normal equations of the solve with weights ``u`` = ``solved`` that gave
    the residual ``r`` say ``A^T (u r) = 0``; scaled into ``|z_i| <= w_i``,
    ``z = u r / max_i(u_i |r_i| / w_i)`` is such a ``z``, up to the solver's
    rounding, and ``b^T z = r^T z``. At an IRLS fixed point ``u r`` tends to
    ``w sign(r)`` and the bound to the objective. Rows with a NaN residual or
    a zero weight count in neither. The slack,
    ``4 eps sum w (2 |b| + |r|)``, bounds the rounding level of the objective.
    """
    w = np.asarray(weights, dtype=np.float64)
    use = np.isfinite(residual) & (w > 0)
    r = np.where(use, residual, 0.0)
    wr = w * np.abs(r)
    objective = np.sum(wr, axis=0)
    z = solved * r
    ratio = np.divide(np.abs(z), w, out=np.zeros_like(wr), where=use)
    c = np.max(ratio, axis=0, initial=0.0)
    bound = np.divide(np.sum(z * r, axis=0), c, out=np.zeros_like(objective), where=c > 0)
    b_abs = np.sum(np.where(use, w * np.abs(np.nan_to_num(values)), 0.0), axis=0)
    slack = _IRLS_GAP_SLACK * np.finfo(np.float64).eps * (2.0 * b_abs + objective)
    return objective, bound, slack


def _irls_l1_certified(
    solve: Callable[..., NetworkSolution],
    weights: np.ndarray,
    values: np.ndarray,
    *,
    floor: float,
    lowest: float,
    max_iter: int,
    tol: float,
) -> tuple[NetworkSolution, int]:
    """:func:`irls_l1` with ``tol``: each column until its duality gap proves
    it (the floor of a column between ``lowest`` and ``floor``)."""
    b = np.asarray(values, dtype=np.float64)
    if b.ndim != 2:
        raise SarstackError(f"values {b.shape} must be (n_obs, P) for a tolerance")
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64), b.shape)
    n_col = b.shape[1]
    todo = np.arange(n_col)
    out = solve(w, todo)
    result = {k: np.array(out[k], copy=True) for k in NetworkSolution._fields}
    solved = w  # the weights of the solve that gave `out`, for the open columns
    n_it = 0
    while True:
        res = np.asarray(out["residual"])
        objective, bound, slack = l1_lower_bound(b, res, w, solved)
        done = objective - bound <= tol * objective + slack
        if n_it >= max_iter and not done.all():
            log.warning("L1 inversion (IRLS): %d of %d pixels stopped before reaching tol=%g "
                        "(max_iter=%d)", int(np.count_nonzero(~done)), n_col, tol, max_iter)
            done[:] = True
        if done.any():
            for k in NetworkSolution._fields:
                result[k][..., todo[done]] = np.asarray(out[k])[..., done]
            if done.all():
                break
            keep = ~done
            todo, objective, res = todo[keep], objective[keep], res[:, keep]
            b, w = b[:, keep], w[:, keep]
        # The floor: at most `floor`, down to tol x the column's mean weighted |r|.
        w_sum = np.sum(w, axis=0)
        mean_abs = np.divide(objective, w_sum, out=np.zeros_like(objective), where=w_sum > 0)
        delta = np.clip(tol * mean_abs, min(lowest, floor), floor)
        solved = w / np.maximum(np.nan_to_num(np.abs(res), nan=0.0), delta)
        out = solve(solved, todo)
        n_it += 1
    return NetworkSolution(**result), n_it


def _date_label(k: int, dates: Sequence[dt.date] | None) -> str:
    return dates[k].isoformat() if dates is not None else f"#{k}"


def check_network(
    pairs: Sequence[tuple[int, int]], n_dates: int, dates: Sequence[dt.date] | None = None
) -> None:
    """Raise if the pair network does not connect every date to the first.

    Parameters
    ----------
    pairs
        ``(i, j)`` date indices of each interferogram.
    n_dates
        Number of dates.
    dates
        Optional dates (length ``n_dates``) used to name the unreachable ones;
        without them dates are named by 0-based index (``#3``).

    Raises
    ------
    SarstackError
        ``the interferogram network is disconnected: dates ... not connected
        to ...`` (the incidence matrix would not have full column rank).
    """
    if n_dates < 2:
        raise SarstackError(f"a time series needs at least 2 dates, got {n_dates}")
    if dates is not None and len(dates) != n_dates:
        raise SarstackError(f"{len(dates)} dates given for a network of {n_dates} dates")
    comp = network_components(pairs, n_dates)
    lost = np.flatnonzero(comp != comp[0])
    if lost.size == 0:
        return
    names = [_date_label(int(k), dates) for k in lost[:10]]
    more = f" and {lost.size - 10} more" if lost.size > 10 else ""
    first = _date_label(0, dates)
    idx = "" if dates is not None else " (0-based date indices)"
    raise SarstackError(
        f"the interferogram network is disconnected: dates {', '.join(names)}{more} "
        f"not connected to {first}, the first date{idx}; add interferograms that bridge them "
        "or drop them"
    )


def _pairs_from_incidence(a: np.ndarray) -> list[tuple[int, int]] | None:
    """Pairs of an incidence matrix (first-date datum), or None if it is not one."""
    pairs = []
    for row in a:
        plus, minus = np.flatnonzero(row == 1), np.flatnonzero(row == -1)
        if np.count_nonzero(row) != plus.size + minus.size or plus.size > 1 or minus.size > 1:
            return None
        if plus.size == 0 and minus.size == 0:
            return None
        i = int(minus[0]) + 1 if minus.size else 0
        j = int(plus[0]) + 1 if plus.size else 0
        pairs.append((i, j))
    return pairs


def _check_design(a: np.ndarray) -> None:
    """Full-column-rank check of the design matrix, naming dates for incidence matrices."""
    if a.ndim != 2 or a.shape[1] < 1:
        raise SarstackError(f"A must be 2-D (n_ifg, n_dates - 1), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise SarstackError("A has non-finite entries")
    pairs = _pairs_from_incidence(a)
    if pairs is not None:
        check_network(pairs, a.shape[1] + 1)
    elif np.linalg.matrix_rank(a) < a.shape[1]:
        raise SarstackError(
            f"the design matrix ({a.shape[0]} x {a.shape[1]}) does not have full column rank"
        )


def is_single_reference(pairs: Sequence[tuple[int, int]], n_dates: int | None = None) -> bool:
    """True if the network is exactly one interferogram from date 0 to each later date.

    Parameters
    ----------
    pairs
        ``(i, j)`` date indices.
    n_dates
        Number of dates; default ``max(j) + 1``.
    """
    if len(pairs) == 0:
        return False
    n = int(max(max(p) for p in pairs)) + 1 if n_dates is None else int(n_dates)
    if len(pairs) != n - 1:
        return False
    return all(int(i) == 0 for i, _ in pairs) and sorted(int(j) for _, j in pairs) == list(
        range(1, n)
    )


def single_reference_series(pairs: Sequence[tuple[int, int]], phase: np.ndarray) -> np.ndarray:
    """Phase series of a single-reference network, with no inversion.

    Parameters
    ----------
    pairs
        A single-reference network (:func:`is_single_reference`).
    phase
        ``(n_ifg, ...)`` interferogram stack in the order of ``pairs``.

    Returns
    -------
    np.ndarray
        ``(n_dates - 1, ...)``: the interferograms reordered by secondary date
        (the unknowns of :func:`invert_l2`). NaN pixels become NaN for every
        date, as in the inversions.
    """
    if not is_single_reference(pairs):
        raise SarstackError("the network is not single-reference (one pair 0 -> j per later date)")
    phase = np.asarray(phase)
    if phase.shape[0] != len(pairs):
        raise SarstackError(f"phase has {phase.shape[0]} interferograms; pairs has {len(pairs)}")
    order = np.argsort([j for _, j in pairs])
    x = phase[order].copy()
    bad = np.any(np.isnan(phase), axis=0)
    x[:, bad] = np.nan
    return x

"""rtc_dates: per-date offsets (with 1 sigma) from the pair network."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sarstack import network as snet
from sarstack.rtc.aggregate import STATUS_OK

if TYPE_CHECKING:  # pandas is imported where tables are built: stages without tables start faster
    import pandas as pd

log = logging.getLogger(__package__)


def invert_dates(
    values: np.ndarray,
    ok: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    n_dates: int,
    *,
    sigma: np.ndarray | None = None,
    robust: bool = False,
    irls_iterations: int = 10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-date offsets from pair offsets over the network (first date = 0).

    The same incidence-matrix least squares as the InSAR inversion
    (:func:`sarstack.timeseries.invert_weighted`), here in NumPy through
    :func:`sarstack.network.solve_network_columns` (a few columns need no
    JAX): each column of ``values`` (n_pairs, P) is one series (east or
    north, whole scene or one tile); pairs that are not ``ok`` are censored
    for that column only, and dates cut off from the first date by censoring
    come out NaN.

    Parameters
    ----------
    values
        Pair offsets (n_pairs, P); anything where ``ok`` is False is ignored.
    ok
        Boolean (n_pairs, P): the pair's offset is usable for that column.
    pairs
        ``(i, j)`` date indices of each pair.
    n_dates
        Number of dates.
    sigma
        Optional standard error per pair offset (n_pairs, P): weights 1/σ².
    robust
        Iteratively reweighted least squares towards least absolute deviations
        (weights 1/max(|residual|, floor)), for networks with outlier pairs.

    Returns
    -------
    offsets, sd, n_used
        ``offsets`` (n_dates, P) with the first row 0; ``sd`` its standard
        deviation from the network (NaN without ``sigma`` unless the fit has
        redundancy: then from the residual scatter); ``n_used`` (P,) pairs used.
    """

    vals = np.where(ok, np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0)
    w0 = ok.astype(np.float64)
    if sigma is not None:
        s = np.asarray(sigma, dtype=np.float64)
        # A zero spread (identical tiles) must not become an infinite weight.
        w0 = np.where(ok & np.isfinite(s), 1.0 / np.maximum(s, 1e-3) ** 2, 0.0)
    def solve(w: np.ndarray) -> snet.NetworkSolution:
        return snet.solve_network_columns(pairs, n_dates, vals, w)

    if robust:
        res, _ = snet.irls_l1(solve, w0, vals[ok], floor=1e-3, max_iter=irls_iterations)
    else:
        res = solve(w0)
    x = res["x"]
    var = res["x_var"]
    n_used = res["n_used"]
    if sigma is None:
        # Unit weights: scale the cofactor by the residual variance where redundant.
        dof = n_used - np.isfinite(x).sum(axis=0)
        rss = np.nansum(np.where(np.isfinite(res["residual"]), res["residual"] ** 2, 0.0), axis=0)
        s2 = np.where(dof > 0, rss / np.maximum(dof, 1), np.nan)
        var = var * s2
    offsets = np.vstack([np.zeros((1, x.shape[1])), x])
    sd = np.vstack([np.zeros((1, x.shape[1])), np.sqrt(var)])
    return offsets, sd, n_used


def date_offsets(
    offsets: pd.DataFrame, pairs_df: pd.DataFrame, *, robust: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-date offsets (east, north) of the whole scene and of every tile.

    Scene level: the ``ok`` pairs' robust offsets, weighted by their standard
    errors. Tile level: each tile's ``ok`` offsets, unit weights. The first
    date is the datum (0 m); every other date's offset is relative to it.
    """
    import pandas as pd

    dates = sorted(set(pairs_df["reference_date"]) | set(pairs_df["secondary_date"]))
    idx = {d: k for k, d in enumerate(dates)}
    pair_keys = list(zip(pairs_df["reference_date"], pairs_df["secondary_date"], strict=True))
    pairs = [(idx[r], idx[s]) for r, s in pair_keys]
    ok = (pairs_df["status"] == STATUS_OK).to_numpy()
    vals = pairs_df[["east_m", "north_m"]].to_numpy()
    sig = pairs_df[["east_se_m", "north_se_m"]].to_numpy()
    okm = np.repeat(ok[:, None], 2, axis=1) & np.isfinite(vals)
    x, sd, _ = invert_dates(vals, okm, pairs, len(dates), sigma=sig, robust=robust)
    # Pairs used for a date: the used pairs (both components weighted, as in
    # invert_dates) that involve it. Each used pair counts for its two dates.
    used = (okm & np.isfinite(sig)).all(axis=1)
    n_pairs_used = np.zeros(len(dates), dtype=int)
    for (i, j), u in zip(pairs, used, strict=True):
        if u:
            n_pairs_used[[i, j]] += 1
    scene = pd.DataFrame(
        {
            "date": dates,
            "east_m": x[:, 0],
            "north_m": x[:, 1],
            "east_sd_m": sd[:, 0],
            "north_sd_m": sd[:, 1],
            "n_pairs_used": n_pairs_used,
        }
    )

    tiles = offsets[["tile_row", "tile_col"]].drop_duplicates().sort_values(["tile_row", "tile_col"])
    tile_list = list(tiles.itertuples(index=False, name=None))
    t_index = {t: k for k, t in enumerate(tile_list)}
    n_t = len(tile_list)
    vals_t = np.full((len(pairs), 2 * n_t), np.nan)
    ok_t = np.zeros((len(pairs), 2 * n_t), bool)
    p_index = {k: n for n, k in enumerate(pair_keys)}
    for row in offsets.itertuples(index=False):
        p = p_index[(row.reference_date, row.secondary_date)]
        t = t_index[(row.tile_row, row.tile_col)]
        east, north = float(row.east_m), float(row.north_m)
        good = row.status == STATUS_OK and np.isfinite(east) and np.isfinite(north)
        vals_t[p, t], vals_t[p, n_t + t] = row.east_m, row.north_m
        ok_t[p, t] = ok_t[p, n_t + t] = good
    xt, sdt, _ = invert_dates(vals_t, ok_t, pairs, len(dates), robust=robust)
    rows = []
    for k, d in enumerate(dates):
        for t, (tr, tc) in enumerate(tile_list):
            rows.append((d, tr, tc, xt[k, t], xt[k, n_t + t], sdt[k, t], sdt[k, n_t + t]))
    tile_df = pd.DataFrame(
        rows, columns=["date", "tile_row", "tile_col", "east_m", "north_m", "east_sd_m", "north_sd_m"]
    )
    return scene, tile_df

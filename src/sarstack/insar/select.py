"""insar_select: find the interferograms (and their correlation, conncomp and
quality layers), edit the network and write ``ifgs.csv``."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from sarstack import dates as sdates
from sarstack import network as snet
from sarstack import stagefiles
from sarstack.errors import SarstackError
from sarstack.insar.common import check_range
from sarstack.io import (
    Grid,
    StackReader,
    process_blocks,
    read_grid,
)

if TYPE_CHECKING:  # pandas is imported where tables are built: most stages never need it
    import pandas as pd

log = logging.getLogger(__package__)


@dataclass(frozen=True)
class Ifg:
    """One unwrapped interferogram and its optional companions."""

    path: Path
    reference: dt.date
    secondary: dt.date
    conncomp: Path | None = None
    correlation: Path | None = None
    #: Why network editing left it out ("" = used).
    excluded: str = ""
    #: RMS of its triangles' closures over the scene, radians (``insar.closure_qc``;
    #: None when not computed, NaN for an ifg in no triangle).
    loop_rms_rad: float | None = None

    def need(self, kind: str) -> Path:
        """The companion raster ``kind`` ("conncomp" or "correlation"); raises if absent."""
        path = getattr(self, kind)
        if path is None:
            raise SarstackError(f"insar.{kind}: no {kind} raster for {self.path.name}")
        return path

    @property
    def key(self) -> str:
        return f"{self.reference:%Y%m%d}_{self.secondary:%Y%m%d}"


def _glob(pattern: str) -> list[Path]:
    from sarstack import storage

    return [Path(p) for p in storage.glob_files(pattern)]


def _by_pair(pattern: str, key: str, date_format: str) -> dict[tuple[dt.date, dt.date], Path]:
    out: dict[tuple[dt.date, dt.date], Path] = {}
    for p in _glob(pattern):
        d = sdates.parse_pair_dates(p, date_format)
        if d in out:
            raise SarstackError(f"{key}: {p} and {out[d]} are both {d[0]}_{d[1]}")
        out[d] = p
    return out


@dataclass(frozen=True)
class NetworkEdit:
    """Network editing from the config, applied by :func:`select_ifgs`.

    Attributes
    ----------
    exclude_dates
        Acquisitions to drop with every ifg that contains them.
    exclude_pairs
        ``(reference, secondary)`` pairs to drop.
    max_temporal_baseline
        Longest ``secondary - reference`` kept, days.
    min_mean_correlation
        Drop ifgs whose scene-mean correlation is below it (needs correlation).
    start_date, end_date
        Keep only ifgs with both dates inside ``[start_date, end_date]``.
    max_loop_rms_rad, loop_exclude
        Loop-closure QC (``insar.closure_qc``): each kept ifg's loop RMS
        (:func:`sarstack.closure.loop_rms`) is recorded, and with
        ``loop_exclude`` the ifgs above ``max_loop_rms_rad`` are left out,
        worst first, which never disconnects the network
        (:func:`sarstack.closure.closure_exclusions`).
    """

    exclude_dates: tuple[dt.date, ...] = ()
    exclude_pairs: tuple[tuple[dt.date, dt.date], ...] = ()
    max_temporal_baseline: float | None = None
    min_mean_correlation: float | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    max_loop_rms_rad: float | None = None
    loop_exclude: bool = True

    @property
    def active(self) -> bool:
        return bool(self.describe())

    def describe(self) -> str:
        parts = []
        if self.exclude_dates:
            parts.append(f"exclude_dates: {len(self.exclude_dates)}")
        if self.exclude_pairs:
            parts.append(f"exclude_pairs: {len(self.exclude_pairs)}")
        for key in ("max_temporal_baseline", "min_mean_correlation", "start_date", "end_date"):
            v = getattr(self, key)
            if v is not None:
                parts.append(f"{key}: {v}")
        if self.max_loop_rms_rad is not None and self.loop_exclude:
            parts.append(f"closure_qc.max_loop_rms_rad: {self.max_loop_rms_rad}")
        return ", ".join(parts)

    def apply_dates(self, ifgs: Sequence[Ifg]) -> list[Ifg]:
        """Mark the ifgs excluded by dates, pairs, baseline and period (with reasons).

        Raises naming the key when an excluded date or pair is not in the stack
        (a typo would otherwise exclude nothing), or the period is empty.
        """
        from dataclasses import replace

        have = {d for i in ifgs for d in (i.reference, i.secondary)}
        for d in self.exclude_dates:
            if d not in have:
                near = min(have, key=lambda x: (abs((x - d).days), x))
                raise SarstackError(
                    f"insar.exclude_dates: {d} is not an acquisition date (nearest: {near})"
                )
        keys = {(i.reference, i.secondary) for i in ifgs}
        for p in self.exclude_pairs:
            if p not in keys:
                raise SarstackError(
                    f"insar.exclude_pairs: {p[0]:%Y%m%d}_{p[1]:%Y%m%d} is not an interferogram"
                    " of the stack"
                )
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise SarstackError(
                f"insar.start_date: {self.start_date} is after insar.end_date {self.end_date}"
            )
        out = []
        for i in ifgs:
            why = []
            gone = [d for d in (i.reference, i.secondary) if d in self.exclude_dates]
            if gone:
                why.append("exclude_dates " + " ".join(map(str, gone)))
            if (i.reference, i.secondary) in self.exclude_pairs:
                why.append("exclude_pairs")
            days = (i.secondary - i.reference).days
            if self.max_temporal_baseline is not None and days > self.max_temporal_baseline:
                why.append(f"max_temporal_baseline {days} d > {self.max_temporal_baseline:g} d")
            if self.start_date is not None and i.reference < self.start_date:
                why.append(f"start_date {self.start_date}")
            if self.end_date is not None and i.secondary > self.end_date:
                why.append(f"end_date {self.end_date}")
            out.append(replace(i, excluded="; ".join(why)) if why else i)
        return out

    def apply_correlation(
        self, ifgs: Sequence[Ifg], grid: Grid, block_shape: Sequence[int]
    ) -> list[Ifg]:
        """Mark the kept ifgs whose mean correlation is below ``min_mean_correlation``."""
        from dataclasses import replace

        kept = [i for i in ifgs if not i.excluded]
        if not all(i.correlation for i in kept):
            raise SarstackError("insar.min_mean_correlation needs insar.correlation rasters")
        means = {i.key: _mean_correlation(i.need("correlation"), grid, block_shape) for i in kept}
        limit = self.min_mean_correlation
        if limit is None:
            return list(ifgs)
        out = []
        for i in ifgs:
            m = means.get(i.key)
            if m is not None and not m >= limit:
                why = f"min_mean_correlation {m:.3f} < {limit:g}"
                i = replace(i, excluded=why)
            out.append(i)
        return out


def _mean_correlation(path: str | Path, grid: Grid, block_shape: Sequence[int]) -> float:
    """The mean of a correlation raster's finite values (NaN if none), checked to lie in [0, 1]."""
    acc, n = 0.0, 0
    with StackReader([path]) as one:

        def add(win: Window, b: np.ndarray) -> None:
            nonlocal acc, n
            check_range(b, path, 0.0, 1.0, "correlation")
            ok = np.isfinite(b)
            acc += float(b[ok].sum(dtype=np.float64))
            n += int(ok.sum())

        process_blocks(grid.shape, block_shape, add, read=lambda win: one.read_one(0, win))
    return acc / n if n else float("nan")


def apply_closure_qc(
    edit: NetworkEdit, ifgs: Sequence[Ifg], grid: Grid, block_shape: Sequence[int]
) -> list[Ifg]:
    """Loop-closure QC of the kept ifgs (see :class:`NetworkEdit`): one pass over
    the stack, block by block, summing each triangle's closure moments."""
    from dataclasses import replace

    from sarstack import closure as sclosure

    kept = [i for i in ifgs if not i.excluded]
    dates = sorted({d for i in kept for d in (i.reference, i.secondary)})
    index = {d: k for k, d in enumerate(dates)}
    pairs = [(index[i.reference], index[i.secondary]) for i in kept]
    tri = sclosure.network_triangles(pairs)
    sums = np.zeros((len(tri), 3))
    if len(tri):
        with StackReader([i.path for i in kept]) as stack:

            def add_sums(win: Window, block: np.ndarray) -> None:
                nonlocal sums
                sums += sclosure.closure_sums(block.reshape(len(kept), -1), tri)

            process_blocks(grid.shape, block_shape, add_sums, read=stack.read)
    else:
        log.warning("insar.closure_qc: the network has no closed triangle (e.g. sequential or"
                    " single-reference): no loop RMS, nothing excluded")  # fmt: skip
    limit = edit.max_loop_rms_rad if edit.loop_exclude else None
    rms, out = sclosure.closure_exclusions(
        pairs, sclosure.closure_variance(sums), np.inf if limit is None else limit
    )
    gone = set(out)
    log.info("insar.closure_qc: loop RMS median %.3g rad, largest %.3g rad; %d ifgs left out%s",
             np.nanmedian(rms) if np.isfinite(rms).any() else np.nan,
             np.nanmax(rms) if np.isfinite(rms).any() else np.nan, len(out),
             f" ({', '.join(kept[k].key for k in out)})" if out else "")  # fmt: skip
    by_key = {}
    for k, i in enumerate(kept):
        why = f"loop_closure {rms[k]:.3f} rad > {limit:g}" if k in gone else ""
        by_key[i.key] = replace(i, loop_rms_rad=float(rms[k]), excluded=why)
    return [by_key.get(i.key, i) for i in ifgs]


def select_ifgs(
    unwrapped: str,
    *,
    conncomp: str | None,
    correlation: str | None,
    date_format: str,
    edit: NetworkEdit | None = None,
    block_shape: Sequence[int],
) -> tuple[list[Ifg], list[dt.date], list[tuple[int, int]], Grid]:
    """Find the interferograms, date them, edit the network, check grids and the network.

    Parameters
    ----------
    edit
        Network editing from the config (:class:`NetworkEdit`), applied
        before the grid and network checks; an excluded ifg keeps its row
        with the reason in ``Ifg.excluded`` (and is not checked further).
    block_shape
        Blocks the correlation rasters are averaged in (``min_mean_correlation``).

    Returns
    -------
    ifgs, dates, pairs, grid
        Interferograms sorted by (reference, secondary) date, excluded ones
        included; the sorted unique dates of the kept ones; each kept ifg's
        ``(i, j)`` date indices; the common grid.

    Raises
    ------
    SarstackError
        No or a single file, undated or duplicate names, a companion raster
        missing for some pair, rasters on different grids, or a network
        that does not connect every date.
    """
    ifgs = _find_ifgs(unwrapped, conncomp, correlation, date_format)
    what = edit.describe() if edit is not None else ""
    all_ifgs = edit.apply_dates(ifgs) if edit is not None else ifgs
    ifgs = _kept(all_ifgs, what)
    grid = _common_grid(ifgs)
    if edit is not None and edit.min_mean_correlation is not None:
        all_ifgs = edit.apply_correlation(all_ifgs, grid, block_shape)
        ifgs = _kept(all_ifgs, what)
    if edit is not None and edit.max_loop_rms_rad is not None:
        all_ifgs = apply_closure_qc(edit, all_ifgs, grid, block_shape)
        ifgs = _kept(all_ifgs, what)
    dates = sorted({d for ifg in ifgs for d in (ifg.reference, ifg.secondary)})
    index = {d: k for k, d in enumerate(dates)}
    pairs = [(index[i.reference], index[i.secondary]) for i in ifgs]
    if edit is not None and edit.active:
        gone = sorted({d for i in all_ifgs for d in (i.reference, i.secondary)} - set(dates))
        n_out = len(all_ifgs) - len(ifgs)
        log.info("network editing (%s): %d of %d ifgs excluded, %d dates left%s", edit.describe(),
                 n_out, len(all_ifgs), len(dates),
                 f" (dropped: {', '.join(map(str, gone))})" if gone else "")  # fmt: skip
        try:
            snet.check_network(pairs, len(dates), dates)
        except SarstackError as e:
            raise SarstackError(f"after network editing ({edit.describe()}): {e}") from None
    else:
        snet.check_network(pairs, len(dates), dates)
    return all_ifgs, dates, pairs, grid


def _find_ifgs(
    unwrapped: str, conncomp: str | None, correlation: str | None, date_format: str
) -> list[Ifg]:
    """The interferograms matching ``unwrapped``, dated, with their companion
    rasters, sorted by (reference, secondary) date (see :func:`select_ifgs`)."""
    paths = _glob(unwrapped)
    if not paths:
        raise SarstackError(f"insar.unwrapped: no files match {unwrapped!r}")
    if len(paths) < 2:
        raise SarstackError(
            f"insar.unwrapped: only one interferogram ({paths[0]}); need at least 2"
        )
    by_pair: dict[tuple[dt.date, dt.date], Path] = {}
    for p in paths:
        d1, d2 = sdates.parse_pair_dates(p, date_format)
        if d2 < d1:
            raise SarstackError(f"{p}: secondary date {d2} is before reference date {d1}")
        if (d1, d2) in by_pair:
            raise SarstackError(f"{p}: same pair {d1}_{d2} as {by_pair[(d1, d2)]}")
        by_pair[(d1, d2)] = p
    cc = _by_pair(conncomp, "insar.conncomp", date_format) if conncomp else {}
    cor = _by_pair(correlation, "insar.correlation", date_format) if correlation else {}
    ifgs = []
    for (d1, d2), p in sorted(by_pair.items()):
        if conncomp and (d1, d2) not in cc:
            raise SarstackError(f"insar.conncomp: no conncomp raster for {p.name}")
        if correlation and (d1, d2) not in cor:
            raise SarstackError(f"insar.correlation: no correlation raster for {p.name}")
        ifgs.append(Ifg(p, d1, d2, cc.get((d1, d2)), cor.get((d1, d2))))
    return ifgs


def _kept(every: list[Ifg], what: str) -> list[Ifg]:
    """The ifgs network editing (``what``) did not exclude; at least 2."""
    out = [i for i in every if not i.excluded]
    if len(out) < 2:
        raise SarstackError(
            f"insar: network editing ({what}) leaves {len(out)} of "
            f"{len(every)} interferograms; need at least 2"
        )
    return out


def _common_grid(ifgs: Sequence[Ifg]) -> Grid:
    """The grid of the interferograms, checked to be every input's."""
    # The stack's grid is the one most interferograms share, so that an odd
    # one out is named even when it sorts first (and not its companions).
    grids = [read_grid(i.path, single_band=True) for i in ifgs]
    distinct: list[list] = []  # [grid, count]: few distinct grids, so O(n) comparisons
    for g in grids:
        for d in distinct:
            if d[0].same_as(g):
                d[1] += 1
                break
        else:
            distinct.append([g, 1])
    grid = max(distinct, key=lambda d: d[1])[0]
    for ifg, g in zip(ifgs, grids, strict=True):
        for f in (ifg.path, ifg.conncomp, ifg.correlation):
            if f is None:
                continue
            if not (g if f == ifg.path else read_grid(f, single_band=True)).same_as(grid):
                raise SarstackError(
                    f"{f}: not on the grid of the other interferograms"
                    " (all inputs must share one grid)"
                )
    return grid


def ifg_columns(ifgs: Sequence[Ifg]) -> dict[str, list[Any]]:
    """The columns of :func:`ifg_table`, without pandas (``ifgs.csv`` is
    written from them: :func:`sarstack.stagefiles.write_ifgs`); a missing
    ``loop_rms_rad`` is None."""
    table: dict[str, list[Any]] = {
        "reference_date": [i.reference.isoformat() for i in ifgs],
        "secondary_date": [i.secondary.isoformat() for i in ifgs],
        "path": [str(i.path) for i in ifgs],
        "conncomp": [str(i.conncomp) if i.conncomp else "" for i in ifgs],
        "correlation": [str(i.correlation) if i.correlation else "" for i in ifgs],
        "temporal_baseline_days": [(i.secondary - i.reference).days for i in ifgs],
        "used": [not i.excluded for i in ifgs],
        "excluded_reason": [i.excluded for i in ifgs],
    }
    if any(i.loop_rms_rad is not None for i in ifgs):  # insar.closure_qc
        table["loop_rms_rad"] = [i.loop_rms_rad for i in ifgs]
    return table


def ifg_table(ifgs: Sequence[Ifg]) -> pd.DataFrame:
    """:func:`ifg_columns` as a DataFrame (a missing ``loop_rms_rad`` is NaN)."""
    import pandas as pd

    table = pd.DataFrame(ifg_columns(ifgs))
    if "loop_rms_rad" in table:
        table["loop_rms_rad"] = table["loop_rms_rad"].astype(float)
    return table


#: The reader of ``ifgs.csv``, :func:`sarstack.stagefiles.read_ifgs`, by its older name.
read_ifg_table = stagefiles.read_ifgs

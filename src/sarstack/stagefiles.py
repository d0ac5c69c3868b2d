"""The files passed between stages, read and written in one place.

One reader and one writer per file; ``grid.json`` and ``ifgs.csv`` also have
a light reader, for callers that must not import the raster stack (the
Snakefile and the end-of-run summary):

=======================  ============================  =============================  ==========
file                     reader                        writer                         written by
=======================  ============================  =============================  ==========
``scenes.csv``           :func:`read_scenes`           :func:`write_scenes`           rtc_select
``grid.json``            :func:`read_grid`,            :func:`write_grid`             rtc_select
                         :func:`read_grid_size`
``flat/{chunk}.json``    :func:`read_flat`             :func:`write_flat`             rtc_flatten
``offsets.csv``          :func:`read_offsets`          :func:`write_offsets`          rtc_aggregate
``pairs.csv``            :func:`read_pairs`            :func:`write_pairs`            rtc_aggregate
``dates.csv``            :func:`read_dates`            :func:`write_dates`            rtc_dates
``ifgs.csv``             :func:`read_ifgs`,            :func:`write_ifgs`             insar_select
                         :func:`read_ifg_rows`
``reference_point.txt``  :func:`read_reference_point`  :func:`write_reference_point`  insar_reference
``timeseries.csv``       :func:`read_index`            :func:`write_index`            insar_invert, insar_gather
=======================  ============================  =============================  ==========

(``timeseries_rereferenced.csv`` of insar_rereference is a time-series index
too.) Tables are written with :func:`sarstack.io.write_csv` (``scenes.csv``
with :func:`sarstack.io.write_rows`; ``ifgs.csv`` and ``timeseries.csv``
with :func:`sarstack.atomic.write_columns`, the text pandas wrote, so that
no stage of the InSAR chain imports pandas: 0.4-0.5 s a job) and documents
with :func:`sarstack.io.write_json`; dates stay text (``YYYY-MM-DD``, never
parsed to numbers), the InSAR index stays text throughout (columns of
lists, :data:`SeriesIndex`), and the union grid and the flatten documents
come back as the objects the kernels take. Nothing heavy is imported here at
module level: pandas, rasterio and the InSAR classes are imported by the
functions that need them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarstack.errors import SarstackError

if TYPE_CHECKING:  # imported where tables and grids are read
    import pandas as pd

    from sarstack.insar.select import Ifg
    from sarstack.io import Grid
    from sarstack.rtc.select import Scene

#: Columns that hold dates in the stages' tables (kept as text).
DATE_COLUMNS = ("date", "reference_date", "secondary_date")

#: Columns of ``scenes.csv`` (:func:`write_scenes`).
SCENE_COLUMNS = ("date", "key", "path", "fingerprint")


def read_table(path: str | Path) -> pd.DataFrame:
    """A stage's CSV table with its date columns (:data:`DATE_COLUMNS`, where
    present) as text: how the tables above with a date are read, and the
    others (xcorr chunks, summary.csv, date_events.csv, truth, ...)."""
    import pandas as pd

    return pd.read_csv(path, dtype={c: str for c in DATE_COLUMNS})


def _write_table(path: str | Path, table: pd.DataFrame) -> None:
    from sarstack import io

    io.write_csv(path, table)


def read_json(path: str | Path) -> Any:
    """A stage's JSON document; a one-line error for a missing or broken file.
    Light (no raster stack imported); :mod:`sarstack.io` re-exports it."""
    import json

    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise SarstackError(f"{p}: no such file") from None
    except ValueError as e:
        raise SarstackError(f"{p}: not valid JSON ({e})") from None


# --- rtc_select: scenes.csv and grid.json -------------------------------------


def write_scenes(path: str | Path, scenes: Sequence[Scene]) -> None:
    """``scenes.csv``: ``date`` (``YYYY-MM-DD``), ``key`` (``YYYYMMDD``), ``path``
    and ``fingerprint`` (:func:`sarstack.io.file_fingerprint`: the file's size
    and mtime, so that a scene rewritten in place changes this table and reruns
    every stage that reads it), one row per scene in time order."""
    from sarstack import io

    rows = [{"date": s.date.isoformat(), "key": s.date.strftime("%Y%m%d"), "path": str(s.path),
             "fingerprint": io.file_fingerprint(s.path)} for s in scenes]  # fmt: skip
    io.write_rows(path, rows)


def read_scenes(path: str | Path) -> list[dict[str, str]]:
    """The rows of ``scenes.csv`` (:func:`write_scenes`), every value text;
    without pandas (``pandas.DataFrame(rows)`` where a frame is needed)."""
    import csv

    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise SarstackError(f"{path}: no such file") from None


def write_grid(path: str | Path, grid: Grid) -> None:
    """``grid.json``: the union grid (:func:`sarstack.io.grid_to_dict`)."""
    from sarstack import io

    io.write_json(path, io.grid_to_dict(grid))


def read_grid(path: str | Path) -> Grid:
    """The union grid (``grid.json``, from ``rtc_select``)."""
    from sarstack import io

    return io.grid_from_dict(read_json(path))


def read_grid_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of the union grid in ``grid.json``, without rasterio
    (for the Snakefile's scatter and the end-of-run summary)."""
    g = read_json(path)
    return int(g["height"]), int(g["width"])


# --- rtc_flatten: flat/{chunk}.json ---------------------------------------------


def write_flat(
    path: str | Path, percentiles: Sequence[float], scale: str, scenes: Sequence[Mapping[str, Any]]
) -> None:
    """One ``rtc_flatten`` chunk document: the flatten ``percentiles``, the stack's
    ``scale`` and its scenes (as :func:`read_flat` returns them)."""
    from sarstack import io

    io.write_json(path, {"percentiles": list(percentiles), "scale": scale, "scenes": scenes})


def read_flat(paths: Sequence[str | Path]) -> tuple[list[dict[str, Any]], str]:
    """The scenes of ``rtc_flatten`` chunk documents, sorted by date, and the
    stack's scale (how its files store backscatter).

    Each scene: ``date, key, path`` (its superset VRT), ``source`` (the file
    a user knows), ``fingerprint``, ``low``/``high`` (flatten bounds, linear
    power) and ``valid`` (per-tile valid fractions after flattening).
    """
    docs = [read_json(p) for p in paths]
    scenes = sorted((s for d in docs for s in d["scenes"]), key=lambda s: s["date"])
    return scenes, docs[0].get("scale", "power") if docs else "power"


# --- rtc_aggregate: offsets.csv and pairs.csv; rtc_dates: dates.csv -------------


def write_offsets(path: str | Path, offsets: pd.DataFrame) -> None:
    """``offsets.csv``: every tile of every pair (:func:`sarstack.rtc.mark_outliers`)."""
    _write_table(path, offsets)


def read_offsets(path: str | Path) -> pd.DataFrame:
    """``offsets.csv`` (:func:`write_offsets`), dates as text."""
    return read_table(path)


def write_pairs(path: str | Path, pairs: pd.DataFrame) -> None:
    """``pairs.csv``: one row per pair (:func:`sarstack.rtc.aggregate_pairs`)."""
    _write_table(path, pairs)


def read_pairs(path: str | Path) -> pd.DataFrame:
    """``pairs.csv`` (:func:`write_pairs`), dates as text."""
    return read_table(path)


def write_dates(path: str | Path, dates: pd.DataFrame) -> None:
    """``dates.csv``: each date's offset from the first (:func:`sarstack.rtc.date_offsets`)."""
    _write_table(path, dates)


def read_dates(path: str | Path) -> pd.DataFrame:
    """``dates.csv`` (:func:`write_dates`), dates as text."""
    return read_table(path)


# --- insar_select: ifgs.csv ------------------------------------------------------


def write_ifgs(path: str | Path, ifgs: Sequence[Ifg]) -> None:
    """``ifgs.csv``: :func:`sarstack.insar.ifg_table` of every ifg (the excluded
    ones with their reason) plus ``fingerprint``, the size and mtime of each ifg's
    files (unwrapped, conncomp, correlation): a raster rewritten in place changes
    this table, so every stage reading it reruns. Written without pandas (the
    text ``to_csv`` wrote): importing it took 0.4-0.5 s of a stage."""
    from sarstack.atomic import write_columns
    from sarstack.insar.select import ifg_columns
    from sarstack.io import file_fingerprint

    table = ifg_columns(ifgs)
    table["fingerprint"] = [file_fingerprint(i.path, i.conncomp, i.correlation) for i in ifgs]
    write_columns(path, table)


def read_ifg_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of ``ifgs.csv`` (:func:`write_ifgs`), every value text; without
    pandas (``pandas.DataFrame(rows)`` where a frame is needed)."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_ifgs(
    path: str | Path, *, include_excluded: bool = False
) -> tuple[list[Ifg], list[dt.date], list[tuple[int, int]]]:
    """The ifg table of insar_select: the used ifgs (all with ``include_excluded``),
    the sorted dates of the used ones and their ``(i, j)`` date indices."""
    from sarstack.insar.select import Ifg

    rows = read_ifg_rows(path)
    for r in rows:
        r.setdefault("excluded_reason", "")
    every = [
        Ifg(
            Path(r["path"]),
            dt.date.fromisoformat(r["reference_date"]),
            dt.date.fromisoformat(r["secondary_date"]),
            Path(r["conncomp"]) if r["conncomp"] else None,
            Path(r["correlation"]) if r["correlation"] else None,
            r["excluded_reason"],
        )
        for r in rows
    ]
    ifgs = [i for i in every if not i.excluded]
    if include_excluded:
        dates = sorted({d for i in ifgs for d in (i.reference, i.secondary)})
        index = {d: k for k, d in enumerate(dates)}
        return every, dates, [(index.get(i.reference, -1), index.get(i.secondary, -1))
                              for i in every]  # fmt: skip
    dates = sorted({d for i in ifgs for d in (i.reference, i.secondary)})
    index = {d: k for k, d in enumerate(dates)}
    return ifgs, dates, [(index[i.reference], index[i.secondary]) for i in ifgs]


# --- insar_reference: reference_point.txt ---------------------------------------


def write_reference_point(path: str | Path, rc: tuple[int, int]) -> None:
    """``reference_point.txt``: one line ``row,col``."""
    from sarstack import io

    io.write_text(path, f"{rc[0]},{rc[1]}\n")


def read_reference_point(path: str | Path) -> tuple[int, int]:
    """The ``row,col`` written by the insar_reference rule (:func:`write_reference_point`)."""
    try:
        r, c = (int(v) for v in Path(path).read_text().strip().split(","))
    except (OSError, ValueError):
        raise SarstackError(f"{path}: expected one line 'row,col'") from None
    return r, c


# --- insar_invert / insar_gather / insar_rereference: timeseries.csv -------------


#: A time-series index as its columns (``date``, ``path``, ``units``: one
#: value per date after the first), what :func:`read_index` gives and
#: :func:`write_index` takes (a DataFrame will do for the latter).
SeriesIndex = Mapping[str, Sequence[Any]]


def write_index(path: str | Path, index: SeriesIndex) -> None:
    """The InSAR time-series index (``timeseries.csv``): one row per date after
    the first, its raster ``path`` and ``units`` among others. Written without
    pandas (the text ``to_csv`` wrote)."""
    from sarstack.atomic import write_columns

    write_columns(path, {str(k): list(index[k]) for k in index})


def read_index(path: str | Path) -> dict[str, list[str]]:
    """The InSAR time-series index (``timeseries.csv``), every column as a list
    of text, without pandas (``pandas.DataFrame(index)`` where a frame is
    needed)."""
    from sarstack.atomic import read_columns

    return read_columns(path)

"""The files passed between stages, read in one place.

Each stage writes its tables with :func:`sarstack.io.write_csv` and its small
documents with :func:`sarstack.io.write_json`; the readers here are the only
way a stage reads another's: dates stay text (``YYYY-MM-DD``, never parsed
to numbers), the InSAR index stays text throughout, and the union grid and
the flatten documents come back as the objects the kernels take.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarstack import io

if TYPE_CHECKING:  # pandas is imported where tables are read
    import pandas as pd

#: Columns that hold dates in the stages' tables (kept as text).
DATE_COLUMNS = ("date", "reference_date", "secondary_date")


def read_table(path: str | Path) -> pd.DataFrame:
    """A stage's CSV table (offsets, pairs, xcorr chunks, dates, truth) with
    its date columns (:data:`DATE_COLUMNS`, where present) as text."""
    import pandas as pd

    return pd.read_csv(path, dtype={c: str for c in DATE_COLUMNS})


def read_index(path: str | Path) -> pd.DataFrame:
    """The InSAR time-series index (``timeseries.csv``), every column as text."""
    import pandas as pd

    return pd.read_csv(path, dtype=str)


def read_grid(path: str | Path) -> io.Grid:
    """The union grid (``grid.json``, from ``rtc_select``)."""
    return io.grid_from_dict(io.read_json(path))


def read_flat(paths: Sequence[str | Path]) -> tuple[list[dict[str, Any]], str]:
    """The scenes of ``rtc_flatten`` chunk documents, sorted by date, and the
    stack's scale (how its files store backscatter).

    Each scene: ``date, key, path`` (its superset VRT), ``source`` (the file
    a user knows), ``fingerprint``, ``low``/``high`` (flatten bounds, linear
    power) and ``valid`` (per-tile valid fractions after flattening).
    """
    docs = [io.read_json(p) for p in paths]
    scenes = sorted((s for d in docs for s in d["scenes"]), key=lambda s: s["date"])
    return scenes, docs[0].get("scale", "power") if docs else "power"

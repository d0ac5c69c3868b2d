"""What every InSAR stage shares: the count rasters' nodata, the date tags of
the output rasters and the range check of input layers."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np

from sarstack.errors import SarstackError

log = logging.getLogger(__package__)


#: Nodata of the uint16 count rasters (0 is a real count).
COUNT_NODATA = 65535


def _date_tags(first: dt.date, last: dt.date, **extra: str) -> dict[str, str]:
    return {"start_date": first.isoformat(), "end_date": last.isoformat(), **extra}


def check_range(block: np.ndarray, path: str | Path, lo: float, hi: float, what: str) -> None:
    """Raise naming the file when a finite value of ``block`` is outside ``[lo, hi]``."""
    with np.errstate(invalid="ignore"):
        bad = np.isfinite(block) & ((block < lo - 1e-6) | (block > hi + 1e-6))
    if bad.any():
        v = float(block[bad].flat[0])
        raise SarstackError(f"{path}: {what} value {v:g} outside [{lo:g}, {hi:g}]")

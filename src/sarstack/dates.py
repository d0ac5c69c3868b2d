"""Dates in file names, their uniqueness, and decimal years.

This is the single home for every date rule in sarstack: both branches (RTC
scenes, InSAR interferograms) use it. Pair networks live in
:mod:`sarstack.network`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sarstack.errors import SarstackError

#: Days in a year of decimal years (velocities per year, epochs, seasons).
DAYS_PER_YEAR = 365.25

# An 8-digit date, optionally followed by a 'T' time, not embedded in a longer digit run.
_DATE8 = re.compile(r"(?<!\d)(\d{8})(?:T\d{2,6}Z?)?(?!\d)")

# Map strftime directives to regex fragments (enough for the formats users pass).
_DIRECTIVES = {
    "%Y": r"\d{4}",
    "%y": r"\d{2}",
    "%m": r"\d{2}",
    "%d": r"\d{2}",
    "%j": r"\d{3}",
    "%H": r"\d{2}",
    "%M": r"\d{2}",
    "%S": r"\d{2}",
}


def _format_regex(date_format: str) -> str:
    out = ""
    i = 0
    while i < len(date_format):
        tok = date_format[i : i + 2]
        if tok in _DIRECTIVES:
            out += _DIRECTIVES[tok]
            i += 2
        elif date_format[i] == "%":
            raise SarstackError(f"date_format {date_format!r}: unsupported directive {tok!r}")
        else:
            out += re.escape(date_format[i])
            i += 1
    return out


def find_dates(name: str | Path, date_format: str) -> list[dt.date]:
    """Every date in a file name, in order of appearance.

    Parameters
    ----------
    name
        File name or path; only the base name is searched.
    date_format
        strftime format of one date, e.g. ``"%Y%m%d"`` or ``"%y%m%d"``.

    Returns
    -------
    list of datetime.date
        One per date-like group of the name: digits in the shape of
        ``date_format`` (for ``%Y%m%d``, 8 digits, optionally followed by a
        ``T`` time), never taken from inside a longer run of digits.

    Raises
    ------
    SarstackError
        Naming the file, when a date-like group is not a valid date (e.g.
        ``20211341``): it is never skipped for the next group of the name,
        which may be another date altogether (a processing date).
    """
    base = Path(name).name
    if date_format == "%Y%m%d":
        pattern = _DATE8
    else:
        pattern = re.compile(r"(?<!\d)(" + _format_regex(date_format) + r")(?!\d)")
    found: list[dt.date] = []
    for m in pattern.finditer(base):
        try:
            found.append(dt.datetime.strptime(m.group(1), date_format).date())
        except ValueError:
            raise SarstackError(
                f"{name}: {m.group(1)!r} is not a valid date ({date_format}); every "
                f"{date_format} group of a file name must be a real date (rename the file)"
            ) from None
    return found


def parse_scene_date(name: str | Path, date_format: str) -> dt.date:
    """Acquisition date of a scene: the first date in its name.

    A date-like group that is not a valid date is an error
    (:func:`find_dates`), wherever it stands in the name. Works for HyP3 (``S1A_IW_20200101T...``) and OPERA
    (``OPERA_L2_RTC-S1_T137-..._20211119T015854Z_20250830T120333Z_...``), whose
    second date is the processing date.
    """
    dates = find_dates(name, date_format)
    if not dates:
        raise SarstackError(f"{name}: no date ({date_format}) in the file name")
    return dates[0]


def parse_pair_dates(name: str | Path, date_format: str) -> tuple[dt.date, dt.date]:
    """Reference and secondary dates of an interferogram from its name.

    The name must hold exactly two dates, whatever separates them
    (``20200101_20200113.unw.tif``, ``cropA_20180106-20180130_VV_unw.tif``);
    a third date makes the pair ambiguous and is an error.
    """
    dates = find_dates(name, date_format)
    if len(dates) != 2:
        raise SarstackError(
            f"{name}: needs two dates ({date_format}) in the file name, found {len(dates)}"
            + (" (which two are the pair is ambiguous; rename the file)" if len(dates) > 2 else "")
        )
    d1, d2 = dates[0], dates[1]
    if d1 == d2:
        raise SarstackError(f"{name}: both dates are {d1.isoformat()}")
    return d1, d2


def parse_iso_date(text: str, what: str) -> dt.date:
    """``YYYY-MM-DD`` as a date; a one-line error naming ``what`` otherwise."""
    try:
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise SarstackError(f"{what} {text!r} is not YYYY-MM-DD") from None


def check_unique(dates: Sequence[dt.date], names: Sequence[str | Path]) -> None:
    """Raise naming both files if two scenes share one acquisition date."""
    seen: dict[dt.date, str | Path] = {}
    for d, n in zip(dates, names, strict=True):
        if d in seen:
            raise SarstackError(f"{n}: same date {d.isoformat()} as {seen[d]} (one scene per date)")
        seen[d] = n


def years_since(dates: Sequence[dt.date], origin: dt.date | None = None) -> np.ndarray:
    """Decimal years (365.25 d) of each date since ``origin`` (default: first date)."""
    origin = origin or dates[0]
    return np.array([(d - origin).days / DAYS_PER_YEAR for d in dates], dtype=np.float64)

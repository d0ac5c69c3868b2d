"""Atomic files: every output is written to a staging file beside its
target and renamed into place only when complete, so a failed job never
leaves a partial file behind; text, small tables, CSV and JSON through it.
:mod:`sarstack.io` re-exports all of it beside its raster reader and writer.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sarstack.errors import SarstackError

#: Free space below which a failed write is reported as a full disk (bytes).
LOW_SPACE_BYTES = 1 << 20


def free_bytes(folder: str | Path) -> int | None:
    """Bytes free to this user in ``folder``'s filesystem (None if unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Marker in the name of every staging file of :func:`atomic_output` (and the
#: COG writer's work file beside it): the stale-file clean-up removes only these.
STAGING_MARKER = "sarstack-staging"


def staging_prefix(path: str | Path) -> str:
    """Name prefix of ``path``'s staging files: ``.<name>.sarstack-staging-``."""
    return f".{Path(path).name}.{STAGING_MARKER}-"


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Staging files a killed run of this same output left behind (e.g. after kill -9):
    # only names that carry the writer's own marker, never a user's ".name.notes".
    for stale in path.parent.glob(f"{glob.escape(staging_prefix(path))}*"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=staging_prefix(path),
        suffix=suffix or "".join(path.suffixes) or ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file 0600; outputs get the mode the umask gives any new file.
    tmp_path.chmod(0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Atomically write a text file."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_rows(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Atomically write small tables (a list of dicts, same keys) as CSV, without pandas."""
    import csv

    if not rows:
        raise SarstackError(f"{path}: no rows to write")
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_columns(path: str | Path, columns: Mapping[str, Any]) -> None:
    """Atomically write a table given column by column (equal-length 1-D arrays
    or lists, possibly empty) as CSV, without pandas: the text pandas'
    ``to_csv`` writes (a float's shortest repr, integers as integers, NaN and
    None as an empty field, text and booleans as they are), so
    ``pandas.read_csv`` reads the same values back."""
    import csv
    import math

    import numpy as np

    def cells(v: Any) -> list[Any]:
        out = v if isinstance(v, list) else np.asarray(v).tolist()
        return [None if isinstance(x, float) and math.isnan(x) else x for x in out]

    cols = [cells(v) for v in columns.values()]
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(list(columns))
        w.writerows(zip(*cols, strict=True))


def read_columns(path: str | Path) -> dict[str, list[str]]:
    """A CSV written by :func:`write_columns` (or pandas) as its columns, each a
    list of its text (an empty field for NaN); a one-line error for a missing
    file or one without a header."""
    import csv

    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows = list(reader)
    except FileNotFoundError:
        raise SarstackError(f"{path}: no such file") from None
    except StopIteration:
        raise SarstackError(f"{path}: empty, no header row") from None
    return {name: [r[k] for r in rows] for k, name in enumerate(header)}


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """A CSV written by :func:`write_rows` (or pandas) as a list of dicts of strings."""
    import csv

    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise SarstackError(f"{path}: no such file") from None


def write_csv(path: str | Path, df: Any, **kwargs: Any) -> None:
    """Atomically write a pandas DataFrame as CSV (no index)."""
    kwargs.setdefault("index", False)
    with atomic_output(path) as tmp:
        df.to_csv(tmp, **kwargs)


def write_json(path: str | Path, obj: Any) -> None:
    import json

    write_text(path, json.dumps(obj, indent=1) + "\n")

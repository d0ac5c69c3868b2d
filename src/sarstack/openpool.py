"""Rasters held open from one chained stage to the next.

A chain of stages in one process (``sarstack A :: B :: C``, the fused jobs)
would open the same inputs once per stage: ``insar_select`` reads each ifg's
grid, ``insar_reference`` opens the stack to check the reference point and
``insar_invert`` opens it again and reads the reference pixel's tiles once
more. Inside :func:`keep_open` the datasets that :func:`acquire` hands out go
back to a pool on :func:`release` instead of being closed, and a later stage
asking for the same file gets one of them back, with the tiles that GDAL's
block cache still holds for it. Outside :func:`keep_open` (every stage run on
its own) :func:`acquire` opens and :func:`release` closes, as before.

A file is known by its path, inode, size and modification time, looked up
at every :func:`acquire`: a file replaced or rewritten since (an output the
chain wrote, an input changed in place) is opened afresh, never served from
the pool. A dataset is handed to one holder at a time (the pool's lists are
popped under a lock), so threads never share one. At most :data:`MAX_HELD`
datasets (a quarter of the file-descriptor limit) wait in the pool, the
least recently returned closed first.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Datasets the pool keeps open at most; None: a quarter of this process's
#: file-descriptor limit (256 under the usual soft limit of 1024), at most
#: 2048, so the stages' own open files always fit beside them.
MAX_HELD: int | None = None


def _max_held() -> int:
    if MAX_HELD is not None:
        return MAX_HELD
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY or soft <= 0:
            soft = 8192
    except (ImportError, OSError, ValueError):  # no such limit here
        soft = 1024
    return min(2048, soft // 4)


_lock = threading.Lock()
_pool: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
_held = 0
_depth = 0


def _key(path: str | Path) -> tuple[Any, ...] | None:
    """The file's identity, or None where it cannot be pooled (remote, missing)."""
    from sarstack import storage

    if storage.is_s3(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def acquire(path: str | Path) -> tuple[Any, tuple[Any, ...] | None]:
    """``(dataset, key)``: a pooled dataset of ``path`` when one waits, else
    :func:`sarstack.io.open_raster`'s; give both to :func:`release`."""
    from sarstack.io import open_raster

    global _held
    key = _key(path) if _depth else None
    if key is not None:
        with _lock:
            free = _pool.get(key)
            if free:
                _held -= 1
                return free.pop(), key
    return open_raster(path), key


def release(ds: Any, key: tuple[Any, ...] | None) -> None:
    """Return a dataset of :func:`acquire`: pooled inside :func:`keep_open`, else closed."""
    global _held
    if key is None or not _depth:
        ds.close()
        return
    evicted = []
    with _lock:
        _pool.setdefault(key, []).append(ds)
        _pool.move_to_end(key)
        _held += 1
        limit = _max_held()
        while _held > limit:
            old_key, old = next(iter(_pool.items()))
            evicted.append(old.pop(0))
            _held -= 1
            if not old:
                del _pool[old_key]
    for d in evicted:
        d.close()


def held() -> int:
    """Datasets waiting in the pool now."""
    return _held


@contextlib.contextmanager
def keep_open() -> Iterator[None]:
    """Pool the datasets of :func:`acquire` / :func:`release` until the
    outermost ``keep_open`` ends, then close them all."""
    global _depth, _held
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth:
            with _lock:
                dss = [d for v in _pool.values() for d in v]
                _pool.clear()
                _held = 0
            for d in dss:
                d.close()

"""The one block engine: the windows that tile a raster, the loop that reads
a block, calls a function on it and writes its results
(:func:`process_blocks`), and the read-ahead that overlaps a block's read with
the last block's compute. Memory follows ``block_shape``, not the scene.
:mod:`sarstack.io` re-exports all of it beside its readers and writers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from rasterio.windows import Window

from sarstack.errors import SarstackError

if TYPE_CHECKING:
    from sarstack.io import RasterWriter

T = TypeVar("T")
R = TypeVar("R")

def iter_blocks(
    shape: tuple[int, int], block_shape: Sequence[int], *, band_rows: int | None = None,
    row0: int = 0,
) -> Iterator[Window]:  # fmt: skip
    """Windows that tile a raster of ``shape``, in row-major order.

    Edge windows are clipped to the raster, so every pixel is visited once.
    With ``band_rows`` (the height of the source's tiles, when taller than a
    block) the same windows come band by band: the blocks whose first row lies
    in one band of ``band_rows`` source rows, column by column, top to bottom
    within a column. Consecutive blocks then share the source's tiles, so a
    tile is decompressed once while it is still cached, instead of once per
    block row when a whole row of tiles of every file does not fit the cache.
    ``row0``: the raster's first row in the source (a strip of a stack), so the
    bands follow the source's tiles.
    """
    rows, cols = shape
    br, bc = int(block_shape[0]), int(block_shape[1])
    if br < 1 or bc < 1:
        raise SarstackError(f"block_shape {tuple(block_shape)} must be positive")
    starts = [(r0, c0) for r0 in range(0, rows, br) for c0 in range(0, cols, bc)]
    if band_rows is not None and int(band_rows) > br:
        b = int(band_rows)
        starts.sort(key=lambda rc: ((rc[0] + int(row0)) // b, rc[1], rc[0]))
    for r0, c0 in starts:
        yield Window(c0, r0, min(bc, cols - c0), min(br, rows - r0))


class RowMajorSums:
    """Totals over a raster's blocks, added in row-major block order whatever
    order the blocks come in (band by band: :func:`iter_blocks` with
    ``band_rows``), so they are those of a row-major loop, bit for bit.

    ``add(window, *parts)`` holds a block's parts until every block before it
    in row-major order has been added; ``totals`` (arrays, added to in place)
    then take them in that order. Only blocks that arrived ahead of their turn
    are held: at most one band of blocks in band order.
    """

    def __init__(self, shape: tuple[int, int], block_shape: Sequence[int], *totals: Any) -> None:
        self._bc = int(block_shape[1])
        self._br = int(block_shape[0])
        self._n_cols = -(-int(shape[1]) // self._bc)
        self.totals = totals
        self._held: dict[int, tuple[Any, ...]] = {}
        self._next = 0

    def add(self, window: Window, *parts: Any) -> None:
        if len(parts) != len(self.totals):
            raise SarstackError(f"RowMajorSums: {len(parts)} parts for {len(self.totals)} totals")
        rank = int(window.row_off) // self._br * self._n_cols + int(window.col_off) // self._bc
        self._held[rank] = parts
        while self._next in self._held:
            for total, part in zip(self.totals, self._held.pop(self._next), strict=True):
                total += part
            self._next += 1


class BandBuffer:
    """A stack reader (:class:`sarstack.io.StackReader`) whose block reads come
    from whole bands of the stack's tiles.

    Blocks shorter than the tiles (64-row inversion blocks over 256-row
    tiles), visited band by band (:func:`iter_blocks` with ``band_rows``),
    each read a slice of the same tiles from every file: a GDAL call per
    file per block, the tiles kept in GDAL's cache in between. This reads the
    rows of the block's band (within ``rows``, the part of the stack read)
    under the block's columns once, one call per file, and hands each block
    of that column its rows as a fresh array (a block outlives the next
    read: it is solved while the next one is read). The same values as
    ``stack.read(window, dtype)``; memory: one band of the block's columns
    of every file. Reads without ``dtype``, blocks as tall as the tiles and
    windows across a band's edge go to the stack as they are.
    """

    def __init__(self, stack: Any, rows: tuple[int, int]) -> None:
        self.stack = stack
        self.paths = stack.paths
        self.rows = (int(rows[0]), int(rows[1]))
        self._key: tuple[Any, ...] | None = None
        self._band: Any = None

    def __enter__(self) -> BandBuffer:
        """Opens the stack (a ``with`` block around both)."""
        self.stack.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._band = self._key = None
        self.stack.__exit__(*exc)

    def __len__(self) -> int:
        return len(self.stack)

    @property
    def tile_rows(self) -> int:
        return int(self.stack.tile_rows)

    def read_one(self, k: int, window: Window | None = None) -> Any:
        return self.stack.read_one(k, window)

    def read(self, window: Window, dtype: Any = None, out: Any = None) -> Any:
        """``stack.read(window, dtype, out)`` from the band buffer: a fresh
        array in ``dtype``, or the rows copied into ``out`` (in its type)."""
        b = self.tile_rows
        r, h = int(window.row_off), int(window.height)
        top = max(r // b * b, self.rows[0])
        bottom = min(r // b * b + b, self.rows[1], int(self.stack.shape[0]))
        # into ``out``: the band as read (float32, float64 where a file is),
        # converted as the rows are copied (the same values, half the memory)
        kind = dtype if out is None else np.float64 if self.stack.any_float64 else np.float32
        if kind is None or h >= b or r < top or r + h > bottom:
            return self.stack.read(window, dtype, out)
        key = (top, bottom, int(window.col_off), int(window.width), np.dtype(kind))
        if key != self._key:
            self._band = self._key = None  # the last band freed before the next is read
            self._band = self.stack.read(
                Window(window.col_off, top, window.width, bottom - top), kind)
            self._key = key
        rows = self._band[:, r - top : r - top + h]
        if out is None:
            return rows.copy()
        out[...] = rows
        return out


def count_blocks(shape: tuple[int, int], block_shape: Sequence[int]) -> int:
    """How many windows :func:`iter_blocks` gives (for progress logs)."""
    br, bc = int(block_shape[0]), int(block_shape[1])
    return -(-int(shape[0]) // br) * -(-int(shape[1]) // bc)


def process_blocks(
    shape: tuple[int, int],
    block_shape: Sequence[int],
    func: Callable[..., Any],
    *,
    read: Callable[[Window], Any] | None = None,
    writers: Sequence[RasterWriter] = (),
    offset: tuple[int, int] = (0, 0),
    prefetch: bool = False,
    band_rows: int | None = None,
    row0: int = 0,
    commit: Callable[[Window, Any], None] | None = None,
    workers: int = 1,
) -> int:
    """The one block loop: ``func`` over the blocks of a raster of ``shape``.

    For each window of :func:`iter_blocks` (row-major; band by band of the
    source's tiles with ``band_rows`` and ``row0``), ``data = read(window)``
    when ``read`` is given, then ``func(window, data)`` (``func(window)``
    without ``read``). With ``writers``, ``func`` returns one array per writer
    (a single array for one writer), each written at the window moved by
    ``offset`` (rows, cols): a strip's blocks into the whole raster. With
    ``prefetch`` the next block is read while ``func`` works on this one
    (:func:`read_ahead`). Whatever else ``func`` does (sums, counts, its own
    writes) it keeps in its closure. Memory follows ``block_shape``. Returns
    the number of blocks.

    ``commit(window, result)``, when given, takes each block's result after
    ``func`` (its writes, its sums), in block order. With ``workers`` > 1
    ``func`` runs on that many threads, several blocks at a time (NumPy and
    GDAL release the GIL): it must then keep to its block, and everything
    shared goes through ``commit`` (or ``writers``), which still run one
    block at a time, in block order, on the calling thread. The results are
    those of one worker; at most ``workers`` + 2 blocks are held.
    """
    if workers > 1:
        return _process_blocks_threaded(shape, block_shape, func, read=read, writers=writers,
                                        offset=offset, band_rows=band_rows, row0=row0,
                                        commit=commit, workers=workers)  # fmt: skip
    wins = list(iter_blocks(shape, block_shape, band_rows=band_rows, row0=row0))
    if read is None:
        blocks: Iterator[Any] = iter([None] * len(wins))
    elif prefetch:
        blocks = read_ahead(read, wins)
    else:
        blocks = (read(w) for w in wins)
    dr, dc = int(offset[0]), int(offset[1])
    for win, data in zip(wins, blocks, strict=True):
        out = func(win) if read is None else func(win, data)
        _deliver(win, out, writers, (dr, dc), commit)
    return len(wins)


def _deliver(
    win: Window, out: Any, writers: Sequence[RasterWriter], offset: tuple[int, int],
    commit: Callable[[Window, Any], None] | None,
) -> None:  # fmt: skip
    """One block's result to ``commit`` and/or ``writers`` (see :func:`process_blocks`)."""
    if commit is not None:
        commit(win, out)
    if not writers:
        return
    outs = (out,) if len(writers) == 1 else tuple(out)
    if len(outs) != len(writers):
        raise SarstackError(f"process_blocks: {len(outs)} results for {len(writers)} writers")
    dr, dc = offset
    dest = win if (dr, dc) == (0, 0) else Window(win.col_off + dc, win.row_off + dr,
                                                  win.width, win.height)  # fmt: skip
    for w, arr in zip(writers, outs, strict=True):
        w.write(arr, dest)


def _process_blocks_threaded(
    shape: tuple[int, int], block_shape: Sequence[int], func: Callable[..., Any], *,
    read: Callable[[Window], Any] | None, writers: Sequence[RasterWriter],
    offset: tuple[int, int], band_rows: int | None, row0: int,
    commit: Callable[[Window, Any], None] | None, workers: int,
) -> int:  # fmt: skip
    """:func:`process_blocks` with ``func`` on ``workers`` threads: the blocks
    are read in order on the calling thread while the workers compute the
    blocks before them, and delivered (``commit``, ``writers``) in order on
    the calling thread: at most ``workers`` blocks computing and one read."""
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    wins = list(iter_blocks(shape, block_shape, band_rows=band_rows, row0=row0))
    off = (int(offset[0]), int(offset[1]))
    pending: deque[tuple[Window, Future[Any]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="block") as pool:
        try:
            for win in wins:
                if read is None:
                    fut = pool.submit(func, win)
                else:
                    fut = pool.submit(func, win, read(win))
                pending.append((win, fut))
                if len(pending) >= workers:
                    done, fut = pending.popleft()
                    _deliver(done, fut.result(), writers, off, commit)
            while pending:
                done, fut = pending.popleft()
                _deliver(done, fut.result(), writers, off, commit)
        except BaseException:
            for _, fut in pending:
                fut.cancel()
            raise
    return len(wins)


def read_ahead(read: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
    """``read(item)`` for each item in order, the next one read while the caller
    works on the current one.

    The reads run one at a time on one helper thread (GDAL's reads and
    decompression release the GIL), so a block loop's reading overlaps its
    computing; at most two results are held. An exception from ``read`` is
    raised where its result is taken.
    """
    if len(items) < 2:
        yield from (read(i) for i in items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        nxt = pool.submit(read, items[0])
        for k in range(len(items)):
            cur = nxt
            if k + 1 < len(items):
                # Submitted before the current result is handed out: the next
                # read starts while the caller computes on this one.
                nxt = pool.submit(read, items[k + 1])
            try:
                yield cur.result()
            except GeneratorExit:
                nxt.cancel()
                raise

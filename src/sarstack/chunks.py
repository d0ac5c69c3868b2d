"""How many chunk jobs a scattered stage runs (config ``scatter``).

``scatter: auto`` sizes the jobs to the work and never to ``--cores``: a stage's
chunk count follows from its number of items (scenes, pairs, block rows) and
their size alone, so the chunk files of a finished run keep their names
whatever ``--cores`` a later run is given (``--cores 1 --report`` after a
``--cores 32`` run reruns nothing). A number fixes the count. Never more chunks
than items; the stages' results are identical for every count (tested).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sarstack.errors import SarstackError

#: At most this many chunk jobs per stage under ``auto``.
MAX_CHUNKS = 64
#: Pixels of work per chunk job under ``auto``, by stage: about 5-12 s of work
#: each at real size on one core, so job start-up (~1 s of imports) stays small;
#: a small stack is one job. The flatten and xcorr jobs spread their scenes and
#: tile bands over their threads, so fewer, fuller jobs can still fill a large
#: node (measured on the 2-core VM only).
CHUNK_PX = {
    "flatten": 2**28,  # scene pixels per rtc_superset/rtc_flatten job (16 scenes of 4096^2)
    "xcorr": 3 * 2**26,  # pair pixels per rtc_xcorr job (12 pairs of 4096^2)
    # pixels x interferograms x INVERT_COST per insar_invert strip job
    "invert": 3 * 2**27,
}

#: The inversion's work per pixel and interferogram, relative to plain L2
#: (one product with the network's pseudo-inverse per block). L1 and the
#: weighted or censored solvers iterate or solve pixel by pixel: 3, with
#: which their strips are those of 2**27 pixels x ifgs each, as before this
#: weight. A plain L2 strip takes three times the pixels: 1024² x 174 ifgs is
#: one job (the fused chain, insar_small), 2048² two (2026-12-05: strips of
#: 1024² x 174 took 2.7 s, a sixth of which was the job's start-up).
INVERT_COST = {"L2": 1, "per_pixel": 3}


def invert_cost(method: str, per_pixel: bool) -> int:
    """:data:`INVERT_COST` of an inversion: ``per_pixel`` for weights
    (``insar.weighting: correlation``) or censoring (conncomp rasters)."""
    return INVERT_COST["L2" if method == "L2" and not per_pixel else "per_pixel"]


def n_chunks(scatter: int | str, n_items: int, px_per_item: int, stage: str) -> int:
    """Chunk jobs of ``stage`` for ``n_items`` items of ``px_per_item`` pixels each."""
    if scatter == "auto":
        n = min(MAX_CHUNKS, -(-int(n_items) * int(px_per_item) // CHUNK_PX[stage]))
    else:
        n = int(scatter)
    return max(1, min(n, int(n_items)))


def chunk_labels(scatter: int | str, n_items: int, px_per_item: int, stage: str) -> list[str]:
    """The chunk labels ``I-of-N`` of a stage (see :func:`chunk_items`)."""
    n = n_chunks(scatter, n_items, px_per_item, stage)
    return [f"{i}-of-{n}" for i in range(1, n + 1)]


def chunk_slices(n_items: int, n_chunks: int) -> list[tuple[int, int]]:
    """Split ``range(n_items)`` into ``n_chunks`` contiguous, balanced slices.

    The first ``n_items % n_chunks`` slices hold one item more; ``n_chunks``
    larger than ``n_items`` is reduced to ``n_items`` (no empty chunk).

    Returns
    -------
    list of (start, stop)
        Half-open index ranges, in order, covering every item once.
    """
    if n_items < 1:
        return []
    n = max(1, min(int(n_chunks), n_items))
    size, extra = divmod(n_items, n)
    out, start = [], 0
    for k in range(n):
        stop = start + size + (1 if k < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def parse_chunk(label: str) -> tuple[int, int]:
    """``"2-of-5"`` → ``(2, 5)`` (1-based chunk number, number of chunks)."""
    m = re.fullmatch(r"(\d+)-of-(\d+)", str(label))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise SarstackError(f"chunk {label!r} is not 'I-of-N' with 1 <= I <= N")
    return int(m.group(1)), int(m.group(2))


def chunk_items(items: Sequence, label: str) -> list:
    """The items of chunk ``label`` (``"I-of-N"``) of a sequence, per :func:`chunk_slices`."""
    i, n = parse_chunk(label)
    slices = chunk_slices(len(items), n)
    if i > len(slices):
        raise SarstackError(f"chunk {label}: only {len(slices)} chunks for {len(items)} items")
    s0, s1 = slices[i - 1]
    return list(items[s0:s1])


def chunk_parts(n_items: int, n_parts: int, label: str) -> list[tuple[int, range]]:
    """Chunk ``label`` (``"I-of-N"``) of ``n_items`` items of ``n_parts`` parts
    each (e.g. pairs of tile rows): ``(item, parts)`` in order. The
    ``n_items * n_parts`` parts are split as :func:`chunk_slices` splits
    items, so the chunks hold the same work to one part, an item's parts
    possibly in two chunks (N is at most ``n_items``, as for :func:`chunk_items`).
    The first chunk of 23 pairs of 8 tile rows in two: pairs 0-10 and rows 0-3
    of pair 11 (12 and 11 whole pairs took 9.8 and 8.9 s at 4096^2)."""
    i, n = parse_chunk(label)
    if i > max(1, min(n, n_items)):
        raise SarstackError(f"chunk {label}: only {min(n, n_items)} chunks for {n_items} items")
    slices = chunk_slices(n_items * n_parts, min(n, n_items))
    if not slices:
        return []
    u0, u1 = slices[i - 1]
    out = []
    for item in range(u0 // n_parts, -(-u1 // n_parts)):
        lo, hi = max(u0, item * n_parts), min(u1, (item + 1) * n_parts)
        out.append((item, range(lo - item * n_parts, hi - item * n_parts)))
    return out

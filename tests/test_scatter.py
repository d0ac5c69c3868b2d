"""Scatter-gather: every number of chunk jobs gives identical outputs."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest

from sarstack import chunks, dates, io

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow


def test_chunk_slices_cover_items_once():
    for n_items in range(1, 12):
        for n in range(1, 15):
            s = chunks.chunk_slices(n_items, n)
            assert len(s) == min(n, n_items)
            assert [i for a, b in s for i in range(a, b)] == list(range(n_items))
            sizes = [b - a for a, b in s]
            assert max(sizes) - min(sizes) <= 1
    assert chunks.chunk_items(list("abcdefg"), "2-of-3") == list("de")  # sizes 3, 2, 2
    with pytest.raises(dates.SarstackError):
        chunks.parse_chunk("4-of-3")


def test_chunk_parts_cover_every_part_once_evenly():
    """Items of several parts (pairs of tile rows) are split by part: every
    (item, part) once, in order, the chunks' sizes at most one part apart."""
    for n_items in range(1, 9):
        for n_parts in range(1, 6):
            for n in range(1, 10):
                m = min(n, n_items)
                shares = [chunks.chunk_parts(n_items, n_parts, f"{i}-of-{n}") for i in range(1, m + 1)]
                units = [(k, r) for share in shares for k, rows in share for r in rows]
                assert units == [(k, r) for k in range(n_items) for r in range(n_parts)]
                sizes = [sum(len(rows) for _, rows in share) for share in shares]
                assert max(sizes) - min(sizes) <= 1
    # 23 pairs of 8 tile rows in two jobs: 92 rows each, pair 11 shared.
    first, second = chunks.chunk_parts(23, 8, "1-of-2"), chunks.chunk_parts(23, 8, "2-of-2")
    assert first[-1] == (11, range(0, 4)) and second[0] == (11, range(4, 8))
    with pytest.raises(dates.SarstackError):
        chunks.chunk_parts(2, 8, "3-of-3")


def test_every_scatter_gives_identical_outputs(small_workflow_run):
    one, three = small_workflow_run(1), small_workflow_run(3)
    # The chunk jobs really were 1 and 3 (7 pairs, 4 strips of 16 rows).
    assert sorted(p.name for p in (three / "rtc" / "xcorr").glob("*.csv")) == [
        "1-of-3.csv", "2-of-3.csv", "3-of-3.csv"]
    assert len(list((three / "benchmarks" / "insar").glob("invert_*-of-3.tsv"))) == 3
    # Three strips: select and reference ran as one insar_head job, gather,
    # velocity and plots as one insar_tail job, around the strips.
    jobs = {p.stem for p in (three / "benchmarks" / "insar").glob("*.tsv")}
    assert {"head", "tail"} <= jobs and not jobs & {"select", "reference", "gather", "velocity"}
    assert [p.name for p in (one / "rtc" / "xcorr").glob("*.csv")] == ["1-of-1.csv"]
    # One strip: the InSAR chain ran as the one insar_small job, against three strips.
    assert [p.name for p in (one / "benchmarks" / "insar").glob("*.tsv")] == ["small.tsv"]
    assert not (one / "insar" / "strips").exists() or not any((one / "insar" / "strips").iterdir())
    for f in ("offsets.csv", "pairs.csv", "tiles.csv", "summary.csv", "dates.csv",
              "dates_tiles.csv", "date_events.csv", "tiles.geojson", "tile_vectors.geojson"):
        assert filecmp.cmp(one / "rtc" / f, three / "rtc" / f, shallow=False), f
    for f in ("insar/ifg_residuals.csv", "insar/closure_triangles.csv", "quality/dates.csv"):
        assert filecmp.cmp(one / f, three / f, shallow=False), f
    rasters = sorted(p.relative_to(one / "insar") for p in (one / "insar").rglob("*.tif"))
    assert len(rasters) > 20 and any("residuals" in str(p) for p in rasters)
    for rel in rasters:
        a, b = io.read_band(one / "insar" / rel), io.read_band(three / "insar" / rel)
        np.testing.assert_array_equal(a, b, err_msg=str(rel))
    assert filecmp.cmp(one / "insar" / "reference_point.txt", three / "insar" / "reference_point.txt")


def test_auto_chunks_follow_the_work_not_the_cores():
    # A small stack is one job per stage; 24 dates of 4096^2 are 2 flatten jobs.
    assert chunks.n_chunks("auto", 21, 100 * 100, "flatten") == 1
    assert chunks.n_chunks("auto", 24, 4096**2, "flatten") == 2
    assert chunks.n_chunks("auto", 23, 4096**2, "xcorr") == 2
    assert chunks.n_chunks("auto", 12, 8192**2, "flatten") == 3
    # Never more jobs than items, never more than MAX_CHUNKS, at least one.
    assert chunks.n_chunks("auto", 12, 8192**2, "xcorr") == 4
    assert chunks.n_chunks("auto", 5000, 8192**2, "xcorr") == chunks.MAX_CHUNKS
    assert chunks.n_chunks("auto", 0, 10, "invert") == 1
    # A number fixes the count (capped at the items).
    assert chunks.n_chunks(8, 5, 4096**2, "xcorr") == 5
    assert chunks.chunk_labels(3, 7, 1, "xcorr") == ["1-of-3", "2-of-3", "3-of-3"]
    # The function has no notion of cores at all: its labels are all a later run sees.
    import inspect

    assert "cores" not in inspect.signature(chunks.n_chunks).parameters

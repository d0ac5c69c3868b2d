"""What a run produced, in a few lines for the terminal.

The workflow's ``onsuccess`` handler prints these lines at the end of every run
that wrote a branch's results: per RTC stack its verdict, pairs measured and the
largest offset against the requirement; for the InSAR branch the reference
point, the dates and interferograms used, the velocity range of the
well-constrained pixels and the injection-recovery (insar.injection); and where the tables, plots and report are. Only files
written by this run (modified at or after ``since``) are summarised, so a rerun
that did nothing, or stopped early (``--until``), never repeats an old verdict
as if it were new.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

from sarstack import stagefiles

#: Stacks listed one line each; more are counted and left to stacks_summary.csv.
MAX_STACK_LINES = 20
#: Tiles smaller than this (pixels a side) are warned about. Measured on the
#: demo stack (531 x 526 px, 6 dates, nearest:1; per-tile error of ``ok`` tiles
#: against the truth): 16 px tiles 0.36 px RMS (max 2.0 px, 3 % not ok), 24 px
#: 0.26, 32 px 0.19, 48 px 0.13, 64 px 0.09 px RMS. See README.
MIN_TILE_PX = 32
#: Velocity range quoted over these percentiles of the well-constrained pixels.
VELOCITY_PERCENTILES = (2.0, 98.0)


def _fresh(path: Path, since: float | None) -> bool:
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return False
    return since is None or mtime >= since - 1.0


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _num(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _metres(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} m"


def tile_size_warning(grid_json: Path, tiles: tuple[int, int], key: str = "rtc.tiles") -> str | None:
    """A warning when ``tiles`` cut the union grid into tiles under MIN_TILE_PX a side."""
    height, width = stagefiles.read_grid_size(grid_json)
    th, tw = height // int(tiles[0]), width // int(tiles[1])
    if min(th, tw) >= MIN_TILE_PX:
        return None
    rows = max(1, height // MIN_TILE_PX)
    cols = max(1, width // MIN_TILE_PX)
    return (
        f"warning: {key} {list(tiles)} cuts the {height} x {width} px grid into"
        f" tiles of {th} x {tw} px, under the {MIN_TILE_PX} px that correlate reliably:"
        f" set {key} to [{min(rows, int(tiles[0]))}, {min(cols, int(tiles[1]))}] or fewer"
    )


def rtc_stack_line(stack_dir: Path, name: str) -> str:
    """One line for one stack from its summary.csv."""
    s = _read_rows(stack_dir / "summary.csv")[0]
    label = f"rtc {name}" if name else "rtc"
    req = _num(s.get("requirement_m"))
    req_text = "no requirement set (rtc.requirement_m)" if math.isnan(req) else f"requirement {req:g} m"
    line = (
        f"{label}: verdict {s.get('verdict', '?')}; {s.get('n_pairs_ok', '?')}/"
        f"{s.get('n_pairs', '?')} pairs measured; max offset {_metres(_num(s.get('max_offset_m')))}"
        f" ({req_text})"
    )
    failed = s.get("failed_criteria", "")
    if failed:  # which criterion: a pair beyond the requirement, or a date drifted beyond it
        line += f"; failed: {failed}"
    if "dates" in failed.split():
        line += (
            f" (date {s.get('max_date_offset_date')} is {_metres(_num(s.get('max_date_offset_m')))}"
            f" +- {_metres(_num(s.get('max_date_offset_sd_m')))} from the first date)"
        )
    events = stack_dir / "date_events.csv"
    if events.exists():
        found = _read_rows(events)
        if found:
            line += "; events: " + ", ".join(
                f"{e['kind']} {e['date']} ({_metres(math.hypot(_num(e['east_m']), _num(e['north_m'])))}"
                f"{', ' + e['note'] if e['kind'] == 'step' else ''})"
                for e in found
            )
    if "injection_n_dates" in s:  # rtc.injection
        if s.get("injection_note"):
            return f"{line}; injection-recovery: {s['injection_note']}"
        within = _num(s.get("injection_within_requirement"))
        line += (
            f"; injection-recovery over {s['injection_n_dates']} dates: RMS error"
            f" {_num(s.get('injection_rms_px')):.3f} px ({_metres(_num(s.get('injection_rms_m')))}),"
            f" largest {_num(s.get('injection_max_px')):.3f} px"
        )
        if not math.isnan(within):
            line += f", {within:.0%} of dates within the requirement"
    return line


def rtc_lines(rtc_dir: Path, stacks: Mapping[str, str], tiles: tuple[int, int] | None,
              since: float | None) -> list[str]:
    """The RTC part: one line per stack written by this run, the tile warning, where things are.

    ``stacks`` maps each stack's sub-folder ("" for the one stack of rtc.inputs,
    "NAME/" for each of rtc.stacks) to its name.
    """
    lines: list[str] = []
    fresh = [(s, n) for s, n in stacks.items() if _fresh(rtc_dir / s / "summary.csv", since)]
    if not fresh:
        return lines
    for s, n in fresh[:MAX_STACK_LINES]:
        lines.append(rtc_stack_line(rtc_dir / s, n))
        if tiles is not None and (rtc_dir / s / "grid.json").exists():
            warn = tile_size_warning(rtc_dir / s / "grid.json", tiles)
            if warn:
                lines.append(f"  {warn}")
    if len(fresh) > MAX_STACK_LINES:
        lines.append(f"... and {len(fresh) - MAX_STACK_LINES} more stacks")
    overall = rtc_dir / "stacks_overall.csv"
    if len(stacks) > 1 and _fresh(overall, since):
        o = _read_rows(overall)[0]
        lines.append("rtc across stacks: " + ", ".join(f"{k} {v}" for k, v in o.items()))
    first = fresh[0][0]
    where = f"{rtc_dir}/stacks_summary.csv" if len(stacks) > 1 else f"{rtc_dir}/{first}summary.csv"
    lines.append(f"rtc tables: {where}; plots: {rtc_dir}/{first or ''}plots/")
    return lines


def _velocity_range(velocity: Path, std: Path) -> tuple[float, float, int, int, str]:
    """(low, high) percentiles of the velocity over pixels with a finite std, how
    many such pixels, how many have a velocity but no std, and the units. Read
    decimated to at most ~1024 rows, so memory does not follow the scene."""
    import numpy as np
    import rasterio

    with rasterio.open(velocity) as v, rasterio.open(std) as s:
        step = max(1, math.ceil(v.height / 1024))
        shape = (max(1, v.height // step), max(1, v.width // step))
        vel = v.read(1, out_shape=shape, masked=True).astype("float64").filled(np.nan)
        sd = s.read(1, out_shape=shape, masked=True).astype("float64").filled(np.nan)
        units = (v.units[0] if v.units and v.units[0] else "") or v.tags().get("units", "")
    has_v = np.isfinite(vel)
    good = has_v & np.isfinite(sd)
    if not good.any():
        return math.nan, math.nan, 0, int(has_v.sum()), units
    lo, hi = np.percentile(vel[good], VELOCITY_PERCENTILES)
    return float(lo), float(hi), int(good.sum()), int((has_v & ~good).sum()), units


def reference_sensitivity_line(raster: Path, table: Path) -> str:
    """The line of insar.reference_sensitivity: the offset spread (the standard
    deviation, ddof 1, of the K + 1 maps' shifts) and the shape part's median and
    95th percentile (read decimated, as the velocity range)."""
    import numpy as np
    import rasterio

    rows = _read_rows(table)
    shifts = [v for v in (_num(r.get("shift")) for r in rows) if not math.isnan(v)]
    spread = float(np.std(shifts, ddof=1)) if len(shifts) >= 2 else math.nan
    units = rows[0].get("units", "") if rows else ""
    with rasterio.open(raster) as src:
        step = max(1, math.ceil(src.height / 1024))
        shape = (max(1, src.height // step), max(1, src.width // step))
        sd = src.read(1, out_shape=shape, masked=True).astype("float64").filled(np.nan)
    fin = sd[np.isfinite(sd)]
    p50, p95 = np.percentile(fin, [50, 95]) if fin.size else (math.nan, math.nan)
    how = rows[-1].get("method", "") if rows else ""
    return (f"insar reference sensitivity ({len(rows) - 1} alternative points, {how}): offset"
            f" spread {spread:.3g} {units} (the whole map could shift by this); shape spread"
            f" median {p50:.3g}, 95th percentile {p95:.3g} {units} ({raster.name})")


def insar_lines(insar_dir: Path, since: float | None) -> list[str]:
    """The InSAR part: reference point, dates and ifgs used, velocity range, where things are."""
    velocity = insar_dir / "velocity.tif"
    if not _fresh(velocity, since):
        return []
    lines = []
    ref = stagefiles.read_reference_point(insar_dir / "reference_point.txt")
    ifgs = stagefiles.read_ifg_rows(insar_dir / "ifgs.csv")
    used = [r for r in ifgs if r.get("used", "True") == "True"]
    dates = {r["reference_date"] for r in used} | {r["secondary_date"] for r in used}
    lines.append(
        f"insar: reference point row {ref[0]}, col {ref[1]}; {len(dates)} dates,"
        f" {len(used)} of {len(ifgs)} interferograms used"
    )
    lo, hi, n_good, n_no_std, units = _velocity_range(velocity, insar_dir / "velocity_std.tif")
    p0, p1 = VELOCITY_PERCENTILES
    if n_good:
        text = (f"insar velocity ({p0:g}-{p1:g} % of {n_good} well-constrained pixels):"
                f" {lo:.3g} to {hi:.3g} {units}")
    else:
        text = "insar velocity: no pixel has enough dates for a standard error"
    if n_no_std:
        text += f"; {n_no_std} pixels with too few dates for a std left out"
    lines.append(text)
    injection = insar_dir / "injection.csv"
    if _fresh(injection, since):  # insar.injection
        lines += [insar_injection_line(r) for r in _read_rows(injection) if r["coherence_bin"] == "all"]
    sens = insar_dir / "reference_sensitivity.csv"
    if _fresh(sens, since) and (insar_dir / "reference_sensitivity.tif").exists():
        lines.append(reference_sensitivity_line(insar_dir / "reference_sensitivity.tif", sens))
    lines.append(f"insar rasters: {insar_dir}/velocity.tif; plots: {insar_dir}/plots/")
    return lines


def insar_injection_line(row: Mapping[str, str]) -> str:
    """The injection-recovery of one quantity, from its ``all`` row of injection.csv."""
    name, units = row["quantity"], row["units"]
    if int(row["n_px"]) == 0:
        return f"insar injection-recovery of the {name}: nothing measurable (no pixel in both runs)"
    return (
        f"insar injection-recovery of the {name} (bowl of peak {_num(row['injected_peak']):.3g}"
        f" {units}) over {row['n_px']} pixels: RMS error {_num(row['rms_error']):.3g},"
        f" largest {_num(row['max_abs_error']):.3g} {units}; {_num(row['within_std']):.0%} within"
        f" the reported std, {_num(row['within_3std']):.0%} within 3 std"
    )


def run_summary(out_dir: Path, stacks: Mapping[str, str], tiles: tuple[int, int] | None,
                insar: bool, since: float | None = None) -> list[str]:
    """Every line of the end-of-run summary (empty when this run wrote no result)."""
    out_dir = Path(out_dir)
    lines = rtc_lines(out_dir / "rtc", stacks, tiles, since) if stacks else []
    if insar:
        lines += insar_lines(out_dir / "insar", since)
    if lines:
        lines = ["", "=== sarstack summary ===", *lines,
                 f"HTML report: add --report {out_dir}/report.html to this command"]
    return lines

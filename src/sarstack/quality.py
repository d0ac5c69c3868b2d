"""One per-date quality table for both branches (issue 27 item 6).

One row per date seen in either branch (and per RTC stack with
``rtc.stacks``): the RTC per-date offset with its 1-sigma and the events that
start there; the InSAR interferograms that use the date, their residual RMS
over the scene and the share of their triangles' pixels with a non-zero
closure; and ``suggest_exclude`` with the reason, for network editing
(``insar.exclude_dates``).

A date is suggested for exclusion when its residual RMS is far above the
other dates' (more than ``residual_mads`` scaled MADs above their median:
an acquisition the network cannot fit, e.g. a bad unwrapping or strong
atmosphere), or when more than ``closure_fraction`` of its triangles'
measurable pixels have a non-zero closure (unwrapping errors).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: Columns of quality/dates.csv.
COLUMNS = ["date", "rtc_stack", "rtc_east_m", "rtc_north_m", "rtc_east_sd_m", "rtc_north_sd_m",
           "rtc_offset_m", "rtc_events", "insar_n_ifgs", "insar_residual_rms_rad",
           "insar_closure_fraction", "suggest_exclude", "reason"]  # fmt: skip


def insar_dates(
    ifgs: pd.DataFrame, residuals: pd.DataFrame, triangles: pd.DataFrame
) -> pd.DataFrame:
    """Per date of the used ifgs: ``insar_n_ifgs``, ``insar_residual_rms_rad``
    (the median over its ifgs of their RMS residual: a bad date spoils all
    its ifgs, a neighbour only the one it shares with it) and
    ``insar_closure_fraction`` (non-zero over measurable closure pixels of the
    triangles with one of its ifgs)."""
    used = ifgs[ifgs["used"].astype(str).str.lower().isin(["true", "1"])]
    keys = set(zip(used["reference_date"], used["secondary_date"], strict=True))
    res = residuals[[(r, s) in keys for r, s in zip(residuals["reference_date"],
                                                     residuals["secondary_date"], strict=True)]]  # fmt: skip
    dates = sorted(set(used["reference_date"]) | set(used["secondary_date"]))
    rows = []
    for d in dates:
        mine = res[(res["reference_date"] == d) | (res["secondary_date"] == d)]
        rms = mine["residual_rms_rad"].to_numpy(float)
        tri = triangles[np.logical_or.reduce([triangles[c].str.contains(d, regex=False)
                                              for c in ("ifg_a", "ifg_b", "ifg_c")])]  # fmt: skip
        measured = int(tri["measured_px"].sum())
        rows.append({
            "date": d,
            "insar_n_ifgs": int(((used["reference_date"] == d) | (used["secondary_date"] == d)).sum()),
            "insar_residual_rms_rad": float(np.nanmedian(rms)) if np.isfinite(rms).any() else np.nan,
            "insar_closure_fraction": int(tri["nonzero_px"].sum()) / measured if measured else np.nan,
        })  # fmt: skip
    return pd.DataFrame(rows)


def rtc_dates(stack: str, dates: pd.DataFrame, events: pd.DataFrame | None) -> pd.DataFrame:
    """Per date of one RTC stack: its offset from the first date (m), 1-sigma,
    horizontal offset and the events that start at it (``kind: note``)."""
    out = pd.DataFrame({
        "date": dates["date"].astype(str), "rtc_stack": stack,
        "rtc_east_m": dates["east_m"], "rtc_north_m": dates["north_m"],
        "rtc_east_sd_m": dates["east_sd_m"], "rtc_north_sd_m": dates["north_sd_m"],
        "rtc_offset_m": np.hypot(dates["east_m"].to_numpy(float), dates["north_m"].to_numpy(float)),
    })  # fmt: skip
    ev: dict[str, list[str]] = {}
    for r in events.itertuples() if events is not None else ():
        ev.setdefault(str(r.date), []).append(f"{r.kind}: {r.note}")
    out["rtc_events"] = [" | ".join(ev.get(d, [])) for d in out["date"]]
    return out


def date_table(
    rtc: Mapping[str, tuple[pd.DataFrame, pd.DataFrame | None]],
    insar: pd.DataFrame | None,
    *,
    residual_mads: float,
    closure_fraction: float,
) -> pd.DataFrame:
    """quality/dates.csv from the RTC stacks' tables (name -> (dates.csv,
    date_events.csv)) and :func:`insar_dates` (None without InSAR), with
    ``suggest_exclude`` and ``reason`` (from the InSAR columns)."""
    parts = [rtc_dates(name, d, e) for name, (d, e) in rtc.items()]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"date": []})
    if insar is not None and len(insar):
        table = table.merge(insar, on="date", how="outer") if len(table) else insar.copy()
    table = table.reindex(columns=COLUMNS)
    table["insar_n_ifgs"] = table["insar_n_ifgs"].astype("Int64")
    suggest = np.zeros(len(table), bool)
    reasons: list[list[str]] = [[] for _ in range(len(table))]
    rms = table["insar_residual_rms_rad"].to_numpy(float)
    per_date = insar["insar_residual_rms_rad"].to_numpy(float) if insar is not None else np.zeros(0)
    per_date = per_date[np.isfinite(per_date)]
    if len(per_date) >= 5:
        med = float(np.median(per_date))
        mad = 1.4826 * float(np.median(np.abs(per_date - med)))
        limit = med + residual_mads * max(mad, 1e-3 * med, 1e-12)
        for k in np.flatnonzero(rms > limit):
            suggest[k] = True
            reasons[k].append(f"residual RMS {rms[k]:.3g} rad, above {limit:.3g} (median {med:.3g}"
                              f" + {residual_mads:g} MAD)")  # fmt: skip
    frac = table["insar_closure_fraction"].to_numpy(float)
    for k in np.flatnonzero(frac > closure_fraction):
        suggest[k] = True
        reasons[k].append(f"non-zero closure in {frac[k]:.0%} of its triangles' pixels")
    table["suggest_exclude"] = suggest
    table["reason"] = ["; ".join(r) for r in reasons]
    return table.sort_values(["date", "rtc_stack"], na_position="first").reset_index(drop=True)

"""Many stacks in one run: each stack's outcome and the stacks summary."""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sarstack.rtc.aggregate import STATUS_OK

if TYPE_CHECKING:  # pandas is imported where tables are built: stages without tables start faster
    import pandas as pd

log = logging.getLogger(__package__)


class StackOutcome(str, enum.Enum):
    """How one stack of a many-stack run ended (``status`` in stacks_summary.csv)."""

    OK = "ok"  # the branch completed; its verdict is in summary.csv
    FAILED = "failed"  # a job of the stack failed; ``error`` says which and why
    NOT_RUN = "not_run"  # not finished: the run stopped at another stack's error


@dataclass(frozen=True)
class StackResult:
    """What one stack left behind: its tables (None where not written) or its error."""

    name: str
    outcome: StackOutcome
    summary: pd.DataFrame | None = None
    pairs: pd.DataFrame | None = None
    scenes: pd.DataFrame | None = None
    error: str = ""
    absolute: pd.DataFrame | None = None  # absolute.csv, with point targets


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if len(values) else float("nan")


def _stack_row(st: StackResult, requirement_m: float | None, with_absolute: bool) -> dict[str, object]:
    """One stack's row of :func:`summarize_stacks`."""
    nan = float("nan")
    row: dict[str, object] = {"stack": st.name, "status": st.outcome.value}
    scenes = st.scenes if st.outcome is StackOutcome.OK else None
    pairs = st.pairs if st.outcome is StackOutcome.OK else None
    summary = st.summary if st.outcome is StackOutcome.OK else None
    dates = sorted(scenes["date"].astype(str)) if scenes is not None else []
    row["n_dates"] = len(dates) if scenes is not None else nan
    row["first_date"] = dates[0] if dates else ""
    row["last_date"] = dates[-1] if dates else ""
    if pairs is not None and summary is not None:
        ok = pairs[pairs["status"] == STATUS_OK]
        east, north = ok["east_m"].to_numpy(float), ok["north_m"].to_numpy(float)
        within = (
            int(ok["passes"].astype(str).str.lower().eq("true").sum())
            if requirement_m is not None and "passes" in ok
            else 0
        )
        row.update(
            n_pairs=len(pairs),
            n_pairs_ok=len(ok),
            n_pairs_within=within if requirement_m is not None else nan,
            fraction_pairs_within=within / len(ok) if len(ok) and requirement_m is not None else nan,
            east_mean_m=float(east.mean()) if len(ok) else nan,
            north_mean_m=float(north.mean()) if len(ok) else nan,
            east_rms_m=_rms(east),
            north_rms_m=_rms(north),
            max_offset_m=float(np.hypot(east, north).max()) if len(ok) else nan,
            verdict=str(summary["verdict"].iloc[0]),
        )
        judged = summary.get("n_dates_judged")  # summary.csv of rtc_dates' criterion
        if judged is not None and requirement_m is not None:
            nj, nw = int(judged.iloc[0]), int(summary["n_dates_within"].iloc[0])
            row.update(n_dates_judged=nj, n_dates_within=nw,
                       fraction_dates_within=nw / nj if nj else nan)  # fmt: skip
    else:
        row.update(n_pairs=nan, n_pairs_ok=nan, n_pairs_within=nan, fraction_pairs_within=nan,
                   east_mean_m=nan,
                   north_mean_m=nan, east_rms_m=nan, north_rms_m=nan, max_offset_m=nan,
                   verdict="not_measurable")
    row["requirement_m"] = requirement_m if requirement_m is not None else nan
    row["error"] = st.error
    if with_absolute:
        a = st.absolute if st.outcome is StackOutcome.OK else None
        whole = a[a["scope"] == "stack"].iloc[0] if a is not None else None
        row.update(
            absolute_n_ok=int(a.loc[a["scope"] == "scene", "n_ok"].sum()) if a is not None else nan,
            absolute_east_mean_m=float(whole["east_mean_m"]) if whole is not None else nan,
            absolute_north_mean_m=float(whole["north_mean_m"]) if whole is not None else nan,
            absolute_verdict=str(whole["verdict"]) if whole is not None else "not_measurable",
        )
    return row


def _overall_row(
    per_stack: pd.DataFrame, requirement_m: float | None, min_fraction: float | None
) -> pd.DataFrame:
    """The one-row overall table of :func:`summarize_stacks`."""
    import pandas as pd

    nan = float("nan")
    done = per_stack[per_stack["status"] == StackOutcome.OK.value]
    n_ok_pairs = int(done["n_pairs_ok"].sum()) if len(done) else 0
    n_within = int(done["n_pairs_within"].sum()) if len(done) and requirement_m is not None else 0
    n_pass = int((per_stack["verdict"] == "pass").sum())
    n_judged = int(done["n_dates_judged"].sum()) if len(done) else 0
    n_dates_within = int(done["n_dates_within"].sum()) if len(done) else 0
    frac_dates = n_dates_within / n_judged if n_judged and requirement_m is not None else nan
    need = min_fraction if min_fraction is not None else 1.0
    calval = "" if math.isnan(frac_dates) else ("yes" if frac_dates >= need else "no")
    overall = pd.DataFrame([{
        "n_stacks": len(per_stack),
        "n_stacks_ok": len(done),
        "n_stacks_pass": n_pass,
        "fraction_stacks_pass": n_pass / len(per_stack) if len(per_stack) and requirement_m is not None else nan,
        "n_pairs_ok": n_ok_pairs,
        "n_pairs_within": n_within if requirement_m is not None else nan,
        "fraction_pairs_within": n_within / n_ok_pairs if n_ok_pairs and requirement_m is not None else nan,
        "n_dates_judged": n_judged,
        "n_dates_within": n_dates_within if requirement_m is not None else nan,
        "fraction_dates_within": frac_dates,
        "requirement_m": requirement_m if requirement_m is not None else nan,
        "min_fraction_within": min_fraction if min_fraction is not None else nan,
        "calval_met": calval,
    }])  # fmt: skip
    return overall


def summarize_stacks(
    stacks: Sequence[StackResult], requirement_m: float | None, min_fraction: float | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-stack and overall tables of a many-stack run.

    Returns
    -------
    per_stack
        One row per stack: ``stack``, ``status`` (:class:`StackOutcome`),
        dates (``n_dates``, ``first_date``, ``last_date``), ``n_pairs``,
        ``n_pairs_ok``, ``n_pairs_within`` (ok pairs whose offset is within the
        requirement) and ``fraction_pairs_within`` (of the ok pairs), mean and RMS of the ok pairs' east/north offsets (m),
        ``max_offset_m``, ``requirement_m``, ``verdict`` (as in summary.csv;
        ``not_measurable`` for a stack that failed or did not run: never
        ``pass`` on what was not measured) and ``error``; when some stack
        has an absolute evaluation (absolute.csv) also ``absolute_n_ok``
        (ok target measurements), ``absolute_east_mean_m``,
        ``absolute_north_mean_m`` and ``absolute_verdict`` (its stack row).
    overall
        One row: ``n_stacks``, ``n_stacks_ok`` (completed), ``n_stacks_pass``,
        ``fraction_stacks_pass`` (of all stacks), ``n_pairs_ok``,
        ``n_pairs_within``, ``fraction_pairs_within`` (of the ok pairs),
        ``n_dates_judged``, ``n_dates_within``, ``fraction_dates_within``
        (each stack's later dates, i.e. products, measured and within the
        requirement relative to its first date), ``requirement_m``,
        ``min_fraction_within`` and ``calval_met``: ``yes`` when the fraction
        of products within the requirement reaches ``min_fraction`` (every
        product when None), ``no`` when it does not, empty without a
        requirement or a product. Fractions are NaN without a requirement or
        a denominator.
    """
    import pandas as pd

    nan = float("nan")
    with_absolute = any(x.absolute is not None for x in stacks)
    rows = [_stack_row(st, requirement_m, with_absolute) for st in stacks]
    per_stack = pd.DataFrame(rows)
    # The products' columns after the verdict, whichever stack came first.
    products = ["n_dates_judged", "n_dates_within", "fraction_dates_within"]
    for col in products:
        if col not in per_stack:
            per_stack[col] = nan
    cols = [c for c in per_stack.columns if c not in products]
    at = cols.index("verdict") + 1
    per_stack = per_stack[cols[:at] + products + cols[at:]]
    for col in ("n_dates", "n_pairs", "n_pairs_ok", "n_pairs_within", "absolute_n_ok",
                "n_dates_judged", "n_dates_within"):
        if col in per_stack:
            per_stack[col] = per_stack[col].astype("Int64")  # counts; empty where not known
    return per_stack, _overall_row(per_stack, requirement_m, min_fraction)

"""rtc.injection: known shifts per date and how well the branch recovers them."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

if TYPE_CHECKING:  # pandas is imported where tables are built: stages without tables start faster
    import pandas as pd

log = logging.getLogger(__package__)


def injected_shift(date: str, max_shift_px: float, seed: int) -> tuple[float, float]:
    """The known ``(rows, cols)`` shift injected into the scene of ``date``
    (``YYYY-MM-DD``) by ``rtc.injection``: uniform in ``[-max_shift_px,
    max_shift_px]`` per axis, drawn from ``seed`` and the date alone, so every
    job draws the same shift for a scene whatever its chunk."""
    rng = np.random.default_rng([int(seed), int(str(date).replace("-", ""))])
    d = rng.uniform(-float(max_shift_px), float(max_shift_px), 2)
    return float(d[0]), float(d[1])


#: Columns of ``injection.csv``.
INJECTION_COLUMNS = ["date", "injected_east_m", "injected_north_m", "recovered_east_m",
                     "recovered_north_m", "error_m"]  # fmt: skip


def injection_recovery(
    measured: pd.DataFrame,
    injected_run: pd.DataFrame,
    transform: Affine,
    *,
    max_shift_px: float,
    seed: int,
    requirement_m: float | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per date, the injected offset and the one the branch recovered.

    ``measured`` and ``injected_run`` are the per-date tables (:func:`date_offsets`)
    of the stack as it is and of the same stack with each scene's tiles moved
    by :func:`injected_shift`. The injected offset of a date is its shift minus
    the first date's (the datum), in metres through ``transform`` (a scene
    whose content moves one column east is one pixel width east); the
    recovered one is ``injected_run - measured``, so the stack's own offsets
    cancel. ``error_m`` is the distance between the two.

    Returns the table (:data:`INJECTION_COLUMNS`) and a summary: ``n_dates``
    with a recovery (the datum aside), ``rms_m``, ``max_m``, ``rms_px``,
    ``max_px``, ``within_requirement`` (fraction of those dates with
    ``error_m <= requirement_m``; NaN without one) and ``note`` (``"nothing
    measurable"`` when no date was recovered).
    """
    import pandas as pd

    m = measured.set_index("date")
    inj = injected_run.set_index("date").reindex(m.index)
    shifts = np.array([injected_shift(d, max_shift_px, seed) for d in m.index]).reshape(-1, 2)
    rel = shifts - shifts[:1]
    east = transform.a * rel[:, 1] + transform.b * rel[:, 0]
    north = transform.d * rel[:, 1] + transform.e * rel[:, 0]
    rec_e = (inj["east_m"] - m["east_m"]).to_numpy(dtype=float)
    rec_n = (inj["north_m"] - m["north_m"]).to_numpy(dtype=float)
    err = np.hypot(rec_e - east, rec_n - north)
    table = pd.DataFrame(
        {"date": list(m.index), "injected_east_m": east, "injected_north_m": north,
         "recovered_east_m": rec_e, "recovered_north_m": rec_n, "error_m": err}
    )  # fmt: skip
    e = err[1:][np.isfinite(err[1:])]
    px = math.sqrt(abs(transform.a * transform.e - transform.b * transform.d))
    nan = float("nan")
    summary: dict[str, Any] = {"n_dates": int(e.size), "rms_m": nan, "max_m": nan, "rms_px": nan,
                               "max_px": nan, "within_requirement": nan,
                               "note": "nothing measurable" if e.size == 0 else ""}  # fmt: skip
    if e.size:
        summary.update(rms_m=float(np.sqrt(np.mean(e**2))), max_m=float(e.max()))
        summary.update(rms_px=summary["rms_m"] / px, max_px=summary["max_m"] / px)
        if requirement_m is not None:
            summary["within_requirement"] = float(np.mean(e <= requirement_m))
    return table, summary

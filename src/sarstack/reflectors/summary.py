"""Absolute geolocation statistics over the reflectors and scenes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sarstack.reflectors.measure import ReflectorStatus

#: Columns of :func:`summarize_offsets` (``absolute.csv``).
ABSOLUTE_COLUMNS = (
    "scope", "date", "n_targets", "n_ok", "east_mean_m", "north_mean_m", "east_std_m",
    "north_std_m", "east_rms_m", "north_rms_m", "rms_m", "offset_m", "requirement_m", "passes",
    "verdict", "unmeasured_dates",
)  # fmt: skip


def _stats(east: np.ndarray, north: np.ndarray) -> dict[str, float]:
    """Mean, sample std (NaN below 2 values), RMS per axis and horizontal RMS."""
    n = len(east)
    nan = math.nan
    return {
        "east_mean_m": float(np.mean(east)) if n else nan,
        "north_mean_m": float(np.mean(north)) if n else nan,
        "east_std_m": float(np.std(east, ddof=1)) if n > 1 else nan,
        "north_std_m": float(np.std(north, ddof=1)) if n > 1 else nan,
        "east_rms_m": float(np.sqrt(np.mean(east**2))) if n else nan,
        "north_rms_m": float(np.sqrt(np.mean(north**2))) if n else nan,
        "rms_m": float(np.sqrt(np.mean(east**2 + north**2))) if n else nan,
    }


def summarize_offsets(
    measurements: pd.DataFrame, requirement_m: float | None, min_fraction: float | None
) -> pd.DataFrame:

    """Absolute geolocation per scene and for the stack, with verdicts.

    Parameters
    ----------
    measurements
        Rows of :func:`measure_scene` for one or more scenes (at least
        ``date``, ``east_m``, ``north_m``, ``status``).
    requirement_m
        Largest acceptable horizontal absolute offset of a scene (metres);
        None: no verdict against a requirement.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ABSOLUTE_COLUMNS`. One ``scope = "scene"`` row per
        date (in date order), then one ``scope = "stack"`` row (``date``
        empty).

        Scene rows: ``n_targets``, ``n_ok`` (targets measured ``ok``); mean,
        sample std and RMS of east / north over the ok targets; ``rms_m``:
        horizontal RMS of the ok targets' offsets; ``offset_m``: the
        horizontal length of the mean offset, the scene's absolute
        geolocation error, which the requirement judges (``passes``:
        ``offset_m <= requirement_m``, empty when not judged).

        Stack row: ``n_targets``, ``n_ok`` summed; the statistics are over
        the *measured scenes' mean offsets*, each scene counted once (a scene
        with more targets is not worth more): mean, sample std (scene to
        scene), RMS per axis, ``rms_m`` = RMS of the scenes' ``offset_m``,
        and ``offset_m`` of the stack mean. ``unmeasured_dates``: the dates
        with no ok target, space-separated.

        ``verdict``, with the vocabulary of ``summary.csv``
        (:func:`sarstack.rtc.verdict`), never ``pass`` on what was not
        measured: a scene is ``pass`` / ``fail``, or ``not_measurable``
        without an ok target; the stack is ``fail`` if a measured scene
        fails, else ``not_measurable`` if no scene was measured, else
        ``incomplete`` if some scene was not, else ``pass``. Without a
        requirement the verdict is ``no_requirement`` where something was
        measured (``not_measurable`` where nothing was).
    """
    from sarstack.rtc import verdict

    is_ok = (measurements["status"] == ReflectorStatus.OK.value).to_numpy()
    dates = measurements["date"].astype(str).to_numpy()
    east_all = measurements["east_m"].to_numpy(float)
    north_all = measurements["north_m"].to_numpy(float)
    rows: list[dict[str, object]] = []
    means: list[tuple[float, float]] = []  # of the measured scenes
    scene_passes: list[bool | None] = []  # of the measured scenes
    unmeasured: list[str] = []
    for date in sorted(set(dates)):
        sel = dates == date
        ok = sel & is_ok
        stats = _stats(east_all[ok], north_all[ok])
        offset = math.hypot(stats["east_mean_m"], stats["north_mean_m"])
        passes: bool | None = None
        if ok.any():
            means.append((stats["east_mean_m"], stats["north_mean_m"]))
            if requirement_m is not None:
                passes = bool(offset <= requirement_m)
            scene_passes.append(passes)
        else:
            unmeasured.append(date)
        rows.append(
            {
                "scope": "scene",
                "date": date,
                "n_targets": int(sel.sum()),
                "n_ok": int(ok.sum()),
                **stats,
                "offset_m": offset,
                "requirement_m": requirement_m,
                "passes": passes,
                # one measurement: it passes or not (no fraction of them)
                "verdict": verdict([passes] if ok.any() else [], int(not ok.any()),
                                   requirement_m, None),
                "unmeasured_dates": "",
            }
        )  # fmt: skip
    mean_e = np.array([m[0] for m in means])
    mean_n = np.array([m[1] for m in means])
    stats = _stats(mean_e, mean_n)
    rows.append(
        {
            "scope": "stack",
            "date": "",
            "n_targets": len(measurements),
            "n_ok": int(is_ok.sum()),
            **stats,
            "offset_m": math.hypot(stats["east_mean_m"], stats["north_mean_m"]),
            "requirement_m": requirement_m,
            "passes": None,
            "verdict": verdict(scene_passes, len(unmeasured), requirement_m, min_fraction),
            "unmeasured_dates": " ".join(unmeasured),
        }
    )
    return pd.DataFrame(rows, columns=list(ABSOLUTE_COLUMNS))

"""Synthetic per-pair offsets with a known step, drift or platform offset,
for the event search."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd


class EventStack(NamedTuple):
    """Tables of :func:`simulate_event_pairs`."""

    pairs: pd.DataFrame  # pairs.csv-like: dates, east/north offsets and se (m), status ok
    scenes: pd.DataFrame  # scenes.csv-like: date, a product path naming the platform
    dates: list[str]


def simulate_event_pairs(
    rng: np.random.Generator,
    *,
    n: int = 30,
    jitter: float = 1.0,
    meas: float = 0.9,
    se_factor: float = 1.0,
    step: float | None = None,
    k: int = 15,
    drift_m_per_yr: float = 0.0,
    network: str = "sequential+long:4",
    platforms: tuple[str, str] = ("S1A", "S1C"),
) -> EventStack:
    """Pair offsets of an RTC stack for the event search (sarstack.events).

    ``n`` dates 12 days apart from 2021-01-03, each scene with its own
    geolocation error (``jitter`` m per component); pairs of ``network``
    measured with error ``meas`` (m), stated as ``meas * se_factor``; with
    ``step``, every date from ``k`` on shifted east by ``step`` m (the first
    date of ``platforms[1]``; dates before ``k`` are ``platforms[0]``); with
    ``drift_m_per_yr``, an east drift.
    """
    from sarstack.dates import DAYS_PER_YEAR
    from sarstack.network import make_pairs

    ds = [str(d.date()) for d in pd.date_range("2021-01-03", periods=n, freq="12D")]
    truth = rng.normal(0, jitter, (n, 2))
    if step is not None:
        truth[k:, 0] += step
    truth[:, 0] += drift_m_per_yr * np.arange(n) * 12 / DAYS_PER_YEAR
    pairs = make_pairs(n, network)
    y = np.array([truth[j] - truth[i] for i, j in pairs]) + rng.normal(0, meas, (len(pairs), 2))
    p = pd.DataFrame({"reference_date": [ds[i] for i, _ in pairs],
                      "secondary_date": [ds[j] for _, j in pairs],
                      "east_m": y[:, 0], "north_m": y[:, 1], "east_se_m": meas * se_factor,
                      "north_se_m": meas * se_factor, "status": "ok"})  # fmt: skip
    names = [f"/data/{platforms[q >= k]}_IW_{d.replace('-', '')}T184544_DVP_RTC30_G_gpuned_13FA_VV.tif"
             for q, d in enumerate(ds)]  # fmt: skip
    return EventStack(p, pd.DataFrame({"date": ds, "path": names}), ds)

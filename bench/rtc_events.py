"""False alarms and detections of the RTC event search (sarstack.events) on
synthetic stacks with known truth (issue 27 item 1).

Each stack: 30 dates 12 days apart, every scene with its own geolocation
error (``jitter``, m, per component), pairs of ``rtc.pairs`` measured with
error ``meas`` (m) and stated as ``meas x se-factor``. Per row: the fraction of
stacks without an event that raise one, of stacks with a +18 m (0.6 px at
30 m) east step at the first S1C date where the step is found at that date
and attributed to S1A -> S1C, and of stacks with a 10 m/yr east drift where a
drift is found.

    .venv/bin/python bench/rtc_events.py [--significance 0.01] [--stacks 100]
"""

from __future__ import annotations

import argparse

import numpy as np

from sarstack import events, synthetic

CASES = [(0.5, 0.9, 1.0), (3.0, 0.9, 1.0), (3.0, 0.3, 1.0), (1.0, 2.0, 1.0), (1.0, 0.9, 0.5),
         (1.0, 0.9, 2.0)]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--significance", type=float, default=0.01)
    ap.add_argument("--stacks", type=int, default=100)
    ap.add_argument("--network", default="sequential+long:4")
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    print("| scene jitter | pair error | se as stated | false alarms | step found and attributed"
          " | drift found |\n|---|---|---|---|---|---|")
    for jitter, meas, f in CASES:
        kw = dict(jitter=jitter, meas=meas, se_factor=f, network=a.network)

        def run(kw=kw, **extra):
            p, scenes, ds = synthetic.simulate_event_pairs(rng, **kw, **extra)
            return events.find_events(p, scenes, significance=a.significance), ds

        fa = np.mean([len(run()[0]) > 0 for _ in range(a.stacks)])
        hits = []
        for _ in range(a.stacks):
            found, ds = run(step=18.0)
            hits.append(any(r.kind == "step" and r.date == ds[15] and r.note == "platform S1A -> S1C"
                            for r in found.itertuples()))  # fmt: skip
        drift = np.mean([(run(drift_m_per_yr=10.0)[0]["kind"] == "drift").any() for _ in range(a.stacks)])
        print(f"| {jitter:g} m | {meas:g} m | x{f:g} | {fa:.0%} | {np.mean(hits):.0%} | {drift:.0%} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

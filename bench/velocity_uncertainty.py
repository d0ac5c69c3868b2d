"""Calibration of the velocity's standard error on synthetic truth (issue 25).

For each case a 96 x 96 stack of 30 dates, 12 days apart (nearest-3 network,
L2 inversion as ``insar_invert`` does it), is fitted as ``insar_velocity``
does (:func:`sarstack.velocity.velocity` for the linear model,
:func:`sarstack.velocity.fit_model` with ``annual``), with each method of
``insar.velocity_uncertainty``; the table gives, for the pixels of the
scene, the fraction with ``|velocity - truth| <= 3 std``, the median of
``|z| = |velocity - truth| / std`` and the median std.

    .venv/bin/python bench/velocity_uncertainty.py [--seeds 3]

Cases: ``matched`` (no seasonal signal, linear model), ``annual unmodelled``
(an annual term of 2 rad on the left edge falling to 1 rad on the right,
linear model: the default case of a real stack), ``annual modelled`` (the
same, ``velocity_model: {annual: true}``). Noise: 0.3 rad per date (the
issue's setting: each date's phase independent, e.g. atmosphere), 0.3 rad per
interferogram (e.g. decorrelation, shared by the dates through the network),
or both.
"""

from __future__ import annotations

import argparse

import numpy as np

from sarstack import dates as sdates
from sarstack import insar, synthetic, timeseries, velocity
from sarstack import network as snet


def _series(
    sim: synthetic.IfgSimulation, noise: str, rng: np.random.Generator
) -> tuple[np.ndarray, velocity.NetworkNoise]:
    """(n_dates, pixels) displacement from an L2 inversion of the simulated ifgs,
    and the interferograms' noise as ``insar_invert`` writes it (``ifg_residual_std``)."""
    n = len(sim.dates)
    a = snet.incidence_matrix(sim.pairs, n)
    if noise in ("date", "both"):
        phase = sim.phase + np.concatenate(
            [np.zeros((1, *sim.phase.shape[1:])), rng.normal(0, 0.3, (n - 1, *sim.phase.shape[1:]))]
        )
        ifgs = np.stack([phase[j] - phase[i] for i, j in sim.pairs])
        if noise == "both":  # plus the simulation's own noise per ifg
            ifgs = ifgs + sim.ifgs - np.stack([sim.phase[j] - sim.phase[i] for i, j in sim.pairs])
    else:
        ifgs = sim.ifgs.astype(np.float64)
    x, res = (np.asarray(o) for o in timeseries.invert_l2(a, ifgs.reshape(len(sim.pairs), -1)))
    net = velocity.NetworkNoise(np.linalg.inv(a.T @ a), insar.ifg_residual_std(res, n) ** 2)
    return -np.concatenate([np.zeros((1, x.shape[1])), x]), net  # displacement, datum 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    rows = []
    for noise in ("date", "ifg", "both"):
        for case, amp, model in (
            ("matched", 0.0, velocity.DeformationModel()),
            ("annual unmodelled", 2.0, velocity.DeformationModel()),
            ("annual modelled", 2.0, velocity.DeformationModel(annual=True)),
        ):
            stats: dict[str, list[np.ndarray]] = {m: [] for m in velocity.UNCERTAINTY_METHODS}
            for seed in range(args.seeds):
                sim = synthetic.simulate_ifg_stack(
                    n_dates=30, shape=(96, 96), seasonal_amp_rad=amp,
                    noise_rad=0.0 if noise == "date" else 0.3, seed=seed, nodata_value=np.nan,
                )  # fmt: skip
                disp, net = _series(sim, noise, np.random.default_rng(100 + seed))
                ok = np.isfinite(disp).all(axis=0)
                truth = sim.velocity.reshape(-1)[ok]
                net = net._replace(noise_var=net.noise_var[ok])
                for m in velocity.UNCERTAINTY_METHODS:
                    if model.is_linear:
                        t = sdates.years_since(sim.dates)
                        v, s = velocity.velocity(disp[:, ok], t, uncertainty=m, network=net)[:2]
                    else:
                        out = velocity.fit_model(disp[:, ok], sim.dates, model, uncertainty=m,
                                                 network=net)  # fmt: skip
                        v, s = out["velocity"], out["velocity_std"]
                    stats[m].append(np.stack([v - truth, s]))
            for m, parts in stats.items():
                err, std = np.concatenate(parts, axis=1)
                z = np.abs(err) / std
                rows.append((noise, case, m, np.mean(z <= 3), np.median(z), np.median(std)))
    print("| noise 0.3 rad per | case | uncertainty | within 3σ | median abs(z) | median std rad/yr |")
    print("|---|---|---|---|---|---|")
    for noise, case, m, w3, mz, ms in rows:
        print(f"| {noise} | {case} | {m} | {100 * w3:.1f} % | {mz:.2f} | {ms:.3f} |")


if __name__ == "__main__":
    main()

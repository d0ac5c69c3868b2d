"""invert: per-pixel network inversion rates (L2, weighted L2, censored L2, L1) vs oracles."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from _common import CaseResult, Table, Target, ratio, schema_kwargs, time_call
from scipy.optimize import linprog

from sarstack import network as snet
from sarstack import timeseries as ts

MIN_WEIGHTED_SPEEDUP = 100.0
MIN_CENSORED_SPEEDUP = 10.0
MIN_L1_SPEEDUP = 10.0
L1_TOL = 1e-4  # invert_l1's relative duality-gap tolerance (insar.l1_tolerance's default)
L1_MAX_ITER = schema_kwargs("insar.l1_max_iterations")["l1_max_iterations"]
CHUNK = 4096  # pixels per kernel call inside timeseries (warm-up on one chunk compiles it)


@dataclass
class Problem:
    a: np.ndarray  # (m, n) incidence matrix
    b: np.ndarray  # (m, P) float64 phase, noise and a few 2π jumps
    weights: np.ndarray  # (m, P) correlation weights
    mask: np.ndarray  # (m, P) bool, conncomp != 0 (about 5 % False)
    side: int

    @property
    def n_px(self) -> int:
        return self.b.shape[1]


def make_problem(side: int, n_dates: int, network: str, seed: int = 0) -> Problem:
    """A block of ``side²`` pixels: trend + seasonal + noise, 2π jumps in a few ifgs."""
    rng = np.random.default_rng(seed)
    pairs = snet.make_pairs(n_dates, network)
    a = snet.incidence_matrix(pairs, n_dates)
    m, n_px = len(pairs), side * side
    t = np.arange(n_dates) * 12.0 / 365.25
    vel = rng.normal(0.0, 3.0, n_px)
    amp = rng.uniform(0.0, 1.0, n_px)
    phase = vel * t[:, None] + amp * np.sin(2 * np.pi * t)[:, None]
    phase += np.cumsum(rng.normal(0.0, 0.2, (n_dates, n_px)), axis=0)
    b = a @ (phase[1:] - phase[0]) + rng.normal(0.0, 0.3, (m, n_px))
    for k in rng.choice(m, size=max(1, m // 20), replace=False):  # unwrapping errors
        start = int(rng.integers(0, n_px))
        b[k, start : start + n_px // 10] += 2 * np.pi * rng.choice([-1, 1])
    cor = rng.uniform(0.2, 0.95, (m, n_px))
    weights = ts.correlation_weights(cor, looks=5.0, threshold=0.0)
    mask = rng.random((m, n_px)) >= 0.05
    return Problem(a, b, weights, mask, side)


# --------------------------------------------------------------------------- oracles


def lstsq_loop(a: np.ndarray, b: np.ndarray, w: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Per-pixel ``np.linalg.lstsq`` of the √W-scaled system; NaN where rank-deficient."""
    x = np.full((a.shape[1], idx.size), np.nan)
    for k, p in enumerate(idx):
        sw = np.sqrt(w[:, p].astype(np.float64))
        keep = sw > 0
        sol, _, rank, _ = np.linalg.lstsq(a[keep] * sw[keep, None], b[keep, p] * sw[keep])
        if rank == a.shape[1]:
            x[:, k] = sol
    return x


def linprog_loop(a: np.ndarray, b: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel L1 by ``scipy.optimize.linprog`` (HiGHS): min 1ᵀ(u+v), Ax + u − v = b."""
    m, n = a.shape
    c = np.r_[np.zeros(n), np.ones(2 * m)]
    a_eq = np.hstack([a, np.eye(m), -np.eye(m)])
    bounds = [(None, None)] * n + [(0, None)] * (2 * m)
    x = np.empty((n, idx.size))
    obj = np.empty(idx.size)
    for k, p in enumerate(idx):
        res = linprog(c, A_eq=a_eq, b_eq=b[:, p], bounds=bounds, method="highs")
        x[:, k], obj[k] = res.x[:n], res.fun
    return x, obj


@jax.jit
def vmap_lstsq(a: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
    """Per-pixel weighted least squares as a JAX ``vmap`` of ``jnp.linalg.lstsq`` (SVD)."""

    def one(bp: jax.Array, wp: jax.Array) -> jax.Array:
        sw = jnp.sqrt(wp)
        return jnp.linalg.lstsq(a * sw[:, None], bp * sw)[0]

    return jax.vmap(one, in_axes=(1, 1), out_axes=1)(b, w)


@jax.jit
def batched_normal_solve(a: jax.Array, b: jax.Array, w: jax.Array) -> jax.Array:
    """Per-pixel ``solve(AᵀWA, AᵀWb)`` as one batched dense solve (censored-lstsq style)."""
    lhs = jnp.einsum("mi,mp,mj->pij", a, w, a)
    rhs = (a.T @ (w * b)).T[:, :, None]
    return jnp.linalg.solve(lhs, rhs)[..., 0].T


# JAX baselines of weighted / censored L2, timed on one chunk of pixels and extrapolated.
JAX_BASELINES = {
    "vmap": ("JAX `vmap(jnp.linalg.lstsq)` per pixel (dolphin `invert_stack`'s method)",
             vmap_lstsq),
    "normal": ("JAX batched `solve(AᵀWA, AᵀWb)` (dolphin `censored_lstsq`'s method)",
               batched_normal_solve),
}  # fmt: skip


def timed_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- dolphin


DOLPHIN_CALLS = {
    "weighted": "invert_stack(A, dphi, weights)",
    "censored": "censored_lstsq(A, B, M)",
    "L1": "invert_stack_l1(A, dphi)",
}


def dolphin_rates(p: Problem, repeats: int) -> dict[str, float | str]:
    """px/s of dolphin's own functions on the whole block, or why there is none."""
    try:
        from dolphin import timeseries as dts
    except ImportError as e:
        reason = "dolphin not installed" if "dolphin" in str(e) else f"dolphin: {e}"
        return dict.fromkeys(DOLPHIN_CALLS, reason)
    shape3 = (p.b.shape[0], p.side, p.side)
    a = jnp.asarray(p.a)
    b3, b2 = jnp.asarray(p.b.reshape(shape3)), jnp.asarray(p.b)
    calls = {
        "weighted": lambda: dts.invert_stack(a, b3, jnp.asarray(p.weights.reshape(shape3))),
        "censored": lambda: dts.censored_lstsq(a, b2, jnp.asarray(p.mask)),
        "L1": lambda: dts.invert_stack_l1(a, b3),
    }
    out: dict[str, float | str] = {}
    for name, call in calls.items():
        try:
            t, _ = time_call(lambda call=call: jax.block_until_ready(call()), repeats)
            out[name] = p.n_px / t
        except Exception as e:  # noqa: BLE001 - report any API mismatch as a row
            out[name] = f"dolphin error: {type(e).__name__}: {e}"[:120]
    return out


# --------------------------------------------------------------------------- case


def run(
    side: int, n_dates: int, network: str, repeats: int, n_sub: int, n_sub_l1: int
) -> CaseResult:
    jax.config.update("jax_enable_x64", True)  # as insar_invert.py: float64 inversions
    p = make_problem(side, n_dates, network)
    m, n = p.a.shape
    rng = np.random.default_rng(1)
    sub = np.sort(rng.choice(p.n_px, size=min(n_sub, p.n_px), replace=False))
    sub_l1 = sub[: min(n_sub_l1, sub.size)]
    first = slice(0, min(CHUNK, p.n_px))

    table = Table(
        f"invert: {side}² px block, {m} ifgs over {n_dates} dates ({network}), float64",
        ["method", "implementation", "s", "px/s", "ours speed-up", "check"],
    )
    table.notes += [
        "ours: `sarstack.timeseries` kernels on the whole block; median of "
        f"{repeats} runs after a warm-up (at least 3 when runs are long).",
        f"Per-pixel oracles (NumPy/SciPy loops) run on a random subsample of {sub.size} px "
        f"({sub_l1.size} px for linprog) and their rate is extrapolated: **marked (sub)**.",
        "check: largest |x_ours − x_oracle| (rad) over pixels both solved with full rank; "
        "for L1 the objective Σ|b − Ax| of ours vs the oracle's on the same pixels.",
        f"JAX baselines: the two per-pixel methods dolphin uses, written here from the "
        f"maths, jitted, on {min(CHUNK, side * side)} px (so they fit in memory), extrapolated.",
    ]
    result = CaseResult([table])
    dol = dolphin_rates(p, repeats)

    def row(method, impl, seconds, n_px, ours_rate, check=""):
        rate = n_px / seconds
        table.add(method, impl, seconds, rate, ratio(ours_rate, rate), check)
        return rate

    def dolphin_row(method: str, key: str, ours_rate: float) -> float | None:
        v = dol[key]
        if isinstance(v, str):
            table.add(method, v, None, None, None, "")
            return None
        table.add(method, f"dolphin `{DOLPHIN_CALLS[key]}`", p.n_px / v, v, ours_rate / v, "")
        return v

    # L2 -------------------------------------------------------------------------------
    t_l2, _ = time_call(lambda: ts.invert_l2(p.a, p.b), repeats)
    x_l2 = ts.invert_l2(p.a, p.b)[0]
    ours_l2 = row("L2", "ours `invert_l2`", t_l2, p.n_px, None)
    t_np = timed_once(lambda: np.linalg.lstsq(p.a, p.b))
    x_np = np.linalg.lstsq(p.a, p.b)[0]
    row(
        "L2",
        "NumPy `lstsq(A, B)`, all pixels as columns",
        t_np,
        p.n_px,
        ours_l2,
        f"{np.max(np.abs(x_l2 - x_np)):.1e}",
    )

    # weighted and censored L2 --------------------------------------------------------
    targets: list[Target] = []
    for method, w, key, goal in (
        ("weighted L2", p.weights, "weighted", MIN_WEIGHTED_SPEEDUP),
        ("censored L2", p.mask, "censored", MIN_CENSORED_SPEEDUP),
    ):
        t_w, _ = time_call(
            lambda w=w: ts.invert_weighted(p.a, p.b, w),
            repeats,
            warmup=lambda w=w: ts.invert_weighted(p.a, p.b[:, first], w[:, first]),
        )
        x_w = ts.invert_weighted(p.a, p.b[:, sub], w[:, sub])["x"]
        ours = row(method, "ours `invert_weighted`", t_w, p.n_px, None)
        t0 = time.perf_counter()
        x_o = lstsq_loop(p.a, p.b, w, sub)
        t_loop = time.perf_counter() - t0
        ok = np.isfinite(x_o).all(axis=0) & np.isfinite(x_w).all(axis=0)
        numpy_rate = row(
            method,
            "NumPy per-pixel `lstsq` of √W·A, √W·b (sub)",
            t_loop,
            sub.size,
            ours,
            f"{np.max(np.abs(x_w[:, ok] - x_o[:, ok])):.1e}",
        )
        wf = w.astype(np.float64)
        idx = np.arange(min(CHUNK, p.n_px))
        jax_rates = {}
        for name, (label, fn) in JAX_BASELINES.items():
            t, _ = time_call(
                lambda fn=fn, wf=wf, idx=idx: fn(p.a, p.b[:, idx], wf[:, idx]).block_until_ready(),
                3,
            )
            jax_rates[name] = row(method, f"{label} (sub)", t, idx.size, ours)
        dol_rate = dolphin_row(method, key, ours)
        base, what = (dol_rate, "dolphin") if dol_rate else (numpy_rate, "NumPy per-pixel loop")
        speedup = ours / base
        others = ", ".join(f"{ours / jax_rates[k]:.1f}× vs JAX {k}" for k in ("vmap", "normal"))
        note = others if dol_rate else f"{dol[key]}: vs the {what} instead; {others}"
        targets.append(Target(f"{method}: speed-up vs {what}", f"≥ {goal:g}×", speedup,
                              speedup >= goal, note))  # fmt: skip

    # L1 -------------------------------------------------------------------------------
    t_l1, _ = time_call(
        lambda: ts.invert_l1(p.a, p.b, tol=L1_TOL, max_iter=L1_MAX_ITER),
        repeats,
        warmup=lambda: ts.invert_l1(p.a, p.b[:, first], tol=L1_TOL, max_iter=L1_MAX_ITER),
    )
    x_l1, _, n_iter = ts.invert_l1(p.a, p.b[:, sub_l1], tol=L1_TOL, max_iter=L1_MAX_ITER)
    ours_l1 = row("L1", f"ours `invert_l1` (tol {L1_TOL:g})", t_l1, p.n_px, None)
    t0 = time.perf_counter()
    _, obj_o = linprog_loop(p.a, p.b, sub_l1)
    t_lp = time.perf_counter() - t0
    obj_ours = np.sum(np.abs(p.b[:, sub_l1] - p.a @ x_l1), axis=0)
    excess = float(np.max((obj_ours - obj_o) / np.maximum(obj_o, 1e-12)))
    lp_rate = row(
        "L1",
        "SciPy `linprog` (HiGHS) per pixel (sub)",
        t_lp,
        sub_l1.size,
        ours_l1,
        f"Σobj ours {obj_ours.sum():.6g} vs {obj_o.sum():.6g}; worst pixel {excess:+.1e} rel.",
    )
    dol_l1 = dolphin_row("L1", "L1", ours_l1)
    base, what = (dol_l1, "dolphin") if dol_l1 else (lp_rate, "linprog (HiGHS) per pixel")
    speedup = ours_l1 / base
    targets.append(
        Target(
            f"L1: speed-up vs {what}, objective ≤ oracle",
            f"≥ {MIN_L1_SPEEDUP:g}× and worst pixel ≤ +{L1_TOL:g} rel.",
            speedup,
            speedup >= MIN_L1_SPEEDUP and excess <= L1_TOL,
            f"worst pixel objective {excess:+.1e} relative to HiGHS; "
            f"{n_iter} interior-point iterations" + ("" if dol_l1 else f"; {dol['L1']}"),
        )
    )
    result.targets += targets
    return result


# --------------------------------------------------------------------------- L1 vs dates


def l1_dates(dates_list: list[int], side: int, n_lp: int, x64: bool) -> None:
    """Print px/s (wall and per CPU second) of ``invert_l1`` and its objective vs HiGHS.

    One ``side``² block per date count, network ``nearest:3``, tol ``L1_TOL``;
    timed on a second call, so that every kernel the first one needed (float32
    and float64 passes) is compiled. Compare two versions of sarstack by
    running this with each on ``PYTHONPATH``.
    """
    jax.config.update("jax_enable_x64", x64)
    for n_dates in dates_list:
        p = make_problem(side, n_dates, "nearest:3")
        ts.invert_l1(p.a, p.b, tol=L1_TOL, max_iter=L1_MAX_ITER)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        x, _, n_iter = ts.invert_l1(p.a, p.b, tol=L1_TOL, max_iter=L1_MAX_ITER)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
        idx = np.linspace(0, p.n_px - 1, n_lp).astype(int)
        _, opt = linprog_loop(p.a, p.b, idx)
        obj = np.sum(np.abs(p.b[:, idx] - p.a @ x[:, idx].astype(np.float64)), axis=0)
        excess = (obj - opt) / opt
        print(
            f"{n_dates} dates, {p.a.shape[0]} ifgs, {p.n_px} px, {x.dtype}: "
            f"{wall:.2f} s wall ({p.n_px / wall:.0f} px/s), {cpu:.2f} s CPU "
            f"({p.n_px / cpu:.0f} px per CPU-s), n_iter {n_iter}; objective vs HiGHS on "
            f"{n_lp} px: worst {excess.max():+.1e}, best {excess.min():+.1e} relative",
            flush=True,
        )


if __name__ == "__main__":
    import argparse
    import resource

    ap = argparse.ArgumentParser(description="invert_l1 px/s and objective vs dates")
    ap.add_argument("--dates", default="24,60,120", help="comma-separated date counts")
    ap.add_argument("--side", type=int, default=128, help="block side in px")
    ap.add_argument("--n-lp", type=int, default=40, help="pixels checked with linprog")
    ap.add_argument("--float32", action="store_true", help="x64 off (default: on, as insar_invert)")
    opt = ap.parse_args()
    l1_dates([int(v) for v in opt.dates.split(",")], opt.side, opt.n_lp, not opt.float32)

"""Env steps per second of random-action rollouts: credo's LBF, Jumanji's LBF, lbforaging.

All three play the same game size as Jumanji's default ``LevelBasedForaging-v0``
(8x8 grid, 2 agents, 2 foods, forced cooperation; credo and lbforaging id
``Foraging-8x8-2p-2f-coop-v3``). The JAX envs run one jitted program: a
``lax.scan`` over steps of a vmapped step with auto-reset, actions drawn
uniformly from the available ones, and a checksum of every observation so that
XLA cannot skip computing them. Compile time is excluded (reported separately).
lbforaging steps a list of gymnasium envs in Python (what SyncVectorEnv does),
with uniform random actions.

    python benchmarks/env_throughput.py            # writes benchmarks/results/env_throughput.{json,md}
    python benchmarks/env_throughput.py --quick    # fewer repeats, no files
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now  # noqa: E402

CREDO_ID = "Foraging-8x8-2p-2f-coop-v3"


def _time_jax(rollout, total_steps: int, repeats: int) -> tuple[float, float]:
    """Median steps/s over ``repeats`` timed calls, and the compile time."""
    t0 = time.perf_counter()
    jax.block_until_ready(rollout(jax.random.key(0)))
    first = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(rollout(jax.random.key(r + 1)))
        times.append(time.perf_counter() - t0)
    return total_steps / statistics.median(times), max(first - statistics.median(times), 0.0)


def credo_rollout(n_envs: int, steps: int, vectorised_reset: bool):
    import credo.envs as envs
    from credo.envs.rollout import make_random_rollout

    env = envs.make(f"lbf:{CREDO_ID}")
    if vectorised_reset:
        return make_random_rollout(env, n_envs, steps)
    # Jumanji's scheme: a per-env auto-reset under vmap (every env computes a reset each step).
    auto = envs.AutoReset(env)

    def rollout(key):
        state, ts = jax.vmap(auto.reset)(jax.random.split(key, n_envs))

        def body(carry, k):
            state, ts, checksum = carry
            k_act, k_step = jax.random.split(k)
            actions = jax.random.categorical(k_act, jnp.where(ts.avail_actions, 0.0, -jnp.inf)).astype(
                jnp.int32
            )
            state, ts = jax.vmap(auto.step)(jax.random.split(k_step, n_envs), state, actions)
            return (state, ts, checksum + ts.obs.sum() + ts.reward.sum()), None

        return jax.lax.scan(body, (state, ts, 0.0), jax.random.split(key, steps))[0][2]

    return jax.jit(rollout)


def jumanji_rollout(n_envs: int, steps: int):
    import jumanji
    from jumanji.wrappers import AutoResetWrapper

    env = AutoResetWrapper(jumanji.make("LevelBasedForaging-v0"))

    def rollout(key):
        state, ts = jax.vmap(env.reset)(jax.random.split(key, n_envs))

        def body(carry, k):
            state, ts, checksum = carry
            mask = ts.observation.action_mask  # [n_envs, n_agents, 6]
            actions = jax.random.categorical(k, jnp.where(mask, 0.0, -jnp.inf)).astype(jnp.int32)
            state, ts = jax.vmap(env.step)(state, actions)
            return (state, ts, checksum + ts.observation.agents_view.sum() + ts.reward.sum()), None

        return jax.lax.scan(body, (state, ts, 0.0), jax.random.split(key, steps))[0][2]

    return jax.jit(rollout)


def lbforaging_rate(n_envs: int, seconds: float) -> float:
    import gymnasium as gym
    import lbforaging  # noqa: F401

    envs = [gym.make(CREDO_ID, disable_env_checker=True) for _ in range(n_envs)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    rng = np.random.default_rng(0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for e in envs:
            _, _, done, truncated, _ = e.step(rng.integers(0, 6, 2).tolist())
            if done or truncated:
                e.reset()
            steps += 1
    return steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, nargs="+", default=[1, 64, 1024])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="one repeat, shorter runs, print only")
    args = p.parse_args()
    repeats = 1 if args.quick else args.repeats
    # About the same number of env steps per timed call at every batch size.
    steps_for = {n: max(100, (40_000 if args.quick else 200_000) // n) for n in args.envs}

    rows = []
    for n in args.envs:
        steps = steps_for[n]
        for name, make, extra in [
            ("credo LBF (VecAutoReset)", credo_rollout, (True,)),
            ("credo LBF (vmapped AutoReset)", credo_rollout, (False,)),
            ("Jumanji LBF", jumanji_rollout, ()),
        ]:
            rate, compile_s = _time_jax(make(n, steps, *extra), n * steps, repeats)
            rows.append(
                dict(impl=name, n_envs=n, steps_per_call=n * steps, steps_per_s=rate, compile_s=compile_s)
            )
            print(f"{name:32s} {n:5d} envs {rate:14,.0f} steps/s  (compile {compile_s:.1f}s)", flush=True)
        rate = lbforaging_rate(n, 2.0 if args.quick else 6.0)
        rows.append(
            dict(impl="lbforaging (Python)", n_envs=n, steps_per_call=None, steps_per_s=rate, compile_s=0.0)
        )
        print(f"{'lbforaging (Python)':32s} {n:5d} envs {rate:14,.0f} steps/s", flush=True)

    def best(impl, n):
        return next(r["steps_per_s"] for r in rows if r["impl"] == impl and r["n_envs"] == n)

    lbf1 = best("lbforaging (Python)", args.envs[0])
    summary = {
        n: {
            "credo_vs_jumanji": best("credo LBF (VecAutoReset)", n) / best("Jumanji LBF", n),
            "credo_vs_lbforaging_single_env": best("credo LBF (VecAutoReset)", n) / lbf1,
        }
        for n in args.envs
    }
    for n, s in summary.items():
        print(
            f"{n:5d} envs: credo/Jumanji {s['credo_vs_jumanji']:.2f}x, credo/lbforaging(1 env) {s['credo_vs_lbforaging_single_env']:.0f}x"
        )
    if args.quick:
        return
    result = {
        "benchmark": "env_throughput",
        "date": now(),
        "machine": machine(),
        "settings": {
            "game": "8x8 grid, 2 agents, 2 foods, forced cooperation (Jumanji LevelBasedForaging-v0 default; "
            f"credo/lbforaging {CREDO_ID})",
            "policy": "uniform over available actions (JAX envs); uniform over all 6 actions (lbforaging)",
            "repeats": repeats,
            "steps_per_call": steps_for,
            "episode_limit": "credo/lbforaging 50, Jumanji 100 (its default)",
        },
        "rows": rows,
        "ratios": summary,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "env_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Env throughput ({result['date'][:10]}, {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"jax {result['machine']['jax']} on {result['machine']['jax_backend']})",
        "",
        f"Random available actions, auto-reset, observations consumed; {result['settings']['game']}.",
        "Median of repeated timed calls, compile excluded. Produced by `python benchmarks/env_throughput.py`.",
        "",
        "| implementation | " + " | ".join(f"{n} envs" for n in args.envs) + " |",
        "|---|" + "---:|" * len(args.envs),
    ]
    for impl in dict.fromkeys(r["impl"] for r in rows):
        lines.append(f"| {impl} | " + " | ".join(f"{best(impl, n):,.0f}" for n in args.envs) + " |")
    lines += [
        "",
        "| envs | credo / Jumanji | credo / lbforaging (1 env) |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {n} | {s['credo_vs_jumanji']:.2f}x | {s['credo_vs_lbforaging_single_env']:.0f}x |"
        for n, s in summary.items()
    ]
    (RESULTS / "env_throughput.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'env_throughput.json'} and .md")


if __name__ == "__main__":
    main()

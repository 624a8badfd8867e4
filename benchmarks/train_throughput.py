"""Training env steps per second of credo's QMIX, at the settings other libraries publish.

Settings (env steps per second of *training*: acting, storing and updating; compile
time excluded and reported separately):

* ``epymarl``: EPyMARL's QMIX defaults: 1 env, one update of 32 episodes per
  episode, buffer 5000, double Q, GRU 64, target update every 200 episodes.
* ``vectorised``: the same learner with 16 parallel envs (one update per 16 episodes).
* ``jaxmarl``: JaxMARL's ``ql_rnn_mpe``: 8 envs x 26 steps per update, one gradient
  step on 32 sampled episodes, GRU 64, one-step double-Q targets, hard target update
  every 200 updates.

Each is run with 1, 4 and 8 seeds (a vmap axis sharded over the CPU cores, which
this script exposes as JAX host devices, as the ``credo`` CLI does).

    python benchmarks/train_throughput.py            # writes benchmarks/results/train_throughput.{json,md}
    python benchmarks/train_throughput.py --quick    # one env, fewer seeds, print only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

from _common import RESULTS, machine, now  # noqa: E402

SETTINGS = {
    "epymarl": dict(
        n_envs=1,
        batch_size=32,
        updates_per_iteration=1,
        buffer_size=5000,
        td_lambda=0.0,
        target_update_interval=200,
    ),
    "vectorised": dict(
        n_envs=16,
        batch_size=32,
        updates_per_iteration=1,
        buffer_size=5000,
        td_lambda=0.0,
        target_update_interval=200,
    ),
    # JaxMARL copies the target every 200 updates; credo's interval counts updates by default
    # (target_update_unit). (Until 2026-12-02 this said 1600, meant as episodes: a copy every
    # 1600 updates. The copy is a select on every update either way, so speed is unchanged.)
    "jaxmarl": dict(
        n_envs=8,
        batch_size=32,
        updates_per_iteration=1,
        buffer_size=5000,
        td_lambda=0.0,
        target_update_interval=200,
        target_update_unit="updates",
    ),
}
ENVS = {"lbf": "lbf:Foraging-8x8-2p-3f-v3", "mpe": "mpe:simple_spread"}
# What the issue measured on this machine, for scale (env steps/s). The ratio to JaxMARL's QMIX is
# measured side by side, in one run, by jaxmarl_side_by_side.py --jaxmarl-dir DIR instead.
REFERENCE = {
    ("epymarl", "lbf"): ("EPyMARL QMIX, 1 seed", 650),
}


def measure(
    setting: str, env_key: str, seeds: int, seconds: float, algo: str = "qmix", extra: dict | None = None
) -> dict:
    import jax
    import numpy as np

    from credo.algos import PPOConfig, config_class
    from credo.engine.train import Trainer, count_value

    settings = {**SETTINGS[setting], **(extra or {})} if setting in SETTINGS else dict(extra or {})
    cls = config_class(algo)
    if cls is not PPOConfig:
        settings.setdefault("mixer", algo.removeprefix("me-"))
    settings.setdefault("log_interval", 5000)
    cfg = cls(algo=algo, env=env_key, seeds=seeds, **settings)
    tr = Trainer(cfg)
    state = tr.to_devices(tr.init_state())
    t0 = time.perf_counter()
    state, _ = tr._chunk(state)
    first_steps = count_value(tr.from_devices(state.env_steps))
    first = time.perf_counter() - t0
    steps, t0, chunks = 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds or chunks < 2:
        state, _ = tr._chunk(state)
        now_steps = count_value(tr.from_devices(state.env_steps))
        steps += int(np.sum(now_steps - first_steps))
        first_steps = now_steps
        chunks += 1
    elapsed = time.perf_counter() - t0
    rate = steps / elapsed
    return dict(
        algo=algo,
        setting=setting,
        env=env_key,
        seeds=seeds,
        devices=tr.n_devices,
        env_steps_per_s=rate,
        env_steps_per_s_per_seed=rate / seeds,
        compile_s=max(first - elapsed / chunks, 0.0),
        chunk_iterations=tr.iters_per_chunk,
        jax_devices=jax.local_device_count(),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS))
    p.add_argument("--envs", nargs="+", default=list(ENVS))
    p.add_argument("--seconds", type=float, default=8.0, help="timed seconds per measurement (after compile)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.envs, args.seconds = [1, 4], ["lbf"], 3.0

    rows = []
    for setting in args.settings:
        for env in args.envs:
            if setting == "jaxmarl" and env != "mpe":
                continue  # JaxMARL's ql_rnn_mpe setting is defined for MPE
            for seeds in args.seeds:
                r = measure(setting, ENVS[env], seeds, args.seconds)
                rows.append(r)
                print(
                    f"{setting:10s} {env:4s} {seeds} seed(s) on {r['devices']} device(s): {r['env_steps_per_s']:10,.0f} env steps/s "
                    f"({r['env_steps_per_s_per_seed']:,.0f} per seed), compile {r['compile_s']:.1f}s",
                    flush=True,
                )
    if args.quick:
        return

    def rate(setting, env, seeds):
        return next(
            (
                r["env_steps_per_s"]
                for r in rows
                if r["setting"] == setting and r["env"] == ENVS[env] and r["seeds"] == seeds
            ),
            None,
        )

    checks = []
    for (setting, env), (what, ref) in REFERENCE.items():
        r = rate(setting, env, 1)
        if r:
            checks.append(dict(what=f"{setting} {env}, 1 seed vs {what}", ratio=r / ref, target=20))
    for env in args.envs:
        one = rate("vectorised", env, 1)
        if one:
            checks.append(
                dict(
                    what=f"vectorised {env}, 1 seed (target 50k env steps/s)", ratio=one / 50_000, target=1.0
                )
            )
        four = rate("vectorised", env, 4)
        if one and four:
            checks.append(
                dict(what=f"vectorised {env}: 4 seeds' total vs 1 seed", ratio=four / one, target=2.0)
            )
        four = rate("epymarl", env, 4)
        one = rate("epymarl", env, 1)
        if one and four:
            checks.append(dict(what=f"epymarl {env}: 4 seeds' total vs 1 seed", ratio=four / one, target=2.0))
    result = {
        "benchmark": "train_throughput",
        "date": now(),
        "machine": machine(),
        "settings": SETTINGS,
        "rows": rows,
        "checks": checks,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    lines = [
        f"# Training throughput, QMIX ({result['date'][:10]}, {m['cpu']}, {m['cores']} cores as {m['jax_devices']} JAX devices, jax {m['jax']} on {m['jax_backend']})",
        "",
        "Env steps per second of training (act, store, update), compile excluded. Produced by `python benchmarks/train_throughput.py`.",
        "",
        "| setting | env | seeds | devices | env steps/s (all seeds) | per seed | compile (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['env']} | {r['seeds']} | {r['devices']} | {r['env_steps_per_s']:,.0f} | {r['env_steps_per_s_per_seed']:,.0f} | {r['compile_s']:.1f} |"
        )
    lines += ["", "| check | measured | target | met |", "|---|---:|---:|---|"]
    for c in checks:
        lines.append(
            f"| {c['what']} | {c['ratio']:.2f}x | {c['target']}x | {'yes' if c['ratio'] >= c['target'] else 'no'} |"
        )
    (RESULTS / "train_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(checks) - 2 :]))
    print(f"wrote {RESULTS / 'train_throughput.json'} and .md")


if __name__ == "__main__":
    main()

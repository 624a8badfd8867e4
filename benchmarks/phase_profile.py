"""Where a learner's training time goes: acting (collection) against updating, per algorithm.

Times, for one seed and compile excluded, the jitted phases of a training iteration
separately, as the engine runs them: ``collect`` (``n_envs`` episodes with the learner's
behaviour policy) and ``update``: for value learners one gradient step on ``batch_size``
episodes sampled from a full replay buffer (the target update included); for PPO learners the
whole update on the collected batch, and inside it ``world_model`` (the dependence-graph
learner's world-model step, which also gives the entropies) and ``advantages`` (GAE, or the
graph and the dependence-graph advantages). Each algorithm is measured in turn, several rounds,
medians reported, so that other load on the machine hits all alike. It answers issue 17's
"ME-QMIX's extra cost against QMIX" and "MAPPO-DG's against MAPPO: which part".

    python benchmarks/phase_profile.py                          # QMIX vs ME-QMIX, LBF, vectorised setting
    python benchmarks/phase_profile.py --env smax:smacv2_5_units --set batch_size=128 --set n_envs=4
    python benchmarks/phase_profile.py --algos mappo mappo-dg --env lbf:Foraging-10x10-3p-3f-v3
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

from train_throughput import SETTINGS  # noqa: E402


def phases(algo: str, env: str, overrides: dict):
    """``{"collect": fn(), "update": fn()}``: zero-argument callables that run one phase to completion."""
    import jax
    import numpy as np

    from credo.algos import PPOConfig, config_class
    from credo.buffers.episode import buffer_add, buffer_sample
    from credo.engine.train import Trainer

    cls = config_class(algo)
    if cls is PPOConfig:
        return ppo_phases(algo, env, overrides)
    settings = {**SETTINGS["vectorised"], **overrides}
    settings.setdefault("mixer", algo.removeprefix("me-").removeprefix("ns-"))
    tr = Trainer(cls(algo=algo, env=env, seeds=1, **settings))
    state = jax.tree.map(lambda x: x[0], tr.init_state())
    params = state.learner.params
    eps = np.float32(0.05) if tr.learner.explores_with_epsilon else np.float32(np.nan)
    collect = jax.jit(tr._collect)
    batch, stats = collect(params, jax.random.PRNGKey(1), eps)
    tr.mean_length = float(np.mean(stats.lengths))  # env steps per episode at the initial parameters
    buffer = state.buffer
    add = jax.jit(buffer_add)
    while int(buffer.count) < tr.cfg.batch_size:
        buffer = add(buffer, batch)

    @jax.jit
    def update(ls, key):
        sample = buffer_sample(buffer, key, tr.cfg.batch_size)
        return tr.learner.update(ls, sample, 0, jax.random.fold_in(key, 1))

    keys = itertools.cycle(jax.random.split(jax.random.PRNGKey(2), 10_000))
    learner = [state.learner]

    def run_update():
        learner[0], metrics = update(learner[0], next(keys))
        jax.block_until_ready(metrics)

    def run_collect():
        jax.block_until_ready(collect(params, next(keys), eps))

    return {"collect": run_collect, "update": run_update}, tr


def ppo_phases(algo: str, env: str, overrides: dict):
    """``phases`` for a PPO learner, at its config's defaults for ``env`` (the paper's setting on LBF)."""
    import jax
    import numpy as np

    from credo.api import make_config
    from credo.engine.train import Trainer

    cfg = make_config(algo, env, seeds=1, overrides=[f"{k}={v}" for k, v in overrides.items()])
    tr = Trainer(cfg)
    learner = tr.learner
    state = jax.tree.map(lambda x: x[0], tr.init_state())
    collect = jax.jit(tr._collect)
    keys = itertools.cycle(jax.random.split(jax.random.PRNGKey(2), 10_000))
    batch, stats, extra = collect(state.learner.params, jax.random.PRNGKey(1), np.float32(np.nan))
    tr.mean_length = float(np.mean(stats.lengths))
    update = jax.jit(learner.update)
    ls = [state.learner]

    def run_collect():
        jax.block_until_ready(collect(ls[0].params, next(keys), np.float32(np.nan)))

    def run_update():
        ls[0], metrics = update(ls[0], batch, extra, next(keys))
        jax.block_until_ready(metrics)

    fns = {"collect": run_collect, "update": run_update}
    if learner.learned_graph:
        wm_step = jax.jit(learner._train_world_model)

        def run_world_model():
            p = ls[0].params["world_model"]
            jax.block_until_ready(wm_step(p, ls[0].wm_opt_state, batch, extra))

        fns["world_model"] = run_world_model
        entropies = wm_step(ls[0].params["world_model"], ls[0].wm_opt_state, batch, extra)[2]
        extra = dict(extra, entropies=entropies)
    values = learner._denormalise(ls[0].value_stats, learner.values(ls[0].params["critic"], batch))
    advantages = jax.jit(learner.advantages)

    def run_advantages():
        jax.block_until_ready(advantages(batch, extra, values, next(keys)))

    fns["advantages"] = run_advantages
    return fns, tr


def time_call(fn, seconds: float) -> float:
    """Median seconds per call of ``fn`` over about ``seconds`` (one warm-up call first)."""
    import numpy as np

    fn()
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algos", nargs="+", default=["qmix", "me-qmix"])
    p.add_argument("--env", default="lbf:Foraging-8x8-2p-3f-v3")
    p.add_argument("--set", action="append", default=[], help="key=value (YAML value) for every algo")
    p.add_argument("--seconds", type=float, default=3.0, help="per phase and round")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    import numpy as np

    from credo.config import _yaml_load  # credo's YAML reading: 1e-3 is a number, as with --set

    overrides = {k: _yaml_load(v)[0] for k, v in (s.split("=", 1) for s in args.set)}
    built = {a: phases(a, args.env, overrides) for a in args.algos}
    results: dict = {a: {p: [] for p in fns} for a, (fns, _) in built.items()}
    for _ in range(args.rounds):
        for algo, (fns, _) in built.items():
            for phase, fn in fns.items():
                results[algo][phase].append(time_call(fn, args.seconds))
    cfg = next(iter(built.values()))[1].cfg
    print(f"{args.env}, n_envs={cfg.n_envs}, {args.rounds} rounds, one seed, ms per call (median)")
    print(
        f"{'algo':10s} {'collect':>9s} {'update':>9s} {'iteration':>10s} {'ep. length':>10s}  parts of the update"
    )
    for algo, r in results.items():
        c, u = np.median(r["collect"]) * 1e3, np.median(r["update"]) * 1e3
        upi = getattr(built[algo][1].cfg, "updates_per_iteration", 1)
        parts = "  ".join(
            f"{p} {np.median(v) * 1e3:.2f}" for p, v in r.items() if p not in ("collect", "update")
        )
        length = built[algo][1].mean_length
        print(f"{algo:10s} {c:9.2f} {u:9.2f} {c + upi * u:10.2f} {length:10.1f}  {parts}")


if __name__ == "__main__":
    main()

"""Training throughput of credo's IPPO/MAPPO, and the overhead of dependence-graph credit.

* ``jaxmarl-ippo``: IPPO on ``mpe:simple_spread`` at JaxMARL's ``ippo_ff_mpe`` setting:
  2048 env steps per update (JaxMARL: 16 envs x 128 steps; credo collects whole
  episodes, so 80 envs x 25 steps = 2000), 4 epochs of 4 minibatches, a 64-64 MLP
  actor and critic shared by the agents, no agent id, no value normalisation.
  Its ratio to JaxMARL's own IPPO (target 1.5x) is measured side by side, in one run, by
  ``jaxmarl_side_by_side.py --jaxmarl-dir DIR``, never against a figure from another day.
* ``jaxmarl-ippo-16``: the same with 16 envs of 25-step episodes (400 steps per update,
  5x the updates per env step), for a like-for-like count of envs.
* ``paper``: MAPPO and MAPPO-DG at the dependence-graph paper's settings (10 envs,
  hidden 128, 4 epochs, 1 minibatch) on LBF, to report DG's overhead as a ratio.
* ``protocol``: the same at the authors' full protocol, as ``specs/lbf_dependence.yaml`` runs
  it: the paper's observation world model, no advantage standardisation or value
  normalisation, separate actor and critic clips, on one of its winner-take-all maps.

Each algorithm is measured with 1 and 4 vmapped seeds; the tables give MAPPO-DG / MAPPO
(target 0.8x) and 4 seeds / 1 seed (target 2x), each from rates measured in this run.

    python benchmarks/ppo_throughput.py     # writes benchmarks/results/ppo_throughput.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

from _common import RESULTS, machine, now  # noqa: E402
from train_throughput import measure  # noqa: E402

JAXMARL = dict(
    n_envs=80,
    hidden_dim=64,
    use_rnn=False,
    epochs=4,
    minibatches=4,
    lr=2.5e-4,
    ent_coef=0.01,
    max_grad_norm=0.5,
    obs_agent_id=False,
    value_norm=False,
    log_interval=20_000,
)
# The dependence-graph authors' protocol (specs/lbf_dependence.yaml's shared settings).
PROTOCOL = dict(
    log_interval=20_000,
    env_kwargs={"wta_ties": "first"},
    standardise_advantages=False,
    value_norm=False,
    grad_clip_scheme="separate",
)
CASES = [
    # (name, algo, env, settings)
    # names unlike train_throughput's SETTINGS, whose value-learner fields measure() would merge in
    ("jaxmarl-ippo", "ippo", "mpe:simple_spread", JAXMARL),
    ("jaxmarl-ippo-16", "ippo", "mpe:simple_spread", {**JAXMARL, "n_envs": 16}),
    ("paper", "mappo", "lbf:Foraging-10x10-3p-3f-v3", {"log_interval": 20_000}),
    ("paper", "mappo-dg", "lbf:Foraging-10x10-3p-3f-v3", {"log_interval": 20_000}),
    ("paper", "mappo", "lbf:Foraging-8x8-2p-2f-coop-v3", {"log_interval": 20_000}),
    ("paper", "mappo-dg", "lbf:Foraging-8x8-2p-2f-coop-v3", {"log_interval": 20_000}),
    ("protocol", "mappo", "lbf:Foraging-10x10-2p-3f-coop-wta-v3", PROTOCOL),
    ("protocol", "mappo-dg", "lbf:Foraging-10x10-2p-3f-coop-wta-v3", {**PROTOCOL, "wm_input": "observation"}),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    p.add_argument("--settings", nargs="+", default=None, help="only these settings (e.g. protocol)")
    p.add_argument(
        "--tag",
        default="",
        help="suffix of the result files (ppo_throughput_TAG.md), for a run under other conditions, e.g. "
        "`taskset -c 0` with XLA_FLAGS=--xla_force_host_platform_device_count=1 (one core)",
    )
    p.add_argument(
        "--seconds", type=float, default=10.0, help="timed seconds per measurement (after compile)"
    )
    args = p.parse_args()
    rows = []
    cases = [c for c in CASES if args.settings is None or c[0] in args.settings]
    for name, algo, env, settings in cases:
        for seeds in args.seeds:
            r = measure(name, env, seeds, args.seconds, algo=algo, extra=settings)
            rows.append(r)
            print(
                f"{name:10s} {algo:9s} {env:32s} {seeds} seed(s): {r['env_steps_per_s']:10,.0f} env steps/s "
                f"({r['env_steps_per_s_per_seed']:,.0f} per seed), compile {r['compile_s']:.1f}s",
                flush=True,
            )

    def rate(name, algo, env, seeds):
        return next(
            r["env_steps_per_s"]
            for r in rows
            if r["setting"] == name and r["algo"] == algo and r["env"] == env and r["seeds"] == seeds
        )

    checks = []  # the ratio to JaxMARL is jaxmarl_side_by_side.py's, measured in one run
    overheads, scaling = [], []
    for name, env in sorted({(c[0], c[2]) for c in cases if c[0] in ("paper", "protocol")}):
        for seeds in args.seeds:
            ratio = rate(name, "mappo-dg", env, seeds) / rate(name, "mappo", env, seeds)
            overheads.append(dict(setting=name, env=env, seeds=seeds, dg_over_mappo=ratio))
    if 1 in args.seeds and 4 in args.seeds:
        for name, algo, env, _ in cases:
            ratio = rate(name, algo, env, 4) / rate(name, algo, env, 1)
            scaling.append(dict(setting=name, algo=algo, env=env, four_over_one=ratio))
    doc = {"benchmark": "ppo_throughput", "date": now(), "machine": machine(), "cases": cases, "rows": rows}
    doc.update(checks=checks, dg_overhead=overheads, seed_scaling=scaling)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"ppo_throughput{'_' + args.tag if args.tag else ''}.json").write_text(
        json.dumps(doc, indent=2) + "\n"
    )
    m = doc["machine"]
    lines = [
        f"# IPPO / MAPPO training throughput ({doc['date'][:10]}, {m['cpu']}, {m['cores']} cores as {m['jax_devices']} JAX devices, jax {m['jax']})",
        "",
        "Env steps per second of training (collect, update), compile excluded. Produced by `python benchmarks/ppo_throughput.py`.",
        "",
        "| setting | algo | env | seeds | env steps/s (all seeds) | per seed | compile (s) |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['algo']} | {r['env']} | {r['seeds']} | {r['env_steps_per_s']:,.0f} | {r['env_steps_per_s_per_seed']:,.0f} | {r['compile_s']:.1f} |"
        )
    lines += ["", "IPPO against JaxMARL's own script: `benchmarks/results/jaxmarl_side_by_side.md`."]
    for c in checks:
        lines.append(
            f"| {c['what']} | {c['ratio']:.2f}x | {c['target']}x | {'yes' if c['ratio'] >= c['target'] else 'no'} |"
        )
    lines += [
        "",
        "| MAPPO-DG / MAPPO throughput (target 0.8) | setting | seeds | ratio | met |",
        "|---|---|---:|---:|---|",
    ]
    for o in overheads:
        met = "yes" if o["dg_over_mappo"] >= 0.8 else "no"
        lines.append(f"| {o['env']} | {o['setting']} | {o['seeds']} | {o['dg_over_mappo']:.2f} | {met} |")
    if scaling:
        lines += ["", "| 4 seeds / 1 seed, total throughput (target 2.0) | setting | algo | ratio | met |"]
        lines.append("|---|---|---|---:|---|")
        for s_ in scaling:
            met = "yes" if s_["four_over_one"] >= 2.0 else "no"
            lines.append(
                f"| {s_['env']} | {s_['setting']} | {s_['algo']} | {s_['four_over_one']:.2f} | {met} |"
            )
    (RESULTS / f"ppo_throughput{'_' + args.tag if args.tag else ''}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

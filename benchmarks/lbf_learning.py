"""QMIX, VDN, IQL and QPLEX on two LBF maps: final test return over seeds, IQM with 95% CIs.

Each (algorithm, map) is one ``credo train`` run with all its seeds; runs go to
``runs/lbf_learning/`` (resumable: finished runs are skipped, interrupted ones
resumed) and several run side by side, one CPU core each. The figures go to
``benchmarks/results/lbf_learning.{json,md}`` with one learning-curve plot per map.

    python benchmarks/lbf_learning.py                       # 2M steps, 5 seeds, the settings below
    python benchmarks/lbf_learning.py --steps 2e5 --jobs 2  # a shorter pass
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now, test_curves, train_run  # noqa: E402

ALGOS = ["qmix", "vdn", "iql", "qplex"]
MAPS = ["lbf:Foraging-8x8-2p-2f-coop-v3", "lbf:Foraging-8x8-2p-3f-v3"]
# pymarl2's parallel runner: 8 envs, one update of 32 episodes per 8 episodes collected.
SETTINGS = [
    "n_envs=8",
    "test_interval=100000",
    "test_episodes=100",
    "log_interval=20000",
    "save_interval=500000",
]


def run_one(algo: str, env: str, steps: int, seeds: int, out: Path) -> Path:
    # One core per job: jobs run side by side instead of sharding seeds.
    return train_run(f"{algo}-{env.split(':', 1)[1]}", algo, env, steps, seeds, out, SETTINGS, devices=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=lambda s: int(float(s)), default=2_000_000)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--algos", nargs="+", default=ALGOS)
    p.add_argument("--maps", nargs="+", default=MAPS)
    p.add_argument("--out", type=Path, default=Path("runs/lbf_learning"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    jobs = [(a, m) for m in args.maps for a in args.algos]
    with ThreadPoolExecutor(args.jobs) as pool:
        paths = list(pool.map(lambda j: run_one(*j, args.steps, args.seeds, args.out), jobs))

    from credo.stats import plot_learning_curves

    results = []
    for (algo, env), path in zip(jobs, paths):
        s = json.loads((path / "summary.json").read_text())
        results.append(
            dict(
                algo=algo,
                env=env,
                seeds=s["seeds"],
                env_steps=s["env_steps_done"],
                final_test_return=s["final_test_return"],
                iqm=s["final_test_return_iqm"],
                ci95=s["final_test_return_ci95"],
                mean=s["final_test_return_mean"],
                train_env_steps_per_s=s["train_env_steps_per_s"],
                parameters=s["parameters"],
            )
        )
    for env in args.maps:
        plot_learning_curves(
            {a: test_curves(args.out / f"{a}-{env.split(':', 1)[1]}", args.seeds) for a in args.algos},
            RESULTS / f"lbf_learning_{env.split(':', 1)[1]}.png",
            title=f"{env}, {args.seeds} seeds (mean, 95% bootstrap band)",
        )
    doc = {
        "benchmark": "lbf_learning",
        "date": now(),
        "machine": machine(),
        "settings": {
            "steps_per_seed": args.steps,
            "seeds": args.seeds,
            "overrides": SETTINGS,
            "config": "configs/algos/<algo>.yaml + configs/envs/lbf.yaml",
        },
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lbf_learning.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        f"# LBF learning results ({doc['date'][:10]}, {doc['machine']['cpu']}, {doc['machine']['cores']} cores)",
        "",
        f"Final greedy test return (100 episodes per seed) after {args.steps:,} env steps per seed, {args.seeds} seeds; "
        f"IQM with 95% stratified-bootstrap CI. Settings: defaults + `{' '.join(SETTINGS)}`. "
        "Produced by `python benchmarks/lbf_learning.py`.",
        "",
        "| map | algo | IQM | 95% CI | mean | per seed | train steps/s |",
        "|---|---|---:|---|---:|---|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['env']} | {r['algo']} | {r['iqm']:.3f} | [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {r['mean']:.3f} | "
            f"{', '.join(f'{x:.2f}' for x in r['final_test_return'])} | {r['train_env_steps_per_s']:,.0f} |"
        )
    (RESULTS / "lbf_learning.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""ME-QMIX vs QMIX vs +Entropy (ME-QMIX without OPT) on SMAX: test win rate over training.

The paper's SMACv2 claim (thesis file 003, Tables 2.6-2.9) is ME-QMIX above QMIX,
and +OPT above +Entropy. SMAX's ``smacv2_5_units`` stands in for SMACv2 5v5.
Each variant is one ``credo train`` run with all its seeds (sharded over the
cores), run one after another; runs go to ``runs/smax_me_igm/`` (resumable).
Figures go to ``benchmarks/results/smax_me_igm.{json,md,png}``.

    python benchmarks/smax_me_igm.py                  # the settings below
    python benchmarks/smax_me_igm.py --steps 2e5      # a shorter pass
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now, test_curves, train_run  # noqa: E402

# name -> (algo, extra settings)
VARIANTS = {
    "qmix": ("qmix", []),
    "me-qmix": ("me-qmix", []),
    "+entropy": ("me-qmix", ["policy_transform=none"]),
}
# The paper's SMACv2 settings (Table A.3: lr 1e-3, lambda 0.4, target update 200
# episodes, 4 parallel envs), except batch 32 and buffer 1000 episodes instead of
# 128 and 5000: at 128 / 5000 four seeds trained at ~1.3k steps/s in 20 GB here.
SETTINGS = [
    "n_envs=4",
    "lr=0.001",
    "td_lambda=0.4",
    "batch_size=32",
    "buffer_size=1000",
    "target_update_interval=200",
    "epsilon_anneal_steps=100000",
    "test_episodes=32",
    "log_interval=20000",
    "save_interval=200000",
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="smax:smacv2_5_units")
    p.add_argument("--steps", type=lambda s: int(float(s)), default=1_000_000)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--test-interval", type=int, default=100_000)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--out", type=Path, default=Path("runs/smax_me_igm"))
    args = p.parse_args()

    env_name = args.env.split(":", 1)[1]
    settings = SETTINGS + [f"test_interval={args.test_interval}"]
    paths = {}
    for v in args.variants:
        algo, extra = VARIANTS[v]
        name = f"{v.strip('+')}-{env_name}"
        paths[v] = train_run(
            name,
            algo,
            args.env,
            args.steps,
            args.seeds,
            args.out,
            settings + extra,
            devices=os.cpu_count() or 1,
        )

    from credo.stats import plot_learning_curves, probability_of_improvement

    results = []
    for v, path in paths.items():
        s = json.loads((path / "summary.json").read_text())
        results.append(
            dict(
                variant=v,
                algo=VARIANTS[v][0],
                extra=VARIANTS[v][1],
                seeds=s["seeds"],
                env_steps=s["env_steps_done"],
                final_test_won=s["final_test_won"],
                won_iqm=s["final_test_won_iqm"],
                won_ci95=s["final_test_won_ci95"],
                final_test_return=s["final_test_return"],
                return_iqm=s["final_test_return_iqm"],
                train_env_steps_per_s=s["train_env_steps_per_s"],
                parameters=s["parameters"],
            )
        )
    won = {r["variant"]: r["final_test_won"] for r in results}
    poi = {}
    if "me-qmix" in won:
        for other in ("qmix", "+entropy"):
            if other in won:
                point, lo, hi = probability_of_improvement(won["me-qmix"], won[other])
                poi[f"me-qmix > {other}"] = [point, lo, hi]
    plot_learning_curves(
        {v: test_curves(path, args.seeds, "test_won") for v, path in paths.items()},
        RESULTS / f"smax_me_igm_{env_name}.png",
        ylabel="test win rate",
        title=f"{args.env}, {args.seeds} seeds (mean, 95% bootstrap band)",
    )
    rates = {r["variant"]: r["train_env_steps_per_s"] for r in results}
    doc = {
        "benchmark": "smax_me_igm",
        "date": now(),
        "machine": machine(),
        "settings": {
            "env": args.env,
            "steps_per_seed": args.steps,
            "seeds": args.seeds,
            "overrides": settings,
            "config": "configs/algos/<algo>.yaml + configs/envs/smax.yaml",
        },
        "results": results,
        "probability_of_improvement": poi,
        "throughput_ratio_me_qmix_over_qmix": rates["me-qmix"] / rates["qmix"]
        if "me-qmix" in rates and "qmix" in rates
        else None,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"smax_me_igm_{env_name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        f"# ME-IGM on SMAX {env_name} ({doc['date'][:10]}, {doc['machine']['cpu']}, {doc['machine']['cores']} cores)",
        "",
        f"Final greedy test win rate ({32} episodes per seed) after {args.steps:,} env steps per seed, "
        f"{args.seeds} seeds; IQM with 95% stratified-bootstrap CI. Settings: defaults + `{' '.join(settings)}`. "
        "Produced by `python benchmarks/smax_me_igm.py`.",
        "",
        "| variant | win rate IQM | 95% CI | per seed | return IQM | train steps/s (all seeds) |",
        "|---|---:|---|---|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['won_iqm']:.1%} | [{r['won_ci95'][0]:.1%}, {r['won_ci95'][1]:.1%}] | "
            f"{', '.join(f'{x:.2f}' for x in r['final_test_won'])} | {r['return_iqm']:.3f} | "
            f"{r['train_env_steps_per_s']:,.0f} |"
        )
    for k, (point, lo, hi) in poi.items():
        lines.append(f"\nP({k}) = {point:.2f} (95% CI {lo:.2f} .. {hi:.2f})")
    if doc["throughput_ratio_me_qmix_over_qmix"]:
        lines.append(f"\nThroughput ME-QMIX / QMIX: {doc['throughput_ratio_me_qmix_over_qmix']:.2f}")
    (RESULTS / f"smax_me_igm_{env_name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""QLLM against QMIX and VDN on the climbing game and an LBF map: returns and trainable parameters.

QLLM trains with the best TFCAF available: the file given per env (default the
hand-written ones in ``benchmarks/tfcaf/``, marked as such in the results; an
artifact of ``credo qllm generate`` can be named instead with ``--tfcaf ENV=PATH``).
All three methods share every other setting. Runs go to ``runs/qllm_comparison/``
(resumable), one CPU core per run, runs side by side.

    python benchmarks/qllm_comparison.py            # climbing 100k steps, LBF 2M steps, 5 seeds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now, test_curves, train_run  # noqa: E402

HERE = Path(__file__).parent
# env -> (steps per seed, settings shared by every method, default TFCAF file)
ENVS = {
    "matrix:climbing": (
        100_000,
        ["env_kwargs={episode_limit: 25}", "test_interval=10000", "test_episodes=32", "log_interval=5000"],
        HERE / "tfcaf" / "climbing_sum.py",
    ),
    "lbf:Foraging-8x8-2p-3f-v3": (
        2_000_000,
        [
            "n_envs=8",
            "test_interval=100000",
            "test_episodes=100",
            "log_interval=20000",
            "save_interval=500000",
        ],
        HERE / "tfcaf" / "lbf_levels.py",
    ),
}
METHODS = ["qllm", "qmix", "vdn"]


def _shown(path: Path) -> str:
    """The path relative to the repository when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(HERE.parent.resolve()))
    except ValueError:
        return str(path)


def short(env: str) -> str:
    return env.replace(":", "-")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=list(ENVS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every env's step budget")
    p.add_argument("--tfcaf", action="append", default=[], metavar="ENV=PATH", help="TFCAF file for an env")
    p.add_argument("--out", type=Path, default=Path("runs/qllm_comparison"))
    args = p.parse_args()
    tfcafs = {env: ENVS[env][2] for env in args.envs}
    tfcafs.update({k: Path(v) for k, v in (t.split("=", 1) for t in args.tfcaf)})
    jobs = [(m, env) for env in args.envs for m in METHODS]

    def run(job):
        method, env = job
        steps, settings, _ = ENVS[env]
        extra = [f"tfcaf={tfcafs[env].resolve()}"] if method == "qllm" else []
        steps = int(steps * args.steps_scale)
        return train_run(f"{method}-{short(env)}", method, env, steps, args.seeds, args.out, settings + extra)

    with ThreadPoolExecutor(args.jobs) as pool:
        paths = dict(zip(jobs, pool.map(run, jobs)))

    from credo.qllm.artifact import load_tfcaf
    from credo.stats import plot_learning_curves, probability_of_improvement

    rows = []
    for (method, env), path in paths.items():
        s = json.loads((path / "summary.json").read_text())
        params = s["parameters"]
        rows.append(
            dict(
                method=method,
                env=env,
                final_test_return=s["final_test_return"],
                iqm=s["final_test_return_iqm"],
                ci95=s["final_test_return_ci95"],
                mean=s["final_test_return_mean"],
                parameters=params,
                trainable=int(sum(params.values())),
                env_steps=s["env_steps_done"],
            )
        )
    for env in args.envs:
        plot_learning_curves(
            {m: test_curves(paths[m, env], args.seeds) for m in METHODS},
            RESULTS / f"qllm_comparison_{short(env)}.png",
            title=f"{env}, {args.seeds} seeds (mean, 95% bootstrap band)",
        )
    by = {(r["method"], r["env"]): r for r in rows}
    poi = {
        env: {
            m: probability_of_improvement(
                np.array(by["qllm", env]["final_test_return"])[:, None],
                np.array(by[m, env]["final_test_return"])[:, None],
            )
            for m in ("qmix", "vdn")
        }
        for env in args.envs
    }
    doc = {
        "benchmark": "qllm_comparison",
        "date": now(),
        "machine": machine(),
        "settings": {
            env: {"steps_per_seed": int(ENVS[env][0] * args.steps_scale), "overrides": ENVS[env][1]}
            for env in args.envs
        },
        "seeds": args.seeds,
        "tfcaf": {
            env: {
                "path": _shown(p),
                "source": load_tfcaf(p).source,
                "hand_written": "HAND-WRITTEN" in load_tfcaf(p).source,
            }
            for env, p in tfcafs.items()
        },
        "probability_of_improvement_qllm_over": {
            env: {m: dict(p=v[0], ci95=[v[1], v[2]]) for m, v in d.items()} for env, d in poi.items()
        },
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "qllm_comparison.json").write_text(json.dumps(doc, indent=2) + "\n")
    m = doc["machine"]
    lines = [
        f"# QLLM vs QMIX vs VDN ({doc['date'][:10]}, {m['cpu']}, {m['cores']} cores)",
        "",
        f"{args.seeds} seeds; final greedy test return, IQM with 95% stratified-bootstrap CI; trainable parameters "
        "from each run's summary (agent network + mixer; a TFCAF has none). Produced by "
        "`python benchmarks/qllm_comparison.py`.",
        "",
    ]
    for env in args.envs:
        t = doc["tfcaf"][env]
        kind = (
            "hand-written (not LLM-generated)" if t["hand_written"] else "generated by `credo qllm generate`"
        )
        lines += [
            f"## {env} ({doc['settings'][env]['steps_per_seed']:,} env steps per seed; `{' '.join(ENVS[env][1])}`)",
            "",
            f"TFCAF: `{t['path']}`, {kind}.",
            "",
            "| method | IQM | 95% CI | per seed | trainable parameters | vs QMIX |",
            "|---|---:|---|---|---:|---:|",
        ]
        q = by["qmix", env]["trainable"]
        for method in METHODS:
            r = by[method, env]
            lines.append(
                f"| {method} | {r['iqm']:.3f} | [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | "
                f"{', '.join(f'{x:.2f}' for x in r['final_test_return'])} | {r['trainable']:,} | "
                f"{r['trainable'] / q - 1:+.0%} |"
            )
        pq, pv = poi[env]["qmix"], poi[env]["vdn"]
        lines += [
            "",
            f"P(QLLM > QMIX) = {pq[0]:.2f} [{pq[1]:.2f}, {pq[2]:.2f}]; P(QLLM > VDN) = {pv[0]:.2f} [{pv[1]:.2f}, {pv[2]:.2f}]",
            "",
        ]
    (RESULTS / "qllm_comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

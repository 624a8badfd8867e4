"""The ME-IGM paper's 3x3 matrix game (Table 2.5): which joint action each method settles on.

Payoff ``[[8,-12,-12],[-12,0,0],[-12,0,0]]``, 10k env steps, the shipped matrix
settings (``configs/envs/matrix.yaml``), seeds 0..N-1. For every method: in how
many seeds the greedy joint action (each agent's argmax Q) is the optimum (A, A),
and the Table 2.5 layout (policies around Q_tot) of one seed of each, printed by
``credo report matrix``. Runs go to ``runs/matrix_me_igm/``; figures to
``benchmarks/results/matrix_me_igm.{json,md}``.

    python benchmarks/matrix_me_igm.py                      # seeds 0-9 (those the settings were chosen on)
    python benchmarks/matrix_me_igm.py --first-seed 1000    # fresh seeds, results in ..._seeds1000-1009

Each pair of methods gets the verdict of ``credo.study.compare.verdict`` on the per-seed outcome
(1 when the greedy joint action is (A, A), else 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now, train_run  # noqa: E402

ALGOS = ["me-qmix", "qmix", "me-qplex", "qplex"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first run (fresh seeds: not 0-9)")
    p.add_argument("--show-seed", type=int, default=0, help="seed index whose Table 2.5 is printed")
    p.add_argument("--out", type=Path, default=Path("runs/matrix_me_igm"))
    args = p.parse_args()

    from credo.report import format_matrix, matrix_results
    from credo.stats import probability_of_improvement
    from credo.study.compare import verdict_line

    first, tag = (
        args.first_seed,
        "" if args.first_seed == 0 else f"_seeds{args.first_seed}-{args.first_seed + args.seeds - 1}",
    )
    settings = [f"seed={first}"] if first else []
    paths = {
        a: train_run(a + tag, a, "matrix:me-igm", args.steps, args.seeds, args.out, settings, devices=1)
        for a in ALGOS
    }
    results, shown = [], []
    for algo, path in paths.items():
        per_seed = matrix_results(path)
        shown.append(per_seed[args.show_seed])
        results.append(
            dict(
                algo=algo,
                seeds=args.seeds,
                optimal_seeds=sum(r.optimal for r in per_seed),
                optimal_in_first_5=sum(r.optimal for r in per_seed[:5]),
                greedy=[list(r.greedy) for r in per_seed],
                optimal=[bool(r.optimal) for r in per_seed],
                p_optimal=[r.p_optimal for r in per_seed],
                q_tot=[r.q_tot.tolist() for r in per_seed],
                probs=[r.probs.tolist() for r in per_seed],
                summary=json.loads((path / "summary.json").read_text()),
            )
        )
    table = format_matrix(shown)
    outcome = {r["algo"]: np.array(r["optimal"], float) for r in results}
    verdicts = []
    for a, b in (("me-qmix", "qmix"), ("me-qplex", "qplex"), ("me-qmix", "me-qplex")):
        poi, lo, hi = probability_of_improvement(outcome[a], outcome[b], n_boot=5000)
        verdicts.append(verdict_line(a, b, poi, lo, hi, len(outcome[a]), len(outcome[b])))
    doc = {
        "benchmark": "matrix_me_igm",
        "date": now(),
        "machine": machine(),
        "settings": {
            "env": "matrix:me-igm",
            "steps_per_seed": args.steps,
            "seeds": args.seeds,
            "first_seed": first,
            "config": "configs/algos/<algo>.yaml + configs/envs/matrix.yaml",
        },
        "results": results,
        "verdicts": verdicts,
        "table_seed_index": args.show_seed,
        "table": table,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"matrix_me_igm{tag}.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        f"# ME-IGM matrix game ({doc['date'][:10]}, {doc['machine']['cpu']}, {doc['machine']['cores']} cores)",
        "",
        f"Payoff [[8,-12,-12],[-12,0,0],[-12,0,0]], {args.steps:,} env steps, seeds {first}-{first + args.seeds - 1}, "
        "shipped settings (configs/envs/matrix.yaml). Produced by `python benchmarks/matrix_me_igm.py`.",
        "",
        "| algo | greedy joint action = (A, A) | of the first 5 seeds | mean P((A, A)) under the training policy |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['algo']} | {r['optimal_seeds']} / {r['seeds']} | {r['optimal_in_first_5']} / 5 | "
            f"{sum(r['p_optimal']) / len(r['p_optimal']):.2f} |"
        )
    lines += ["", "Verdicts (95% CI of P(A > B) over seeds, outcome 1 = greedy (A, A)):", ""]
    lines += [f"- {v}" for v in verdicts]
    lines += [
        "",
        f"Table 2.5 layout, seed index {args.show_seed} of each run (not selected):",
        "",
        "```",
        table,
        "```",
    ]
    (RESULTS / f"matrix_me_igm{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

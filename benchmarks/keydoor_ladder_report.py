"""The Key-Door ladder study's report: success against env steps per method, and whether each LLM method moved.

Reads the sweep of ``benchmarks/specs/keydoor_ladder.yaml`` (run it first:
``credo sweep benchmarks/specs/keydoor_ladder.yaml --out runs``) and writes
``benchmarks/results/keydoor_ladder.{md,json}`` and ``keydoor_ladder_success.png``.

* LLM methods (RICOL, RWR, Reflexion): the policy's **exact** success rate at
  every evaluation (``test_exact_success``: its table at every state of the
  corridor, so no sampling noise), and the change from iteration 0 (the model as
  loaded) to the last, per seed, with the mean change's 95% bootstrap CI over seeds.
* PPO: the test return (1 on success, so the success rate) over 50 episodes.
* Sample efficiency (the thesis's measure): env steps until a seed's success
  first reaches ``--level``, per seed ("-" when it never does).

    python benchmarks/keydoor_ladder_report.py runs/keydoor_ladder [--level 0.5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, now

LLM = ("ricol", "rwr", "reflexion")


def curves(cell: Path, metric: str) -> list[tuple[list[int], list[float]]]:
    """Per seed: (env steps, metric) at every evaluation row of the run in ``cell``."""
    out = []
    for f in sorted((cell / "metrics").glob("seed_*.jsonl"), key=lambda p: int(p.stem.split("_")[1])):
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        rows = [r for r in rows if metric in r and r[metric] is not None]
        out.append(([int(r["env_steps"]) for r in rows], [float(r[metric]) for r in rows]))
    return out


def steps_to(curve: tuple[list[int], list[float]], level: float) -> int | None:
    """Env steps at the first evaluation at or above ``level``, or None."""
    return next((s for s, v in zip(*curve, strict=True) if v >= level), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sweep", type=Path)
    p.add_argument("--level", type=float, default=0.5)
    p.add_argument("--out", default=str(RESULTS / "keydoor_ladder"))
    args = p.parse_args()

    from credo.stats import plot_learning_curves, stratified_bootstrap_ci

    rows, plot = {}, {}
    for cell in sorted(d for d in args.sweep.iterdir() if (d / "summary.json").exists()):
        label = cell.name.removesuffix("-keydoor")  # a cell is named LABEL-ENV
        metric = "test_exact_success" if label.split("-")[0] in LLM else "test_return"
        cs = curves(cell, metric)
        start = np.array([c[1][0] for c in cs])
        final = np.array([c[1][-1] for c in cs])
        change = final - start
        mean, lo, hi = stratified_bootstrap_ci(change, statistic=np.mean, seed=0)
        rows[label] = {
            "metric": metric,
            "seeds": len(cs),
            "start": start.tolist(),
            "final": final.tolist(),
            "change_mean": float(mean),
            "change_ci95": [float(lo), float(hi)],
            "env_steps_final": [c[0][-1] for c in cs],
            "steps_to_level": [steps_to(c, args.level) for c in cs],
        }
        n = min(len(c[0]) for c in cs)
        plot[label] = (np.array(cs[0][0][:n]), np.array([c[1][:n] for c in cs]))
    doc = {
        "benchmark": "keydoor_ladder",
        "date": now(),
        "machine": machine(),
        "level": args.level,
        "rows": rows,
    }
    Path(args.out + ".json").write_text(json.dumps(doc, indent=1) + "\n")
    plot_learning_curves(
        plot,
        args.out + "_success.png",
        ylabel="success rate",
        title="Key-Door, length 2, 12 steps",
        logx=True,
    )

    def fmt(xs):
        return ", ".join(f"{100 * x:.1f}%" for x in xs)

    m = doc["machine"]
    lines = [
        f"# RICOL vs RWR vs Reflexion vs PPO on Key-Door, length 2 ({doc['date'][:10]}, {m['cpu']}, {m['cores']} cores, no GPU)",
        "",
        "`credo sweep benchmarks/specs/keydoor_ladder.yaml`, then `python benchmarks/keydoor_ladder_report.py`. "
        "LLM methods: SmolLM2-135M-Instruct as policy (and reflector), exact success of the policy "
        "(`test_exact_success`); PPO: test return over 50 episodes (reward 1 on success). Change: last evaluation "
        "minus the first (before any training), mean over seeds with its 95% bootstrap CI.",
        "",
        f"| method | seeds | success at start | final | change, mean [95% CI] | env steps | env steps to {100 * args.level:.0f}% success |",
        "|---|---:|---|---|---|---:|---|",
    ]
    for label, r in rows.items():
        reach = ", ".join("-" if s is None else f"{s:,}" for s in r["steps_to_level"])
        lines.append(
            f"| {label} | {r['seeds']} | {fmt(r['start'])} | {fmt(r['final'])} | "
            f"{100 * r['change_mean']:+.1f} pts [{100 * r['change_ci95'][0]:+.1f}, {100 * r['change_ci95'][1]:+.1f}] | "
            f"{max(r['env_steps_final']):,} | {reach} |"
        )
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

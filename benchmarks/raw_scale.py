"""A compare.json's groups on the raw scale of the metric, pooled over its envs, for papers that report so.

``credo compare`` aggregates over envs after min-max normalising each env's scores (their scales may
differ). Some papers report the IQM of raw scores pooled over tasks instead (the dependence-graph
paper: the IQM of raw LBF returns, which lie in [0, 1] on every map). This prints, per group, that
pooled raw IQM with its 95% stratified-bootstrap CI, and P(A > B) with compare's verdict for the
pairs asked for (P(A > B) is computed within each env, so it does not depend on the scale).

    python benchmarks/raw_scale.py benchmarks/results/lbf_dependence/compare.json \\
        --pairs mappo-dg:mappo-local mappo-dg:mappo-global
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from credo.stats import probability_of_improvement, stratified_bootstrap_ci
from credo.study.compare import verdict_line


def raw_scores(doc: dict) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per group, a [seeds, envs] array of raw per-seed scores over the envs every group ran."""
    envs = sorted(doc["envs"])
    labels = sorted({g["label"] for e in envs for g in doc["envs"][e]["groups"]})
    out = {}
    for label in labels:
        cols = []
        for e in envs:
            g = next((g for g in doc["envs"][e]["groups"] if g["label"] == label), None)
            if g is None:
                break
            cols.append(g["per_seed"])
        if len(cols) == len(envs) and len({len(c) for c in cols}) == 1:
            out[label] = np.array(cols, dtype=float).T
    return envs, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("compare_json", type=Path)
    p.add_argument("--pairs", nargs="*", default=[], help="A:B pairs for P(A > B) and the verdict")
    args = p.parse_args(argv)
    doc = json.loads(args.compare_json.read_text())
    envs, scores = raw_scores(doc)
    if not scores:
        sys.exit(f"{args.compare_json}: no group ran every env with the same number of seeds")
    print(f"{doc['metric']}, raw, IQM pooled over {len(envs)} env(s): {', '.join(envs)}")
    print("| group | seeds x envs | IQM [95% CI] |")
    print("|---|---|---|")
    for label, s in scores.items():
        point, lo, hi = stratified_bootstrap_ci(s)
        print(f"| {label} | {s.shape[0]} x {s.shape[1]} | {point:.2f} [{lo:.2f}, {hi:.2f}] |")
    for pair in args.pairs:
        a, _, b = pair.partition(":")
        if a not in scores or b not in scores:
            sys.exit(f"--pairs {pair}: groups are {', '.join(scores)}")
        poi, lo, hi = probability_of_improvement(scores[a], scores[b])
        print("- " + verdict_line(a, b, poi, lo, hi, scores[a].shape[0], scores[b].shape[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

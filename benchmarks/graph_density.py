"""The density of the dependence graphs MAPPO-DG runs trained with: one line per run of a sweep.

    python benchmarks/graph_density.py runs/lbf_dependence_threshold [--last 10]

The density is the mean fraction of off-diagonal edges that are on, over the last ``--last`` logged
training rows of every seed (the ``graph_density`` field of the metrics); runs without it (MAPPO
with global or local rewards: a full or an empty graph) are listed with "-".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from credo.study.runs import read_jsonl


def graph_density(run: Path, last: int = 10) -> float | None:
    values = []
    for path in sorted((run / "metrics").glob("seed_*.jsonl")):
        rows, _ = read_jsonl(path)  # tolerates a half-written last line
        values += [r["graph_density"] for r in rows if r.get("graph_density") is not None][-last:]
    return float(np.mean(values)) if values else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--last", type=int, default=10, help="training rows per seed to average (default 10)")
    args = p.parse_args()
    print("| run | graph_threshold | graph density |\n|---|---:|---:|")
    for cfg_path in sorted(args.sweep_dir.glob("*/config.yaml")):
        run = cfg_path.parent
        c = (yaml.safe_load(cfg_path.read_text()) or {}).get("graph_threshold", "-")
        d = graph_density(run, args.last)
        print(
            f"| {run.name} | {c if run.name.startswith('mappo-dg') else '-'} | {'-' if d is None else f'{d:.2f}'} |"
        )


if __name__ == "__main__":
    main()

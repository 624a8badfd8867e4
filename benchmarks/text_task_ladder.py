"""Which text tasks can the embedded LLM policies learn from? Their success rate before any training.

On the 1D Key-Door corridor the observation is a function of the state, so an LLM
policy is a table (``policy_table``: one forward pass per state) and its success
rate within a horizon is exact (``keydoor.success_within``): no sampling noise.
For every embedded model and corridor length this prints and records the success
rate within the env's own limit (3 x length steps) and within 30 steps (the RICL
experiment's rollout horizon), beside the uniform random policy's, and the
policy's probabilities at the first start state (to show how much it depends on the state).

    python benchmarks/text_task_ladder.py [--models embedded embedded-gemma3] [--lengths 2 3 4 5 6]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import RESULTS, machine, now


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["embedded", "embedded-gemma3"])
    p.add_argument("--lengths", nargs="+", type=int, default=[2, 3, 4, 5, 6])
    p.add_argument("--horizons", nargs="+", type=int, default=[30])
    p.add_argument("--out", default=str(RESULTS / "text_task_ladder"))
    args = p.parse_args()

    from credo.envs.text import keydoor as kd
    from credo.llm import make_llm
    from credo.ricl.keydoor import policy_table
    from credo.ricl.prompts import keydoor_task
    from credo.ricl.reflect import LetterPolicy

    rows = []
    for model in args.models:
        t0 = time.perf_counter()
        llm = make_llm("local", model, cache_dir=False)
        load = time.perf_counter() - t0
        policy = LetterPolicy(llm, keydoor_task())
        for length in args.lengths:
            pi = np.exp(policy_table(policy, length))
            uniform = np.full_like(pi, 0.25)
            horizons = [3 * length, *args.horizons]
            row = {
                "model": llm.model,
                "length": length,
                "success": {h: kd.success_within(length, pi, h) for h in horizons},
                "uniform": {h: kd.success_within(length, uniform, h) for h in horizons},
                "spread": float(np.abs(pi - pi.mean(0)).max()),  # 0: the same distribution at every state
                "pi_without_key": pi[kd.state_index(length - 1, False)].round(3).tolist(),
                "pi_with_key": pi[kd.state_index(length - 1, True)].round(3).tolist(),
                "load_seconds": load,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    doc = {"benchmark": "text_task_ladder", "date": now(), "machine": machine(), "rows": rows}
    with open(args.out + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    m = doc["machine"]
    lines = [
        f"# The embedded LLM policies' success on 1D Key-Door before training ({doc['date'][:10]}, {m['cpu']}, {m['cores']} cores)",
        "",
        "Exact success rates (`keydoor.success_within` over the policy's table; no sampling), from a start uniform over "
        "the positions without the key. Produced by `python benchmarks/text_task_ladder.py`.",
        "",
        "| model | length | success within 3 x length steps (the env's limit) | within "
        + ", ".join(str(h) for h in args.horizons)
        + " | uniform random policy, same horizons | largest change of pi across states | pi at the door without / with the key (left, right, pick up, unlock) |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        hs = list(r["success"])
        lines.append(
            f"| {r['model']} | {r['length']} | {100 * r['success'][hs[0]]:.1f}% | "
            + ", ".join(f"{100 * r['success'][h]:.1f}%" for h in hs[1:])
            + " | "
            + ", ".join(f"{100 * r['uniform'][h]:.1f}%" for h in hs)
            + f" | {r['spread']:.3f} | {r['pi_without_key']} / {r['pi_with_key']} |"
        )
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

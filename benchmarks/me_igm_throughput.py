"""Training throughput of ME-QMIX relative to QMIX on the same env and settings.

ME-QMIX adds the OPT hypernetworks, a second (target) pass of the soft policies
and sampled target actions to QMIX's update, and a state-conditioned softmax to
acting. Measured with ``train_throughput.measure`` (compile excluded), 4 seeds
sharded over the cores, on LBF at the vectorised setting and on SMAX
smacv2_5_units at two settings: the batch-32 setting of the first SMAX study, and the thesis's
Table A.3 as ``specs/smax_me_igm.yaml`` runs it (batch 128, buffer 5000, last action in the
observation, target copied every 200 episodes). For Table A.3 the results also give the
wall-clock that 1M env steps x 4 seeds takes at the measured rate (issue 17 asks for it).

    python benchmarks/me_igm_throughput.py   # writes benchmarks/results/me_igm_throughput.{json,md}
    python benchmarks/me_igm_throughput.py --cases smax-a3   # one case
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

import numpy as np  # noqa: E402
from _common import RESULTS, machine, now  # noqa: E402
from train_throughput import measure  # noqa: E402

SMAX_BATCH32 = dict(
    n_envs=4, lr=1e-3, td_lambda=0.4, batch_size=32, buffer_size=1000, target_update_interval=200
)
# specs/smax_me_igm.yaml's settings (Table A.3), the ones that bear on speed
SMAX_A3 = dict(
    n_envs=4,
    lr=1e-3,
    td_lambda=0.4,
    batch_size=128,
    buffer_size=5000,
    target_update="hard",
    target_update_interval=200,
    target_update_unit="episodes",
    use_rnn=True,
    hidden_dim=64,
    obs_last_action=True,
    epsilon_anneal_steps=100_000,
)
# (case, env, train_throughput setting, settings)
CASES = [
    ("lbf", "lbf:Foraging-8x8-2p-3f-v3", "vectorised", {}),
    ("smax-batch32", "smax:smacv2_5_units", "smax", SMAX_BATCH32),
    ("smax-a3", "smax:smacv2_5_units", "smax", SMAX_A3),
]


REPEATS = 3  # QMIX and ME-QMIX measured in turn, so that other load on the machine hits both alike


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", choices=[c[0] for c in CASES], default=None, help="only these cases")
    p.add_argument(
        "--seconds", type=float, default=10.0, help="timed seconds per measurement (after compile)"
    )
    args = p.parse_args()
    cases = [c for c in CASES if args.cases is None or c[0] in args.cases]
    rows = []
    for case, env, setting, extra in cases:
        for rep in range(REPEATS):
            for algo in ("qmix", "me-qmix"):
                r = measure(setting, env, 4, args.seconds, algo=algo, extra=extra)
                r.update(repeat=rep, case=case)
                rows.append(r)
                print(f"{algo:8s} {case:14s} {r['env_steps_per_s']:10,.0f} env steps/s (4 seeds)", flush=True)

    def median_rate(case, algo):
        return float(
            np.median([r["env_steps_per_s"] for r in rows if r["case"] == case and r["algo"] == algo])
        )

    ratios = {c[0]: median_rate(c[0], "me-qmix") / median_rate(c[0], "qmix") for c in cases}
    doc = {
        "benchmark": "me_igm_throughput",
        "date": now(),
        "machine": machine(),
        "cases": cases,
        "rows": rows,
    }
    doc["ratio_me_qmix_over_qmix"] = ratios
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "me_igm_throughput.json").write_text(json.dumps(doc, indent=2) + "\n")
    m = doc["machine"]
    lines = [
        f"# ME-QMIX vs QMIX training throughput ({doc['date'][:10]}, {m['cpu']}, {m['cores']} cores, jax {m['jax']})",
        "",
        f"4 seeds, env steps per second of training (all seeds), compile excluded; median of {REPEATS} "
        "alternating measurements of each. Produced by `python benchmarks/me_igm_throughput.py`. "
        f"Load average when it finished: {m['load_average_1m']:.1f}.",
        "",
        "| case | env | QMIX | ME-QMIX | ME-QMIX / QMIX (target 0.85) |",
        "|---|---|---:|---:|---:|",
    ]
    for case, env, _, _ in cases:
        q, me = median_rate(case, "qmix"), median_rate(case, "me-qmix")
        lines.append(f"| {case} | {env} | {q:,.0f} | {me:,.0f} | {ratios[case]:.2f} |")
    if any(c[0] == "smax-a3" for c in cases):
        lines += [
            "",
            "Table A.3 (`smax-a3`): wall-clock of 1M env steps x 4 seeds at the rates above, training only "
            "(evaluation and checkpoints add to it): "
            + ", ".join(f"{a} {4e6 / median_rate('smax-a3', a) / 60:.0f} min" for a in ("qmix", "me-qmix"))
            + ".",
        ]
    (RESULTS / "me_igm_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Training throughput of ME-QMIX relative to QMIX on the same env and settings.

ME-QMIX adds the OPT hypernetworks, a second (target) pass of the soft policies
and sampled target actions to QMIX's update, and a state-conditioned softmax to
acting. Measured with ``train_throughput.measure`` (compile excluded), 4 seeds
sharded over the cores, on LBF at the vectorised setting and on SMAX
smacv2_5_units at the settings of ``specs/smax_me_igm.yaml``.

    python benchmarks/me_igm_throughput.py   # writes benchmarks/results/me_igm_throughput.{json,md}
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

import numpy as np  # noqa: E402
from _common import RESULTS, machine, now  # noqa: E402
from train_throughput import measure  # noqa: E402

CASES = {
    "lbf:Foraging-8x8-2p-3f-v3": ("vectorised", {}),
    "smax:smacv2_5_units": (
        "smax",
        dict(n_envs=4, lr=1e-3, td_lambda=0.4, batch_size=32, buffer_size=1000, target_update_interval=200),
    ),
}


REPEATS = 3  # QMIX and ME-QMIX measured in turn, so that other load on the machine hits both alike


def main() -> None:
    rows = []
    for env, (setting, extra) in CASES.items():
        for rep in range(REPEATS):
            for algo in ("qmix", "me-qmix"):
                r = measure(setting, env, 4, 10.0, algo=algo, extra=extra)
                r["repeat"] = rep
                rows.append(r)
                print(f"{algo:8s} {env:28s} {r['env_steps_per_s']:10,.0f} env steps/s (4 seeds)", flush=True)

    def median_rate(env, algo):
        return float(np.median([r["env_steps_per_s"] for r in rows if r["env"] == env and r["algo"] == algo]))

    ratios = {env: median_rate(env, "me-qmix") / median_rate(env, "qmix") for env in CASES}
    doc = {
        "benchmark": "me_igm_throughput",
        "date": now(),
        "machine": machine(),
        "cases": CASES,
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
        f"Load average when it finished: {m['load_average_1m']:.1f} (2 cores; other jobs were running).",
        "",
        "| env | setting | QMIX | ME-QMIX | ME-QMIX / QMIX |",
        "|---|---|---:|---:|---:|",
    ]
    for env, (setting, _) in CASES.items():
        q, me = median_rate(env, "qmix"), median_rate(env, "me-qmix")
        lines.append(f"| {env} | {setting} | {q:,.0f} | {me:,.0f} | {ratios[env]:.2f} |")
    (RESULTS / "me_igm_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

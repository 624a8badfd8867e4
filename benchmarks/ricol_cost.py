"""The cost of one RICOL iteration at the BabyAI benchmark's settings: seconds per phase and peak memory.

Loads the policy and the reflector (the embedded SmolLM2-135M unless ``--model``), then runs ONE
iteration of ``ricol`` (collect -> reflect -> update) with the settings of
``benchmarks/ricol_babyai.py`` (the evaluations before and after are skipped: they are not part
of an iteration's cost). Records, as one row of ``benchmarks/results/ricol_cost.{json,md}``
(a row with the same ``--label`` is replaced):

* seconds of loading, collect, reflect (reflections and the policy's re-query with feedback),
  update (the fine-tuning, its KL before and after included) and the whole iteration;
* peak resident memory (VmHWM) of the whole process, and of the iteration alone (the peak is reset
  after loading, through ``/proc/self/clear_refs``);
* the number of states (steps collected) and reflections, the KL to the targets before and after;
* the machine, date, commit, torch threads and the 1/5/15-minute load averages before and after
  (other work on the machine slows every phase).

    python benchmarks/ricol_cost.py --label after                 # finetune from the config's default
    python benchmarks/ricol_cost.py --label after-full --finetune full
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now  # noqa: E402
from ricol_babyai import LLM_SETTINGS as BABYAI_SETTINGS  # noqa: E402

# the BabyAI benchmark's settings, less its finetune=full (which its recorded results used): the
# fine-tuning is the config's default here unless --finetune says otherwise
LLM_SETTINGS = [s for s in BABYAI_SETTINGS if not s.startswith("finetune=")]


def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "src"],
            capture_output=True,
            text=True,
            cwd=root,
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "?"


def settings_dict(extra: list[str]) -> dict:
    """The benchmark's ``key=value`` settings (plus ``extra``) as RICOLConfig keyword arguments."""

    def value(text: str):
        if text in ("true", "false"):
            return text == "true"
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    return {k: value(v) for k, v in (s.split("=", 1) for s in [*LLM_SETTINGS, *extra])}


def one_iteration(args) -> dict:
    """Loads the models and runs one RICOL iteration; returns the measured row."""
    import numpy as np
    import torch

    from credo.llm.base import LLM
    from credo.ricl.reflect import LetterPolicy
    from credo.ricl.ricol import RICOLConfig, RICOLTrainer, TextEpisodeEnv

    extra = ["iterations=1", "seeds=1", f"seed={args.seed}", f"model={args.model}"]
    if args.finetune:
        extra.append(f"finetune={args.finetune}")
    kwargs = settings_dict(extra)
    cfg = RICOLConfig(env=args.env, **kwargs)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = RICOLTrainer(cfg, Path(run_dir), log=lambda s: None)
        torch.manual_seed(cfg.seed * 7919)  # as run_seed does at iteration 0
        rng = np.random.default_rng(cfg.seed)
        backend = trainer._policy(0)
        policy = LetterPolicy(LLM(backend), trainer.task)
        trainer._reflector()  # loaded here, not inside the reflect phase
        env = TextEpisodeEnv(cfg.env, cfg.max_steps)
        letter_ids = backend.single_token_ids(trainer.task.policy_messages("x"), trainer.task.letters)
        opt = torch.optim.Adam([p for p in backend.lm.parameters() if p.requires_grad], lr=cfg.lr)
        state = {"iteration": 0, "env_steps": 0, "memory": [], "rng": None}
        t_load = time.perf_counter() - t0
        peak_load_kb = _status_kb("VmHWM")
        reset = _reset_peak()
        t1 = time.perf_counter()
        row = trainer._iteration(0, env, policy, backend, letter_ids, opt, rng, cfg.seed, state)
        t_iter = time.perf_counter() - t1
        peak_iter_kb = _status_kb("VmHWM") if reset else None
    gb = 1024**2
    return {
        "label": args.label,
        "date": now(),
        "commit": args.commit or _commit(),
        "model": args.model,
        "env": args.env,
        "finetune": cfg.finetune,
        "torch_threads": torch.get_num_threads(),
        "settings": [*LLM_SETTINGS, f"seed={args.seed}"],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "states": row.get("states"),
        "feedback": row.get("feedback"),
        "kl_before": row.get("kl_before"),
        "kl_after": row.get("kl_after"),
        "seconds": {
            "load": round(t_load, 1),
            "collect": round(row["seconds_collect"], 1),
            "reflect": round(row["seconds_reflect"], 1),
            "requery": round(row["seconds_requery"], 1) if "seconds_requery" in row else None,
            "update": round(row["seconds_update"], 1),
            "iteration": round(t_iter, 1),
        },
        "peak_rss_gb": {
            "loading": round(peak_load_kb / gb, 2),
            "iteration": None if peak_iter_kb is None else round(peak_iter_kb / gb, 2),
            "process": round(max(peak_load_kb, peak_iter_kb or 0) / gb, 2),
        },
        "machine": machine(),
    }


def write(rows: list[dict], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "ricol_cost",
        "settings": LLM_SETTINGS,
        "targets": {"seconds_per_iteration": 70, "peak_rss_gb": 4},
        "rows": rows,
    }
    (results / "ricol_cost.json").write_text(json.dumps(doc, indent=2) + "\n")
    m = rows[-1]["machine"]
    lines = [
        f"# The cost of one RICOL iteration ({m['cpu']}, {m['cores']} cores, no GPU)",
        "",
        "BabyAI goto, the benchmark's settings (`benchmarks/ricol_babyai.py`: "
        f"`{' '.join(LLM_SETTINGS)}`), one iteration of `ricol` with SmolLM2-135M-Instruct (embedded GGUF) "
        "as policy and reflector. Produced by `python benchmarks/ricol_cost.py --label LABEL [--finetune lora|full]`. "
        "Seconds per phase (reflect includes the policy's re-query with the feedback; update includes "
        "the KL before and after); peak resident memory (VmHWM) while loading both models and during the "
        "iteration alone; load averages (1/5/15 min) before and after the run, since other work on the "
        "2 cores slows every phase. Targets (issue 21): at most 70 s per iteration and 4 GB of memory.",
        "",
        "| label | date | commit | finetune | threads | states | collect s | reflect s (policy re-query) | update s | "
        "iteration s | load s | peak GB (load / iteration) | KL before -> after | load avg before -> after |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        s, p = r["seconds"], r["peak_rss_gb"]
        kl = (
            f"{r['kl_before']:.4f} -> {r['kl_after']:.4f}"
            if isinstance(r.get("kl_before"), float) and isinstance(r.get("kl_after"), float)
            else "-"
        )
        la = (
            f"{'/'.join(f'{x:.2f}' for x in r['load_average_before'])} -> "
            f"{'/'.join(f'{x:.2f}' for x in r['load_average_after'])}"
        )
        requery = f" ({s['requery']:.0f})" if s.get("requery") is not None else ""
        lines.append(
            f"| {r['label']} | {r['date'][:10]} | {r['commit']} | {r['finetune']} | {r['torch_threads']} | "
            f"{r['states']} | {s['collect']:.0f} | {s['reflect']:.0f}{requery} | {s['update']:.0f} | "
            f"**{s['iteration']:.0f}** | {s['load']:.0f} | {p['loading']:.1f} / {p['iteration'] or 0:.1f} | "
            f"{kl} | {la} |"
        )
    notes = [f"* {r['label']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        lines += ["", *notes]
    (results / "ricol_cost.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--label", required=True, help="the row's name (a row with this label is replaced)")
    p.add_argument("--finetune", choices=["lora", "full"], default=None, help="default: the config's")
    p.add_argument("--env", default="babyai:goto")
    p.add_argument("--model", default="embedded")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument(
        "--commit", default=None, help="the code's commit (default: git's, +dirty if src/ is edited)"
    )
    p.add_argument("--dry", action="store_true", help="print the row, do not record it")
    args = p.parse_args()
    row = one_iteration(args)
    print(json.dumps({k: v for k, v in row.items() if k != "machine"}, indent=2))
    if args.dry:
        return
    path = args.results / "ricol_cost.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    rows = [r for r in rows if r["label"] != args.label] + [row]
    write(rows, args.results)


if __name__ == "__main__":
    main()

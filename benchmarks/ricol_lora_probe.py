"""LoRA against full fine-tuning in RICOL's improvement step: the step's learning rate, time and memory.

Sixteen BabyAI goto start states (as ``ricol_lr_probe.py``); each target is eq. 3.5's mix (alpha 0.5)
of the policy and the policy asked again with the oracle's 100%-accurate feedback, so the target
moves towards the expert's action. One epoch (two steps of 8 states, the benchmark's) from the
same weights for each setting; records KL(target || pi) before and after, the policy's mean
probability of the expert's action before and after (does the step move the policy the way the
feedback says?), the seconds of the step and the peak resident memory during it.

    python benchmarks/ricol_lora_probe.py     # writes benchmarks/results/ricol_lora_probe.{json,md}
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now  # noqa: E402
from ricol_cost import _reset_peak, _status_kb  # noqa: E402

SETTINGS = [("full", 1e-6), ("lora", 1e-4), ("lora", 3e-4), ("lora", 1e-3), ("lora", 3e-3)]


def main() -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from credo.llm.base import LLM
    from credo.llm.local import LocalBackend
    from credo.ricl.advantage import trust_region_target
    from credo.ricl.prompts import task_for
    from credo.ricl.reflect import LetterPolicy
    from credo.ricl.ricol import RICOLConfig, RICOLTrainer, TextEpisodeEnv, oracle_feedback

    backend = LocalBackend("embedded")
    task, env = task_for("babyai:goto"), TextEpisodeEnv("babyai:goto")
    policy, rng = LetterPolicy(LLM(backend), task), np.random.default_rng(0)
    chats, targets, experts = [], [], []
    for s in range(16):
        obs, mission = env.reset(s)
        action, expert = int(rng.integers(6)), env.expert_action()
        logp = policy.log_probs(obs, mission=mission)
        fb = oracle_feedback(task, action, expert, 1.0, rng)
        logp_prime = policy.log_probs(obs, feedback=fb, mission=mission)
        chats.append(task.policy_messages(obs, mission=mission))
        targets.append(np.exp(trust_region_target(logp, logp_prime, 0.5)))
        experts.append(expert)
    targets = np.array(targets)
    ids = backend.single_token_ids(task.policy_messages("x"), task.letters)
    base = backend.lm
    start = {k: v.clone() for k, v in base.state_dict().items()}
    trainer = RICOLTrainer(RICOLConfig(epochs=1, batch_size=8), Path("/tmp/ricol_lora_probe"))

    def expert_prob() -> float:
        with torch.no_grad():
            lp = backend.next_token_logprobs(chats, ids)
            lp = lp - torch.logsumexp(lp, -1, keepdim=True)
        return float(np.mean([np.exp(float(lp[i, e])) for i, e in enumerate(experts)]))

    rows = []
    for finetune, lr in SETTINGS:
        base.load_state_dict(start)
        if finetune == "lora":
            torch.manual_seed(0)
            backend.lm = get_peft_model(
                base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
            )
        else:
            backend.lm = base
        p_before = expert_prob()
        opt = torch.optim.Adam([p for p in backend.lm.parameters() if p.requires_grad], lr=lr)
        load = os.getloadavg()
        _reset_peak()
        t = time.perf_counter()
        before, after = trainer._improve(
            backend, ids, opt, chats, targets, np.ones(16), np.random.default_rng(1)
        )
        seconds = time.perf_counter() - t
        peak = _status_kb("VmHWM") / 1024**2
        row = dict(
            finetune=finetune,
            lr=lr,
            kl_before=before,
            kl_after=after,
            expert_prob_before=p_before,
            expert_prob_after=expert_prob(),
            seconds=seconds,
            peak_rss_gb=peak,
            load_average=[round(x, 2) for x in load],
        )
        print(json.dumps(row), flush=True)
        rows.append(row)
        if finetune == "lora":
            backend.lm = backend.lm.unload()  # the base model without the adapters
            base = backend.lm
        del opt
        for p in base.parameters():
            p.grad = None  # full fine-tuning's gradients would count in the next row's memory
    doc = {"benchmark": "ricol_lora_probe", "date": now(), "machine": machine(), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ricol_lora_probe.json").write_text(json.dumps(doc, indent=2) + "\n")
    m = doc["machine"]
    lines = [
        f"# RICOL's improvement step: LoRA vs full fine-tuning ({doc['date'][:10]}, {m['cpu']}, {m['cores']} cores, "
        f"torch {__import__('torch').get_num_threads()} thread(s))",
        "",
        "`python benchmarks/ricol_lora_probe.py`: SmolLM2-135M, 16 BabyAI goto start states, targets "
        "from the oracle's 100%-accurate feedback (alpha 0.5), one epoch of two Adam steps of 8 states "
        "from the same weights per row; LoRA r 8 on q_proj and v_proj. Seconds: the step, with the KL "
        "after (the KL before comes from the recorded log-probabilities in a run, but is computed here). "
        "Peak: resident memory during the step (the model and the 16 states' prompts included); the "
        "LoRA rows run after the full one in the same process and count memory it freed but the "
        "allocator kept, so compare memory in `ricol_cost.md`, which runs each in its own process.",
        "",
        "| finetune | lr | KL before | KL after | P(expert) before | P(expert) after | seconds | peak GB | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['finetune']} | {r['lr']:g} | {r['kl_before']:.5f} | {r['kl_after']:.5f} | "
            f"{r['expert_prob_before']:.4f} | {r['expert_prob_after']:.4f} | {r['seconds']:.0f} | "
            f"{r['peak_rss_gb']:.2f} | {'/'.join(f'{x:.2f}' for x in r['load_average'])} |"
        )
    (RESULTS / "ricol_lora_probe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

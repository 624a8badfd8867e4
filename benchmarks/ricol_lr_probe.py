"""How far one epoch of RICOL's improvement step moves the 135M policy, by optimiser and learning rate.

Sixteen BabyAI goto start states; the target of each is eq. 3.5's trust-region
mix (alpha 0.5) of the policy and the policy asked again with the oracle's
feedback. One epoch (two steps of 8 states) from the same weights for each
setting; prints KL(target || pi) before and after. Run it alone: it needs about
10 GB of memory.

    python benchmarks/ricol_lr_probe.py
"""

import time

import numpy as np
import torch

from credo.llm.base import LLM
from credo.llm.local import LocalBackend
from credo.ricl.advantage import trust_region_target
from credo.ricl.prompts import task_for
from credo.ricl.reflect import LetterPolicy
from credo.ricl.ricol import RICOLConfig, RICOLTrainer, TextEpisodeEnv, oracle_feedback

torch.set_num_threads(2)
backend = LocalBackend("embedded")
task, env = task_for("babyai:goto"), TextEpisodeEnv("babyai:goto")
policy, rng = LetterPolicy(LLM(backend), task), np.random.default_rng(0)
chats, targets = [], []
for s in range(16):
    obs, mission = env.reset(s)
    action, expert = int(rng.integers(6)), env.expert_action()
    logp = policy.log_probs(obs, mission=mission)
    logp_prime = policy.log_probs(
        obs, feedback=oracle_feedback(task, action, expert, 1.0, rng), mission=mission
    )
    chats.append(task.policy_messages(obs, mission=mission))
    targets.append(np.exp(trust_region_target(logp, logp_prime, 0.5)))
targets = np.array(targets)
ids = backend.single_token_ids(task.policy_messages("x"), task.letters)
start = {k: v.clone() for k, v in backend.lm.state_dict().items()}
trainer = RICOLTrainer(RICOLConfig(epochs=1, batch_size=8), "/tmp/ricol_lr_probe")
for name, lr in [("adam", 3e-5), ("adam", 1e-5), ("adam", 3e-6), ("adam", 1e-6), ("sgd", 1.0)]:
    backend.lm.load_state_dict(start)
    params = backend.lm.parameters()
    opt = torch.optim.Adam(params, lr=lr) if name == "adam" else torch.optim.SGD(params, lr=lr)
    t = time.time()
    before, after = trainer._improve(backend, ids, opt, chats, targets, np.ones(16), np.random.default_rng(1))
    print(name, lr, f"KL {before:.5f} -> {after:.5f}", f"{time.time() - t:.0f}s", flush=True)

"""TFCAF (QLLM): a training-free credit function written by an LLM (or by hand) in place of a mixing network.

``q_tot = tfcaf(agent_qs [B, n], state [B, S])``, with no trainable parameters.
The function is loaded from a file and, before it may run here, passes every
check of ``credo.qllm.checks`` (in a separate, limited process); only then is it
defined in the sandbox's restricted namespace and traced into the learner.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import flax.linen as nn


class TFCAFMixer(nn.Module):
    n_agents: int
    state_dim: int = 0
    n_actions: int = 0
    fn: Callable | None = None  # the checked tfcaf(agent_qs [B, n], state [B, S]) -> [B] or [B, 1]

    @nn.compact
    def __call__(self, agent_qs, state, max_qs=None, actions_onehot=None):
        lead = agent_qs.shape[:-1]
        q = self.fn(agent_qs.reshape(-1, self.n_agents), state.reshape(-1, state.shape[-1]))
        return q.reshape(lead)


@lru_cache(maxsize=16)
def _checked(source: str, n_agents: int, state_dim: int, igm: bool):
    from credo.llm.sandbox import compile_restricted
    from credo.qllm.checks import ENTRY, check_tfcaf

    report = check_tfcaf(source, n_agents, state_dim, igm=igm)
    if not report.passed:
        raise ValueError(f"the TFCAF was rejected by the sandbox: {report.reason}\n{report.format()}")
    return compile_restricted(report.source, ENTRY, 2)


def make_tfcaf_mixer(
    n_agents: int, state_dim: int, n_actions: int, path: str | None = None, gamma: int | None = None
):
    """The mixer of the TFCAF in ``path``; ``gamma`` (0/1) overrides the file's IGM gate (default 1)."""
    from credo.qllm.artifact import load_tfcaf

    if not path:
        raise ValueError(
            "the tfcaf mixer needs a TFCAF file: --set tfcaf=PATH (a .json from `credo qllm generate ENV`, or a "
            "hand-written .py defining tfcaf(agent_qs, state))."
        )
    tfcaf = load_tfcaf(path)
    g = gamma if gamma is not None else (tfcaf.gamma if tfcaf.gamma is not None else 1)
    if g not in (0, 1):
        raise ValueError(f"tfcaf_gamma must be 0 or 1, got {g!r}")
    fn = _checked(tfcaf.source, n_agents, state_dim, bool(g))
    return TFCAFMixer(n_agents=n_agents, state_dim=state_dim, n_actions=n_actions, fn=fn)

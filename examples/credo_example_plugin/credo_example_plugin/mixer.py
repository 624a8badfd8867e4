"""A mixer: the VDN sum plus a state-dependent, non-negative weight on the best agent's value.

It keeps the contract of every credo mixer: built as ``MaxSumMixer(n_agents=, state_dim=,
n_actions=)`` and applied to ``(agent_qs [..., n_agents], state [..., state_dim])``; the keyword
context (``max_qs``, ``actions_onehot``) is accepted and ignored.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class MaxSumMixer(nn.Module):
    n_agents: int
    state_dim: int
    n_actions: int
    hidden: int = 16

    @nn.compact
    def __call__(self, agent_qs, state, max_qs=None, actions_onehot=None):
        weight = nn.softplus(nn.Dense(1)(nn.relu(nn.Dense(self.hidden)(state))))[..., 0]  # >= 0: monotone
        return jnp.sum(agent_qs, axis=-1) + weight * jnp.max(agent_qs, axis=-1)

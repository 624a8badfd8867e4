"""VDN (Sunehag et al. 2018): the team value is the sum of the agents' values."""

import flax.linen as nn
import jax.numpy as jnp


class VDNMixer(nn.Module):
    """``q_tot = sum_i Q_i``: no parameters and no use of the state.

    ``state_dim`` and ``n_actions`` are accepted so that every mixer is built with the same arguments.
    """

    n_agents: int
    state_dim: int = 0
    n_actions: int = 0

    @nn.compact
    def __call__(self, agent_qs, state, max_qs=None, actions_onehot=None):
        return jnp.sum(agent_qs, axis=-1)

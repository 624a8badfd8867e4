"""QMIX (Rashid et al. 2018): a mixing network whose weights, made from the state by
hypernetworks, are non-negative, so Q_tot is monotone in every Q_i (the IGM
condition holds by construction)."""

import flax.linen as nn
import jax.numpy as jnp

from credo.mixers.hyper import HyperMLP


class QMixer(nn.Module):
    n_agents: int
    state_dim: int = 0
    n_actions: int = 0
    embed_dim: int = 32  # width of the mixing layer
    hypernet_layers: int = 2  # depth of the weight hypernetworks
    hypernet_embed: int = 64  # width of the hypernetworks' hidden layer

    @nn.compact
    def __call__(self, agent_qs, state, max_qs=None, actions_onehot=None):
        # agent_qs: [..., n], state: [..., S] -> [...]
        n, e = self.n_agents, self.embed_dim
        w1 = jnp.abs(HyperMLP(n * e, self.hypernet_layers, self.hypernet_embed, name="hyper_w1")(state))
        w1 = w1.reshape(*state.shape[:-1], n, e)
        b1 = HyperMLP(e, 1, name="hyper_b1")(state)
        w_final = jnp.abs(HyperMLP(e, self.hypernet_layers, self.hypernet_embed, name="hyper_w_final")(state))
        v = HyperMLP(1, 2, e, name="V")(state)[..., 0]
        hidden = nn.elu(jnp.einsum("...n,...ne->...e", agent_qs, w1) + b1)  # [..., e]
        return jnp.einsum("...e,...e->...", hidden, w_final) + v

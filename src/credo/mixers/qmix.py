"""QMIX (Rashid et al. 2018): a mixing network whose weights, made from the state by
hypernetworks, are non-negative, so Q_tot is monotone in every Q_i (the IGM
condition holds by construction)."""

import flax.linen as nn
import jax.numpy as jnp

from credo.mixers.hyper import HyperMLP


class QMixer(nn.Module):
    """QMIX's mixing network: ``Q_tot = w_final(s) . elu(Q w1(s) + b1(s)) + V(s)``.

    ``w1`` (``[n_agents, embed_dim]``) and ``w_final`` are made by hypernetworks of the state and
    taken in absolute value, so ``Q_tot`` is monotone in every ``Q_i``; the biases ``b1`` and ``V``
    (a two-layer network) are unconstrained. The sizes default to PyMARL's ``qmix.yaml``
    (``mixing_embed_dim`` 32, which the config passes as ``embed_dim``; ``hypernet_layers`` 2;
    ``hypernet_embed`` 64). Maps ``agent_qs [..., n]`` and ``state [..., S]`` to ``[...]``.
    """

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

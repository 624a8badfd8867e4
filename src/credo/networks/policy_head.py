"""Policy heads of maximum-entropy value decomposition (ME-IGM): local Q-values -> policy logits.

``head(qs [..., n, A], state [..., S]) -> logits [..., n, A]``, one transformation
per agent, conditioned on the global state (used only in training: execution
takes the argmax of the local Q-values).

- ``OrderPreservingTransform`` (OPT, ME-IGM eq. 2.2): per action entry ``x`` of
  agent i's Q-vector,

      g_i(x, s) = x + b_i(s) + sum_k |w2_ik(s)| * ELU(|w1_ik(s)| * x + b1_ik(s)),

  with hypernetworks making w1, b1, w2, b from the state. Every action entry goes
  through the same scalar function, and that function has slope >= 1 (the identity
  path plus non-negative weights on a monotone activation), so the order of the
  actions is kept strictly: argmax of the logits = argmax of Q. ``layers`` stacks
  such blocks (a composition of strictly increasing maps is strictly increasing).
- ``PolicyMLP``: the paper's "OPT -> MLP" ablation (Table 2.10), an unconstrained
  3-layer MLP from (Q-vector, state, agent id) to logits; it does not keep the order.

Reading of the paper's Table A.1 ("OPT: hyper-net embed 64, num_layer 1"): the
hypernetworks have one hidden layer of 64 units, as the mixer's, and
``num_layer`` counts stacked monotone blocks (two would roughly double the
parameters, which is why the paper used one on SMACv2). Hidden width 16 is the
authors' code.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from credo.mixers.hyper import HyperMLP
from credo.networks.agent import TorchDense


class OrderPreservingTransform(nn.Module):
    n_agents: int
    n_actions: int
    hidden: int = 16  # monotone units per agent (the authors' code: 16)
    layers: int = 1  # stacked monotone blocks (the paper: 1 on SMACv2)
    hypernet_layers: int = 2  # depth of the hypernetworks
    hypernet_embed: int = 64  # width of their hidden layer

    @nn.compact
    def __call__(self, qs, state):
        n, d = self.n_agents, self.hidden
        lead = state.shape[:-1]
        x = qs  # [..., n, A]
        for layer in range(self.layers):
            hyper = lambda out, name, layer=layer: HyperMLP(  # noqa: E731
                out, self.hypernet_layers, self.hypernet_embed, name=f"{name}_{layer}"
            )(state)
            w1 = jnp.abs(hyper(n * d, "w1")).reshape(*lead, n, 1, d)
            b1 = hyper(n * d, "b1").reshape(*lead, n, 1, d)
            w2 = jnp.abs(hyper(n * d, "w2")).reshape(*lead, n, 1, d)
            b = hyper(n, "b").reshape(*lead, n, 1)
            h = nn.elu(x[..., None] * w1 + b1)  # [..., n, A, d]
            x = x + b + jnp.sum(w2 * h, -1)
        return x


class PolicyMLP(nn.Module):
    """Unconstrained logits from (Q-vector, state, agent id): the "OPT -> MLP" ablation."""

    n_agents: int
    n_actions: int
    hidden: int = 64

    @nn.compact
    def __call__(self, qs, state):
        n = self.n_agents
        lead = state.shape[:-1]
        s = jnp.broadcast_to(state[..., None, :], (*lead, n, state.shape[-1]))
        ids = jnp.broadcast_to(jnp.eye(n), (*lead, n, n))
        x = jnp.concatenate([qs, s, ids], -1)
        x = jax.nn.relu(TorchDense(self.hidden, name="dense0")(x))
        x = jax.nn.relu(TorchDense(self.hidden, name="dense1")(x))
        return TorchDense(self.n_actions, name="dense2")(x)


POLICY_HEADS = {"opt": OrderPreservingTransform, "mlp": PolicyMLP}


def make_policy_head(name: str, n_agents: int, n_actions: int, **kwargs):
    """The head registered as ``name``; ``none`` (the "+Entropy" ablation: logits = Q) gives None."""
    if name == "none":
        return None
    if name not in POLICY_HEADS:
        raise ValueError(f"unknown policy_transform {name!r}; choose opt, mlp or none.")
    cls = POLICY_HEADS[name]
    if cls is PolicyMLP:
        kwargs = {}
    return cls(n_agents=n_agents, n_actions=n_actions, **kwargs)

"""Policy heads of maximum-entropy value decomposition (ME-IGM): local Q-values -> policy logits.

``head(qs [..., n, A], state [..., S]) -> logits [..., n, A]``, one transformation
per agent, conditioned on the global state (used only in training: execution
takes the argmax of the local Q-values).

- ``OrderPreservingTransform`` (OPT, ME-IGM eq. 2.2). Every action entry ``x`` of
  agent i's Q-vector goes through the same scalar function of x, made from the
  state by hypernetworks, in one of two forms (``form``):

  * ``"paper"`` (eq. 2.2 as written): ``g_i(x, s) = W2_i(s) ELU(W1_i(s) x + b1_i(s)) + b2_i(s)``,
    i.e. ``sum_k w2_ik(s) ELU(w1_ik(s) x + b1_ik(s)) + b2_i(s)``, with
    ``w = |hyper(s)| + eps`` (strictly positive weights) and no identity term.
    The hypernetworks are one linear layer of the state each (Table A.1,
    "OPT: num_layer 1", read as the hypernetwork depth; see below).
  * ``"skip"`` (the authors' earlier Soft-QMIX code, credo's first form):
    ``g_i(x, s) = x + b_i(s) + sum_k |w2_ik(s)| ELU(|w1_ik(s)| x + b1_ik(s))``
    with two-layer hypernetworks (hidden ``hypernet_embed``). The identity path
    makes the slope >= 1 everywhere.

  Both are strictly increasing in x (non-negative weights on a strictly
  increasing activation; the paper form needs its weights strictly positive
  for that, the skip form gets it from the identity), so the order of the
  actions is kept strictly: argmax of the logits = argmax of Q. ``layers``
  stacks such blocks (a composition of strictly increasing maps is strictly
  increasing); eq. 2.2 is one block.
- ``PolicyMLP``: the paper's "OPT -> MLP" ablation (Table 2.10), an unconstrained
  3-layer MLP from (Q-vector, state, agent id) to logits; it does not keep the order.

Reading of the paper's Table A.1 ("OPT: hyper-net embed 64, embed_dim -,
num_layer 1", next to "mixer: 64, 32, 2"): the mixer row is pymarl2's QMIX
config (``hypernet_embed`` 64, ``mixing_embed_dim`` 32, ``hypernet_layers`` 2),
so ``num_layer`` is the depth of the hypernetworks, and 1 means each OPT
weight is a single linear layer of the state (pymarl's ``hypernet_layers: 1``,
where ``hypernet_embed`` is listed but unused). The ``"paper"`` form takes that
reading; the ``"skip"`` form keeps credo's earlier reading (two-layer
hypernetworks, ``num_layer`` = stacked blocks). The hidden width d1 is not in
the table ("-"); 16 is the authors' code.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from credo.mixers.hyper import HyperMLP
from credo.networks.agent import TorchDense

_MIN_WEIGHT = 1e-3  # floor of the paper OPT's weights |hyper(s)| + eps (strictly positive)


class OrderPreservingTransform(nn.Module):
    """The OPT of ME-IGM: ``qs [..., n, A]``, ``state [..., S]`` -> logits ``[..., n, A]``, strictly
    increasing in each Q-value, so each agent's argmax is kept (``form``: see the module docstring).

    Raises ValueError for a ``form`` other than ``paper`` or ``skip``.
    """

    n_agents: int
    n_actions: int
    hidden: int = 16  # monotone units per agent (d1; the authors' code: 16)
    layers: int = 1  # stacked monotone blocks (eq. 2.2: 1)
    form: str = "paper"  # "paper": eq. 2.2, no skip; "skip": identity + monotone part (authors' earlier code)
    hypernet_layers: int | None = None  # depth of the hypernetworks; None: the form's (paper 1, skip 2)
    hypernet_embed: int = 64  # width of their hidden layer (unused by one-layer hypernetworks)

    @nn.compact
    def __call__(self, qs, state):
        if self.form not in ("paper", "skip"):
            raise ValueError(f"unknown OPT form {self.form!r}; choose paper or skip.")
        paper = self.form == "paper"
        depth = self.hypernet_layers if self.hypernet_layers is not None else (1 if paper else 2)
        n, d = self.n_agents, self.hidden
        lead = state.shape[:-1]
        x = qs  # [..., n, A]
        for layer in range(self.layers):
            hyper = lambda out, name, layer=layer: HyperMLP(  # noqa: E731
                out, depth, self.hypernet_embed, name=f"{name}_{layer}"
            )(state)
            if paper:
                # Strictly positive weights: with |.| alone a state where w1_k * w2_k = 0
                # for every k makes g constant in x (a uniform policy whose argmax ties),
                # i.e. merely non-decreasing. A positive floor keeps the slope
                # sum_k w2_k w1_k ELU'(.) > 0, so the order is kept strictly (up to
                # float32: ELU saturates at -1 below about -17).
                positive = lambda z: jnp.abs(z) + _MIN_WEIGHT  # noqa: E731
            else:
                positive = jnp.abs  # the identity path already gives slope >= 1
            w1 = positive(hyper(n * d, "w1")).reshape(*lead, n, 1, d)
            b1 = hyper(n * d, "b1").reshape(*lead, n, 1, d)
            w2 = positive(hyper(n * d, "w2")).reshape(*lead, n, 1, d)
            b = hyper(n, "b").reshape(*lead, n, 1)
            h = nn.elu(x[..., None] * w1 + b1)  # [..., n, A, d]
            x = (b if paper else x + b) + jnp.sum(w2 * h, -1)
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

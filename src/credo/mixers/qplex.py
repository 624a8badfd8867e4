"""QPLEX (Wang et al. 2021): duelling mixing that is IGM-complete.

Each agent's value is transformed by positive state-dependent weights,
``Q_i' = w_i(s) Q_i + b_i(s)`` and ``V_i' = w_i(s) V_i + b_i(s)`` with
``V_i = max_a Q_i``, and

    Q_tot = sum_i Q_i' + sum_i (lambda_i(s, a) - 1) * stop_grad(Q_i' - V_i'),

where ``lambda_i > 0`` comes from multi-head attention over the state and the
joint action. Since ``Q_i' - V_i' <= 0`` with equality at each agent's greedy
action, the greedy joint action of Q_tot is the agents' greedy actions. The
stop-gradient on the advantage follows the authors' code (``adv_q.detach()``),
as does ``lambda - 1`` (their ``is_minus_one``).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from credo.mixers.hyper import HyperMLP


class QPLEXMixer(nn.Module):
    """QPLEX's duelling mixer (see the module docstring for the formula).

    Needs ``max_qs [..., n]`` (each agent's greedy value) and ``actions_onehot [..., n, n_actions]``
    (the joint action) besides ``agent_qs`` and ``state``, and raises ValueError without them.
    The attention sizes follow pymarl2's ``qplex.yaml``.
    """

    n_agents: int
    state_dim: int = 0
    n_actions: int = 0
    hypernet_layers: int = 2  # depth of the transformation's weight network
    hypernet_embed: int = 64
    num_kernel: int = 4  # attention heads of lambda(s, a) (pymarl2 qplex.yaml)
    adv_hypernet_layers: int = 2  # depth of each attention extractor (pymarl2 qplex.yaml)
    adv_hypernet_embed: int = 64

    @nn.compact
    def __call__(self, agent_qs, state, max_qs=None, actions_onehot=None):
        if max_qs is None or actions_onehot is None:
            raise ValueError("QPLEX needs max_qs [..., n] and actions_onehot [..., n, n_actions].")
        n = self.n_agents
        w = (
            jnp.abs(HyperMLP(n, self.hypernet_layers, self.hypernet_embed, name="hyper_w_final")(state))
            + 1e-10
        )
        b = HyperMLP(n, 2, self.hypernet_embed, name="V")(state)
        q = w * agent_qs + b  # [..., n]
        v = w * max_qs + b
        adv = jax.lax.stop_gradient(q - v)  # <= 0

        joint = jnp.concatenate([state, actions_onehot.reshape(*actions_onehot.shape[:-2], -1)], -1)
        lam = 0.0
        for k in range(self.num_kernel):
            mlp = lambda out, name: HyperMLP(
                out, self.adv_hypernet_layers, self.adv_hypernet_embed, name=name
            )  # noqa: E731
            key = jnp.abs(mlp(1, f"key{k}")(state)) + 1e-10  # [..., 1]
            agents = jax.nn.sigmoid(mlp(n, f"agents{k}")(state))  # [..., n]
            action = jax.nn.sigmoid(mlp(n, f"action{k}")(joint))  # [..., n]
            lam = lam + key * agents * action
        return jnp.sum(q, -1) + jnp.sum(adv * (lam - 1.0), -1)

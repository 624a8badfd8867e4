"""The reverse world models that estimate dependence graphs (paper 004, section 5.3).

An encoder maps each agent's observation to a latent ``z``. An action predictor
``q(A_j | z_j)`` and a multi-agent reverse world model ``q(A_j | z_j, u_k, u_k', r_k)``
are trained by cross-entropy on the collected steps, where ``u_k -> u_k'`` is agent
k's own substate before and after the step (encoded) and ``r_k`` its local reward.
If seeing k's transition makes j's action more predictable (lower entropy), j's action
moved k: an edge j -> k (``credo.credit.dependence.graph_from_entropies``).

The substate is what an env's ``agent_features(state)`` returns (LBF: position and
level; MPE: position and velocity; SMAX: position and health). Why not k's whole
observation: where agents see each other (LBF, MPE), k's next observation shows j's
new position, so j's action is always predictable from it and every edge is on
(measured on LBF: 97% of the edges at c = 0.9). Envs without ``agent_features``
fall back to observations. k's reward is an input because on LBF agents interact
through rewards (loading a food together) more than through each other's positions.
Sizes follow the authors' code: encoder 64 -> latent 64, predictors 256-128-128
with LayerNorm.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from credo.networks.agent import TorchDense


class _MLP(nn.Module):
    sizes: tuple[int, ...]
    out: int
    layer_norm: bool = True

    @nn.compact
    def __call__(self, x):
        for i, size in enumerate(self.sizes):
            x = TorchDense(size, name=f"dense{i}")(x)
            if self.layer_norm:
                x = nn.LayerNorm(name=f"norm{i}")(x)
            x = nn.relu(x)
        return TorchDense(self.out, name="out")(x)


class ReverseWorldModel(nn.Module):
    n_actions: int
    latent: int = 64  # size of the latent state z
    encoder_hidden: int = 64  # hidden width of the encoders
    hidden: tuple[int, ...] = (256, 128, 128)  # predictor layers

    def setup(self):
        self.encoder = _MLP((self.encoder_hidden,), self.latent, layer_norm=False)
        self.sub_encoder = _MLP((self.encoder_hidden,), self.latent, layer_norm=False)
        self.own = _MLP(self.hidden, self.n_actions)
        self.reverse = _MLP(self.hidden, self.n_actions)

    def __call__(self, obs, sub, sub_next, reward):
        """Both heads on the diagonal pairs, to create every parameter at ``init``."""
        z, u, u_next = self.encoder(obs), self.sub_encoder(sub), self.sub_encoder(sub_next)
        return self.own(z), self.reverse(jnp.concatenate([z, u, u_next, reward[..., None]], -1))

    def logits(self, obs, sub, sub_next, reward):
        """Action logits of every agent j, alone and given every other agent k's transition.

        obs: [..., n, obs_dim]; sub, sub_next: [..., n, F]; reward: [..., n] ->
        (own [..., n, A], reverse [..., P, A]) over the ``P = n (n - 1)`` ordered pairs
        ``off_diagonal_pairs(n)`` (the diagonal of a dependence graph is always on).
        """
        n = obs.shape[-2]
        z, u, u_next = self.encoder(obs), self.sub_encoder(sub), self.sub_encoder(sub_next)
        j, k = off_diagonal_pairs(n)
        pair_in = jnp.concatenate([z[..., j, :], u[..., k, :], u_next[..., k, :], reward[..., k, None]], -1)
        return self.own(z), self.reverse(pair_in)


def off_diagonal_pairs(n: int):
    """Index arrays (j, k) of the ordered pairs j != k, row-major."""
    import numpy as np

    j, k = np.nonzero(~np.eye(n, dtype=bool))
    return j, k


def masked_log_softmax(logits, avail):
    return jax.nn.log_softmax(jnp.where(avail, logits, -1e9), -1)


def entropy(logp, avail):
    return -jnp.sum(jnp.where(avail, jnp.exp(logp) * logp, 0.0), -1)


def world_model_outputs(model: ReverseWorldModel, params, obs, sub, sub_next, rewards, actions, avail, mask):
    """Cross-entropy loss and predictive entropies on a batch of padded episodes.

    obs: [B, T+1, n, obs_dim]; sub, sub_next: [B, T, n, F] (substates before and after
    each step); rewards: [B, T, n] local; actions: [B, T, n]; avail: [B, T+1, n, A]; mask: [B, T].
    Returns (loss, (h_own [B, T, n], h_reverse [B, T, n, n])); the diagonal of h_reverse
    repeats h_own (ratio 1). The loss averages the own-action and the reverse
    cross-entropies over the steps that happened.
    """
    n = actions.shape[-1]
    j, k = off_diagonal_pairs(n)
    own, rev = model.apply(params, obs[:, :-1], sub, sub_next, rewards, method=ReverseWorldModel.logits)
    av = avail[:, :-1]  # [B, T, n, A]: the actions j could take
    logp_own = masked_log_softmax(own, av)
    logp_rev = masked_log_softmax(rev, av[..., j, :])  # [B, T, P, A]
    nll_own = -jnp.take_along_axis(logp_own, actions[..., None], -1)[..., 0]  # [B, T, n]
    nll_rev = -jnp.take_along_axis(logp_rev, actions[..., j, None], -1)[..., 0]  # [B, T, P]
    m = mask.astype(jnp.float32)
    steps = jnp.maximum(m.sum(), 1.0)
    loss = jnp.sum(nll_own.mean(-1) * m) / steps
    if len(j):
        loss = loss + jnp.sum(nll_rev.mean(-1) * m) / steps
    h_own = entropy(logp_own, av)
    h_rev = jnp.broadcast_to(h_own[..., :, None], (*h_own.shape, n))
    h_rev = h_rev.at[..., j, k].set(entropy(logp_rev, av[..., j, :]))
    return loss, (h_own, h_rev)

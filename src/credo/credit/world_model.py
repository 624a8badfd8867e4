"""The reverse world models that estimate dependence graphs (paper 004, section 5.3).

An action predictor ``q(A_j | z_j)`` and a multi-agent reverse world model that
predicts ``A_j`` from ``z_j`` and another agent k's transition are trained by
cross-entropy on the collected steps. If seeing k's transition makes j's action
more predictable (lower entropy), j's action moved k: an edge j -> k
(``credo.credit.dependence.graph_from_entropies``). Two forms (``PPOConfig.wm_input``):

* ``"observation"``, the paper's (``ObservationWorldModel``): an encoder (MLP
  hidden 64 -> latent 64) maps each agent's *observation* to ``z``. It is trained
  only by a single-agent inverse model ``q(a_i | z_i, z_i')``. The predictor
  ``q(A_j | z_j)`` and the reverse model ``q(A_j | z_j, z_k, z_k')`` read
  *detached* latents, so their losses give the encoder no gradient (tested).
  The inverse model's size is not given; it uses the predictors' layers.
* ``"substate"``, credo's earlier form (``ReverseWorldModel``): the reverse model
  is ``q(A_j | z_j, u_k, u_k', r_k)``, where ``u_k -> u_k'`` is agent k's own
  substate before and after the step (encoded by a second one-layer encoder) and
  ``r_k`` its local reward; both encoders train jointly with the predictors (no
  inverse model).

The substate is what an env's ``agent_features(state)`` returns (LBF: position and
level; MPE: position and velocity; SMAX: position and health). Why credo added it:
where agents see each other (LBF, MPE), k's next observation shows j's new position,
so j's action is always predictable from it and every edge is on (measured on LBF
with credo's first version, whose reverse model read k's next observation: 97% of the
edges at c = 0.9). Envs without
``agent_features`` fall back to observations. k's reward is an input because on LBF
agents interact through rewards (loading a food together) more than through each
other's positions. Sizes follow the authors' code: encoder 64 -> latent 64,
predictors 256-128-128 with LayerNorm.
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
    """credo's substate form: an observation encoder and a substate encoder trained with the predictors.

    The own-action head predicts ``A_j`` from ``z_j``; the reverse head from ``z_j``, agent k's
    encoded substates before and after the step and k's local reward (see the module docstring).
    """

    n_actions: int
    latent: int = 64  # size of the latent state z
    encoder_hidden: int = 64  # hidden width of the encoders
    hidden: tuple[int, ...] = (256, 128, 128)  # predictor layers

    def setup(self):
        """The two one-layer encoders (observation, substate) and the own and reverse predictors."""
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


class ObservationWorldModel(nn.Module):
    """The paper's form: observation encoder trained by an inverse model; heads on detached latents."""

    n_actions: int
    latent: int = 64  # size of the latent state z
    encoder_hidden: int = 64  # hidden width of the encoder
    hidden: tuple[int, ...] = (256, 128, 128)  # layers of the inverse model and the predictors

    def setup(self):
        """The observation encoder, the inverse model and the own and reverse predictors."""
        self.encoder = _MLP((self.encoder_hidden,), self.latent, layer_norm=False)
        self.inverse = _MLP(self.hidden, self.n_actions)
        self.own = _MLP(self.hidden, self.n_actions)
        self.reverse = _MLP(self.hidden, self.n_actions)

    def __call__(self, obs, obs_next):
        """Every head on the diagonal pairs, to create every parameter at ``init``."""
        z, z_next = self.encoder(obs), self.encoder(obs_next)
        inv = self.inverse(jnp.concatenate([z, z_next], -1))
        return inv, self.own(z), self.reverse(jnp.concatenate([z, z, z_next], -1))

    def logits(self, obs, obs_next):
        """obs, obs_next: [..., n, obs_dim] -> (inverse [..., n, A], own [..., n, A], reverse [..., P, A]).

        ``inverse[i]`` predicts agent i's action from ``(z_i, z_i')``; ``own[j]`` predicts
        j's action from ``z_j``; ``reverse[p]`` predicts j's action from ``(z_j, z_k, z_k')``
        for the ``p``-th pair ``(j, k)`` of ``off_diagonal_pairs(n)``. Only the inverse
        model sees the encoder's gradient: the other heads read ``stop_gradient(z)``.
        """
        n = obs.shape[-2]
        z, z_next = self.encoder(obs), self.encoder(obs_next)
        inv = self.inverse(jnp.concatenate([z, z_next], -1))
        zd, zd_next = jax.lax.stop_gradient(z), jax.lax.stop_gradient(z_next)
        j, k = off_diagonal_pairs(n)
        pair_in = jnp.concatenate([zd[..., j, :], zd[..., k, :], zd_next[..., k, :]], -1)
        return inv, self.own(zd), self.reverse(pair_in)


def off_diagonal_pairs(n: int):
    """Index arrays (j, k) of the ordered pairs j != k, row-major."""
    import numpy as np

    j, k = np.nonzero(~np.eye(n, dtype=bool))
    return j, k


def masked_log_softmax(logits, avail):
    """Log-softmax over the last axis; unavailable actions (``avail`` False) get logit -1e9, probability 0."""
    return jax.nn.log_softmax(jnp.where(avail, logits, -1e9), -1)


def entropy(logp, avail):
    """Entropy of each distribution ``logp`` (log-probabilities on the last axis), over available actions."""
    return -jnp.sum(jnp.where(avail, jnp.exp(logp) * logp, 0.0), -1)


def _cross_entropies(own, rev, actions, avail, mask):
    """Mean own and reverse cross-entropies over the steps that happened, and the entropies.

    own [B, T, n, A], rev [B, T, P, A] logits; actions [B, T, n]; avail [B, T, n, A]; mask [B, T].
    Returns ({"own", "reverse"} losses, (h_own [B, T, n], h_reverse [B, T, n, n])); the
    diagonal of h_reverse repeats h_own (ratio 1).
    """
    n = actions.shape[-1]
    j, k = off_diagonal_pairs(n)
    logp_own = masked_log_softmax(own, avail)
    logp_rev = masked_log_softmax(rev, avail[..., j, :])  # [B, T, P, A]
    nll_own = -jnp.take_along_axis(logp_own, actions[..., None], -1)[..., 0]  # [B, T, n]
    nll_rev = -jnp.take_along_axis(logp_rev, actions[..., j, None], -1)[..., 0]  # [B, T, P]
    m = mask.astype(jnp.float32)
    steps = jnp.maximum(m.sum(), 1.0)
    losses = {
        "own": jnp.sum(nll_own.mean(-1) * m) / steps,
        "reverse": jnp.sum(nll_rev.mean(-1) * m) / steps if len(j) else jnp.zeros(()),
    }
    h_own = entropy(logp_own, avail)
    h_rev = jnp.broadcast_to(h_own[..., :, None], (*h_own.shape, n))
    h_rev = h_rev.at[..., j, k].set(entropy(logp_rev, avail[..., j, :]))
    return losses, (h_own, h_rev)


def world_model_outputs(model: ReverseWorldModel, params, obs, sub, sub_next, rewards, actions, avail, mask):
    """Loss, predictive entropies and loss parts of the substate form on a batch of padded episodes.

    obs: [B, T+1, n, obs_dim]; sub, sub_next: [B, T, n, F] (substates before and after
    each step); rewards: [B, T, n] local; actions: [B, T, n]; avail: [B, T+1, n, A]; mask: [B, T].
    Returns (loss, ((h_own [B, T, n], h_reverse [B, T, n, n]), {"own", "reverse"})); the
    diagonal of h_reverse repeats h_own (ratio 1). The loss is the sum of the mean
    own-action and reverse cross-entropies over the steps that happened.
    """
    own, rev = model.apply(params, obs[:, :-1], sub, sub_next, rewards, method=ReverseWorldModel.logits)
    losses, entropies = _cross_entropies(own, rev, actions, avail[:, :-1], mask)
    return losses["own"] + losses["reverse"], (entropies, losses)


def observation_world_model_outputs(model: ObservationWorldModel, params, obs, actions, avail, mask):
    """The same for the paper's observation form, with the inverse model's loss added.

    obs: [B, T+1, n, obs_dim] (step t's transition is ``obs[:, t] -> obs[:, t + 1]``);
    actions: [B, T, n]; avail: [B, T+1, n, A]; mask: [B, T]. Returns
    (loss, ((h_own, h_reverse), {"inverse", "own", "reverse"})), loss = the sum of the three.
    The encoder's gradient comes from the inverse loss alone.
    """
    inv, own, rev = model.apply(params, obs[:, :-1], obs[:, 1:], method=ObservationWorldModel.logits)
    av = avail[:, :-1]
    losses, entropies = _cross_entropies(own, rev, actions, av, mask)
    logp_inv = masked_log_softmax(inv, av)
    nll_inv = -jnp.take_along_axis(logp_inv, actions[..., None], -1)[..., 0]  # [B, T, n]
    m = mask.astype(jnp.float32)
    losses["inverse"] = jnp.sum(nll_inv.mean(-1) * m) / jnp.maximum(m.sum(), 1.0)
    return losses["inverse"] + losses["own"] + losses["reverse"], (entropies, losses)

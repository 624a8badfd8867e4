"""Auto-reset with episode statistics, for training loops under ``lax.scan``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from credo.envs.core import MultiAgentEnv, TimeStep, tree_where


class EpisodeState(NamedTuple):
    """The wrapped env's state plus the running return and length of the episode in progress."""

    env_state: Any
    episode_return: jax.Array  # [] float32: team return so far in this episode
    episode_length: jax.Array  # [] int32: steps so far in this episode


class AutoReset(MultiAgentEnv):
    """Resets an env as soon as an episode ends and records episode statistics.

    After a step that ends an episode, the returned ``TimeStep`` carries the
    reward, ``terminated`` and ``truncated`` of that last step, but the ``obs``,
    ``state`` and ``avail_actions`` of the first step of the next episode. The
    last observation of the finished episode is kept in ``info["final_obs"]``
    and ``info["final_state"]`` (needed to bootstrap a truncated episode).

    ``info`` also holds ``episode_done`` (this step ended an episode),
    ``episode_return`` and ``episode_length`` (of the episode that just ended;
    meaningful where ``episode_done``), and the wrapped env's own info keys.
    """

    def __init__(self, env: MultiAgentEnv):
        self.env = env
        self.key = env.key
        self.n_agents, self.obs_dim, self.state_dim = env.n_agents, env.obs_dim, env.state_dim
        self.n_actions, self.episode_limit = env.n_actions, env.episode_limit

    def __getattr__(self, name):  # expose the wrapped env's extras (e.g. payoff)
        return getattr(self.__dict__["env"], name)

    def _reset(self, key):
        env_state, ts = self.env.reset(key)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        state = EpisodeState(env_state, zero_f, zero_i)
        return state, _with_episode_info(ts, ts, jnp.zeros((), bool), zero_f, zero_i)

    def _step(self, key, state: EpisodeState, actions):
        key_step, key_reset = jax.random.split(key)
        env_state, ts = self.env.step(key_step, state.env_state, actions)
        done = ts.terminated | ts.truncated
        ep_return = state.episode_return + ts.reward
        ep_length = state.episode_length + 1

        reset_state, reset_ts = self.env.reset(key_reset)
        next_env_state = tree_where(done, reset_state, env_state)
        out = ts._replace(
            obs=jnp.where(done, reset_ts.obs, ts.obs),
            state=jnp.where(done, reset_ts.state, ts.state),
            avail_actions=jnp.where(done, reset_ts.avail_actions, ts.avail_actions),
        )
        next_state = EpisodeState(
            next_env_state,
            jnp.where(done, 0.0, ep_return),
            jnp.where(done, 0, ep_length),
        )
        return next_state, _with_episode_info(out, ts, done, ep_return, ep_length)


class VecAutoReset:
    """``n_envs`` copies of an env stepped as one batch, resetting only those that finished.

    ``AutoReset`` under ``vmap`` computes a reset for every env on every step
    (a batched ``lax.cond`` runs both branches), which dominates the step cost of
    envs whose reset is dearer than their step (LBF, SMAX). Here the done envs
    are gathered, at most ``max_resets`` of them are reset and scattered back;
    steps where none finished skip the reset, and steps where more than
    ``max_resets`` finished reset the whole batch. Each finished env still gets
    a fresh reset from its own key, so the reset distribution is unchanged.

    Same ``TimeStep`` and ``info`` conventions as ``AutoReset``, with a leading
    batch axis ``[n_envs, ...]`` on everything. (Under an outer ``vmap``, e.g.
    over seeds, the branch becomes a select and all branches run: flatten seeds
    into the env axis instead where speed matters.)
    """

    def __init__(self, env: MultiAgentEnv, n_envs: int, max_resets: int | None = None):
        self.env = env
        self.key = env.key
        self.n_envs = int(n_envs)
        # Episodes end about once per episode_limit steps; leave room for bunching.
        default = -(-4 * self.n_envs // max(env.episode_limit, 1))
        self.max_resets = int(min(self.n_envs, max(1, max_resets or default)))
        self.n_agents, self.obs_dim, self.state_dim = env.n_agents, env.obs_dim, env.state_dim
        self.n_actions, self.episode_limit = env.n_actions, env.episode_limit
        self.spec = env.spec

    def reset(self, key: jax.Array) -> tuple[EpisodeState, TimeStep]:
        """Resets all ``n_envs`` copies, each from its own split of ``key``; returns the batched state and
        ``TimeStep`` (``episode_done`` False, zero episode statistics).
        """
        env_state, ts = jax.vmap(self.env.reset)(jax.random.split(key, self.n_envs))
        zero_f = jnp.zeros((self.n_envs,), jnp.float32)
        zero_i = jnp.zeros((self.n_envs,), jnp.int32)
        state = EpisodeState(env_state, zero_f, zero_i)
        return state, _with_episode_info(ts, ts, jnp.zeros((self.n_envs,), bool), zero_f, zero_i)

    def step(self, key: jax.Array, state: EpisodeState, actions: jax.Array) -> tuple[EpisodeState, TimeStep]:
        """actions: [n_envs, n_agents] int32."""
        b, k = self.n_envs, self.max_resets
        key_step, key_reset = jax.random.split(key)
        env_state, ts = jax.vmap(self.env.step)(jax.random.split(key_step, b), state.env_state, actions)
        done = ts.terminated | ts.truncated  # [b]
        ep_return = state.episode_return + ts.reward
        ep_length = state.episode_length + 1
        n_done = done.sum()
        carried = (env_state, ts.obs, ts.state, ts.avail_actions)

        def reset_none():
            return carried

        def reset_some():
            idx = jnp.argsort(~done, stable=True)[:k]  # the done envs first
            idx = jnp.where(jnp.arange(k) < n_done, idx, b)  # index b: dropped by the scatter
            rs, rts = jax.vmap(self.env.reset)(jax.random.split(key_reset, k))
            fresh = (rs, rts.obs, rts.state, rts.avail_actions)
            return jax.tree.map(lambda x, r: x.at[idx].set(r, mode="drop"), carried, fresh)

        def reset_all():
            rs, rts = jax.vmap(self.env.reset)(jax.random.split(key_reset, b))
            fresh = (rs, rts.obs, rts.state, rts.avail_actions)
            return jax.tree.map(lambda r, x: where_batch(done, r, x), fresh, carried)

        branch = jnp.where(n_done == 0, 0, jnp.where(n_done <= k, 1, 2))
        next_env_state, obs, gstate, avail = jax.lax.switch(branch, [reset_none, reset_some, reset_all])
        out = ts._replace(obs=obs, state=gstate, avail_actions=avail)
        next_state = EpisodeState(
            next_env_state, jnp.where(done, 0.0, ep_return), jnp.where(done, 0, ep_length)
        )
        return next_state, _with_episode_info(out, ts, done, ep_return, ep_length)


def where_batch(done, a, b):
    """Selects along the leading batch axis: ``a[i] if done[i] else b[i]``."""
    return jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)


def _with_episode_info(ts: TimeStep, final: TimeStep, done, ep_return, ep_length) -> TimeStep:
    info = dict(ts.info)
    info.update(
        final_obs=final.obs,
        final_state=final.state,
        episode_done=done,
        episode_return=ep_return,
        episode_length=ep_length,
    )
    return ts._replace(info=info)

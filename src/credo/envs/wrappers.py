"""Auto-reset with episode statistics, for training loops under ``lax.scan``."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from credo.envs.core import MultiAgentEnv, TimeStep, tree_where


class EpisodeState(NamedTuple):
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

    def _extend(self, ts: TimeStep, final: TimeStep, done, ep_return, ep_length) -> TimeStep:
        info = dict(ts.info)
        info.update(
            final_obs=final.obs,
            final_state=final.state,
            episode_done=done,
            episode_return=ep_return,
            episode_length=ep_length,
        )
        return ts._replace(info=info)

    def _reset(self, key):
        env_state, ts = self.env.reset(key)
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        state = EpisodeState(env_state, zero_f, zero_i)
        return state, self._extend(ts, ts, jnp.zeros((), bool), zero_f, zero_i)

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
        return next_state, self._extend(out, ts, done, ep_return, ep_length)

"""Rendezvous on a line: two agents start at the ends and must meet.

Actions: 0 stay, 1 left, 2 right. The team reward is 1 on the step they first share a cell, which
ends the episode; the episode limit is twice the length. Each agent observes its own position and
the other's, scaled to [0, 1]; the state is the same pair.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from credo.envs.core import MultiAgentEnv, TimeStep


class RendezvousState(NamedTuple):
    pos: jax.Array  # [2] int32
    t: jax.Array  # [] int32


class Rendezvous(MultiAgentEnv):
    def __init__(self, length: int):
        if length < 2:
            raise ValueError(f"length must be at least 2, got {length}.")
        self.length = length
        self.n_agents, self.n_actions = 2, 3
        self.obs_dim, self.state_dim = 2, 2
        self.episode_limit = 2 * length

    def _timestep(self, pos, t, met):
        scaled = pos.astype(jnp.float32) / (self.length - 1)
        reward = met.astype(jnp.float32)
        return TimeStep(
            obs=jnp.stack([scaled, scaled[::-1]]),
            state=scaled,
            avail_actions=jnp.ones((2, 3), bool),
            reward=reward,
            rewards=jnp.full((2,), reward / 2),
            terminated=met,
            truncated=~met & (t >= self.episode_limit),
            info={},
        )

    def _reset(self, key):
        pos = jnp.array([0, self.length - 1], jnp.int32)
        t = jnp.zeros((), jnp.int32)
        return RendezvousState(pos, t), self._timestep(pos, t, jnp.zeros((), bool))

    def _step(self, key, state, actions):
        move = jnp.array([0, -1, 1], jnp.int32)[jnp.clip(actions, 0, 2)]
        pos = jnp.clip(state.pos + move, 0, self.length - 1)
        t = state.t + 1
        return RendezvousState(pos, t), self._timestep(pos, t, pos[0] == pos[1])

"""An episode replay buffer in JAX arrays: whole padded episodes, as pymarl stores them."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from credo.envs.core import EnvSpec


class EpisodeBatch(NamedTuple):
    """Padded episodes; T = the env's episode limit. Leading axes: [batch, time, ...]."""

    obs: jax.Array  # [B, T+1, n_agents, obs_dim] float32 (index t: before action t; T: after the last)
    state: jax.Array  # [B, T+1, state_dim] float32
    avail: jax.Array  # [B, T+1, n_agents, n_actions] bool
    actions: jax.Array  # [B, T, n_agents] int32
    reward: jax.Array  # [B, T] float32 team reward
    terminated: jax.Array  # [B, T] bool: step t ended the episode in a terminal state
    filled: jax.Array  # [B, T] bool: step t happened (False after the episode ended)


class EpisodeBuffer(NamedTuple):
    """A FIFO ring of ``capacity`` padded episodes (``buffer_add``, ``buffer_sample``); one per seed."""

    data: EpisodeBatch  # [capacity, ...]
    ptr: jax.Array  # [] int32: next slot to write
    count: jax.Array  # [] int32: episodes stored (<= capacity)


def empty_batch(spec: EnvSpec, size: int) -> EpisodeBatch:
    """``size`` all-zero padded episodes of ``spec``'s shapes (every ``filled`` False)."""
    t, n = spec.episode_limit, spec.n_agents
    return EpisodeBatch(
        obs=jnp.zeros((size, t + 1, n, spec.obs_dim), jnp.float32),
        state=jnp.zeros((size, t + 1, spec.state_dim), jnp.float32),
        avail=jnp.zeros((size, t + 1, n, spec.n_actions), bool),
        actions=jnp.zeros((size, t, n), jnp.int32),
        reward=jnp.zeros((size, t), jnp.float32),
        terminated=jnp.zeros((size, t), bool),
        filled=jnp.zeros((size, t), bool),
    )


def buffer_init(spec: EnvSpec, capacity: int) -> EpisodeBuffer:
    """An empty buffer of ``capacity`` episodes of ``spec``'s shapes, allocated up front."""
    return EpisodeBuffer(empty_batch(spec, capacity), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def buffer_add(buffer: EpisodeBuffer, episodes: EpisodeBatch) -> EpisodeBuffer:
    """Writes a batch of episodes, overwriting the oldest when full (FIFO)."""
    capacity = buffer.data.reward.shape[0]
    n = episodes.reward.shape[0]
    idx = (buffer.ptr + jnp.arange(n)) % capacity
    data = jax.tree.map(lambda d, e: d.at[idx].set(e), buffer.data, episodes)
    return EpisodeBuffer(data, (buffer.ptr + n) % capacity, jnp.minimum(buffer.count + n, capacity))


def buffer_sample(buffer: EpisodeBuffer, key: jax.Array, batch_size: int) -> EpisodeBatch:
    """``batch_size`` distinct stored episodes, uniformly (pymarl samples without replacement).

    Only meaningful once ``count >= batch_size``; callers gate updates on that.
    """
    capacity = buffer.data.reward.shape[0]
    stored = jnp.arange(capacity) < buffer.count
    # Gumbel top-k: distinct indices among the stored episodes, uniform.
    scores = jnp.where(stored, jax.random.gumbel(key, (capacity,)), -jnp.inf)
    _, idx = jax.lax.top_k(scores, batch_size)
    return jax.tree.map(lambda d: d[idx], buffer.data)

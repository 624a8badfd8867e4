"""The multi-agent environment protocol every credo learner talks to.

Arrays carry the agent axis first. A JAX env is a set of pure functions of
(key, state, actions), so it runs under ``jit``, ``vmap`` and ``lax.scan``; a host
env (PettingZoo, gymnasium) has the same fields and shapes but steps in Python
with NumPy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class TimeStep(NamedTuple):
    """What an env returns after ``reset`` and after every ``step``.

    ``info`` holds env-specific extras (for example ``won`` on SMAX); an env returns
    the same keys, shapes and dtypes from ``reset`` and ``step`` so that the pytree
    structure is fixed under ``lax.scan``.
    """

    obs: Any  # [n_agents, obs_dim] float32: each agent's observation
    state: Any  # [state_dim] float32: global state for centralised training
    avail_actions: Any  # [n_agents, n_actions] bool: actions each agent may take
    reward: Any  # [] float32: team reward
    rewards: Any  # [n_agents] float32: per-agent (local) rewards
    terminated: Any  # [] bool: the episode ended in a terminal state (no bootstrap)
    truncated: Any  # [] bool: the episode was cut by its time limit (bootstrap)
    info: dict  # env-specific extras with a fixed structure


@dataclass(frozen=True)
class EnvSpec:
    """Shapes a learner needs; nothing else about the env leaks into a learner."""

    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    episode_limit: int


class MultiAgentEnv:
    """Base class of pure-JAX multi-agent envs.

    Subclasses set the ``EnvSpec`` fields and implement ``_reset(key)`` and
    ``_step(key, state, actions)``, both returning ``(env_state, TimeStep)``.
    ``step`` checks the shape and dtype of ``actions`` at trace time, so a wrong
    shape is a clear Python error rather than a broadcasting surprise inside XLA.
    Values cannot be checked under ``jit``: each env documents what an
    out-of-range or unavailable action does (``check_actions`` checks eagerly).
    """

    is_jax: bool = True
    key: str = ""  # registry key, set by credo.envs.make
    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    episode_limit: int

    @property
    def spec(self) -> EnvSpec:
        """The env's shapes as an ``EnvSpec``: all a learner is told about the env."""
        return EnvSpec(self.n_agents, self.obs_dim, self.state_dim, self.n_actions, self.episode_limit)

    def reset(self, key: jax.Array) -> tuple[Any, TimeStep]:
        """Starts an episode from PRNG ``key``; returns ``(env_state, TimeStep)``."""
        return self._reset(key)

    def step(self, key: jax.Array, state: Any, actions: jax.Array) -> tuple[Any, TimeStep]:
        """Advances ``state`` by one joint action; returns ``(env_state, TimeStep)``.

        ``actions`` is ``[n_agents]`` integer action indices (cast to int32); a different shape or a
        non-integer dtype raises ValueError when traced. ``key`` drives the env's own randomness.
        """
        actions = _as_action_array(actions, self.n_agents)
        return self._step(key, state, actions)

    def _reset(self, key):  # pragma: no cover - abstract
        raise NotImplementedError

    def _step(self, key, state, actions):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        s = self.spec
        return (
            f"{type(self).__name__}({self.key or '?'}: agents={s.n_agents}, obs={s.obs_dim}, "
            f"state={s.state_dim}, actions={s.n_actions}, limit={s.episode_limit})"
        )


class HostEnv:
    """Base class of envs stepped in Python (PettingZoo, gymnasium adapters).

    Same fields and shapes as ``MultiAgentEnv`` but stateful and NumPy-based:
    ``reset(seed) -> TimeStep`` and ``step(actions) -> TimeStep``. No auto-reset:
    the caller resets after ``terminated or truncated``.
    """

    is_jax: bool = False
    key: str = ""
    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    episode_limit: int

    spec = MultiAgentEnv.spec
    __repr__ = MultiAgentEnv.__repr__

    def reset(self, seed: int | None = None) -> TimeStep:  # pragma: no cover - abstract
        """Starts an episode and returns its first ``TimeStep``; ``seed`` goes to the host env's reset."""
        raise NotImplementedError

    def step(self, actions) -> TimeStep:  # pragma: no cover - abstract
        """Applies ``[n_agents]`` integer actions and returns the next ``TimeStep``.

        Call ``reset`` first, and again after ``terminated or truncated``: a host env does not reset
        itself.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Releases the host env (the adapters close the env they wrap); the base class holds nothing."""
        pass


def _as_action_array(actions, n_agents: int) -> jax.Array:
    """Checks the static shape and dtype of an action vector (works under jit)."""
    actions = jnp.asarray(actions)
    if actions.shape != (n_agents,):
        raise ValueError(
            f"actions must have shape ({n_agents},): one integer action per agent, "
            f"got shape {tuple(actions.shape)}. For a batch of envs, vmap the step function."
        )
    if not jnp.issubdtype(actions.dtype, jnp.integer):
        raise ValueError(f"actions must be integers (action indices), got dtype {actions.dtype}.")
    return actions.astype(jnp.int32)


def check_actions(env, actions, avail_actions=None) -> np.ndarray:
    """Eagerly validates concrete actions; raises ValueError naming the bad agent.

    Use it outside ``jit`` (host loops, scripted play, the CLI). Under ``jit``
    an env cannot raise; it handles bad actions as its docs say.
    """
    a = np.asarray(actions)
    if a.shape != (env.n_agents,):
        raise ValueError(f"actions must have shape ({env.n_agents},), got {a.shape}.")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"actions must be integers, got dtype {a.dtype}.")
    bad = np.flatnonzero((a < 0) | (a >= env.n_actions))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"agent {i} chose action {int(a[i])}, outside 0..{env.n_actions - 1} ({env.n_actions} actions)."
        )
    if avail_actions is not None:
        av = np.asarray(avail_actions)
        chosen = av[np.arange(env.n_agents), a]
        bad = np.flatnonzero(~chosen.astype(bool))
        if bad.size:
            i = int(bad[0])
            ok = np.flatnonzero(av[i]).tolist()
            raise ValueError(f"agent {i} chose unavailable action {int(a[i])}; available now: {ok}.")
    return a.astype(np.int32)


def tree_where(cond, a, b):
    """Elementwise select between two pytrees of the same structure."""
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)

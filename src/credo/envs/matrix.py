"""Cooperative matrix games: one-step or repeated, for any number of agents.

The payoff is a tensor with one axis per agent (``payoff[a_1, ..., a_n]``). The
team reward is the payoff of the joint action; the per-agent rewards split it
equally (as QLLM does). Observations and state are a constant 1 plus, for
repeated games, the fraction of the episode elapsed, so a recurrent agent can
tell the steps apart.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from credo.envs.core import MultiAgentEnv, TimeStep

# Named games. Rows index agent 0's action, columns agent 1's.
ME_IGM_3X3 = [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]]  # ME-IGM Table 2.1
CLIMBING = [[11.0, -30.0, 0.0], [-30.0, 7.0, 0.0], [0.0, 6.0, 5.0]]  # Claus & Boutilier 1998


def penalty_payoff(k: float = -100.0) -> list[list[float]]:
    """The penalty game of Claus & Boutilier (1998): miscoordination costs ``k <= 0``."""
    return [[10.0, 0.0, k], [0.0, 2.0, 0.0], [k, 0.0, 10.0]]


class MatrixState(NamedTuple):
    """A matrix game's state: only the step count (the game has no other state)."""

    t: jax.Array  # [] int32: steps taken in this episode


class MatrixGame(MultiAgentEnv):
    """A cooperative normal-form game played for ``episode_limit`` steps.

    Every action is always available. The episode ends with ``terminated`` for
    a one-step game (nothing follows) and with ``truncated`` for a repeated game
    (the time limit cuts an otherwise endless game).
    """

    def __init__(self, payoff, episode_limit: int = 1):
        payoff = np.asarray(payoff, dtype=np.float32)
        if payoff.ndim < 2:
            raise ValueError(
                f"payoff must have one axis per agent (at least 2 agents), got shape {payoff.shape}."
            )
        if len(set(payoff.shape)) != 1:
            raise ValueError(
                f"payoff must give every agent the same number of actions, got shape {payoff.shape}."
            )
        if not np.all(np.isfinite(payoff)):
            raise ValueError("payoff must be finite.")
        if int(episode_limit) < 1:
            raise ValueError(f"episode_limit must be >= 1, got {episode_limit}.")
        self.payoff = jnp.asarray(payoff)
        self.n_agents = payoff.ndim
        self.n_actions = payoff.shape[0]
        self.episode_limit = int(episode_limit)
        self.obs_dim = 2
        self.state_dim = 2

    def _observe(self, t):
        features = jnp.stack([jnp.float32(1.0), t.astype(jnp.float32) / self.episode_limit])
        return jnp.broadcast_to(features, (self.n_agents, 2)), features

    def _timestep(self, t, team_reward, done):
        obs, state = self._observe(t)
        one_step = self.episode_limit == 1
        return TimeStep(
            obs=obs,
            state=state,
            avail_actions=jnp.ones((self.n_agents, self.n_actions), bool),
            reward=team_reward,
            rewards=jnp.full((self.n_agents,), team_reward / self.n_agents),
            terminated=done & one_step,
            truncated=done & (not one_step),
            info={},
        )

    def _reset(self, key):
        t = jnp.zeros((), jnp.int32)
        return MatrixState(t), self._timestep(t, jnp.float32(0.0), jnp.zeros((), bool))

    def _step(self, key, state, actions):
        # Out-of-range actions are clipped to the nearest valid action (jit cannot raise).
        actions = jnp.clip(actions, 0, self.n_actions - 1)
        reward = self.payoff[tuple(actions)]
        t = state.t + 1
        return MatrixState(t), self._timestep(t, reward, t >= self.episode_limit)


# --- registry -----------------------------------------------------------------

_NAMED = {
    "me-igm": lambda: ME_IGM_3X3,
    "climbing": lambda: CLIMBING,
}


def _build(name: str, payoff=None, k: float = -100.0, episode_limit: int = 1) -> MatrixGame:
    from credo.envs.registry import EnvKeyError

    if name == "custom":
        if payoff is None:
            raise EnvKeyError("matrix:custom needs payoff=[[...], ...] (one axis per agent).")
        return MatrixGame(payoff, episode_limit)
    if payoff is not None:
        raise EnvKeyError(f"payoff= is only for matrix:custom; matrix:{name} has a fixed payoff.")
    if name == "penalty":
        if k > 0:
            raise EnvKeyError(f"the penalty game needs k <= 0 (a penalty), got k={k}.")
        return MatrixGame(penalty_payoff(k), episode_limit)
    if name in _NAMED:
        return MatrixGame(_NAMED[name](), episode_limit)
    raise unknown_name(FAMILY, name)


def _kwargs(name: str) -> list[str]:
    return {"custom": ["payoff", "episode_limit"], "penalty": ["k", "episode_limit"]}.get(
        name, ["episode_limit"]
    )


from credo.envs.registry import Family, unknown_name  # noqa: E402

FAMILY = Family(
    prefix="matrix",
    build=_build,
    names=lambda: ["me-igm", "climbing", "penalty", "custom"],
    kwargs=_kwargs,
    doc="cooperative matrix games, one-step or repeated (episode_limit=N)",
)

"""MPE and SMAX from JaxMARL behind credo's pure-JAX ``MultiAgentEnv`` protocol.

Keys: ``mpe:simple_spread`` and ``mpe:simple_reference`` (JaxMARL's
``MPE_simple_spread_v3`` / ``MPE_simple_reference_v3``, discrete actions), and
``smax:<map>`` for every map in JaxMARL's ``map_name_to_scenario`` (``3m``,
``2s3z``, ``smacv2_5_units``, ...), played against JaxMARL's
``HeuristicEnemySMAX`` as JaxMARL's own baselines do. jaxmarl is imported when an
env is built, never when ``credo`` is imported. Written against jaxmarl 0.2.0.

What a user should know:

* Resets are credo's job. The adapters call JaxMARL's non-resetting
  ``step_env``, so the ``TimeStep`` after a terminal step is the terminal one;
  wrap the env in ``credo.envs.AutoReset`` for training loops.
* Time limit. JaxMARL checks ``state.step >= max_steps`` *before* it increments
  the step counter, so its own episodes last ``max_steps + 1`` steps (26 on MPE,
  101 on SMAX). The adapters end every episode after exactly ``max_steps`` steps
  (``episode_limit``), as PettingZoo's ``max_cycles`` and SMAC's
  ``episode_limit`` do: ``truncated`` is ``state.step >= max_steps`` after the
  step, unless the battle ended on that same step.
* MPE episodes only end by the time limit: ``truncated`` at step 25 (default),
  never ``terminated``. ``reward`` is the **sum** of the per-agent rewards, the
  team reward of JaxMARL's Q-learning baselines (``CTRolloutManager``) and of
  EPyMARL (``reward_scalarisation="sum"``); ``rewards`` holds JaxMARL's
  per-agent rewards unchanged (simple spread: ``-local_ratio * own collisions
  - (1 - local_ratio) * sum over landmarks of the nearest agent's distance``).
  JaxMARL's IPPO/MAPPO logs multiply MPE returns by ``n_agents``; credo does not.
  ``state`` is the concatenation of all agents' observations
  (``[n_agents * obs_dim]``, agent 0 first), JaxMARL's default global state;
  every action is always available. Observations would be zero-padded to the
  largest agent's size, but both scenarios give all agents the same size.
  ``simple_speaker_listener`` is left out: its agents have 3 and 5 actions, and
  the protocol needs one action count for all agents. The other MPE scenarios
  are competitive or single-agent.
* SMAX: ``reward`` is the shared team reward JaxMARL gives every ally
  (``rewards`` repeats it per ally; JaxMARL's baselines use ``rewards[ally_0]``):
  enemy health removed this step as a fraction of the enemy team's total, plus
  ``won_battle_bonus`` (1.0) on the winning step. A full win earns about 2, not
  SMAC's 20. ``terminated`` is a battle end: all allies or all enemies dead.
  ``info["won"]`` is True on the step where every enemy is dead and at least one
  ally lives (exactly when JaxMARL pays the bonus; a mutual wipe-out is a draw,
  not a win); it is False on reset and on every other step.
* SMAX ``state`` is JaxMARL's ``get_world_state`` (the ``"world_state"`` obs of
  its MAPPO and QMIX baselines), ``[12 * n_units]`` for allies then enemies:
  per unit ``[health fraction, x, y, weapon cooldown, one-hot unit type (6)]``
  (zeros for a dead unit), then every unit's team (0 ally, 1 enemy), then every
  unit's type index. JaxMARL leaves x, y in map units (0..32), the cooldown in
  seconds and the type index raw (0..5): a fresh QMIX mixer then starts with
  Q_tot near 45 on returns near 1. With ``normalise_state=True`` (credo's
  default) x and y are divided by the map size, the cooldown by the largest
  weapon cooldown (JaxMARL's cooldowns run on below zero, to about -40 s; they
  are floored at 0, "ready") and the type index by the largest type index, so
  features lie in about [0, 1], as SMACv2's state does; ``normalise_state=False``
  gives JaxMARL's raw world state.
* SMAX ``avail_actions`` come from JaxMARL's ``get_avail_actions``: actions 0-3
  move, 4 stops (always available; a dead ally has only action 4), ``5 + j``
  attacks enemy ``j`` (available when it is alive and in range). A dead ally's
  observation is all zeros.
* Under ``jit`` an env cannot raise: out-of-range action indices are clipped to
  ``0..n_actions-1``. An unavailable SMAX attack does nothing (JaxMARL checks
  range and liveness itself); use ``credo.envs.check_actions`` to validate
  actions eagerly.
* ``import jaxmarl`` prints two lines about "submoduled environments"; the
  adapters silence them when they are the first to import it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from credo.envs.core import MultiAgentEnv, TimeStep
from credo.envs.registry import EnvKeyError, Family, unknown_name

INSTALL_HINT = "Install it with: pip install 'credo[jaxmarl]' (jaxmarl 0.2.0 plus six, which gymnax needs)."

# credo name -> JaxMARL env id. Cooperative scenarios with discrete actions and
# one action count for all agents.
_MPE_IDS = {
    "simple_spread": "MPE_simple_spread_v3",
    "simple_reference": "MPE_simple_reference_v3",
}
_MPE_PHYSICS_KWARGS = ["max_steps", "dt", "damping", "contact_force", "contact_margin"]
_MPE_KWARGS = {
    "simple_spread": ["num_agents", "num_landmarks", "local_ratio", *_MPE_PHYSICS_KWARGS],
    "simple_reference": ["local_ratio", *_MPE_PHYSICS_KWARGS],  # fixed 2 agents, 3 landmarks
}

# Maps of jaxmarl 0.2.0, listed without importing jaxmarl (it takes seconds).
_SMAX_MAPS = [
    "3m",
    "2s3z",
    "25m",
    "3s5z",
    "8m",
    "5m_vs_6m",
    "10m_vs_11m",
    "27m_vs_30m",
    "3s5z_vs_3s6z",
    "3s_vs_5z",
    "6h_vs_8z",
    "smacv2_5_units",
    "smacv2_10_units",
    "smacv2_20_units",
]
_SMAX_KWARGS = [
    "normalise_state",
    "max_steps",
    "won_battle_bonus",
    "see_enemy_actions",
    "walls_cause_death",
    "world_steps_per_env_step",
    "time_per_step",
    "observation_type",  # "unit_list" (default) or "conic"
    "enemy_shoots",
    "attack_mode",  # how the heuristic enemy picks targets: "closest" or "random"
]


@contextlib.contextmanager
def _quiet_stdout():
    """Silences file descriptor 1: jaxmarl's import banner bypasses ``sys.stdout`` redirects."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _import_jaxmarl():
    """Imports jaxmarl quietly, or explains how to install it."""
    try:
        with _quiet_stdout():
            import jaxmarl
    except ImportError as err:
        raise EnvKeyError(
            f"the mpe and smax envs need jaxmarl, which could not be imported ({err}). {INSTALL_HINT}"
        ) from None
    return jaxmarl


def _stack_obs(obs: dict, agents: list[str], obs_dim: int) -> jax.Array:
    """Agent-keyed observations -> ``[n_agents, obs_dim]`` float32, zero-padded."""
    rows = [jnp.ravel(obs[a]).astype(jnp.float32) for a in agents]
    return jnp.stack([jnp.pad(r, (0, obs_dim - r.shape[0])) for r in rows])


def _stack_values(values: dict, agents: list[str], dtype) -> jax.Array:
    return jnp.stack([jnp.asarray(values[a]) for a in agents]).astype(dtype)


def _common_action_count(env, agents: list[str], what: str) -> int:
    counts = {}
    for a in agents:
        space = env.action_space(a)
        if not hasattr(space, "n"):
            raise EnvKeyError(
                f"{what}: agent {a!r} has a non-discrete action space {space}; credo needs discrete actions."
            )
        counts[a] = int(space.n)
    if len(set(counts.values())) != 1:
        raise EnvKeyError(
            f"{what}: agents have different action counts {counts}; credo's protocol needs the same "
            "number of actions for every agent."
        )
    return next(iter(counts.values()))


class _JaxMARLAdapter(MultiAgentEnv):
    """Shared plumbing: JaxMARL's agent-keyed dicts <-> credo's agent-first arrays."""

    env: Any  # the JaxMARL env
    agents: list[str]  # JaxMARL agent names, in the order of credo's agent axis

    def _actions_dict(self, actions: jax.Array) -> dict:
        # jit cannot raise, so out-of-range indices are clipped (see the module docs).
        actions = jnp.clip(actions, 0, self.n_actions - 1)
        return {a: actions[i] for i, a in enumerate(self.agents)}


class JaxMARLMPE(_JaxMARLAdapter):
    """A cooperative JaxMARL MPE scenario (``mpe:simple_spread``, ``mpe:simple_reference``).

    ``reward`` is the sum of the per-agent rewards; ``state`` concatenates the
    agents' observations; episodes are truncated after ``max_steps`` steps
    (default 25) and never terminate. See the module docstring.
    """

    def __init__(self, scenario: str = "simple_spread", **kwargs):
        if scenario not in _MPE_IDS:
            raise unknown_name(
                MPE_FAMILY, scenario, "(MPE scenarios with one action count for all agents only.)"
            )
        max_steps = kwargs.get("max_steps", 25)
        if not isinstance(max_steps, int) or max_steps < 1:
            raise EnvKeyError(f"mpe:{scenario} needs max_steps to be an integer >= 1, got {max_steps!r}.")
        jaxmarl = _import_jaxmarl()
        self.scenario = scenario
        self.env = jaxmarl.make(_MPE_IDS[scenario], **kwargs)
        self.agents = list(self.env.agents)
        self.n_agents = len(self.agents)
        self.n_actions = _common_action_count(self.env, self.agents, f"mpe:{scenario}")
        self.obs_dim = max(int(self.env.observation_space(a).shape[0]) for a in self.agents)
        self.state_dim = self.n_agents * self.obs_dim
        self.episode_limit = int(self.env.max_steps)

    def _timestep(self, obs: dict, rewards: jax.Array, truncated: jax.Array) -> TimeStep:
        obs = _stack_obs(obs, self.agents, self.obs_dim)  # [n_agents, obs_dim]
        return TimeStep(
            obs=obs,
            state=obs.reshape(-1),  # [n_agents * obs_dim]
            avail_actions=jnp.ones((self.n_agents, self.n_actions), bool),
            reward=rewards.sum(),
            rewards=rewards,  # [n_agents]
            terminated=jnp.zeros((), bool),
            truncated=truncated,
            info={},
        )

    def _reset(self, key):
        obs, state = self.env.reset(key)
        return state, self._timestep(obs, jnp.zeros((self.n_agents,), jnp.float32), jnp.zeros((), bool))

    def _step(self, key, state, actions):
        obs, state, rewards, _, _ = self.env.step_env(key, state, self._actions_dict(actions))
        rewards = _stack_values(rewards, self.agents, jnp.float32)  # [n_agents]
        return state, self._timestep(obs, rewards, state.step >= self.episode_limit)

    def agent_features(self, state) -> jax.Array:
        """[n, 4]: each agent's own substate (position, velocity), for dependence-graph models."""
        n = self.n_agents
        return jnp.concatenate([state.p_pos[:n], state.p_vel[:n]], -1).astype(jnp.float32)


class JaxMARLSMAX(_JaxMARLAdapter):
    """A SMAX map against JaxMARL's heuristic enemy (``smax:3m``, ``smax:smacv2_5_units``, ...).

    The agents are the allies. ``terminated`` marks a battle end, ``truncated``
    the time limit (``max_steps``, default 100), ``info["won"]`` a win; ``state``
    is JaxMARL's world state. See the module docstring.
    """

    def __init__(self, map_name: str = "3m", normalise_state: bool = True, **kwargs):
        jaxmarl = _import_jaxmarl()
        from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

        if map_name not in MAP_NAME_TO_SCENARIO:
            raise unknown_name(SMAX_FAMILY, map_name)
        if kwargs.get("attack_mode", "closest") not in ("closest", "random"):
            raise EnvKeyError(
                f"smax attack_mode must be 'closest' or 'random', got {kwargs['attack_mode']!r}."
            )
        if kwargs.get("observation_type", "unit_list") not in ("unit_list", "conic"):
            raise EnvKeyError(
                f"smax observation_type must be 'unit_list' or 'conic', got {kwargs['observation_type']!r}."
            )
        max_steps = kwargs.get("max_steps", 100)
        if not isinstance(max_steps, int) or max_steps < 1:
            raise EnvKeyError(f"smax:{map_name} needs max_steps to be an integer >= 1, got {max_steps!r}.")
        self.map_name = map_name
        self.env = jaxmarl.make("HeuristicEnemySMAX", scenario=MAP_NAME_TO_SCENARIO[map_name], **kwargs)
        self.agents = list(self.env.agents)  # ally_0 .. ally_{n-1}
        self.n_agents = len(self.agents)
        self.n_enemies = int(self.env.num_enemies)
        self.n_actions = _common_action_count(self.env, self.agents, f"smax:{map_name}")
        self.obs_dim = int(self.env.observation_space(self.agents[0]).shape[0])
        self.state_dim = int(self.env.state_size)  # 12 features per unit, allies and enemies
        self.episode_limit = int(self.env.max_steps)
        self._state_scale = self._world_state_scale() if normalise_state else None  # (scale, floor)

    def _world_state_scale(self) -> tuple[jax.Array, jax.Array]:
        """Per-feature factors that bring the world state into [0, 1] (see the module docstring)."""
        e = self.env
        n_feat = len(e.own_features)
        n_units = self.n_agents + self.n_enemies
        if self.state_dim != n_units * (n_feat + 2):
            raise RuntimeError(f"unexpected SMAX world-state layout ({self.state_dim} features)")
        per_unit = np.ones(n_feat, np.float32)
        per_unit[1] = 1.0 / e.map_width
        per_unit[2] = 1.0 / e.map_height
        per_unit[3] = 1.0 / float(np.max(np.asarray(e.unit_type_weapon_cooldowns)))
        types = np.full(n_units, 1.0 / max(len(e.unit_type_weapon_cooldowns) - 1, 1), np.float32)
        scale = np.concatenate([np.tile(per_unit, n_units), np.ones(n_units, np.float32), types])
        # JaxMARL lets a cooldown run on below zero (seconds since the unit could
        # fire, down to about -40): zero is "ready", as in SMAC.
        floor = np.full_like(scale, -np.inf)
        floor[3 : n_units * n_feat : n_feat] = 0.0
        return jnp.asarray(scale), jnp.asarray(floor)

    def _timestep(self, obs, env_state, rewards, terminated, truncated, won) -> TimeStep:
        avail = self.env.get_avail_actions(env_state)
        return TimeStep(
            obs=_stack_obs(obs, self.agents, self.obs_dim),  # [n_agents, obs_dim]
            state=self._normalise(obs["world_state"].astype(jnp.float32)),  # [state_dim]
            avail_actions=_stack_values(avail, self.agents, bool),  # [n_agents, n_actions]
            reward=rewards[0],  # every ally gets the same team reward
            rewards=rewards,  # [n_agents]
            terminated=terminated,
            truncated=truncated,
            info={"won": won},
        )

    def _normalise(self, world_state):
        if self._state_scale is None:
            return world_state
        scale, floor = self._state_scale
        return jnp.maximum(world_state * scale, floor)

    def _reset(self, key):
        obs, state = self.env.reset(key)
        false = jnp.zeros((), bool)
        rewards = jnp.zeros((self.n_agents,), jnp.float32)
        return state, self._timestep(obs, state, rewards, false, false, false)

    def agent_features(self, state) -> jax.Array:
        """[n, 3]: each ally's own substate (position, health), for dependence-graph models."""
        inner, n = state.state, self.n_agents
        return jnp.concatenate([inner.unit_positions[:n], inner.unit_health[:n, None]], -1).astype(
            jnp.float32
        )

    def _step(self, key, state, actions):
        obs, state, rewards, _, _ = self.env.step_env(key, state, self._actions_dict(actions))
        rewards = _stack_values(rewards, self.agents, jnp.float32)  # [n_agents]
        alive = state.state.unit_alive  # [n_allies + n_enemies], allies first
        allies_alive = jnp.any(alive[: self.n_agents])
        enemies_alive = jnp.any(alive[self.n_agents :])
        terminated = ~allies_alive | ~enemies_alive
        # state.step counts this step already; JaxMARL's own check is one step late.
        truncated = (state.state.step >= self.episode_limit) & ~terminated
        won = allies_alive & ~enemies_alive
        return state, self._timestep(obs, state, rewards, terminated, truncated, won)


# --- registry -----------------------------------------------------------------


def _smax_names() -> list[str]:
    module = sys.modules.get("jaxmarl.environments.smax.smax_env")
    if module is not None:  # already imported: include maps added with register_scenario
        return list(module.MAP_NAME_TO_SCENARIO)
    return list(_SMAX_MAPS)


MPE_FAMILY = Family(
    prefix="mpe",
    build=lambda name, **kwargs: JaxMARLMPE(name, **kwargs),
    names=lambda: list(_MPE_IDS),
    kwargs=lambda name: list(_MPE_KWARGS.get(name, [])),
    doc="JaxMARL's cooperative MPE (pure JAX): team reward = sum of agent rewards, 25-step episodes",
    install_hint=INSTALL_HINT,
    requires=("jaxmarl",),
)

SMAX_FAMILY = Family(
    prefix="smax",
    build=lambda name, **kwargs: JaxMARLSMAX(name, **kwargs),
    names=_smax_names,
    kwargs=lambda name: list(_SMAX_KWARGS),
    doc="JaxMARL's SMAX (pure-JAX StarCraft) against the heuristic enemy; info['won'] marks wins",
    install_hint=INSTALL_HINT,
    requires=("jaxmarl",),
)

FAMILIES = [MPE_FAMILY, SMAX_FAMILY]

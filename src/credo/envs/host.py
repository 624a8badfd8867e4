"""Bring your own env: PettingZoo parallel envs and multi-agent gymnasium envs as ``HostEnv``.

Keys: ``pettingzoo:<module.path>`` imports the module and calls its
``parallel_env(**kwargs)`` (``pettingzoo:mpe2.simple_spread_v3``);
``gym:<gymnasium id>`` calls ``gymnasium.make(id, **kwargs)``
(``gym:Foraging-8x8-2p-3f-v3``; ``lbforaging`` and ``rware`` are imported first
for their ids, and ``gym:mypkg:MyEnv-v0`` imports ``mypkg`` first). An env you
have already built goes through ``from_parallel_env(env)`` or
``from_gym_env(env)``. Host envs step in Python with NumPy arrays and never
reset themselves: call ``reset`` after ``terminated or truncated``.

Requirements, checked when the adapter is built (a ``ValueError`` names the
agent and its space otherwise):

* Discrete actions, the same count for every agent (a ``Discrete`` space per
  PettingZoo agent; a gymnasium ``Tuple`` of ``Discrete``). Continuous envs need
  their discrete option (MPE: ``continuous_actions=False``, the default).
* Observations that ``gymnasium.spaces.flatten`` can flatten (``Box`` is
  reshaped to a vector; a gymnasium env needs a ``Tuple`` with one space per
  agent). Agents with smaller observations are zero-padded at the end to the
  largest agent's size, ``obs_dim``.

What the adapter produces:

* ``state``: the env's ``state()`` when it declares a ``state_space``
  (PettingZoo), else the concatenation of all agents' padded observations,
  ``[n_agents * obs_dim]`` with agent 0 first.
* ``avail_actions``: ``infos[agent]["action_mask"]``, or the ``action_mask`` of
  a dict observation ``{"observation": ..., "action_mask": ...}`` (PettingZoo's
  convention), or ``info["action_mask"]`` (``[n_agents, n_actions]``) from a
  gymnasium env; all ones when the env gives none. LBF gives none, and it turns
  an invalid action into a no-op itself.
* ``reward``: the sum of the per-agent rewards (``rewards``). A gymnasium env
  that returns one scalar reward has it split equally across agents.
* ``terminated`` / ``truncated`` are passed through as the host API gives them,
  never both true (a terminal state wins). PettingZoo: the episode ends when
  every agent is done; it is ``truncated`` if any agent was still running when
  the time limit cut it, else ``terminated``. Gymnasium: its ``terminated`` and
  ``truncated`` (``TimeLimit``); a per-agent list counts as done when every
  entry is true. The adapter can only pass through what the env says: LBF
  (lbforaging 2.0) reports its own 50-step limit as ``terminated=True,
  truncated=False``, so its time-limit ends look terminal.
* ``episode_limit``: the ``episode_limit`` keyword if given, else the smallest of
  the limits the env states (PettingZoo ``max_cycles``, gymnasium
  ``spec.max_episode_steps``, an env's ``max_episode_steps``/``max_steps``);
  building fails with a message asking for ``episode_limit=`` when there is
  none. The adapter truncates an episode that reaches ``episode_limit`` steps, so
  no episode is longer than that.
* PettingZoo agents that leave mid-episode (die) keep their slot on the agent
  axis: zero observation, zero reward, and only action 0 available; the actions
  given for them are not sent to the env.
* ``step`` checks actions with ``credo.envs.check_actions`` (range and
  availability) and raises ``ValueError`` naming the agent.
* ``gym.make`` is called with ``disable_env_checker=True`` unless you pass it:
  gymnasium's checker warns about per-agent reward lists. Note that gymnasium
  consumes ``max_episode_steps=`` itself (a ``TimeLimit`` wrapper), so LBF's own
  50-step limit still applies.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import numpy as np

from credo.envs.core import HostEnv, TimeStep, check_actions
from credo.envs.registry import EnvKeyError, Family, suggest

INSTALL_HINT = (
    "Install the host extras with: pip install 'credo[host]' (pettingzoo, mpe2, lbforaging, gymnasium)."
)


# --- spaces ------------------------------------------------------------------


def _discrete(space, who: str) -> tuple[int, int]:
    """``(n, start)`` of a Discrete action space, or a clear error."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Discrete):
        raise ValueError(
            f"{who} has action space {space}; credo's host adapters need Discrete actions "
            "(one integer per agent). Use the env's discrete-action option or wrap it to discretise actions."
        )
    return int(space.n), int(space.start)


def _obs_part(space):
    """The observation part of a space: PettingZoo's action-masked dict obs hold it under "observation"."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict) and "observation" in space.spaces:
        return space["observation"]
    return space


def _flatdim(space, who: str) -> int:
    from gymnasium import spaces

    try:
        return int(spaces.flatdim(space))
    except (NotImplementedError, ValueError, TypeError) as err:
        raise ValueError(
            f"{who} has observation space {space}, which cannot be flattened to a vector ({err}). "
            "Wrap the env so that each agent observes a Box (or another flattenable space)."
        ) from None


def _flatten(space, x, dim: int) -> np.ndarray:
    """One agent's observation -> ``[dim]`` float32, zero-padded at the end."""
    from gymnasium import spaces

    v = np.asarray(spaces.flatten(space, x), dtype=np.float32).reshape(-1)
    return np.pad(v, (0, dim - v.shape[0]))


def _same_count(counts: dict[str, int], what: str) -> int:
    if len(set(counts.values())) != 1:
        first = next(iter(counts))
        odd = next(a for a, n in counts.items() if n != counts[first])
        raise ValueError(
            f"{what}: agent {odd!r} has {counts[odd]} actions but agent {first!r} has {counts[first]}; "
            "credo's protocol needs the same number of actions for every agent."
        )
    return next(iter(counts.values()))


def _stated_limits(*objects) -> list[int]:
    """Episode limits an env states through its usual attribute names."""
    limits = []
    for obj in objects:
        for name in ("max_cycles", "max_episode_steps", "_max_episode_steps", "max_steps"):
            try:
                value = getattr(obj, name, None)
            except Exception:  # some wrappers raise on unknown attributes
                value = None
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0:
                limits.append(int(value))
    return limits


def _episode_limit(explicit: int | None, stated: list[int], what: str) -> int:
    if explicit is not None:
        if not isinstance(explicit, (int, np.integer)) or explicit < 1:
            raise ValueError(f"episode_limit must be an integer >= 1, got {explicit!r}.")
        return int(explicit)
    if not stated:
        raise ValueError(
            f"cannot tell the episode limit of {what}: it states no max_cycles, max_episode_steps or "
            "spec.max_episode_steps. Pass episode_limit=N (to make(...) or from_*_env(env, episode_limit=N)); "
            "the adapter then truncates episodes at N steps."
        )
    return min(stated)


# --- adapters ------------------------------------------------------------------


class _HostAdapter(HostEnv):
    """Shared bookkeeping: action checks, the time limit, the reset-before-step rule."""

    agents: list[str]
    last_info: Any = None  # the host env's raw info(s) from the last reset/step

    def _init_common(self, obs_dims: dict[str, int], n_actions: int, episode_limit: int) -> None:
        self.n_agents = len(self.agents)
        self.n_actions = n_actions
        self.obs_dim = max(obs_dims.values())
        self.episode_limit = episode_limit
        self._avail = None  # [n_agents, n_actions] bool, None until reset
        self._t = 0
        self._done = True

    def _check(self, actions) -> np.ndarray:
        if self._done:
            raise RuntimeError(
                "call reset() before step(): the env has not been reset yet or its episode has ended "
                "(host envs do not reset themselves)."
            )
        try:
            return check_actions(self, actions, self._avail)
        except ValueError as err:
            if not str(err).startswith("agent "):
                raise
            raise ValueError(f"{err} Agents in order: {', '.join(map(str, self.agents))}.") from None

    def _timestep(self, obs, state, avail, rewards, terminated: bool, truncated: bool) -> TimeStep:
        ended = terminated or truncated
        if not ended and self._t >= self.episode_limit:
            truncated = ended = True  # the adapter's own time limit
        truncated = truncated and not terminated
        self._avail, self._done = avail, ended
        return TimeStep(
            obs=obs,  # [n_agents, obs_dim] float32
            state=state,  # [state_dim] float32
            avail_actions=avail,  # [n_agents, n_actions] bool
            reward=np.float32(rewards.sum()),
            rewards=rewards,  # [n_agents] float32
            terminated=np.bool_(terminated),
            truncated=np.bool_(truncated),
            info={},
        )

    def close(self) -> None:
        self.env.close()


class PettingZooEnv(_HostAdapter):
    """A PettingZoo ``ParallelEnv`` behind ``HostEnv``; see the module docstring."""

    def __init__(self, env, episode_limit: int | None = None):
        if not hasattr(env, "possible_agents") or not hasattr(env, "step"):
            raise ValueError(
                f"expected a PettingZoo ParallelEnv (with possible_agents, reset and step), got {type(env).__name__}. "
                "For an AEC env, convert it with pettingzoo.utils.conversions.aec_to_parallel."
            )
        self.env = env
        self.agents = list(env.possible_agents)
        name = (getattr(env, "metadata", None) or {}).get("name", type(env).__name__)
        self.key = f"pettingzoo:{name}"
        counts, self._starts, self._obs_spaces, obs_dims = {}, [], [], {}
        for a in self.agents:
            n, start = _discrete(env.action_space(a), f"agent {a!r}")
            counts[a] = n
            self._starts.append(start)
            self._obs_spaces.append(_obs_part(env.observation_space(a)))
            obs_dims[a] = _flatdim(self._obs_spaces[-1], f"agent {a!r}")
        n_actions = _same_count(counts, name)
        try:
            self._state_space = env.state_space
        except (AttributeError, NotImplementedError):
            self._state_space = None
        stated = _stated_limits(env, getattr(env, "unwrapped", None), getattr(env, "aec_env", None))
        self._init_common(obs_dims, n_actions, _episode_limit(episode_limit, stated, name))
        if self._state_space is not None:
            self.state_dim = _flatdim(self._state_space, f"{name}'s state")
        else:
            self.state_dim = self.n_agents * self.obs_dim

    def _observe(self, obs: dict, infos: dict):
        live = set(self.env.agents)  # agents that act next step
        rows = np.zeros((self.n_agents, self.obs_dim), np.float32)
        avail = np.zeros((self.n_agents, self.n_actions), bool)
        for i, a in enumerate(self.agents):
            o = obs.get(a)
            mask = (infos.get(a) or {}).get("action_mask")
            if isinstance(o, dict) and "observation" in o:
                mask = o.get("action_mask", mask)
                o = o["observation"]
            if o is not None:
                rows[i] = _flatten(self._obs_spaces[i], o, self.obs_dim)
            if a not in live:
                avail[i, 0] = True  # a departed agent can only "choose" action 0
            elif mask is None:
                avail[i] = True
            else:
                avail[i] = np.asarray(mask, bool).reshape(-1)[: self.n_actions]
        if self._state_space is not None:
            from gymnasium import spaces

            state = np.asarray(spaces.flatten(self._state_space, self.env.state()), np.float32)
        else:
            state = rows.reshape(-1)
        return rows, state, avail

    def reset(self, seed: int | None = None) -> TimeStep:
        """Resets the host env with ``seed`` and returns the first ``TimeStep`` (zero rewards)."""
        obs, infos = self.env.reset(seed=seed)
        self.last_info, self._t, self._done = infos, 0, False
        rows, state, avail = self._observe(obs, infos or {})
        zeros = np.zeros((self.n_agents,), np.float32)
        return self._timestep(rows, state, avail, zeros, False, False)

    def step(self, actions) -> TimeStep:
        """Steps the agents still running with ``actions`` (``[n_agents]``, in ``agents`` order).

        Departed agents' actions are ignored. Raises RuntimeError before ``reset`` or after the
        episode ended, ValueError for an out-of-range or unavailable action (naming the agent).
        """
        a = self._check(actions)
        running = list(self.env.agents)
        index = {ag: i for i, ag in enumerate(self.agents)}
        obs, rew, term, trunc, infos = self.env.step(
            {ag: int(a[index[ag]]) + self._starts[index[ag]] for ag in running}
        )
        self.last_info, self._t = infos, self._t + 1
        rewards = np.zeros((self.n_agents,), np.float32)
        for ag, r in rew.items():
            rewards[index[ag]] = r
        rows, state, avail = self._observe(obs, infos or {})
        ended = not self.env.agents
        cut = any(trunc.get(ag, False) and not term.get(ag, False) for ag in running)
        return self._timestep(rows, state, avail, rewards, ended and not cut, ended and cut)


class GymEnv(_HostAdapter):
    """A multi-agent gymnasium env (``Tuple`` spaces, one entry per agent) behind ``HostEnv``."""

    def __init__(self, env, episode_limit: int | None = None):
        from gymnasium import spaces

        spec = getattr(env, "spec", None)
        name = spec.id if spec is not None else type(env).__name__
        if not isinstance(env.action_space, spaces.Tuple):
            raise ValueError(
                f"{name} has action space {env.action_space}; a multi-agent gymnasium env needs a Tuple "
                "with one Discrete space per agent (a single-agent env does not fit credo's protocol)."
            )
        if not isinstance(env.observation_space, spaces.Tuple) or len(env.observation_space) != len(
            env.action_space
        ):
            raise ValueError(
                f"{name} has observation space {env.observation_space}; it needs a Tuple with one space "
                f"per agent ({len(env.action_space)} agents, as in its action space)."
            )
        self.env = env
        self.key = f"gym:{name}"
        self.agents = [f"agent_{i}" for i in range(len(env.action_space))]
        counts, self._starts, obs_dims = {}, [], {}
        self._obs_spaces = list(env.observation_space.spaces)
        for i, a in enumerate(self.agents):
            n, start = _discrete(env.action_space[i], f"agent {i}")
            counts[a] = n
            self._starts.append(start)
            obs_dims[a] = _flatdim(self._obs_spaces[i], f"agent {i}")
        n_actions = _same_count(counts, name)
        stated = _stated_limits(env.unwrapped)
        if spec is not None and spec.max_episode_steps:
            stated.append(int(spec.max_episode_steps))
        self._init_common(obs_dims, n_actions, _episode_limit(episode_limit, stated, name))
        self.state_dim = self.n_agents * self.obs_dim

    def _observe(self, obs, info: dict):
        rows = np.stack([_flatten(s, o, self.obs_dim) for s, o in zip(self._obs_spaces, obs, strict=True)])
        mask = info.get("action_mask") if isinstance(info, dict) else None
        if mask is None:
            avail = np.ones((self.n_agents, self.n_actions), bool)
        else:
            avail = np.asarray(mask, bool).reshape(self.n_agents, self.n_actions)
        return rows, rows.reshape(-1), avail

    def reset(self, seed: int | None = None) -> TimeStep:
        """Resets the host env with ``seed`` and returns the first ``TimeStep`` (zero rewards)."""
        obs, info = self.env.reset(seed=seed)
        self.last_info, self._t, self._done = info, 0, False
        rows, state, avail = self._observe(obs, info)
        return self._timestep(rows, state, avail, np.zeros((self.n_agents,), np.float32), False, False)

    def step(self, actions) -> TimeStep:
        """Steps the env with ``actions`` (``[n_agents]``); a scalar reward is split equally over the agents.

        Raises RuntimeError before ``reset`` or after the episode ended, ValueError for an out-of-range
        or unavailable action (naming the agent).
        """
        a = self._check(actions)
        obs, rew, term, trunc, info = self.env.step(
            tuple(int(x) + s for x, s in zip(a, self._starts, strict=True))
        )
        self.last_info, self._t = info, self._t + 1
        rew = np.asarray(rew, np.float32)
        rewards = (
            np.full((self.n_agents,), rew / self.n_agents, np.float32) if rew.ndim == 0 else rew.reshape(-1)
        )
        rows, state, avail = self._observe(obs, info)
        return self._timestep(rows, state, avail, rewards, bool(np.all(term)), bool(np.all(trunc)))


def from_parallel_env(env, episode_limit: int | None = None) -> PettingZooEnv:
    """Wraps an already-built PettingZoo ``ParallelEnv`` (see the module docstring)."""
    return PettingZooEnv(env, episode_limit)


def from_gym_env(env, episode_limit: int | None = None) -> GymEnv:
    """Wraps an already-built multi-agent gymnasium env (see the module docstring)."""
    return GymEnv(env, episode_limit)


# --- registry -----------------------------------------------------------------

_PZ_FEATURED = ["mpe2.simple_spread_v3", "mpe2.simple_reference_v3"]
_GYM_FEATURED = ["Foraging-8x8-2p-3f-v3", "Foraging-2s-8x8-2p-2f-coop-v3", "Foraging-10x10-3p-3f-v3"]


class _AnyKwargs(list):
    """Accepts every keyword: the env's constructor takes ``**kwargs``, so only it can check them."""

    def __contains__(self, item) -> bool:
        return True


def _explicit_params(fn) -> list[str] | None:
    """Keyword names ``fn`` accepts, or None when it takes ``**kwargs`` or cannot be inspected."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [
        p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
    ]


def _pz_module(name: str):
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise EnvKeyError(
            f"'pettingzoo:{name}' must name a Python module with a parallel_env() function, "
            "for example 'pettingzoo:mpe2.simple_spread_v3'." + suggest(name, _PZ_FEATURED)
        )
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if not (name == missing or name.startswith(missing + ".")):  # a dependency of the module
            raise EnvKeyError(
                f"module {name!r} imports {missing!r}, which is not installed; install it to use "
                f"'pettingzoo:{name}'."
            ) from None
        options = list(_PZ_FEATURED)
        parent = missing.rpartition(".")[0]
        try:
            package = importlib.import_module(parent) if parent else None
            options += [f"{parent}.{m.name}" for m in pkgutil.iter_modules(getattr(package, "__path__", []))]
        except ImportError:
            pass
        raise EnvKeyError(
            f"no module named {missing!r}, so 'pettingzoo:{name}' cannot be built."
            + suggest(name, sorted(set(options)))
            + f" {INSTALL_HINT}"
        ) from None
    except ImportError as err:  # e.g. pettingzoo.mpe, which moved to the mpe2 package
        raise EnvKeyError(f"cannot import {name!r}: {err}") from None
    if not callable(getattr(module, "parallel_env", None)):
        raise EnvKeyError(
            f"module {name!r} has no parallel_env() function. Name a PettingZoo env module "
            "(e.g. 'pettingzoo:mpe2.simple_spread_v3'), or build the env yourself and call "
            "credo.envs.host.from_parallel_env(env)."
        )
    return module


def _pz_kwargs(name: str) -> list[str]:
    module = _pz_module(name)
    params = _explicit_params(module.parallel_env)
    if params is None and hasattr(module, "raw_env"):  # PettingZoo's parallel_env(**kw) forwards to raw_env
        params = _explicit_params(module.raw_env)
    return _AnyKwargs(["episode_limit"]) if params is None else [*params, "episode_limit"]


def _build_pz(name: str, episode_limit: int | None = None, **kwargs) -> PettingZooEnv:
    module = _pz_module(name)
    try:
        env = module.parallel_env(**kwargs)
    except TypeError as err:
        raise EnvKeyError(
            f"'pettingzoo:{name}' rejected its keyword arguments {sorted(kwargs)}: {err}"
        ) from None
    return PettingZooEnv(env, episode_limit)


def _gym_spec(name: str):
    """Imports what registers ``name`` (lbforaging, rware, or ``module:`` prefix) and finds its spec."""
    import gymnasium

    module, _, env_id = name.rpartition(":")
    plugins = [module] if module else []
    plugins += [
        p for p, prefix in (("lbforaging", "Foraging"), ("rware", "rware")) if env_id.startswith(prefix)
    ]
    for plugin in plugins:
        try:
            importlib.import_module(plugin)
        except ImportError as err:
            raise EnvKeyError(
                f"'gym:{name}' needs the package {plugin!r}, which could not be imported ({err}). "
                f"pip install {plugin}"
            ) from None
    try:
        return gymnasium.spec(env_id), env_id
    except gymnasium.error.Error as err:
        for plugin in ("lbforaging", "rware"):  # so that their ids can be suggested
            try:
                importlib.import_module(plugin)
            except ImportError:
                pass
        raise EnvKeyError(
            f"unknown gym env {env_id!r}: gymnasium has no such id ({err})."
            + suggest(env_id, list(gymnasium.registry))
            + " Multi-agent ids look like 'Foraging-8x8-2p-3f-v3' (lbforaging)."
        ) from None


def _gym_kwargs(name: str) -> list[str]:
    from gymnasium.envs.registration import load_env_creator

    spec, _ = _gym_spec(name)
    try:
        creator = spec.entry_point if callable(spec.entry_point) else load_env_creator(spec.entry_point)
    except Exception:  # an entry point that cannot be loaded fails clearly in gym.make
        creator = None
    params = None if creator is None else _explicit_params(creator)
    extra = ["max_episode_steps", "disable_env_checker", "episode_limit"]  # gym.make's and credo's own
    return _AnyKwargs(extra) if params is None else [*params, *(k for k in extra if k not in params)]


def _build_gym(name: str, episode_limit: int | None = None, **kwargs) -> GymEnv:
    import gymnasium

    _, env_id = _gym_spec(name)
    kwargs.setdefault("disable_env_checker", True)
    try:
        env = gymnasium.make(env_id, **kwargs)
    except TypeError as err:
        raise EnvKeyError(f"'gym:{name}' rejected its keyword arguments {sorted(kwargs)}: {err}") from None
    return GymEnv(env, episode_limit)


PETTINGZOO_FAMILY = Family(
    prefix="pettingzoo",
    build=_build_pz,
    names=lambda: list(_PZ_FEATURED),
    kwargs=_pz_kwargs,
    doc="any PettingZoo parallel env by module path (host, NumPy); team reward = sum",
    install_hint=INSTALL_HINT,
    requires=("pettingzoo", "gymnasium"),
)

GYM_FAMILY = Family(
    prefix="gym",
    build=_build_gym,
    names=lambda: list(_GYM_FEATURED),
    kwargs=_gym_kwargs,
    doc="multi-agent gymnasium envs with Tuple spaces, e.g. lbforaging (host, NumPy); team reward = sum",
    install_hint=INSTALL_HINT,
    requires=("gymnasium",),
)

FAMILIES = [PETTINGZOO_FAMILY, GYM_FAMILY]

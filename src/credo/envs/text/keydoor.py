"""The 1D Key-Door corridor of paper 003 (appendix A.9.1), in text, with an exact solver.

A corridor of ``length`` cells holds a key at cell 0 and a locked door at cell
``length - 1``. The agent must walk left, pick up the key, walk right and unlock
the door (reward 1, the episode ends); every other step gives 0. The env speaks
the prompt of the paper's Figure A.3, and because the MDP is tiny, ``solve``
computes the exact V, Q and advantage of any policy, the ground truth that RICL's
advantage estimates are measured against (section 3.6.2).

States are enumerated as ``state_index(position, has_key) = 2 * position + has_key``
(``n_states(length) = 2 * length``). The state after unlocking is absorbing with
value 0 and is left out of the enumeration: the solver treats an unlock as a
transition out of the chain.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import gymnasium
import numpy as np
from gymnasium import spaces

# Action names in action-index order: prompts and answer parsing are built from this.
ACTIONS: tuple[str, ...] = ("move left", "move right", "pick up the key", "unlock the door")
MOVE_LEFT, MOVE_RIGHT, PICK_UP, UNLOCK = range(len(ACTIONS))
KEY_CELL = 0

GOAL = "Your goal is to open the locked door."
QUESTION = (
    "After reviewing the rules of the environment, your goal and objects around you, "
    "what do you do next to achieve the goal?"
)


def transition(length: int, position: int, has_key: bool, action: int) -> tuple[int, bool, float, bool]:
    """One step of the dynamics: ``(next_position, next_has_key, reward, done)``.

    The single source of the rules, shared by ``KeyDoorEnv`` and ``solve``. Moves
    are clipped at the ends; picking up and unlocking are no-ops where they do not apply.
    """
    door, has_key = length - 1, bool(has_key)
    if action == MOVE_LEFT:
        return max(position - 1, 0), has_key, 0.0, False
    if action == MOVE_RIGHT:
        return min(position + 1, door), has_key, 0.0, False
    if action == PICK_UP:
        return position, has_key or position == KEY_CELL, 0.0, False
    if action == UNLOCK:
        if position == door and has_key:
            return position, has_key, 1.0, True
        return position, has_key, 0.0, False
    raise ValueError(f"action {action!r} is not one of 0..{len(ACTIONS) - 1} ({', '.join(ACTIONS)})")


def n_states(length: int) -> int:
    """Number of non-terminal states: every position, with and without the key."""
    return 2 * length


def state_index(position: int, has_key: bool) -> int:
    """Row of ``(position, has_key)`` in policies and solutions."""
    return 2 * int(position) + int(has_key)


def state_of(index: int) -> tuple[int, bool]:
    """``(position, has_key)`` of a state index; the inverse of ``state_index``."""
    return index // 2, bool(index % 2)


def describe(state: tuple[int, bool] | np.ndarray, length: int) -> str:
    """The user prompt of the paper's Figure A.3 for ``state = (position, has_key)``."""
    position, has_key = int(state[0]), bool(state[1])
    door_steps = length - 1 - position
    if door_steps == 0:
        door = "You are in front of the locked door."
    else:
        door = f"You see the locked door {_steps(door_steps)} away on your right."
    if has_key:
        key = "You have the key."
    elif position == KEY_CELL:
        key = "You don't have the key. You see a key on the ground around you."
    else:
        key = f"You don't have the key. You see a key {_steps(position - KEY_CELL)} away on your left."
    choices = ", ".join(ACTIONS[:-1]) + f", or {ACTIONS[-1]}"
    return f"{GOAL} You can choose to: {choices}. {door} {key} {QUESTION}"


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


class KeyDoorEnv(gymnasium.Env):
    """The Key-Door corridor as a single-agent gymnasium env with text observations.

    Observation: ``{"text": describe(state), "state": [position, has_key] (int64),
    "symbolic": one-hot position + has_key flag (float32, length + 1)}``. Start
    state: uniform over positions without the key (the paper's rho_0), or
    ``reset(options={"position": p, "has_key": b})``. ``max_steps`` (default
    ``3 * length``) truncates; ``info["success"]`` is True once the door is unlocked.
    """

    metadata = {"render_modes": []}

    def __init__(self, length: int = 10, max_steps: int | None = None):
        if length < 2:
            raise ValueError(f"length must be at least 2 (a key cell and a door cell), got {length}")
        self.length = length
        self.max_steps = 3 * length if max_steps is None else max_steps
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be positive, got {self.max_steps}")
        self.action_space = spaces.Discrete(len(ACTIONS))
        self.observation_space = spaces.Dict(
            {
                "text": spaces.Text(max_length=1024, charset=string.printable),
                "state": spaces.Box(0, np.array([length - 1, 1]), shape=(2,), dtype=np.int64),
                "symbolic": spaces.Box(0.0, 1.0, shape=(length + 1,), dtype=np.float32),
            }
        )
        self._position, self._has_key = 0, False
        self._steps, self._done = 0, True

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Starts an episode at a uniform position without the key, or at ``options["position"]`` (and
        ``"has_key"``); returns ``(observation, {"success": False})``. ValueError for an unknown option
        or a position outside the corridor.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"position", "has_key"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: 'position', 'has_key'")
        position = options.get("position")
        if position is None:
            position = int(self.np_random.integers(self.length))
        if not 0 <= position < self.length:
            raise ValueError(f"position {position} is outside the corridor 0..{self.length - 1}")
        self._position, self._has_key = int(position), bool(options.get("has_key", False))
        self._steps, self._done = 0, False
        return self._observation(), {"success": False}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        """Takes action index 0-3 (see ``ACTIONS``); returns the gymnasium 5-tuple: reward 1 and
        ``terminated`` when the door is unlocked, ``truncated`` at ``max_steps``. RuntimeError after the
        episode has ended, ValueError for another action.
        """
        if self._done:
            raise RuntimeError("the episode has ended; call reset() before step()")
        self._position, self._has_key, reward, terminated = transition(
            self.length, self._position, self._has_key, int(action)
        )
        self._steps += 1
        # A terminal step is never also reported as truncated.
        truncated = not terminated and self._steps >= self.max_steps
        self._done = terminated or truncated
        return self._observation(), reward, terminated, truncated, {"success": terminated}

    @property
    def state(self) -> tuple[int, bool]:
        """The current ``(position, has_key)``."""
        return self._position, self._has_key

    def _observation(self) -> dict:
        symbolic = np.zeros(self.length + 1, dtype=np.float32)
        symbolic[self._position] = 1.0
        symbolic[-1] = float(self._has_key)
        return {
            "text": describe(self.state, self.length),
            "state": np.array([self._position, int(self._has_key)], dtype=np.int64),
            "symbolic": symbolic,
        }


@dataclass(frozen=True)
class Solution:
    """Exact quantities of a policy; rows are ``state_index`` order.

    ``P``: [n, n] state-to-state transitions under the policy; substochastic, since
    unlocking leaves the chain for the absorbing terminal state (value 0).
    ``R``: [n] expected one-step reward. ``entropy``: [n] policy entropy (nats).
    ``V``: [n] (soft) value. ``Q``, ``A``: [n, 4].
    """

    P: np.ndarray
    R: np.ndarray
    entropy: np.ndarray
    V: np.ndarray
    Q: np.ndarray
    A: np.ndarray


def solve(length: int, policy: np.ndarray, gamma: float, beta: float = 0.0) -> Solution:
    """Exact V, Q and advantage of ``policy`` ([n_states(length), 4] probabilities).

    ``V = (I - gamma P)^-1 (R + beta H)``, where ``H`` is the policy entropy (beta = 0:
    the ordinary value; beta > 0: the maximum-entropy soft value of the paper's
    eq. A.21), ``Q[s, a] = r(s, a) + gamma V(s')`` (transitions are deterministic and
    ``V`` of the terminal state is 0), and ``A = Q - V``.

    The paper's appendix A.9.1 prints ``A(s, a) = V(s) - r(s, a) - gamma V(s')``, the
    negative of the usual definition; we use the usual ``Q - V``, with which
    ``E_pi[A(s, .)] = 0`` for beta = 0 and ``-beta H(pi(.|s))`` for beta > 0 (eq. A.21).
    """
    policy = _check_policy(policy, length)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if beta < 0.0:
        raise ValueError(f"beta must be non-negative, got {beta}")
    next_state, reward = dynamics_table(length)  # [n, 4]; next_state -1 is the terminal state
    n = n_states(length)
    P = _chain(next_state, policy)
    R = (policy * reward).sum(axis=1)
    H = _entropy(policy)
    try:
        V = np.linalg.solve(np.eye(n) - gamma * P, R + beta * H)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"I - gamma P is singular for gamma={gamma}: from some state the policy never unlocks the "
            "door, so its undiscounted value is undefined. Use gamma < 1."
        ) from None
    Q = reward + gamma * np.where(next_state >= 0, V[np.maximum(next_state, 0)], 0.0)
    return Solution(P=P, R=R, entropy=H, V=V, Q=Q, A=Q - V[:, None])


def success_within(length: int, policy: np.ndarray, horizon: int) -> float:
    """Exact probability that ``policy`` unlocks the door within ``horizon`` steps from rho_0 (uniform
    over the positions without the key): the success rate of an episode of ``horizon`` steps, with
    no sampling noise. The state distribution is pushed through the chain ``horizon`` times.
    """
    policy = _check_policy(policy, length)
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    next_state, reward = dynamics_table(length)
    n = n_states(length)
    P = _chain(next_state, policy)
    unlock = (policy * (reward > 0)).sum(axis=1)  # the only way out of the chain is the unlock
    dist = np.zeros(n)
    dist[[state_index(p, False) for p in range(length)]] = 1.0 / length
    done = 0.0
    for _ in range(horizon):
        done += float(dist @ unlock)
        dist = dist @ P
    return done


def ground_truth_improved_policy(pi0: np.ndarray, A: np.ndarray, beta: float) -> np.ndarray:
    """``pi_gt(a|s) ∝ pi0(a|s) exp(A(s, a) / beta)`` row-wise (the reference policy of section 3.6.2)."""
    if beta <= 0.0:
        raise ValueError(f"beta must be positive, got {beta}")
    pi0 = np.asarray(pi0, dtype=float)
    # Shifting A by its row maximum keeps exp() from overflowing and cancels in the normalisation.
    shifted = np.asarray(A, dtype=float) - np.max(A, axis=-1, keepdims=True)
    weights = pi0 * np.exp(shifted / beta)
    return weights / weights.sum(axis=-1, keepdims=True)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise ``KL(p || q)`` in nats over the last axis; 0 log 0 = 0, inf where q misses p's support."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def _chain(next_state: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """``[n, n]`` state-to-state transition probabilities under ``policy``; substochastic, since the
    unlock leaves the chain (``next_state`` -1)."""
    n = len(next_state)
    live = next_state >= 0
    P = np.zeros((n, n))
    rows = np.broadcast_to(np.arange(n)[:, None], next_state.shape)
    np.add.at(P, (rows[live], next_state[live]), policy[live])
    return P


def _entropy(policy: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(policy > 0, policy * np.log(policy), 0.0).sum(axis=1)


def dynamics_table(length: int) -> tuple[np.ndarray, np.ndarray]:
    """``next_state[s, a]`` (-1 for the terminal state) and ``reward[s, a]``, both [n, 4], from ``transition``."""
    n = n_states(length)
    next_state = np.empty((n, len(ACTIONS)), dtype=np.int64)
    reward = np.zeros((n, len(ACTIONS)))
    for s in range(n):
        position, has_key = state_of(s)
        for a in range(len(ACTIONS)):
            p, k, r, done = transition(length, position, has_key, a)
            next_state[s, a] = -1 if done else state_index(p, k)
            reward[s, a] = r
    return next_state, reward


def _check_policy(policy: np.ndarray, length: int) -> np.ndarray:
    policy = np.asarray(policy, dtype=float)
    shape = (n_states(length), len(ACTIONS))
    if policy.shape != shape:
        raise ValueError(f"policy must have shape {shape} (rows in state_index order), got {policy.shape}")
    if np.any(policy < 0) or not np.allclose(policy.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("policy rows must be probability distributions (non-negative, summing to 1)")
    return policy

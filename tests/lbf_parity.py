"""Steps credo's JAX LBF and the ``lbforaging`` package side by side.

The reference processes loading agents in ``set.pop()`` order, which depends on
memory addresses; ``pinned_reference`` gives its players hashes equal to their
index, so the order becomes agent-index order, the order credo uses.
"""

from __future__ import annotations

import gymnasium as gym
import jax
import lbforaging  # noqa: F401  (registers the Foraging ids)
import numpy as np
from lbforaging.foraging.environment import Action, ForagingEnv, Player

import credo.envs as envs
from credo.envs.lbf import from_lbforaging

# (gymnasium id, extra constructor kwargs for both sides)
DEFAULT_CASES = [
    ("Foraging-8x8-2p-3f-v3", {}),
    ("Foraging-2s-8x8-2p-2f-coop-v3", {}),
    ("Foraging-10x10-3p-3f-v3", {}),
    ("Foraging-2s-12x12-4p-4f-v3", {}),
    ("Foraging-15x15-3p-4f-coop-v3", {}),
    ("Foraging-6x6-5p-1f-v3", {}),  # crowded: collisions, swaps, shared loads
    ("Foraging-2s-9x9-6p-3f-coop-v3", {}),
    ("Foraging-7x7-4p-2f-v3", {"penalty": 0.1}),  # failed loads cost the penalty
    ("Foraging-2s-8x8-3p-3f-v3", {"normalize_reward": False, "observe_agent_levels": False}),
    (
        "Foraging-2s-10x10-4p-4f-v3",
        {"sight": 1, "max_player_level": 3, "max_food_level": 5, "max_episode_steps": 30},
    ),
]

_orig_hash = Player.__hash__


def _index_hash(self):
    idx = self.__dict__.get("_credo_index")
    return _orig_hash(self) if idx is None else idx


def pinned_reference(gym_id: str, **kwargs):
    """An ``lbforaging`` env whose loading order is agent-index order."""
    Player.__hash__ = _index_hash
    # Straight from the registered constructor arguments: gym.make would keep
    # max_episode_steps for its own TimeLimit wrapper instead of passing it on.
    ref = ForagingEnv(**{**gym.spec(gym_id).kwargs, **kwargs})
    for i, p in enumerate(ref.players):
        p._credo_index = i
    probe = set(ref.players[::-1])
    assert [probe.pop() for _ in range(len(ref.players))] == ref.players, "set order not pinned"
    return ref


_MOVES = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)]


def scripted_actions(ref, avail, rng) -> np.ndarray:
    """Loads when it can, walks towards food, and sometimes does anything at all.

    Random actions alone almost never load food on large coop maps; walking
    towards food makes agents meet there, collide and load together.
    """
    foods = np.argwhere(ref.field > 0)
    actions = rng.integers(0, 6, len(ref.players))  # arbitrary, possibly unavailable
    for i, p in enumerate(ref.players):
        u = rng.random()
        if u < 0.5 and avail[i, 5]:
            actions[i] = 5
        elif u < 0.85 and len(foods):
            dist = [np.abs(foods - np.add(p.position, m)).sum(1).min() for m in _MOVES[:5]]
            ok = [a for a in range(5) if avail[i, a]]
            best = min(dist[a] for a in ok)
            actions[i] = rng.choice([a for a in ok if dist[a] == best])
    return actions


def reference_field(state, rows, cols) -> np.ndarray:
    field = np.zeros((rows, cols), np.int64)
    for (r, c), lvl in zip(np.asarray(state.food_pos), np.asarray(state.food_level)):
        if lvl > 0:
            field[r, c] = lvl
    return field


def run_parity(gym_id: str, kwargs: dict, steps: int, seed: int = 0) -> dict:
    """Steps both envs ``steps`` times; raises AssertionError at the first difference."""
    ref = pinned_reference(gym_id, **kwargs)
    env = envs.make(f"lbf:{gym_id}", **kwargs)
    step, observe, avail = jax.jit(env.step), jax.jit(env.observe), jax.jit(env.avail_actions)
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    counts = dict(steps=0, episodes=0, loads=0, rewarded_steps=0, collisions=0)
    episode_seed = seed * 10_000

    ref_obs, _ = ref.reset(seed=episode_seed)
    state = from_lbforaging(ref)
    for t in range(steps):
        where = f"{gym_id} {kwargs} step {t} (episode {counts['episodes']})"
        avail_ref = np.array([[Action(a) in ref._valid_actions[p] for a in range(6)] for p in ref.players])
        np.testing.assert_array_equal(
            np.asarray(observe(state)), np.stack(ref_obs), err_msg=f"obs at {where}"
        )
        np.testing.assert_array_equal(np.asarray(avail(state)), avail_ref, err_msg=f"avail at {where}")
        actions = scripted_actions(ref, avail_ref, rng)
        targets = [tuple(np.add(p.position, _MOVES[a])) for p, a in zip(ref.players, actions)]
        counts["collisions"] += len(targets) - len(set(targets))

        key, sub = jax.random.split(key)
        state, ts = step(sub, state, np.asarray(actions, np.int32))
        ref_obs, ref_rewards, ref_done, _, _ = ref.step(actions.tolist())
        counts["steps"] += 1
        counts["loads"] += int(np.sum(np.asarray(ref_rewards) > 0) > 0)
        counts["rewarded_steps"] += int(np.any(np.asarray(ref_rewards) != 0))

        np.testing.assert_array_equal(
            np.asarray(state.agent_pos),
            np.array([p.position for p in ref.players]),
            err_msg=f"positions at {where}",
        )
        np.testing.assert_array_equal(
            np.asarray(state.agent_level),
            np.array([p.level for p in ref.players]),
            err_msg=f"levels at {where}",
        )
        np.testing.assert_array_equal(
            reference_field(state, env.rows, env.cols), ref.field, err_msg=f"food at {where}"
        )
        np.testing.assert_allclose(
            np.asarray(ts.rewards),
            np.asarray(ref_rewards, np.float64),
            rtol=1e-6,
            atol=1e-7,
            err_msg=f"rewards at {where}",
        )
        np.testing.assert_allclose(
            float(ts.reward),
            float(np.sum(ref_rewards)),
            rtol=1e-6,
            atol=1e-6,
            err_msg=f"team reward at {where}",
        )
        done = bool(ts.terminated) or bool(ts.truncated)
        assert done == bool(ref_done), f"done {done} vs reference {ref_done} at {where}"
        assert not (bool(ts.terminated) and bool(ts.truncated)), where
        assert bool(ts.terminated) == bool(ref.field.sum() == 0), f"terminated at {where}"
        np.testing.assert_array_equal(
            np.asarray(ts.obs), np.stack(ref_obs), err_msg=f"obs after step at {where}"
        )
        if done:
            counts["episodes"] += 1
            ref_obs, _ = ref.reset(seed=episode_seed + counts["episodes"])
            state = from_lbforaging(ref)
    return counts

"""Level-Based Foraging in pure JAX, step-for-step faithful to ``lbforaging`` 2.0.0.

Agents with levels walk a grid and load food; a food is loaded when the levels
of the agents that load it from adjacent cells add up to at least its level.
Every gymnasium id of ``lbforaging`` (``Foraging[-Ns]-RxC-Pp-Ff[-coop]-v3``)
builds the same game here as ``lbf:<id>``; ``tests/test_lbf_parity.py`` steps
both side by side and compares every field.

Rules taken from the reference, quirks included (docs/envs.md says more):

* Actions: 0 none, 1 north (row - 1), 2 south, 3 west (col - 1), 4 east, 5 load.
  An unavailable action becomes "none" (as in the reference); so does an
  out-of-range one (the reference raises, which jit cannot).
* A move is available when the target cell is on the grid and holds no food;
  other agents do not block availability. Agents whose targets coincide (a
  staying agent targets its own cell) all stay; everyone else moves. Agents may
  swap cells, and an agent that stays after a collision may end up sharing its
  cell with an agent that moved in.
* Loading agents are processed one at a time in agent-index order (the
  reference pops them from a ``set``, an order fixed by memory addresses; the
  parity test pins the reference to index order). Each picks its first adjacent
  food in the order north, south, west, east (north and west only from row/col
  > 1, as in the reference); every loading agent adjacent to that food joins
  in. If their levels reach the food's level, each gets
  ``level * food_level`` (divided by ``sum_of_levels * total_food_spawned``
  when rewards are normalised) and the food disappears; otherwise each loses
  ``penalty``. With ``winner_take_all`` the highest-level joiner takes the whole
  reward, the variant of the dependence-graph paper; ``wta_ties`` says who wins a
  tie at the top level: ``"split"`` (credo's default) shares the reward equally
  among the tied joiners, ``"first"`` (the authors' code: a single ``argmax``
  winner) gives all of it to the tied joiner of lowest index.
* The episode ends when all food is gone (``terminated``) or after
  ``max_episode_steps`` (``truncated``); the reference reports both as ``done``.

Observations follow ``ForagingEnv._make_gym_obs`` exactly: per food slot
``(row, col, level)`` of the visible foods in row-major order, then per agent
slot ``(row, col, level)`` with the observing agent first and visible others in
index order; empty slots are ``(-1, -1, 0)``. Coordinates are relative to the
top-left corner of the agent's view window clipped to the grid, so with full
observability (sight = grid size) they are absolute.

Global state (for centralised training; the reference has none):
``[row, col, level]`` of every agent in index order, then of every food slot in
spawn order with eaten or unspawned food as ``(-1, -1, 0)``; absolute coordinates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from credo.envs.core import MultiAgentEnv, TimeStep

NONE, NORTH, SOUTH, WEST, EAST, LOAD = range(6)
_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], np.int32)  # [6, 2]


class LBFState(NamedTuple):
    """One LBF episode's state: agents' positions and levels, the foods left and the step count."""

    agent_pos: jax.Array  # [n_agents, 2] int32 (row, col)
    agent_level: jax.Array  # [n_agents] int32
    food_pos: jax.Array  # [n_food, 2] int32 (row, col); meaningless where food_level == 0
    food_level: jax.Array  # [n_food] int32; 0 = eaten or never spawned
    food_spawned: jax.Array  # [] int32: sum of the levels spawned at reset (reward normaliser)
    step: jax.Array  # [] int32: steps taken in this episode


def _per_item(value, count: int, what: str) -> np.ndarray:
    """A scalar or one value per item, as the reference accepts them."""
    arr = np.asarray(value, dtype=np.int64)
    if arr.ndim == 0:
        return np.full(count, int(arr), np.int32)
    if arr.shape != (count,):
        raise ValueError(f"{what} must be a scalar or a list of length {count}, got {value!r}.")
    return arr.astype(np.int32)


class LevelBasedForaging(MultiAgentEnv):
    """Level-Based Foraging with the constructor arguments of ``lbforaging.ForagingEnv``.

    ``winner_take_all`` and ``wta_ties`` are credo's additions (dependence-graph
    paper); grid observations (``grid_observation=True``) are not implemented.
    """

    def __init__(
        self,
        players: int,
        field_size: tuple[int, int] | int,
        max_num_food: int,
        sight: int,
        min_player_level: int | Sequence[int] = 1,
        max_player_level: int | Sequence[int] = 2,
        min_food_level: int | Sequence[int] = 1,
        max_food_level: int | Sequence[int] | None = None,
        max_episode_steps: int = 50,
        force_coop: bool = False,
        normalize_reward: bool = True,
        observe_agent_levels: bool = True,
        penalty: float = 0.0,
        winner_take_all: bool = False,
        wta_ties: Literal["split", "first"] = "split",  # WTA ties: split (credo) or first (authors' argmax)
        grid_observation: bool = False,
    ):
        if grid_observation:
            raise ValueError(
                "grid_observation=True (the reference's 'Foraging-grid' ids) is not implemented in "
                "credo's LBF; use the vector observation (the default of every registered id)."
            )
        rows, cols = (field_size, field_size) if np.ndim(field_size) == 0 else tuple(field_size)
        rows, cols, players, max_num_food = int(rows), int(cols), int(players), int(max_num_food)
        if rows < 3 or cols < 3:
            raise ValueError(
                f"field_size must be at least 3x3 (food spawns off the border), got {rows}x{cols}."
            )
        if players < 1:
            raise ValueError(f"players must be >= 1, got {players}.")
        if players > rows * cols:
            raise ValueError(f"{players} players do not fit on a {rows}x{cols} grid ({rows * cols} cells).")
        if max_num_food < 1:
            raise ValueError(f"max_num_food must be >= 1, got {max_num_food}.")
        if max_num_food > (rows - 2) * (cols - 2):
            raise ValueError(
                f"max_num_food={max_num_food} exceeds the {(rows - 2) * (cols - 2)} cells off the border "
                f"of a {rows}x{cols} grid where food can spawn. (Between this bound and what the "
                "no-adjacent-food rule packs, fewer foods spawn, exactly as in lbforaging.)"
            )
        if not 0 <= int(sight) <= max(rows, cols):
            raise ValueError(
                f"sight must be in 0..{max(rows, cols)} for a {rows}x{cols} grid, got {sight}; "
                f"sight={max(rows, cols)} already observes the whole grid (the full-observability ids use it)."
            )
        if wta_ties not in ("split", "first"):
            raise ValueError(f"wta_ties must be 'split' or 'first', got {wta_ties!r}.")
        if int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}.")
        self.rows, self.cols, self.sight = rows, cols, int(sight)
        self.n_agents, self.n_food = players, max_num_food
        self.min_player_level = _per_item(min_player_level, players, "min_player_level")
        self.max_player_level = _per_item(max_player_level, players, "max_player_level")
        self.min_food_level = _per_item(min_food_level, max_num_food, "min_food_level")
        self.max_food_level = (
            None if max_food_level is None else _per_item(max_food_level, max_num_food, "max_food_level")
        )
        for name, lo, hi in (
            ("player", self.min_player_level, self.max_player_level),
            ("food", self.min_food_level, self.max_food_level),
        ):
            if hi is not None and np.any(lo > hi):
                raise ValueError(f"min_{name}_level must be <= max_{name}_level, got {lo} > {hi}.")
        if np.any(self.min_player_level < 1):
            raise ValueError("player levels must be >= 1.")
        self.force_coop = bool(force_coop)
        self.normalize_reward = bool(normalize_reward)
        self.observe_agent_levels = bool(observe_agent_levels)
        self.penalty = float(penalty)
        self.winner_take_all = bool(winner_take_all)
        self.wta_ties = wta_ties

        self.n_actions = 6
        self.episode_limit = int(max_episode_steps)
        self.player_obs_len = 3 if self.observe_agent_levels else 2
        self.obs_dim = 3 * self.n_food + self.player_obs_len * self.n_agents
        self.state_dim = 3 * (self.n_agents + self.n_food)

        # Cell coordinates, flattened row-major: [rows * cols, 2].
        rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        self._cells = jnp.asarray(np.stack([rr.ravel(), cc.ravel()], -1), jnp.int32)
        interior = (rr >= 1) & (rr <= rows - 2) & (cc >= 1) & (cc <= cols - 2)
        self._interior = jnp.asarray(interior.ravel())

    # --- reset --------------------------------------------------------------

    def _reset(self, key):
        n, f = self.n_agents, self.n_food
        # All randomness in one draw: a single threefry call per reset matters,
        # because under vmap AutoReset evaluates a reset on every step.
        u = iter(jax.random.uniform(key, (4 * n + 4 * f,)))
        take = lambda k: jnp.stack([next(u) for _ in range(k)])  # noqa: E731

        # The reference permutes per-player level ranges; a no-op when they are all equal.
        lo, hi = jnp.asarray(self.min_player_level), jnp.asarray(self.max_player_level)
        perm_u = take(n)
        if len(set(zip(self.min_player_level.tolist(), self.max_player_level.tolist()))) > 1:
            perm = jnp.argsort(perm_u)
            lo, hi = lo[perm], hi[perm]
        agent_level = _uniform_int(take(n), lo, hi)

        # Players one after another, each uniform over the cells still free: the
        # distribution of the reference's rejection sampler.
        occupied = jnp.zeros(self.rows * self.cols, bool)
        cell_idx = []
        for ui in take(n):
            idx, _ = _uniform_index(ui, ~occupied)
            occupied = occupied.at[idx].set(True)
            cell_idx.append(idx)
        agent_pos = self._cells[jnp.stack(cell_idx)]

        if self.max_food_level is None:  # reference: sum of the three lowest player levels
            max_lvl = jnp.full((f,), jnp.sort(agent_level)[:3].sum(), jnp.int32)
        else:
            max_lvl = jnp.asarray(self.max_food_level)
        min_lvl = max_lvl if self.force_coop else jnp.asarray(self.min_food_level)
        fperm_u = take(f)
        varied = self.max_food_level is not None and (
            len(set(zip(self.min_food_level.tolist(), self.max_food_level.tolist()))) > 1
        )
        if varied:  # the reference permutes per-food level ranges
            fperm = jnp.argsort(fperm_u)
            min_lvl, max_lvl = min_lvl[fperm], max_lvl[fperm]
        food_draw = _uniform_int(take(f), min_lvl, max_lvl)

        # Foods one after another, uniform over interior cells with no agent, no
        # food in the 3x3 block around them and none two steps away in a line.
        food_pos = jnp.zeros((f, 2), jnp.int32)
        food_level = jnp.zeros((f,), jnp.int32)
        blocked = ~self._interior | occupied
        for i, ui in enumerate(take(f)):
            idx, ok = _uniform_index(ui, ~blocked)
            cell = self._cells[idx]
            food_pos = food_pos.at[i].set(cell)
            food_level = food_level.at[i].set(jnp.where(ok, food_draw[i], 0))
            d = jnp.abs(self._cells - cell)  # [cells, 2]
            near = ((d[:, 0] <= 1) & (d[:, 1] <= 1)) | ((d.min(-1) == 0) & (d.max(-1) <= 2))
            blocked = blocked | (near & (food_draw[i] > 0) & ok)

        state = LBFState(
            agent_pos=agent_pos,
            agent_level=agent_level.astype(jnp.int32),
            food_pos=food_pos,
            food_level=food_level,
            food_spawned=food_level.sum(),
            step=jnp.zeros((), jnp.int32),
        )
        zeros = jnp.zeros((n,), jnp.float32)
        return state, self._timestep(state, zeros, jnp.zeros((), bool), jnp.zeros((), bool))

    # --- step ---------------------------------------------------------------

    def _food_at(self, cells, food_pos, food_level):
        """Food level on each of ``cells`` [..., 2] (0 where there is none)."""
        hit = jnp.all(cells[..., None, :] == food_pos, axis=-1)  # [..., n_food]
        return jnp.sum(jnp.where(hit, food_level, 0), axis=-1)

    def avail_actions(self, state: LBFState) -> jax.Array:
        """[n_agents, 6] bool: the reference's ``_valid_actions``."""
        pos, fp, fl = state.agent_pos, state.food_pos, state.food_level
        r, c = pos[:, 0], pos[:, 1]
        targets = pos[:, None, :] + jnp.asarray(_MOVES[1:5])  # [n, 4, 2]
        free = self._food_at(targets, fp, fl) == 0
        in_grid = jnp.stack([r > 0, r < self.rows - 1, c > 0, c < self.cols - 1], -1)
        # Load: the reference sums the four neighbours with clamped indices.
        clamped = jnp.stack(
            [
                jnp.stack([jnp.maximum(r - 1, 0), c], -1),
                jnp.stack([jnp.minimum(r + 1, self.rows - 1), c], -1),
                jnp.stack([r, jnp.maximum(c - 1, 0)], -1),
                jnp.stack([r, jnp.minimum(c + 1, self.cols - 1)], -1),
            ],
            1,
        )  # [n, 4, 2]
        load = self._food_at(clamped, fp, fl).sum(-1) > 0
        none = jnp.ones_like(load)
        return jnp.concatenate([none[:, None], in_grid & free, load[:, None]], -1)

    def agent_features(self, state: LBFState) -> jax.Array:
        """[n, 3] float32: each agent's own substate (row, col, level), for dependence-graph models."""
        return jnp.concatenate([state.agent_pos, state.agent_level[:, None]], -1).astype(jnp.float32)

    def interaction_graph(self, state: LBFState, distance: int = 2) -> jax.Array:
        """[n, n] bool: agents within ``distance`` (Manhattan) of each other, the diagonal on.

        The oracle dependence graph of one step: two agents can load the same food
        or contest the same cell only when at most 2 apart, so ``distance=2`` links
        exactly the pairs whose actions can change each other's next state or reward.
        """
        pos = state.agent_pos
        d = jnp.abs(pos[:, None, :] - pos[None, :, :]).sum(-1)
        return d <= distance

    def _step(self, key, state: LBFState, actions):
        n = self.n_agents
        avail = self.avail_actions(state)
        in_range = (actions >= 0) & (actions < 6)
        safe = jnp.where(in_range, actions, NONE)
        actions = jnp.where(avail[jnp.arange(n), safe], safe, NONE)

        # Movement: agents whose targets coincide all stay.
        pos = state.agent_pos
        target = pos + jnp.asarray(_MOVES)[actions]  # [n, 2]
        same = jnp.all(target[:, None, :] == target[None, :, :], -1)  # [n, n]
        pos = jnp.where((same.sum(1) == 1)[:, None], target, pos)

        rewards, food_level = self._load(pos, state, actions == LOAD)
        step = state.step + 1
        terminated = jnp.all(food_level == 0)
        truncated = (step >= self.episode_limit) & ~terminated
        new_state = state._replace(agent_pos=pos, food_level=food_level, step=step)
        return new_state, self._timestep(new_state, rewards, terminated, truncated)

    def _load(self, pos, state: LBFState, loading):
        """Processes loading agents in index order; returns (rewards [n], food levels [F])."""
        n = self.n_agents
        lvl, fp = state.agent_level, state.food_pos
        food_level = state.food_level
        spawned = state.food_spawned.astype(jnp.float32)
        rewards = jnp.zeros((n,), jnp.float32)
        pending = loading
        index = jnp.arange(n)
        for i in range(n):
            go = pending[i]
            r, c = pos[i, 0], pos[i, 1]
            # adjacent_food_location: first of north, south, west, east holding food.
            cands = jnp.stack(
                [jnp.stack([r - 1, c]), jnp.stack([r + 1, c]), jnp.stack([r, c - 1]), jnp.stack([r, c + 1])]
            )
            allowed = jnp.stack([r > 1, r < self.rows - 1, c > 1, c < self.cols - 1])
            hit = jnp.all(cands[:, None, :] == fp[None], -1) & (food_level > 0)[None]  # [4, F]
            has = allowed & hit.any(-1)
            first = jnp.argmax(has)
            found = has.any()
            food = hit[first] & found  # [F] one-hot (foods sit on distinct cells)
            f_level = jnp.sum(jnp.where(food, food_level, 0))
            f_pos = cands[first]

            dist = jnp.abs(pos - f_pos).sum(-1)
            members = (dist == 1) & (pending | (index == i)) & go & found  # [n]
            total = jnp.sum(jnp.where(members, lvl, 0))
            success = go & found & (total >= f_level)
            fail = go & found & (total < f_level)

            share = (lvl * f_level).astype(jnp.float32)  # [n]
            if self.winner_take_all:  # the top-level joiners split the sum of all shares
                winners = members & (lvl == jnp.max(jnp.where(members, lvl, -1)))
                if self.wta_ties == "first":  # argmax: the lowest index among the tied takes it all
                    winners = winners & (index == jnp.argmax(winners))
                share = jnp.where(winners, (total * f_level) / jnp.maximum(winners.sum(), 1), 0.0)
            if self.normalize_reward:
                share = share / jnp.maximum(total * spawned, 1.0)
            rewards = jnp.where(members & success, share, rewards)
            rewards = jnp.where(members & fail, rewards - self.penalty, rewards)
            food_level = jnp.where(food & success, 0, food_level)
            pending = pending & ~members & ~((index == i) & go)
        return rewards, food_level

    # --- observations -------------------------------------------------------

    def _timestep(self, state: LBFState, rewards, terminated, truncated) -> TimeStep:
        return TimeStep(
            obs=self.observe(state),
            state=self.global_state(state),
            avail_actions=self.avail_actions(state),
            reward=rewards.sum(),
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            info={},
        )

    def observe(self, state: LBFState) -> jax.Array:
        """[n_agents, obs_dim] float32, the layout of ``ForagingEnv._make_gym_obs``."""
        n, f, s = self.n_agents, self.n_food, self.sight
        pos, lvl, fp, fl = state.agent_pos, state.agent_level, state.food_pos, state.food_level
        origin = jnp.maximum(pos - s, 0)  # [n, 2]: top-left of each view, clipped to the grid

        # Foods in view, ranked row-major.
        d = jnp.abs(fp[None] - pos[:, None])  # [n, F, 2]
        fvis = (fl > 0)[None] & jnp.all(d <= s, -1)  # [n, F]
        order = fp[:, 0] * self.cols + fp[:, 1]  # [F]
        earlier = fvis[:, None, :] & (order[None, None, :] < order[None, :, None])  # [n, F, F']
        frank = earlier.sum(-1)  # [n, F]
        fvals = jnp.concatenate(
            [fp[None] - origin[:, None], jnp.broadcast_to(fl[None, :, None], (n, f, 1))], -1
        )
        food_obs = _scatter_slots(frank, fvis, fvals, f, jnp.array([-1, -1, 0]))  # [n, F, 3]

        # Agents in view: self first, then visible others in index order.
        rel = pos[None] - pos[:, None] + jnp.minimum(s, pos)[:, None]  # [n, n, 2]
        pvis = (rel.min(-1) >= 0) & (rel.max(-1) <= 2 * s)  # [n, n]
        eye = jnp.eye(n, dtype=bool)
        others = pvis & ~eye
        prank = jnp.where(eye, 0, jnp.cumsum(others, axis=1) - others + 1)
        if self.observe_agent_levels:
            pvals = jnp.concatenate([rel, jnp.broadcast_to(lvl[None, :, None], (n, n, 1))], -1)
            empty = jnp.array([-1, -1, 0])
        else:
            pvals, empty = rel, jnp.array([-1, -1])
        agent_obs = _scatter_slots(prank, pvis, pvals, n, empty)  # [n, n, 2 or 3]
        return jnp.concatenate([food_obs.reshape(n, -1), agent_obs.reshape(n, -1)], -1).astype(jnp.float32)

    def global_state(self, state: LBFState) -> jax.Array:
        """[state_dim] float32: (row, col, level) of every agent, then of every food slot."""
        agents = jnp.concatenate([state.agent_pos, state.agent_level[:, None]], -1)
        alive = (state.food_level > 0)[:, None]
        foods = jnp.where(
            alive, jnp.concatenate([state.food_pos, state.food_level[:, None]], -1), jnp.array([-1, -1, 0])
        )
        return jnp.concatenate([agents.ravel(), foods.ravel()]).astype(jnp.float32)


def _uniform_int(u, lo, hi):
    """Integers uniform in [lo, hi] from uniforms ``u`` in [0, 1)."""
    return jnp.minimum(lo + jnp.floor(u * (hi - lo + 1)).astype(jnp.int32), hi)


def _uniform_index(u, mask):
    """An index drawn uniformly where ``mask`` is True (``u`` uniform in [0, 1)), and whether there was one."""
    count = mask.sum()
    k = jnp.floor(u * count).astype(jnp.int32)
    k = jnp.minimum(k, count - 1)
    idx = jnp.argmax(jnp.cumsum(mask) > k)
    return idx, count > 0


def _scatter_slots(rank, visible, values, n_slots, empty):
    """Puts ``values[o, j]`` into slot ``rank[o, j]`` of observer ``o`` where visible.

    rank, visible: [obs, items]; values: [obs, items, d] -> [obs, n_slots, d].
    A one-hot contraction instead of a scatter: faster under vmap on CPU.
    """
    onehot = (rank[..., None] == jnp.arange(n_slots)) & visible[..., None]  # [obs, items, slots]
    filled = onehot.any(1)  # [obs, slots]
    slots = jnp.einsum("ois,oid->osd", onehot.astype(jnp.int32), values.astype(jnp.int32))
    return jnp.where(filled[..., None], slots, empty)


def from_lbforaging(env) -> LBFState:
    """The ``LBFState`` of a live ``lbforaging.ForagingEnv`` (after ``reset``).

    Food slots are filled in row-major order of the field; useful to replay a
    reference episode in credo or to check parity.
    """
    env = getattr(env, "unwrapped", env)
    field = np.asarray(env.field)
    rows, cols = np.nonzero(field)
    n_food = env.max_num_food
    if len(rows) > n_food:
        raise ValueError(f"the reference field holds {len(rows)} foods but max_num_food is {n_food}.")
    food_pos = np.zeros((n_food, 2), np.int32)
    food_level = np.zeros((n_food,), np.int32)
    food_pos[: len(rows)] = np.stack([rows, cols], -1)
    food_level[: len(rows)] = field[rows, cols]
    return LBFState(
        agent_pos=jnp.asarray([p.position for p in env.players], jnp.int32),
        agent_level=jnp.asarray([p.level for p in env.players], jnp.int32),
        food_pos=jnp.asarray(food_pos),
        food_level=jnp.asarray(food_level),
        food_spawned=jnp.asarray(int(env._food_spawned), jnp.int32),
        step=jnp.asarray(int(env.current_step), jnp.int32),
    )


# --- registry -------------------------------------------------------------------

LBF_ID = re.compile(
    r"^Foraging(?P<grid>-grid)?(?:-(?P<sight>\d+)s)?-(?P<rows>\d+)x(?P<cols>\d+)-(?P<p>\d+)p-(?P<f>\d+)f"
    r"(?P<coop>-coop)?(?P<ind>-ind)?(?P<pen>-pen)?(?P<wta>-wta)?-v(?P<v>\d+)$"
)

# Maps the papers use (QLLM, dependence graphs, EPyMARL benchmarks).
FEATURED = [
    "Foraging-8x8-2p-3f-v3",
    "Foraging-8x8-2p-2f-coop-v3",
    "Foraging-2s-8x8-2p-2f-coop-v3",
    "Foraging-10x10-3p-3f-v3",
    "Foraging-15x15-4p-3f-v3",
    "Foraging-15x15-3p-4f-v3",
    "Foraging-8x8-2p-4f-coop-wta-v3",
    "Foraging-10x10-2p-3f-coop-wta-v3",
    "Foraging-15x15-3p-4f-coop-wta-v3",
    "custom",
]

_OVERRIDES = [
    "sight",
    "min_player_level",
    "max_player_level",
    "min_food_level",
    "max_food_level",
    "max_episode_steps",
    "force_coop",
    "normalize_reward",
    "observe_agent_levels",
    "penalty",
    "winner_take_all",
    "wta_ties",
    "grid_observation",  # accepted only to say it is not implemented
]


def parse_lbf_id(name: str) -> dict:
    """Constructor arguments of an ``lbforaging`` gymnasium id, as its ``register`` loop sets them.

    Suffixes beyond the reference's: ``-wta`` (winner-take-all rewards); ``-ind``
    and ``-pen`` follow the reference's commented-out options (max food level 1,
    penalty 0.1). The version must be 3 (lbforaging 2.0.0).
    """
    m = LBF_ID.match(name)
    if m is None:
        raise unknown_name(
            FAMILY,
            name,
            "LBF ids look like 'Foraging[-Ns]-RxC-Pp-Ff[-coop][-wta]-v3', e.g. 'Foraging-2s-8x8-2p-2f-coop-v3'.",
        )
    if m["grid"]:
        raise EnvKeyError(
            f"{name!r}: grid observations ('Foraging-grid' ids) are not implemented in credo's LBF."
        )
    if m["v"] != "3":
        raise EnvKeyError(f"{name!r}: only version v3 (lbforaging 2.0.0) is implemented; use '-v3'.")
    size = int(m["rows"])
    return dict(
        players=int(m["p"]),
        field_size=(int(m["rows"]), int(m["cols"])),
        max_num_food=int(m["f"]),
        sight=int(m["sight"]) if m["sight"] else max(size, int(m["cols"])),
        min_player_level=1,
        max_player_level=2,
        min_food_level=1,
        max_food_level=1 if m["ind"] else None,
        max_episode_steps=50,
        force_coop=bool(m["coop"]),
        penalty=0.1 if m["pen"] else 0.0,
        winner_take_all=bool(m["wta"]),
    )


def _build(name: str, **kwargs) -> LevelBasedForaging:
    if name == "custom":
        try:
            return LevelBasedForaging(**kwargs)
        except TypeError as err:
            raise EnvKeyError(
                f"lbf:custom takes the arguments of lbforaging's ForagingEnv ({err}). Required: "
                "players, field_size, max_num_food, sight."
            ) from None
    args = parse_lbf_id(name)
    args.update(kwargs)
    return LevelBasedForaging(**args)


def _kwargs(name: str) -> list[str]:
    if name == "custom":
        return ["players", "field_size", "max_num_food", *_OVERRIDES]
    return list(_OVERRIDES)


from credo.envs.registry import EnvKeyError, Family, unknown_name  # noqa: E402

FAMILY = Family(
    prefix="lbf",
    build=_build,
    names=lambda: list(FEATURED),
    kwargs=_kwargs,
    doc="Level-Based Foraging in JAX, faithful to lbforaging 2.0.0 (any 'Foraging-...-v3' id)",
)
FAMILIES = [FAMILY]

"""credo's LBF beyond step parity: reset distribution, invariants, variants, bad input."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import lbforaging  # noqa: F401
import numpy as np
import pytest
from lbforaging.foraging.environment import ForagingEnv

import credo.envs as envs
from credo.envs.lbf import LBFState, LevelBasedForaging, parse_lbf_id


def _batch_reset(env, n, seed=0):
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.jit(jax.vmap(env.reset))(keys)


@pytest.mark.parametrize(
    "key", ["Foraging-8x8-2p-3f-v3", "Foraging-2s-10x10-3p-4f-coop-v3", "Foraging-6x6-5p-2f-v3"]
)
def test_reset_invariants(key):
    env = envs.make(f"lbf:{key}")
    state, ts = _batch_reset(env, 2000)
    pos, fp, fl = np.asarray(state.agent_pos), np.asarray(state.food_pos), np.asarray(state.food_level)
    lvl = np.asarray(state.agent_level)
    for b in range(len(pos)):
        cells = {tuple(p) for p in pos[b]}
        assert len(cells) == env.n_agents, "agents must start on distinct cells"
        alive = fp[b][fl[b] > 0]
        assert np.all((alive >= 1) & (alive <= np.array([env.rows, env.cols]) - 2)), "food off the border"
        assert not cells & {tuple(f) for f in alive}, "food never spawns on an agent"
        for i in range(len(alive)):
            for j in range(i + 1, len(alive)):
                d = np.abs(alive[i] - alive[j])
                assert d.max() > 1 and not (d.min() == 0 and d.max() <= 2), "foods too close"
        top3 = np.sort(lvl[b])[:3].sum()
        live_levels = fl[b][fl[b] > 0]
        assert np.all(live_levels <= top3)
        if env.force_coop:
            assert np.all(live_levels == top3)
    assert np.all(np.asarray(state.food_spawned) == fl.sum(1))
    assert np.all(np.asarray(ts.reward) == 0) and not np.any(np.asarray(ts.terminated | ts.truncated))


def _reference_reset_stats(key, n):
    ref = ForagingEnv(**gym.spec(key).kwargs)
    stats = []
    for seed in range(n):
        ref.reset(seed=seed)
        fields = ref.field
        stats.append(
            (
                np.mean([p.level for p in ref.players]),
                (fields > 0).sum(),
                fields[fields > 0].mean(),
                np.mean([p.position[0] for p in ref.players]),
                np.argwhere(fields > 0)[:, 0].mean(),
            )
        )
    return np.array(stats)


# On 5x5 the third food never fits, so each reference reset spends its 1000 attempts: fewer resets.
@pytest.mark.parametrize("key, n", [("Foraging-8x8-2p-3f-v3", 3000), ("Foraging-5x5-3p-3f-v3", 600)])
def test_reset_distribution_matches_reference(key, n):
    """Same sampling rules, different RNG: the statistics of resets must agree."""
    ref = _reference_reset_stats(key, n)
    env = envs.make(f"lbf:{key}")
    state, _ = _batch_reset(env, n, seed=1)
    fl = np.asarray(state.food_level)
    alive = fl > 0
    fp = np.asarray(state.food_pos)
    ours = np.stack(
        [
            np.asarray(state.agent_level).mean(1),
            alive.sum(1),
            (fl * alive).sum(1) / alive.sum(1),
            np.asarray(state.agent_pos)[..., 0].mean(1),
            (fp[..., 0] * alive).sum(1) / alive.sum(1),
        ],
        1,
    )
    for col, name in enumerate(["agent level", "foods spawned", "food level", "agent row", "food row"]):
        a, b = ours[:, col], ref[:, col]
        se = np.sqrt(a.var() / n + b.var() / n) + 1e-9
        assert abs(a.mean() - b.mean()) < 5 * se, f"{name}: credo {a.mean():.3f} vs lbforaging {b.mean():.3f}"


def _state(agent_pos, agent_level, food_pos, food_level):
    fl = jnp.asarray(food_level, jnp.int32)
    return LBFState(
        agent_pos=jnp.asarray(agent_pos, jnp.int32),
        agent_level=jnp.asarray(agent_level, jnp.int32),
        food_pos=jnp.asarray(food_pos, jnp.int32),
        food_level=fl,
        food_spawned=fl.sum(),
        step=jnp.zeros((), jnp.int32),
    )


def test_winner_take_all_gives_whole_reward_to_top_level():
    kw = dict(players=3, field_size=8, max_num_food=2, sight=8)
    # Food (3, 3) level 3 with three loaders around it (levels 1, 2, 1); second food keeps the episode going.
    s = _state([[2, 3], [3, 2], [4, 3]], [1, 2, 1], [[3, 3], [6, 6]], [3, 2])
    load = jnp.full((3,), 5, jnp.int32)
    _, plain = LevelBasedForaging(**kw).step(jax.random.key(0), s, load)
    _, wta = LevelBasedForaging(**kw, winner_take_all=True).step(jax.random.key(0), s, load)
    np.testing.assert_allclose(plain.rewards, np.array([1, 2, 1]) * 3 / (4 * 5), rtol=1e-6)
    np.testing.assert_allclose(wta.rewards, [0, 3 / 5, 0], rtol=1e-6)
    np.testing.assert_allclose(wta.reward, plain.reward, rtol=1e-6)
    # A tie at the top splits the whole reward.
    s_tie = s._replace(agent_level=jnp.asarray([2, 2, 1], jnp.int32))
    _, tie = LevelBasedForaging(**kw, winner_take_all=True).step(jax.random.key(0), s_tie, load)
    np.testing.assert_allclose(tie.rewards, [1.5 / 5, 1.5 / 5, 0], rtol=1e-6)
    assert envs.make("lbf:Foraging-8x8-2p-4f-coop-wta-v3").winner_take_all


@pytest.mark.parametrize("levels", [[2, 2, 1], [1, 2, 2], [2, 1, 2]])
def test_winner_take_all_ties_split_or_go_to_the_first(levels):
    """wta_ties: "split" shares a top-level tie; "first" (the authors' argmax) gives it all to the lowest index."""
    kw = dict(players=3, field_size=8, max_num_food=2, sight=8, winner_take_all=True)
    s = _state([[2, 3], [3, 2], [4, 3]], levels, [[3, 3], [6, 6]], [3, 2])
    load = jnp.full((3,), 5, jnp.int32)
    tied = np.asarray(levels) == 2
    total = 3 / 5  # the food's whole (normalised) reward
    _, split = LevelBasedForaging(**kw, wta_ties="split").step(jax.random.key(0), s, load)
    np.testing.assert_allclose(split.rewards, np.where(tied, total / 2, 0.0), rtol=1e-6)
    _, first = LevelBasedForaging(**kw, wta_ties="first").step(jax.random.key(0), s, load)
    winner = np.zeros(3)
    winner[np.argmax(tied)] = total
    np.testing.assert_allclose(first.rewards, winner, rtol=1e-6)
    np.testing.assert_allclose(first.reward, split.reward, rtol=1e-6)
    # Without a tie both rules agree; without winner_take_all the rule is unused.
    s_one = s._replace(agent_level=jnp.asarray([1, 2, 1], jnp.int32))
    _, a = LevelBasedForaging(**kw, wta_ties="first").step(jax.random.key(0), s_one, load)
    _, b = LevelBasedForaging(**kw, wta_ties="split").step(jax.random.key(0), s_one, load)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    env = envs.make("lbf:Foraging-8x8-2p-4f-coop-wta-v3", wta_ties="first")
    assert env.wta_ties == "first" and LevelBasedForaging(**kw).wta_ties == "split"
    with pytest.raises(ValueError, match="wta_ties"):
        LevelBasedForaging(**kw, wta_ties="last")


def test_unavailable_and_out_of_range_actions_do_nothing():
    env = LevelBasedForaging(players=2, field_size=5, max_num_food=1, sight=5)
    s = _state([[0, 0], [4, 4]], [1, 1], [[2, 2]], [1])
    # north from row 0 is unavailable, 17 and -3 are out of range, load has no food next to it.
    for bad in ([1, 5], [17, -3]):
        s2, ts = env.step(jax.random.key(0), s, jnp.asarray(bad, jnp.int32))
        np.testing.assert_array_equal(s2.agent_pos, s.agent_pos)
        assert float(ts.reward) == 0.0


def test_collisions_and_swaps():
    env = LevelBasedForaging(players=3, field_size=6, max_num_food=1, sight=6)
    s = _state([[2, 1], [2, 3], [0, 0]], [1, 1, 1], [[4, 4]], [1])
    # agents 0 and 1 both move into (2, 2): neither moves; agent 2 moves east.
    s2, _ = env.step(jax.random.key(0), s, jnp.asarray([4, 3, 4], jnp.int32))
    np.testing.assert_array_equal(s2.agent_pos, [[2, 1], [2, 3], [0, 1]])
    # neighbours swap cells: both move (the reference has no swap check).
    s = _state([[2, 1], [2, 2], [0, 0]], [1, 1, 1], [[4, 4]], [1])
    s2, _ = env.step(jax.random.key(0), s, jnp.asarray([4, 3, 0], jnp.int32))
    np.testing.assert_array_equal(s2.agent_pos, [[2, 2], [2, 1], [0, 0]])


def test_jit_vmap_scan_with_autoreset():
    env = envs.AutoReset(envs.make("lbf:Foraging-8x8-2p-3f-v3"))
    n_envs, steps = 8, 120
    state, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), n_envs))

    def body(carry, key):
        state, ts = carry
        k_act, k_step = jax.random.split(key)
        logits = jnp.where(ts.avail_actions, 0.0, -jnp.inf)
        actions = jax.random.categorical(k_act, logits)
        state, ts = jax.vmap(env.step)(jax.random.split(k_step, n_envs), state, actions)
        return (state, ts), (
            ts.info["episode_done"],
            ts.info["episode_length"],
            ts.reward,
            ts.info["episode_return"],
        )

    _, (done, length, reward, ep_ret) = jax.jit(
        lambda c: jax.lax.scan(body, c, jax.random.split(jax.random.key(1), steps))
    )((state, ts))
    done, length = np.asarray(done), np.asarray(length)
    assert done.sum() >= n_envs * 2, "every env must finish at least two 50-step episodes in 120 steps"
    assert np.all(length[done] <= 50) and np.all(length[done] >= 1)
    # the recorded episode return is the sum of rewards since the previous end
    reward, ep_ret = np.asarray(reward), np.asarray(ep_ret)
    for e in range(n_envs):
        ends = np.flatnonzero(done[:, e])
        starts = np.concatenate([[0], ends[:-1] + 1])
        for a, b in zip(starts, ends):
            np.testing.assert_allclose(ep_ret[b, e], reward[a : b + 1, e].sum(), rtol=1e-5, atol=1e-6)


def test_wrong_action_shape_is_a_clear_error():
    env = envs.make("lbf:Foraging-8x8-2p-3f-v3")
    s, _ = env.reset(jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step(jax.random.key(0), s, jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="integers"):
        env.step(jax.random.key(0), s, jnp.zeros((2,), jnp.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(players=2, field_size=5, max_num_food=10, sight=5), "max_num_food=10 exceeds"),
        (dict(players=30, field_size=5, max_num_food=1, sight=5), "do not fit"),
        (dict(players=2, field_size=5, max_num_food=1, sight=9), "sight must be in 0..5"),
        (dict(players=2, field_size=2, max_num_food=1, sight=2), "at least 3x3"),
        (
            dict(players=2, field_size=8, max_num_food=1, sight=8, min_player_level=3, max_player_level=2),
            "min_player_level",
        ),
        (
            dict(players=2, field_size=8, max_num_food=2, sight=8, max_food_level=[1, 2, 3]),
            "list of length 2",
        ),
        (dict(players=2, field_size=8, max_num_food=2, sight=8, grid_observation=True), "not implemented"),
    ],
)
def test_impossible_parameters_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        envs.make("lbf:custom", **kwargs)


def test_ids_and_errors():
    assert parse_lbf_id("Foraging-2s-8x8-2p-2f-coop-v3")["sight"] == 2
    assert parse_lbf_id("Foraging-8x8-2p-2f-v3")["sight"] == 8
    with pytest.raises(envs.EnvKeyError, match="Did you mean"):
        envs.make("lbf:Foraging-8x8-2p-3f-v3x")
    with pytest.raises(envs.EnvKeyError, match="only version v3"):
        envs.make("lbf:Foraging-8x8-2p-3f-v2")
    with pytest.raises(envs.EnvKeyError, match="penalty"):
        envs.make("lbf:Foraging-8x8-2p-3f-v3", penalti=0.1)

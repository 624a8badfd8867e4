"""MPE and SMAX adapters: protocol shapes, parity with JaxMARL, episode-end semantics.

JAX compiles dominate the run time, so each env is built once per module and
each jitted function is compiled once.
"""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("jaxmarl")

import credo.envs as E  # noqa: E402
from credo.envs.jaxmarl_adapter import JaxMARLMPE, JaxMARLSMAX  # noqa: E402


def assert_protocol(env, ts):
    """Every TimeStep field has the documented shape and dtype."""
    n, a = env.n_agents, env.n_actions
    assert ts.obs.shape == (n, env.obs_dim) and ts.obs.dtype == jnp.float32
    assert ts.state.shape == (env.state_dim,) and ts.state.dtype == jnp.float32
    assert ts.avail_actions.shape == (n, a) and ts.avail_actions.dtype == jnp.bool_
    assert ts.reward.shape == () and ts.reward.dtype == jnp.float32
    assert ts.rewards.shape == (n,) and ts.rewards.dtype == jnp.float32
    assert ts.terminated.shape == () and ts.terminated.dtype == jnp.bool_
    assert ts.truncated.shape == () and ts.truncated.dtype == jnp.bool_


def jit_steps(env):
    """One compile for the adapter's step and JaxMARL's own non-resetting step_env.

    The adapter's env state is JaxMARL's state, so both take the same inputs.
    """

    def both(key, state, actions):
        raw = env.env.step_env(key, state, {a: actions[i] for i, a in enumerate(env.agents)})
        return env.step(key, state, actions), raw

    both = jax.jit(both)
    return lambda key, state, actions: both(key, state, actions)[0], both


@pytest.fixture(scope="module")
def mpe():
    env = E.make("mpe:simple_spread")
    return env, *jit_steps(env)


@pytest.fixture(scope="module")
def smax():
    env = E.make("smax:3m")
    return env, *jit_steps(env)


# --- registry -------------------------------------------------------------------


def test_import_credo_does_not_import_jaxmarl():
    code = "import sys, credo, credo.envs; assert 'jaxmarl' not in sys.modules, 'jaxmarl imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_families_list_every_smax_map_and_the_cooperative_mpe():
    from jaxmarl.environments.smax import smax_env

    assert set(E.families()["smax"].names()) == set(smax_env.MAP_NAME_TO_SCENARIO)
    assert {"smacv2_5_units", "smacv2_10_units", "smacv2_20_units", "3m", "2s3z"} <= set(
        E.families()["smax"].names()
    )
    assert E.families()["mpe"].names() == ["simple_spread", "simple_reference"]
    assert E.families()["smax"].install_hint and E.families()["smax"].requires == ("jaxmarl",)


def test_registry_errors_name_close_matches():
    with pytest.raises(E.EnvKeyError, match="'3m'"):
        E.make("smax:3mm")
    with pytest.raises(E.EnvKeyError, match="simple_spread"):
        E.make("mpe:simple_sprad")
    with pytest.raises(E.EnvKeyError, match="num_agents"):
        E.make("mpe:simple_spread", num_agent=4)
    with pytest.raises(E.EnvKeyError, match="attack_mode"):
        E.make("smax:3m", attack_mode="weakest")


def test_kwargs_pass_through_to_jaxmarl():
    env = E.make("mpe:simple_spread", num_agents=4, num_landmarks=2, max_steps=10, local_ratio=0.0)
    assert (env.n_agents, env.episode_limit, env.env.local_ratio) == (4, 10, 0.0)
    assert env.obs_dim == 4 + 2 * 2 + 4 * 3  # vel, pos, landmarks, other agents' pos and comm
    big = E.make("smax:smacv2_10_units", max_steps=50)
    assert (big.n_agents, big.n_actions, big.episode_limit) == (10, 15, 50)


# --- MPE --------------------------------------------------------------------------


def test_mpe_matches_jaxmarl_step_env(mpe):
    env, _, both = mpe
    state, ts = env.reset(jax.random.key(0))
    assert_protocol(env, ts)
    assert ts.avail_actions.all() and float(ts.reward) == 0.0
    raw_obs, _ = env.env.reset(jax.random.key(0))
    np.testing.assert_array_equal(ts.obs, jnp.stack([raw_obs[a] for a in env.env.agents]))

    actions = jnp.array([1, 2, 3], jnp.int32)
    (state, ts), (obs, _, rew, _, _) = both(jax.random.key(1), state, actions)
    assert_protocol(env, ts)
    expected = np.array([rew[a] for a in env.env.agents])
    np.testing.assert_allclose(ts.rewards, expected, rtol=1e-6)
    np.testing.assert_allclose(ts.reward, expected.sum(), rtol=1e-6)  # team reward = sum
    np.testing.assert_allclose(ts.obs, np.stack([obs[a] for a in env.env.agents]), rtol=1e-6)
    np.testing.assert_array_equal(ts.state, ts.obs.reshape(-1))  # state = concatenated observations


def test_mpe_truncates_exactly_at_episode_limit_and_never_terminates_under_vmap(mpe):
    env, _, _ = mpe
    assert env.episode_limit == 25

    def run(key):
        state, _ = env.reset(key)

        def body(state, k):
            a = jax.random.randint(k, (env.n_agents,), 0, env.n_actions)
            state, ts = env.step(k, state, a)
            return state, (ts.terminated, ts.truncated, ts.reward)

        return jax.lax.scan(body, state, jax.random.split(key, 30))[1]

    terminated, truncated, reward = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(2), 16))
    assert terminated.shape == truncated.shape == reward.shape == (16, 30)
    assert not terminated.any()
    np.testing.assert_array_equal(
        truncated, np.broadcast_to(np.arange(1, 31) >= 25, (16, 30))
    )  # from step 25 on
    assert len(np.unique(np.asarray(reward[:, 0]))) == 16  # the 16 envs differ


def test_mpe_simple_reference_fits_the_protocol():
    env = E.make("mpe:simple_reference")
    assert isinstance(env, JaxMARLMPE) and (env.n_agents, env.obs_dim, env.n_actions) == (2, 21, 50)
    state, ts = jax.eval_shape(env.reset, jax.random.key(0))  # traces without compiling
    assert_protocol(env, ts)
    assert_protocol(env, jax.eval_shape(env.step, jax.random.key(0), state, jnp.zeros(2, jnp.int32))[1])


# --- SMAX -------------------------------------------------------------------------


def test_smax_matches_jaxmarl_step_env(smax):
    env, _, both = smax
    assert isinstance(env, JaxMARLSMAX)
    assert (env.n_agents, env.n_actions, env.episode_limit, env.state_dim) == (3, 8, 100, 12 * 6)
    state, ts = env.reset(jax.random.key(0))
    assert_protocol(env, ts)
    assert ts.info["won"].shape == () and ts.info["won"].dtype == jnp.bool_ and not ts.info["won"]

    actions = jnp.array([0, 1, 4], jnp.int32)
    (_, ts), (obs, raw_state, rew, _, _) = both(jax.random.key(5), state, actions)
    assert_protocol(env, ts)
    assert ts.info["won"].shape == () and ts.info["won"].dtype == jnp.bool_
    np.testing.assert_allclose(ts.rewards, [rew[a] for a in env.agents], rtol=1e-6)
    np.testing.assert_allclose(ts.obs, np.stack([obs[a] for a in env.agents]), rtol=1e-6)
    scale, floor = env._state_scale  # the default normalisation, checked against JaxMARL's raw state
    np.testing.assert_allclose(ts.state, np.maximum(obs["world_state"] * scale, floor), rtol=1e-6)
    avail = env.env.get_avail_actions(raw_state)
    np.testing.assert_array_equal(ts.avail_actions, np.stack([avail[a] for a in env.agents]).astype(bool))
    assert ts.avail_actions[:, 4].all()  # stop is always available


def _with_units(state, ally_health=None, enemy_health=None, enemy_positions=None):
    """A copy of a SMAX state with some ally/enemy fields replaced (n_allies = 3)."""
    inner = state.state
    health, pos = inner.unit_health, inner.unit_positions
    if ally_health is not None:
        health = health.at[:3].set(ally_health)
    if enemy_health is not None:
        health = health.at[3:].set(enemy_health)
    if enemy_positions is not None:
        pos = pos.at[3:].set(enemy_positions)
    return state.replace(state=inner.replace(unit_health=health, unit_positions=pos))


def test_smax_win_is_terminated_won_and_pays_the_bonus(smax):
    env, step, _ = smax
    state, _ = env.reset(jax.random.key(0))
    allies = state.state.unit_positions[:3]
    # Enemies on 1 health point, each one unit right of an ally: every ally can shoot one.
    state = _with_units(state, enemy_health=1.0, enemy_positions=allies + jnp.array([1.0, 0.0]))
    _, ts0 = step(jax.random.key(1), state, jnp.full((3,), 4, jnp.int32))  # stop: nobody shoots
    assert ts0.avail_actions[:, 5:].all() and not ts0.terminated and not ts0.info["won"]
    _, ts = step(jax.random.key(1), state, jnp.array([5, 6, 7], jnp.int32))
    assert ts.terminated and not ts.truncated and ts.info["won"]
    assert float(ts.reward) >= env.env.won_battle_bonus


def test_smax_loss_is_terminated_not_won(smax):
    env, step, _ = smax
    state, _ = env.reset(jax.random.key(0))
    _, ts = step(jax.random.key(1), _with_units(state, ally_health=0.0), jnp.full((3,), 4, jnp.int32))
    assert ts.terminated and not ts.truncated and not ts.info["won"]
    np.testing.assert_array_equal(ts.obs, 0.0)  # dead allies observe nothing
    np.testing.assert_array_equal(ts.avail_actions, np.eye(8, dtype=bool)[[4, 4, 4]])  # only stop


def test_smax_time_limit_is_truncated_not_terminated(smax):
    env, step, _ = smax
    state, _ = env.reset(jax.random.key(0))
    stop = jnp.full((3,), 4, jnp.int32)

    def after(steps_taken):  # the reset state, as if `steps_taken` steps had passed
        return state.replace(state=state.state.replace(step=state.state.step + steps_taken))

    _, ts = step(jax.random.key(1), after(env.episode_limit - 2), stop)
    assert not ts.truncated and not ts.terminated  # step 99 of 100
    _, ts = step(jax.random.key(1), after(env.episode_limit - 1), stop)
    assert ts.truncated and not ts.terminated and not ts.info["won"]  # step 100: exactly the limit


def test_smax_autoreset_scan_of_200_steps_over_16_envs(smax):
    env, _, _ = smax
    auto = E.AutoReset(env)

    def rollout(key):
        state, ts = auto.reset(key)

        def body(carry, k):
            state, ts = carry
            k_act, k_step = jax.random.split(k)
            logits = jnp.where(ts.avail_actions, 0.0, -jnp.inf)  # uniform over available actions
            actions = jax.random.categorical(k_act, logits).astype(jnp.int32)
            chosen_ok = ts.avail_actions[jnp.arange(env.n_agents), actions].all()
            state, ts = auto.step(k_step, state, actions)
            return (state, ts), (ts, chosen_ok)

        return jax.lax.scan(body, (state, ts), jax.random.split(key, 200))[1]

    ts, chosen_ok = jax.jit(jax.vmap(rollout))(jax.random.split(jax.random.key(7), 16))
    assert ts.obs.shape == (16, 200, env.n_agents, env.obs_dim)
    assert chosen_ok.all()
    done = np.asarray(ts.info["episode_done"])
    term, trunc, won = (np.asarray(x) for x in (ts.terminated, ts.truncated, ts.info["won"]))
    lengths = np.asarray(ts.info["episode_length"])
    assert done.sum() > 16  # random allies lose fast: several episodes per env
    np.testing.assert_array_equal(done, term | trunc)
    assert not (term & trunc).any()
    assert not (won & ~term).any()  # a win is a battle end
    assert (lengths[done] <= env.episode_limit).all()
    assert (lengths[trunc] == env.episode_limit).all()
    assert (np.asarray(ts.reward)[won] >= 1.0).all()
    assert np.asarray(ts.avail_actions)[..., 4].all()


def test_smax_world_state_is_normalised_unless_asked_raw():
    """JaxMARL's raw world state has map positions up to 32 and cooldowns down to about -40."""

    def states(**kw):
        env = E.make("smax:smacv2_5_units", **kw)
        key = jax.random.PRNGKey(0)
        state, ts = env.reset(key)
        out = [ts.state]
        step = jax.jit(env.step)
        for _ in range(60):
            k1, k2, key = jax.random.split(key, 3)
            acts = jax.random.categorical(k1, jnp.where(ts.avail_actions, 0.0, -jnp.inf))
            state, ts = step(k2, state, acts)
            out.append(ts.state)
        return np.stack(out)

    norm, raw = states(), states(normalise_state=False)
    assert norm.min() >= -0.1 and norm.max() <= 1.1, (norm.min(), norm.max())  # units may stray off the map
    assert raw.max() > 5.0
    assert np.allclose(norm[:, 0:100:10], raw[:, 0:100:10])  # health fractions untouched

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import credo.envs as envs
from credo.envs.wrappers import VecAutoReset


def _run_vec(env, n_envs, steps, max_resets=None, seed=0):
    vec = VecAutoReset(env, n_envs, max_resets=max_resets)

    def body(carry, key):
        state, ts = carry
        k_act, k_step = jax.random.split(key)
        actions = jax.random.categorical(k_act, jnp.where(ts.avail_actions, 0.0, -jnp.inf)).astype(jnp.int32)
        state, ts = vec.step(k_step, state, actions)
        return (state, ts), (
            ts.reward,
            ts.info["episode_done"],
            ts.info["episode_return"],
            ts.info["episode_length"],
            ts.state,
            state.env_state.step,
        )

    carry = vec.reset(jax.random.key(seed))
    _, out = jax.jit(lambda c: jax.lax.scan(body, c, jax.random.split(jax.random.key(seed + 1), steps)))(
        carry
    )
    return [np.asarray(x) for x in out]


@pytest.mark.parametrize("max_resets", [1, 3, None])
def test_vec_autoreset_keeps_every_episode_consistent(max_resets):
    """Whatever the reset budget per step, every env restarts right after its episode ends."""
    env = envs.make("lbf:Foraging-6x6-2p-1f-v3", max_episode_steps=7)
    reward, done, ep_ret, ep_len, gstate, inner_step = _run_vec(env, 16, 40, max_resets)
    assert done.sum() > 16 * 4
    assert np.all(ep_len[done] <= 7)
    # The wrapped env's step counter restarts at 0 exactly where an episode ended.
    np.testing.assert_array_equal(inner_step == 0, done)
    for e in range(16):
        ends = np.flatnonzero(done[:, e])
        starts = np.concatenate([[0], ends[:-1] + 1])
        for a, b in zip(starts, ends):
            assert ep_len[b, e] == b - a + 1
            np.testing.assert_allclose(ep_ret[b, e], reward[a : b + 1, e].sum(), rtol=1e-5, atol=1e-6)


def test_vec_autoreset_resets_are_fresh_episodes():
    """A reset env starts from a new random layout, not a copy of another env's."""
    env = envs.make("lbf:Foraging-8x8-2p-2f-v3", max_episode_steps=3)
    *_, gstate, inner_step = _run_vec(env, 32, 9, max_resets=4)
    starts = gstate[inner_step == 0]  # global states at the first step of new episodes
    assert len(starts) >= 32 * 2
    assert len({s.tobytes() for s in starts}) > 0.9 * len(starts)


def test_autoreset_reports_final_observation():
    env = envs.AutoReset(envs.make("matrix:climbing", episode_limit=2))
    s, ts = env.reset(jax.random.key(0))
    s, ts = env.step(jax.random.key(1), s, jnp.asarray([1, 1], jnp.int32))
    s, ts = env.step(jax.random.key(2), s, jnp.asarray([1, 1], jnp.int32))
    assert bool(ts.info["episode_done"]) and float(ts.info["episode_return"]) == 14.0
    assert float(ts.obs[0, 1]) == 0.0  # the next episode's first observation
    assert float(ts.info["final_obs"][0, 1]) == 1.0  # the last observation of the finished one


def test_registry_errors_name_close_matches():
    with pytest.raises(envs.EnvKeyError, match="Did you mean 'lbf'"):
        envs.make("lbff:Foraging-8x8-2p-3f-v3")
    with pytest.raises(envs.EnvKeyError, match="family:name"):
        envs.make("Foraging-8x8-2p-3f-v3")
    with pytest.raises(envs.EnvKeyError, match="Did you mean 'climbing'"):
        envs.make("matrix:climbnig")
    with pytest.raises(envs.EnvKeyError, match="Did you mean 'episode_limit'"):
        envs.make("matrix:climbing", episod_limit=3)


def test_check_actions_messages():
    env = envs.make("lbf:Foraging-8x8-2p-3f-v3")
    avail = np.ones((2, 6), bool)
    avail[1, 5] = False
    with pytest.raises(ValueError, match="agent 1 chose action 9"):
        envs.check_actions(env, [0, 9], avail)
    with pytest.raises(ValueError, match="agent 1 chose unavailable action 5"):
        envs.check_actions(env, [0, 5], avail)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        envs.check_actions(env, [0, 1, 2], avail)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "credo.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_list_and_rollout():
    out = _cli("list")
    assert out.returncode == 0, out.stderr
    assert "lbf:Foraging-8x8-2p-3f-v3" in out.stdout and "smax:smacv2_5_units" in out.stdout
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("lbf:Foraging-8x8-2p-3f-v3 "))
    assert line.split()[1:6] == ["2", "15", "15", "6", "50"]
    out = _cli("rollout", "matrix:climbing", "--envs", "4", "--steps", "50", "--set", "episode_limit=25")
    assert out.returncode == 0, out.stderr
    assert "8 episodes" in out.stdout
    out = _cli("rollout", "lbf:Foraging-8x8-2p-3f-v3", "--set", "penalti=0.1")
    assert out.returncode == 2 and "Did you mean 'penalty'" in out.stderr

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import credo.envs as envs
from credo.envs.matrix import CLIMBING, ME_IGM_3X3, penalty_payoff


@pytest.mark.parametrize(
    "key, kwargs, payoff",
    [
        ("matrix:me-igm", {}, ME_IGM_3X3),
        ("matrix:climbing", {}, CLIMBING),
        ("matrix:penalty", {"k": -25.0}, penalty_payoff(-25.0)),
        ("matrix:custom", {"payoff": [[1, 2], [3, 4]]}, [[1, 2], [3, 4]]),
    ],
)
def test_one_step_games_pay_the_matrix(key, kwargs, payoff):
    env = envs.make(key, **kwargs)
    payoff = np.asarray(payoff, np.float32)
    step = jax.jit(env.step)
    for a in itertools.product(range(env.n_actions), repeat=env.n_agents):
        s, ts = env.reset(jax.random.key(0))
        s, ts = step(jax.random.key(1), s, jnp.asarray(a, jnp.int32))
        assert float(ts.reward) == payoff[a]
        np.testing.assert_allclose(ts.rewards, payoff[a] / env.n_agents)  # split equally
        assert bool(ts.terminated) and not bool(ts.truncated)


def test_repeated_climbing_game_ends_by_time_limit():
    env = envs.make("matrix:climbing", episode_limit=25)
    s, ts = env.reset(jax.random.key(0))
    for t in range(25):
        assert not (bool(ts.terminated) or bool(ts.truncated))
        assert float(ts.obs[0, 1]) == pytest.approx(t / 25)  # agents can tell the steps apart
        s, ts = env.step(jax.random.key(t), s, jnp.asarray([0, 0], jnp.int32))
        assert float(ts.reward) == 11.0
    assert bool(ts.truncated) and not bool(ts.terminated)


def test_three_agent_custom_payoff():
    payoff = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    env = envs.make("matrix:custom", payoff=payoff.tolist())
    assert (env.n_agents, env.n_actions) == (3, 2)
    s, _ = env.reset(jax.random.key(0))
    _, ts = env.step(jax.random.key(0), s, jnp.asarray([1, 0, 1], jnp.int32))
    assert float(ts.reward) == payoff[1, 0, 1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"payoff": [1, 2, 3]}, "one axis per agent"),
        ({"payoff": [[1, 2, 3], [4, 5, 6]]}, "same number of actions"),
        ({"payoff": [[1, float("nan")], [0, 0]]}, "finite"),
        ({"payoff": [[1, 0], [0, 1]], "episode_limit": 0}, "episode_limit"),
    ],
)
def test_bad_payoffs_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        envs.make("matrix:custom", **kwargs)


def test_penalty_must_be_a_penalty():
    with pytest.raises(envs.EnvKeyError, match="k <= 0"):
        envs.make("matrix:penalty", k=5)

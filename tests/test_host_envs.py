"""Host adapters: PettingZoo parallel envs and multi-agent gymnasium envs as HostEnv."""

import numpy as np
import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("mpe2")
pytest.importorskip("lbforaging")

import gymnasium as gym  # noqa: E402
from gymnasium import spaces  # noqa: E402
from pettingzoo import ParallelEnv  # noqa: E402

import credo.envs as E  # noqa: E402
from credo.envs.host import from_gym_env, from_parallel_env  # noqa: E402


def assert_protocol(env, ts):
    n, a = env.n_agents, env.n_actions
    assert ts.obs.shape == (n, env.obs_dim) and ts.obs.dtype == np.float32
    assert ts.state.shape == (env.state_dim,) and ts.state.dtype == np.float32
    assert ts.avail_actions.shape == (n, a) and ts.avail_actions.dtype == np.bool_
    assert np.shape(ts.reward) == () and np.asarray(ts.reward).dtype == np.float32
    assert ts.rewards.shape == (n,) and ts.rewards.dtype == np.float32
    assert np.shape(ts.terminated) == () and np.asarray(ts.terminated).dtype == np.bool_
    assert np.shape(ts.truncated) == () and np.asarray(ts.truncated).dtype == np.bool_
    np.testing.assert_allclose(ts.reward, ts.rewards.sum(), rtol=1e-6)  # team reward = sum


# --- PettingZoo -------------------------------------------------------------------


def test_pettingzoo_mpe_matches_the_raw_env_and_truncates_at_max_cycles():
    from mpe2 import simple_spread_v3

    env = E.make("pettingzoo:mpe2.simple_spread_v3")
    raw = simple_spread_v3.parallel_env()
    assert (env.n_agents, env.obs_dim, env.n_actions, env.episode_limit) == (3, 18, 5, 25)
    assert env.state_dim == 54  # the env's own state(), not a concatenation built by credo
    ts = env.reset(seed=3)
    raw_obs, _ = raw.reset(seed=3)
    rng = np.random.default_rng(0)
    for t in range(1, 26):
        assert_protocol(env, ts)
        np.testing.assert_array_equal(ts.obs, np.stack([raw_obs[a] for a in raw.possible_agents]))
        np.testing.assert_array_equal(ts.state, raw.state())
        actions = rng.integers(0, env.n_actions, env.n_agents)
        ts = env.step(actions)
        raw_obs, raw_rew, _, raw_trunc, _ = raw.step(
            dict(zip(raw.possible_agents, actions.tolist(), strict=True))
        )
        np.testing.assert_allclose(ts.rewards, [raw_rew[a] for a in raw.possible_agents], rtol=1e-6)
        assert not ts.terminated
        assert bool(ts.truncated) == (t == 25) == all(raw_trunc.values())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, int))


def test_pettingzoo_kwargs_are_checked_against_raw_env():
    env = E.make("pettingzoo:mpe2.simple_spread_v3", N=4, max_cycles=7)
    assert (env.n_agents, env.episode_limit) == (4, 7)
    with pytest.raises(E.EnvKeyError, match="Did you mean 'local_ratio'.*Accepted: N, local_ratio"):
        E.make("pettingzoo:mpe2.simple_spread_v3", local_rato=0.2)


def test_bad_actions_raise_naming_the_agent():
    env = E.make("pettingzoo:mpe2.simple_spread_v3")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3, int))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"agent 2 chose action 5.*agent_2"):
        env.step(np.array([0, 0, 5]))
    with pytest.raises(ValueError, match=r"agent 0 chose action -1"):
        env.step(np.array([-1, 0, 0]))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0, 0]))


def test_registry_errors_suggest_close_names():
    with pytest.raises(E.EnvKeyError, match="mpe2.simple_spread_v3"):
        E.make("pettingzoo:mpe2.simple_sprad_v3")
    with pytest.raises(E.EnvKeyError, match="mpe2.simple_spread_v3"):
        E.make("pettingzoo:mpe.simple_spread_v3")  # the package is mpe2
    with pytest.raises(E.EnvKeyError, match="parallel_env"):
        E.make("pettingzoo:numpy")
    with pytest.raises(E.EnvKeyError, match="Foraging-8x8-2p-3f-v3"):
        E.make("gym:Foragin-8x8-2p-3f-v3")
    with pytest.raises(E.EnvKeyError, match="'players'"):
        E.make("gym:Foraging-8x8-2p-3f-v3", player=3)


def test_unsupported_spaces_are_rejected_by_name():
    with pytest.raises(ValueError, match=r"'listener_0' has 5 actions but agent 'speaker_0' has 3"):
        E.make("pettingzoo:mpe2.simple_speaker_listener_v4")
    with pytest.raises(ValueError, match=r"agent 'agent_0' has action space Box"):
        E.make("pettingzoo:mpe2.simple_spread_v3", continuous_actions=True)
    with pytest.raises(ValueError, match="Tuple"):
        E.make("gym:CartPole-v1")


class Toy(ParallelEnv):
    """Agent "b" leaves after step 2. "a" gets a mask in infos, "c" a dict obs with a mask
    and a larger observation. Every agent terminates at ``term_at`` and is truncated at ``trunc_at``.
    """

    metadata = {"name": "toy_v0"}

    def __init__(self, term_at=4, trunc_at=99, max_cycles=None):
        self.possible_agents = ["a", "b", "c"]
        self.term_at, self.trunc_at = term_at, trunc_at
        if max_cycles is not None:
            self.max_cycles = max_cycles
        self.sent = []

    def observation_space(self, agent):
        if agent == "c":
            return spaces.Dict(
                {"observation": spaces.Box(-99, 99, (3,)), "action_mask": spaces.MultiBinary(4)}
            )
        return spaces.Box(-99, 99, (2,))

    def action_space(self, agent):
        return spaces.Discrete(4)

    def _obs(self):
        obs = {"a": np.full(2, self.t, np.float32), "b": np.full(2, 10 + self.t, np.float32)}
        obs["c"] = {"observation": np.full(3, 20 + self.t, np.float32), "action_mask": np.array([1, 1, 0, 0])}
        return {a: obs[a] for a in self.agents}

    def _infos(self):
        return {a: ({"action_mask": np.array([1, 0, 1, 0])} if a == "a" else {}) for a in self.agents}

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return self._obs(), self._infos()

    def step(self, actions):
        self.sent.append(dict(actions))
        self.t += 1
        obs, infos = self._obs(), self._infos()
        rewards = {a: float(i + 1) for i, a in enumerate(self.agents)}
        term = {a: self.t >= self.term_at or (a == "b" and self.t == 2) for a in self.agents}
        trunc = {a: self.t >= self.trunc_at for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, infos


def test_departed_agents_keep_their_slot_and_masks_are_read():
    toy = Toy(term_at=4)
    env = from_parallel_env(toy, episode_limit=10)
    assert (env.n_agents, env.obs_dim, env.state_dim) == (3, 3, 9)  # padded to the largest obs
    ts = env.reset()
    assert_protocol(env, ts)
    np.testing.assert_array_equal(ts.obs, [[0, 0, 0], [10, 10, 0], [20, 20, 20]])  # zero-padded at the end
    np.testing.assert_array_equal(ts.state, ts.obs.reshape(-1))  # no state(): concatenated obs
    np.testing.assert_array_equal(ts.avail_actions, [[1, 0, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    with pytest.raises(ValueError, match=r"agent 0 chose unavailable action 1"):
        env.step(np.array([1, 0, 0]))
    env.step(np.array([2, 3, 1]))
    ts = env.step(np.array([0, 3, 1]))  # "b" leaves on this step
    np.testing.assert_array_equal(ts.obs[1], [12, 12, 0])  # its last observation
    np.testing.assert_array_equal(ts.avail_actions[1], [1, 0, 0, 0])  # from now on: action 0 only
    assert not ts.terminated and not ts.truncated
    with pytest.raises(ValueError, match="agent 1 chose unavailable action 3"):
        env.step(np.array([0, 3, 1]))
    ts = env.step(np.array([0, 0, 1]))
    np.testing.assert_array_equal(ts.obs[1], 0.0)  # departed: zeros
    np.testing.assert_array_equal(ts.rewards, [1.0, 0.0, 2.0])
    assert toy.sent[-1] == {"a": 0, "c": 1}  # no action sent for "b"
    ts = env.step(np.array([0, 0, 1]))
    assert ts.terminated and not ts.truncated  # every agent terminated at step 4


def test_pettingzoo_truncation_and_episode_limits():
    env = from_parallel_env(Toy(term_at=99, trunc_at=3, max_cycles=3))
    assert env.episode_limit == 3  # read from max_cycles
    env.reset()
    for _ in range(2):
        ts = env.step(np.zeros(3, int))
    ts = env.step(np.zeros(3, int))
    assert ts.truncated and not ts.terminated
    with pytest.raises(ValueError, match="episode_limit"):
        from_parallel_env(Toy())  # states no limit
    env = from_parallel_env(Toy(term_at=99), episode_limit=2)  # the adapter enforces the limit
    env.reset()
    assert not env.step(np.zeros(3, int)).truncated
    ts = env.step(np.zeros(3, int))
    assert ts.truncated and not ts.terminated


# --- gymnasium ----------------------------------------------------------------------


def test_gym_lbf_matches_the_raw_env_and_reports_its_limit_as_terminated():
    env = E.make("gym:Foraging-8x8-2p-3f-v3")
    raw = gym.make("Foraging-8x8-2p-3f-v3", disable_env_checker=True)
    assert (env.n_agents, env.obs_dim, env.n_actions, env.episode_limit) == (2, 15, 6, 50)
    ts = env.reset(seed=5)
    raw_obs, _ = raw.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(50):
        assert_protocol(env, ts)
        np.testing.assert_array_equal(ts.obs, np.stack(raw_obs))
        np.testing.assert_array_equal(ts.state, np.concatenate(raw_obs))
        assert ts.avail_actions.all()  # LBF gives no mask
        actions = rng.integers(0, 6, 2)
        ts = env.step(actions)
        raw_obs, raw_rew, raw_term, raw_trunc, _ = raw.step(tuple(actions.tolist()))
        np.testing.assert_allclose(ts.rewards, raw_rew, rtol=1e-6)
        assert bool(ts.terminated) == raw_term and not ts.truncated and not raw_trunc
        if raw_term:
            break
    assert ts.terminated  # all food eaten, or LBF's own 50-step limit (which it reports as terminal)


def test_from_gym_env_with_an_episode_limit_truncates():
    env = from_gym_env(gym.make("Foraging-8x8-2p-3f-v3", disable_env_checker=True), episode_limit=3)
    env.reset(seed=0)
    for _ in range(2):
        assert not env.step(np.array([0, 0])).truncated
    ts = env.step(np.array([0, 0]))  # action 0 is NONE: the food stays, LBF does not end
    assert ts.truncated and not ts.terminated

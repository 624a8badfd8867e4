"""IPPO / MAPPO (and dependence-graph credit) on the engine: acting, updates, graphs, learning, CLI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import credo.envs as envs
from credo.algos import PPOConfig, config_class, make_learner
from credo.algos.ppo import PPOLearner
from credo.cli import config_files, main
from credo.config import load_config
from credo.engine.collect import make_collector
from credo.engine.rundir import RunDir
from credo.engine.train import Trainer, params_digest

LBF = "lbf:Foraging-8x8-2p-2f-coop-v3"


def small(algo="mappo", env=LBF, **kw):
    base = dict(
        algo=algo, env=env, total_env_steps=2000, log_interval=500, test_interval=1000, test_episodes=4
    )
    base.update(kw)
    return PPOConfig(**base)


def test_config_class_and_learner_dispatch():
    assert config_class("mappo-dg") is PPOConfig
    assert config_class("qmix").__name__ == "ValueConfig"
    env = envs.make(LBF)
    assert isinstance(make_learner(small("ippo-dg"), env.spec), PPOLearner)
    with pytest.raises(ValueError, match="must divide n_envs"):
        PPOLearner(small(n_envs=10, minibatches=3), env.spec)


@pytest.mark.parametrize("use_rnn", [False, True])
def test_acting_respects_available_actions_and_greedy_is_the_argmax(use_rnn):
    env = envs.make(LBF)
    learner = PPOLearner(small(use_rnn=use_rnn, share_params=not use_rnn), env.spec)
    params = learner.init(jax.random.PRNGKey(0)).params
    n, a = env.n_agents, env.n_actions
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, n, env.obs_dim))
    avail = jax.random.bernoulli(jax.random.PRNGKey(2), 0.4, (64, n, a)).at[..., 0].set(True)
    hidden = learner.initial_hidden((64,))
    last = jnp.zeros((64, n), jnp.int32)
    act = jax.jit(learner.act, static_argnames="greedy")  # eager, the recurrent actor runs op by op
    for k in range(5):
        _, acts = act(params, hidden, obs, None, avail, last, jax.random.PRNGKey(k), 0.0)
        assert bool(jnp.take_along_axis(avail, acts[..., None], -1).all())
    _, greedy = act(params, hidden, obs, None, avail, last, jax.random.PRNGKey(9), 0.0, greedy=True)
    from credo.networks.agent import step_agents

    _, logits = step_agents(
        learner.actor, params["actor"], hidden, learner.actor_inputs(obs, last), learner.cfg.share_params
    )
    np.testing.assert_array_equal(greedy, jnp.argmax(jnp.where(avail, logits, -jnp.inf), -1))


def collect(learner, env, key, n_envs=4):
    params = learner.init(jax.random.PRNGKey(0))
    batch, stats, extra = make_collector(env, learner, n_envs, record=learner.recorder(env))(
        params.params, key, 0.0
    )
    return params, batch, stats, extra


def test_recorded_local_rewards_sum_to_the_team_reward_and_padding_is_zero():
    env = envs.make(LBF)
    learner = PPOLearner(small("mappo-dg", graph_source="oracle"), env.spec)
    _, batch, _, extra = collect(learner, env, jax.random.PRNGKey(3), n_envs=8)
    np.testing.assert_allclose(extra["rewards"].sum(-1), batch.reward, atol=1e-6)
    assert not bool(jnp.any(extra["graph"] & ~batch.filled[..., None, None]))
    diag = extra["graph"][..., jnp.arange(2), jnp.arange(2)]
    assert bool(jnp.all(diag | ~batch.filled[..., None]))


def test_lbf_oracle_graph_links_agents_within_the_distance():
    env = envs.make("lbf:Foraging-8x8-3p-2f-v3")
    state, _ = env.reset(jax.random.PRNGKey(0))
    state = state._replace(agent_pos=jnp.array([[0, 0], [1, 1], [4, 4]], jnp.int32))
    g = np.asarray(env.interaction_graph(state, 2))
    assert g.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert np.asarray(env.interaction_graph(state, 1))[0, 1] == False  # noqa: E712


def test_oracle_graph_needs_an_env_that_has_one():
    env = envs.make("matrix:climbing")
    with pytest.raises(ValueError, match="graph_source=oracle"):
        PPOLearner(small("mappo-dg", env="matrix:climbing", graph_source="oracle"), env.spec).recorder(env)


@pytest.mark.parametrize(
    "algo,extra",
    [
        ("mappo", {}),
        ("ippo", {"reward_mode": "local", "use_rnn": True, "clip_value_loss": True}),
        ("mappo-dg", {}),
        ("ippo-dg", {"graph_source": "random"}),
        ("mappo-dg", {"graph_source": "oracle", "minibatches": 2}),
    ],
)
def test_an_update_is_finite_and_moves_the_policy_toward_positive_advantages(algo, extra):
    env = envs.make(LBF)
    learner = PPOLearner(small(algo, **extra), env.spec, env)
    state, batch, _, rec = collect(learner, env, jax.random.PRNGKey(4))
    assert ("substate" in rec) == (algo.endswith("-dg") and "graph_source" not in extra)
    new, metrics = jax.jit(learner.update)(state, batch, rec, jax.random.PRNGKey(5))
    assert all(bool(jnp.isfinite(v)) for v in metrics.values()), metrics
    assert int(new.updates) == 1
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: jnp.any(a != b), state.params, new.params))
    assert all(bool(c) for c in changed)  # actor, critic (and world model) all learn
    if algo.endswith("-dg"):
        assert 0.0 <= float(metrics["graph_density"]) <= 1.0


def test_learned_graph_uses_entropies_from_before_the_world_model_update():
    env = envs.make(LBF)
    learner = PPOLearner(small("mappo-dg", graph_threshold=2.0), env.spec, env)  # ratio < 2: every edge on
    state, batch, _, rec = collect(learner, env, jax.random.PRNGKey(6))
    _, metrics = jax.jit(learner.update)(state, batch, rec, jax.random.PRNGKey(7))
    assert float(metrics["graph_density"]) == pytest.approx(1.0)
    learner = PPOLearner(small("mappo-dg", graph_threshold=0.0), env.spec, env)  # no edge
    _, metrics = jax.jit(learner.update)(state, batch, rec, jax.random.PRNGKey(7))
    assert float(metrics["graph_density"]) == 0.0


@pytest.mark.slow  # four Trainers (over a minute); the default suite resumes value learners (test_value.py)
def test_ppo_resume_ends_with_the_same_parameters(tmp_path):
    cfg = small("mappo-dg", seeds=2, total_env_steps=3000, save_interval=10**9)
    straight = Trainer(cfg)
    rd = RunDir.create(cfg, base=tmp_path, name="straight")
    straight.run(rd, progress=False)
    a = straight.load(rd)[0]

    interrupted = Trainer(cfg)
    rd2 = RunDir.create(cfg, base=tmp_path, name="resumed")
    assert interrupted.run(rd2, max_chunks=2, progress=False) is None
    state, meta = Trainer(cfg).load(rd2)
    Trainer(cfg).run(rd2, state, meta, progress=False)
    b = Trainer(cfg).load(rd2)[0]
    assert params_digest(a) == params_digest(b)


def test_ippo_improves_on_a_small_lbf_map(tmp_path):
    """IPPO (global reward) from a random policy to collecting food, in 100k steps (~20 s here)."""
    cfg = small("ippo", total_env_steps=100_000, log_interval=20_000, test_interval=50_000, test_episodes=50)
    summary = Trainer(cfg).run(RunDir.create(cfg, base=tmp_path), progress=False)
    rows = [
        r for r in RunDir(tmp_path / next(p.name for p in tmp_path.iterdir())).rows(0) if "test_return" in r
    ]
    assert rows[0]["test_return"] < 0.2
    assert summary["final_test_return"][0] > 0.25, summary["final_test_return"]


@pytest.mark.parametrize(
    "env",
    [
        # Each compiles a Trainer (30-60 s): the host env (the Python loop) runs by default, the
        # jitted engine is trained by test_ippo_improves_on_a_small_lbf_map.
        pytest.param(LBF, marks=pytest.mark.slow),
        pytest.param("matrix:climbing", marks=pytest.mark.slow),
        "gym:Foraging-8x8-2p-3f-v3",
    ],
)
def test_cli_trains_and_evaluates_ppo(tmp_path, env, capsys):
    args = [
        "train",
        "mappo-dg",
        env,
        "--steps",
        "300",
        "--out",
        str(tmp_path),
        "--name",
        "r",
        "--no-progress",
    ]
    args += ["--set", "test_episodes=2", "--set", "n_envs=2"]
    assert main(args) == 0
    assert main(["eval", str(tmp_path / "r"), "--episodes", "2"]) == 0
    assert "mappo-dg on" in capsys.readouterr().out


def test_ppo_configs_load_for_every_env_family():
    for env in ["lbf:Foraging-8x8-2p-3f-v3", "mpe:simple_spread", "smax:3m", "matrix:climbing", "gym:x"]:
        for algo in ["ippo", "mappo", "ippo-dg", "mappo-dg"]:
            cfg = load_config(PPOConfig, config_files(algo, env), base={"algo": algo, "env": env})
            assert cfg.algo == algo and cfg.n_envs >= 1
    cfg = load_config(PPOConfig, config_files("mappo-dg", LBF), base={"algo": "mappo-dg", "env": LBF})
    assert cfg.total_env_steps == 5_000_000 and cfg.graph_threshold == 0.9


def test_cli_rejects_a_value_learner_setting_for_ppo(tmp_path, capsys):
    assert main(["train", "mappo", LBF, "--out", str(tmp_path), "--set", "epsilon_finish=0.1"]) == 2
    assert "epsilon_finish" in capsys.readouterr().err

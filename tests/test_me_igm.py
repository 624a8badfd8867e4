"""ME-IGM: order-preserving transformations, soft policies, soft targets, temperature, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from credo.algos import MaxEntLearner, make_learner
from credo.algos.value import ValueConfig
from credo.buffers.episode import empty_batch
from credo.credit.td import td_lambda_targets
from credo.engine.rundir import RunDir
from credo.engine.train import Trainer
from credo.envs.core import EnvSpec
from credo.networks.policy_head import OrderPreservingTransform, PolicyMLP

N, S, A = 3, 6, 5


def _head(cls, seed, **kw):
    head = cls(n_agents=N, n_actions=A, **kw)
    params = head.init(jax.random.PRNGKey(seed), jnp.zeros((1, N, A)), jnp.zeros((1, S)))
    # Spread the parameters so that the hypernetworks' outputs are far from init.
    params = jax.tree.map(
        lambda p, k: p + jax.random.normal(k, p.shape),
        params,
        jax.tree.unflatten(
            jax.tree.structure(params),
            list(jax.random.split(jax.random.PRNGKey(seed + 1), len(jax.tree.leaves(params)))),
        ),
    )
    return head, params


def _random_inputs(seed, batch=512):
    k1, k2 = jax.random.split(jax.random.PRNGKey(1000 + seed))
    qs = 5.0 * jax.random.normal(k1, (batch, N, A))
    states = 3.0 * jax.random.normal(k2, (batch, S))
    return qs, states


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_opt_keeps_the_order_of_every_agents_q_values(layers, seed):
    head, params = _head(OrderPreservingTransform, seed, layers=layers)
    qs, states = _random_inputs(seed)
    logits = head.apply(params, qs, states)
    assert logits.shape == qs.shape
    order = jnp.argsort(qs, -1)
    sorted_logits = jnp.take_along_axis(logits, order, -1)
    assert bool(jnp.all(jnp.diff(sorted_logits, axis=-1) > 0)), "OPT must be strictly increasing"
    np.testing.assert_array_equal(jnp.argmax(logits, -1), jnp.argmax(qs, -1))


def test_the_mlp_ablation_does_not_keep_the_order():
    """The property test above can fail: an unconstrained head breaks the order."""
    head, params = _head(PolicyMLP, 0)
    qs, states = _random_inputs(0)
    logits = head.apply(params, qs, states)
    assert float(jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(qs, -1))) < 0.9


def _learner(**kw):
    spec = EnvSpec(n_agents=N, obs_dim=4, state_dim=S, n_actions=A, episode_limit=6)
    cfg = ValueConfig(algo="me-qmix", mixer="qmix", **kw)
    learner = make_learner(cfg, spec)
    assert isinstance(learner, MaxEntLearner)
    return learner, spec


def _batch(spec, seed=0, size=8):
    rng = np.random.default_rng(seed)
    b = empty_batch(spec, size)
    avail = rng.random(b.avail.shape) < 0.7
    avail[..., 0] = True  # at least one action
    return b._replace(
        obs=jnp.asarray(rng.normal(size=b.obs.shape), jnp.float32),
        state=jnp.asarray(rng.normal(size=b.state.shape), jnp.float32),
        avail=jnp.asarray(avail),
        actions=jnp.zeros(b.actions.shape, jnp.int32),
        reward=jnp.asarray(rng.normal(size=b.reward.shape), jnp.float32),
        filled=jnp.ones(b.filled.shape, bool),
    )


@pytest.mark.parametrize("seed", range(3))
def test_soft_policy_argmax_is_the_argmax_of_q_and_execution_uses_it(seed):
    learner, spec = _learner(alpha=0.5)
    state = learner.init(jax.random.PRNGKey(seed))
    params = state.params
    params["policy"] = _head(OrderPreservingTransform, seed)[1]  # a far-from-init OPT
    batch = _batch(spec, seed)
    obs, st, avail = batch.obs[:, 0], batch.state[:, 0], batch.avail[:, 0]
    hidden = learner.initial_hidden((obs.shape[0],))
    last = jnp.zeros(obs.shape[:2], jnp.int32)
    _, q = learner.q_values(params["agent"], hidden, learner.agent_inputs(obs, last))
    logp = learner.log_policy(params, q, st, avail)
    greedy_q = jnp.argmax(jnp.where(avail, q, -jnp.inf), -1)
    np.testing.assert_array_equal(jnp.argmax(logp, -1), greedy_q)
    assert bool(jnp.all(jnp.where(avail, True, jnp.exp(logp) == 0))), "unavailable actions get probability 0"
    _, executed = learner.act(params, hidden, obs, st, avail, last, jax.random.PRNGKey(0), 0.0, greedy=True)
    np.testing.assert_array_equal(executed, greedy_q)
    # Sampling follows the soft policy and respects availability.
    keys = jax.random.split(jax.random.PRNGKey(1), 400)
    samples = jax.vmap(lambda k: learner.act(params, hidden, obs, st, avail, last, k, 0.0)[1])(keys)
    assert bool(jnp.all(jnp.take_along_axis(avail[None], samples[..., None], -1)))
    freq = jax.nn.one_hot(samples, A).mean(0)
    np.testing.assert_allclose(freq, jnp.exp(logp), atol=0.1)


@pytest.mark.parametrize("target, direction", [(3.0, 1), (0.01, -1)])
def test_temperature_moves_toward_the_target_entropy(target, direction):
    """Joint entropy at alpha = 1 lies between 3 x 0.01 and 3 x 3 nats (max 3 log 5 = 4.8)."""
    learner, spec = _learner(alpha=1.0, target_entropy_per_agent=target, alpha_lr=0.1)
    state = learner.init(jax.random.PRNGKey(0))
    batch = _batch(spec)
    log_alphas = [float(state.params["log_alpha"])]
    update = jax.jit(learner.update)
    for i in range(5):
        state, metrics = update(state, batch, 1, jax.random.PRNGKey(i))
        log_alphas.append(float(state.params["log_alpha"]))
    steps = np.diff(log_alphas)
    assert np.all(np.sign(steps) == direction), (log_alphas, float(metrics["entropy"]))


def test_fixed_temperature_stays_fixed():
    learner, spec = _learner(alpha=0.2, auto_alpha=False)
    state = learner.init(jax.random.PRNGKey(0))
    new, metrics = jax.jit(learner.update)(state, _batch(spec), 1, jax.random.PRNGKey(0))
    assert float(new.params["log_alpha"]) == pytest.approx(np.log(0.2))
    assert float(metrics["alpha"]) == pytest.approx(0.2)


def test_losses_touch_only_their_own_parameters():
    """TD loss -> agent+mixer, OPT loss -> policy head, temperature loss -> log alpha."""
    learner, spec = _learner()
    state = learner.init(jax.random.PRNGKey(0))
    batch = _batch(spec)

    def part(name):
        def f(params):
            _, m = learner.loss(params, state.target_params, batch, batch.reward, jax.random.PRNGKey(0))
            return m[name]

        return jax.grad(f)(state.params)

    def norm(tree):
        return float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(tree)))

    g_td, g_opt = part("loss"), part("opt_loss")
    assert norm(g_td["agent"]) > 0 and norm(g_td["mixer"]) > 0
    assert norm(g_td["policy"]) == 0 and float(g_td["log_alpha"]) == 0
    assert norm(g_opt["policy"]) > 0
    assert norm(g_opt["agent"]) == 0 and norm(g_opt["mixer"]) == 0


def test_opt_loss_makes_the_sum_of_opts_track_q_tot():
    learner, spec = _learner()
    state = learner.init(jax.random.PRNGKey(0))
    batch = _batch(spec)
    first = None
    update = jax.jit(learner.update)  # eager, every call re-traced its scans: minutes instead of seconds
    for i in range(200):
        state, m = update(state, batch, 1, jax.random.PRNGKey(i))
        first = float(m["opt_loss"]) if first is None else first
    assert float(m["opt_loss"]) < 0.1 * first, (first, float(m["opt_loss"]))


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_soft_td_lambda_subtracts_log_pi_from_the_next_value_and_return(lam):
    """Hand-written soft lambda-return of one truncated and one terminated episode."""
    gamma = 0.9
    r = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 0.0]])
    term = np.array([[False, False, False], [False, True, False]])
    mask = np.array([[True, True, True], [True, True, False]])
    v = np.array([[0.5, 1.5, -1.0, 2.0], [0.3, 0.7, 9.0, 9.0]])  # soft values Q - alpha log pi of samples
    b = np.array([[0.1, 0.2, 0.3, 0.0], [0.4, 0.5, 0.0, 0.0]])  # -alpha log pi of taken actions
    got = np.asarray(td_lambda_targets(r, term, mask, v, gamma, lam, bonus=b))

    def episode(r, term, mask, v, b):
        t_end = int(mask.sum())
        ret = np.zeros(len(r))
        nxt = 0.0 if term.any() else v[t_end]  # bootstrap at truncation
        for t in reversed(range(t_end)):
            if term[t]:
                ret[t] = r[t]
            else:
                follow = nxt + (b[t + 1] if t + 1 < t_end else 0.0)
                ret[t] = r[t] + gamma * ((1 - lam) * v[t + 1] + lam * follow)
            nxt = ret[t]
        return ret

    for i in range(2):
        want = episode(r[i], term[i], mask[i], v[i], b[i])
        np.testing.assert_allclose(got[i][mask[i]], want[mask[i]], rtol=1e-5)
    # lambda = 0: r + gamma * (Q - alpha log pi)(s', u' sampled)
    if lam == 0.0:
        np.testing.assert_allclose(got[0], r[0] + gamma * v[0, 1:], rtol=1e-6)


def test_me_learner_needs_a_mixer():
    spec = EnvSpec(n_agents=2, obs_dim=2, state_dim=2, n_actions=3, episode_limit=1)
    with pytest.raises(ValueError, match="needs an IGM mixer"):
        make_learner(ValueConfig(algo="me-qmix", mixer=None), spec)


def _matrix_cfg(algo, **kw):
    from credo.cli import config_files
    from credo.config import load_config

    overrides = [f"{k}={v}" for k, v in kw.items()]
    return load_config(
        ValueConfig,
        config_files(algo, "matrix:me-igm"),
        overrides,
        base={"algo": algo, "env": "matrix:me-igm"},
    )


def _greedy_joints(cfg):
    tr = Trainer(cfg)
    state = tr.to_devices(tr.init_state())
    while int(np.min(tr.from_devices(state.env_steps))) < cfg.total_env_steps:
        state, _ = tr._chunk(state)
    params = tr.from_devices(state.learner.params)
    _, ts = tr.env.reset(jax.random.PRNGKey(0))
    out = []
    for i in range(cfg.seeds):
        p = jax.tree.map(lambda x, i=i: x[i], params)
        inputs = tr.learner.agent_inputs(ts.obs, jnp.zeros(2, jnp.int32))
        _, q = tr.learner.q_values(p["agent"], tr.learner.initial_hidden(()), inputs)
        out.append(tuple(int(a) for a in jnp.argmax(q, -1)))
    return out


@pytest.mark.slow  # 20 runs of 10k steps: over two minutes on 2 cores
def test_me_qmix_finds_the_optimum_of_the_3x3_game_where_qmix_does_not():
    """The paper's matrix game at the shipped matrix settings (10k steps): seeds 0-9.

    Measured (benchmarks/results/matrix_me_igm.md): ME-QMIX's greedy joint action
    is (A, A) in 9 of 10 seeds, QMIX's in 0 of 10 (it settles on (B, B) or (C, C)).
    """
    me = _greedy_joints(_matrix_cfg("me-qmix", seeds=10))
    qmix = _greedy_joints(_matrix_cfg("qmix", seeds=10))
    assert sum(j == (0, 0) for j in me) >= 7, me
    assert sum(j == (0, 0) for j in qmix) <= 1, qmix


@pytest.mark.parametrize(
    "algo, env, extra",
    [
        # Each compiles a whole Trainer (about a minute on 2 cores): the default suite keeps one.
        ("me-qmix", "lbf:Foraging-5x5-2p-1f-v3", ["policy_transform=none"]),
        pytest.param("me-qmix", "mpe:simple_spread", ["policy_transform=mlp"], marks=pytest.mark.slow),
        pytest.param("me-qplex", "smax:3m", ["opt_layers=2"], marks=pytest.mark.slow),
        pytest.param("me-qmix", "gym:Foraging-5x5-2p-1f-v3", [], marks=pytest.mark.slow),
    ],
)
def test_me_algorithms_train_on_every_env_family(tmp_path, algo, env, extra):
    from credo.cli import config_files
    from credo.config import load_config

    overrides = [
        "total_env_steps=300",
        "seeds=2",
        "n_envs=2",
        "buffer_size=16",
        "batch_size=2",
        "test_interval=1000000",
        "test_episodes=2",
        "log_interval=100",
        *extra,
    ]
    cfg = load_config(ValueConfig, config_files(algo, env), overrides, base={"algo": algo, "env": env})
    tr = Trainer(cfg)
    run = RunDir.create(cfg, tmp_path, "r")
    summary = tr.run(run, progress=False)
    assert all(s >= 300 for s in summary["env_steps_done"])
    rows = [r for r in run.rows(0) if "alpha" in r and r["alpha"] is not None]
    assert rows and all(np.isfinite(r["loss"]) and r["epsilon"] is None for r in rows)


def test_cli_report_matrix_prints_the_table(tmp_path, monkeypatch, capsys):
    from credo.cli import main

    monkeypatch.chdir(tmp_path)  # in-process: the CLI's runs/ lands here
    for algo in ("me-qmix", "qmix"):
        assert (
            main(
                [
                    "train",
                    algo,
                    "matrix:me-igm",
                    "--steps",
                    "500",
                    "--seeds",
                    "2",
                    "--name",
                    algo,
                    "--no-progress",
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert main(["report", "matrix", "runs/me-qmix", "runs/qmix"]) == 0
    out = capsys.readouterr().out
    assert "payoff" in out and "me-qmix seed 0" in out and "qmix seed 0" in out
    assert "P(optimal joint action)" in out
    assert main(["report", "matrix", "runs/me-qmix", "--all-seeds"]) == 0
    assert "of 2 seeds" in capsys.readouterr().out
    assert main(["report", "matrix", "runs/me-qmix", "--seed", "5"]) == 2
    assert "out of range" in capsys.readouterr().err

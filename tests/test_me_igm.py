"""ME-IGM: order-preserving transformations, soft policies, soft targets, temperature, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from credo.algos import MaxEntConfig, MaxEntLearner, config_class, make_learner
from credo.algos.me_igm import soft_td_targets
from credo.buffers.episode import empty_batch
from credo.credit.td import td_lambda_targets
from credo.engine.rundir import RunDir
from credo.engine.train import Trainer, count_value
from credo.envs.core import EnvSpec
from credo.networks.policy_head import OrderPreservingTransform, PolicyMLP

N, S, A = 3, 6, 5


def _head(cls, seed, spread=1.0, **kw):
    head = cls(n_agents=N, n_actions=A, **kw)
    params = head.init(jax.random.PRNGKey(seed), jnp.zeros((1, N, A)), jnp.zeros((1, S)))
    # Spread the parameters so that the hypernetworks' outputs are far from init.
    params = jax.tree.map(
        lambda p, k: p + spread * jax.random.normal(k, p.shape),
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


# The paper form (eq. 2.2, no identity term) at a smaller spread: its hypernetworks are one
# linear layer of the state, so spread 1 gives weights near 10 and ELU inputs below -17, where
# float32 rounds ELU to -1 and the lowest actions tie (see the next test).
@pytest.mark.parametrize("form, layers, spread", [("paper", 1, 0.3), ("skip", 1, 1.0), ("skip", 2, 1.0)])
@pytest.mark.parametrize("seed", range(4))
def test_opt_keeps_the_order_of_every_agents_q_values(form, layers, spread, seed):
    head, params = _head(OrderPreservingTransform, seed, spread, layers=layers, form=form)
    qs, states = _random_inputs(seed)
    logits = head.apply(params, qs, states)
    assert logits.shape == qs.shape
    order = jnp.argsort(qs, -1)
    sorted_logits = jnp.take_along_axis(logits, order, -1)
    assert bool(jnp.all(jnp.diff(sorted_logits, axis=-1) > 0)), "OPT must be strictly increasing"
    np.testing.assert_array_equal(jnp.argmax(logits, -1), jnp.argmax(qs, -1))


def _slopes(head, params, qs, states):
    """Finite-difference slopes of each agent's OPT between its sorted Q entries: [B, n, A-1]."""
    order = jnp.argsort(qs, -1)
    x = jnp.take_along_axis(qs, order, -1)
    g = jnp.take_along_axis(head.apply(params, qs, states), order, -1)
    return jnp.diff(g, axis=-1) / jnp.diff(x, axis=-1)


def test_paper_opt_has_no_identity_term_and_skip_opt_has_slope_at_least_one():
    qs, states = _random_inputs(0)
    paper, p_params = _head(OrderPreservingTransform, 0, 0.3, form="paper")
    # (At spread 1 the skip form's logits reach 1e6 and float32 difference quotients drift off 1.)
    skip, s_params = _head(OrderPreservingTransform, 0, 0.3, form="skip")
    assert "hidden0" not in p_params["params"]["w1_0"], "eq. 2.2's hypernetworks are one linear layer"
    assert "hidden0" in s_params["params"]["w1_0"]

    # Trained-looking OPTs: the skip form never goes below slope 1, the paper form can.
    s_slopes, p_slopes = _slopes(skip, s_params, qs, states), _slopes(paper, p_params, qs, states)
    assert float(s_slopes.min()) >= 1 - 1e-3
    assert float(p_slopes.min()) < 0.5 and float(p_slopes.min()) > 0

    def zeroed(params, names):  # these hypernetworks output 0 for every state
        return {
            "params": {
                k: jax.tree.map(jnp.zeros_like, v) if k in names else v for k, v in params["params"].items()
            }
        }

    # W2's hypernetwork at 0: the skip form is x + b(s), slope exactly 1; the paper form
    # keeps only its weight floor (W2 = eps): nearly constant in x.
    np.testing.assert_allclose(_slopes(skip, zeroed(s_params, {"w2_0"}), qs, states), 1.0, rtol=1e-3)
    assert float(_slopes(paper, zeroed(p_params, {"w2_0"}), qs, states).max()) < 0.1

    # Every hypernetwork at 0: W1 = W2 = eps, b1 = b2 = 0, so OPT(x) = d eps ELU(eps x).
    # With |.| alone (eps = 0) this would be 0 for every action, a tie; the floor keeps it strict.
    eps, d = 1e-3, paper.hidden
    logits = paper.apply(zeroed(p_params, set(p_params["params"])), qs, states)
    np.testing.assert_allclose(logits, d * eps * jax.nn.elu(eps * qs), rtol=1e-4, atol=1e-12)
    sorted_logits = jnp.take_along_axis(logits, jnp.argsort(qs, -1), -1)
    assert bool(jnp.all(jnp.diff(sorted_logits, axis=-1) > 0))


def test_paper_opt_ties_only_where_float32_saturates_elu():
    """At spread 1 some of the lowest actions tie in float32 (ELU rounds to -1), never the best."""
    head, params = _head(OrderPreservingTransform, 0, 1.0, form="paper")
    qs, states = _random_inputs(0)
    logits = head.apply(params, qs, states)
    np.testing.assert_array_equal(jnp.argmax(logits, -1), jnp.argmax(qs, -1))
    sorted_logits = jnp.take_along_axis(logits, jnp.argsort(qs, -1), -1)
    assert bool(jnp.all(jnp.diff(sorted_logits, axis=-1) >= 0)), "never out of order"


def test_the_mlp_ablation_does_not_keep_the_order():
    """The property test above can fail: an unconstrained head breaks the order."""
    head, params = _head(PolicyMLP, 0)
    qs, states = _random_inputs(0)
    logits = head.apply(params, qs, states)
    assert float(jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(qs, -1))) < 0.9


def _learner(**kw):
    spec = EnvSpec(n_agents=N, obs_dim=4, state_dim=S, n_actions=A, episode_limit=6)
    cfg = MaxEntConfig(algo="me-qmix", mixer="qmix", **kw)
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

        return jax.jit(jax.grad(f))(state.params)  # one compile; eager re-traces every scan

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


def test_soft_target_entropy_term_sampled_vs_replayed_by_hand():
    """Both branches of the t+1 target carry -alpha log pi of the sampled action ("sampled"),
    or the return branch carries that of the replayed one ("replayed"), here very unlikely."""
    gamma, lam, alpha = 0.9, 0.6, 0.5
    r = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 0.0]], np.float32)
    term = np.array([[False, False, False], [False, True, False]])  # episode 1 ends at t = 1
    filled = np.array([[True, True, True], [True, True, False]])
    q = np.array([[0.5, 1.5, -1.0, 2.0], [0.3, 0.7, 9.0, 9.0]], np.float32)  # Q_tot^- at the sampled actions
    ls = np.array(
        [[-0.1, -0.7, -0.2, -0.4], [-0.3, -1.1, -5.0, -5.0]], np.float32
    )  # log pi_jt of the samples
    lr = np.array(
        [[-0.3, -18.0, -0.5], [-0.2, -20.0, -7.0]], np.float32
    )  # of the replayed actions: u_1 unlikely

    def by_hand(e):  # e[b][t]: the log pi on the return branch at t
        v = q - alpha * ls  # soft values, the value branch
        g = np.zeros((2, 3))
        g[0, 2] = r[0, 2] + gamma * v[0, 3]  # truncated: bootstraps from the soft value at T
        g[0, 1] = r[0, 1] + gamma * ((1 - lam) * v[0, 2] + lam * (g[0, 2] - alpha * e[0][2]))
        g[0, 0] = r[0, 0] + gamma * ((1 - lam) * v[0, 1] + lam * (g[0, 1] - alpha * e[0][1]))
        g[1, 1] = r[1, 1]  # terminal
        g[1, 0] = r[1, 0] + gamma * ((1 - lam) * v[1, 1] + lam * (g[1, 1] - alpha * e[1][1]))
        return g

    for form, e in [("sampled", ls), ("replayed", lr)]:
        got = np.asarray(soft_td_targets(r, term, filled, q, ls, lr, alpha, gamma, lam, form))
        np.testing.assert_allclose(got[filled], by_hand(e)[filled], rtol=1e-5, err_msg=form)
    sampled = np.asarray(soft_td_targets(r, term, filled, q, ls, lr, alpha, gamma, lam, "sampled"))
    replayed = np.asarray(soft_td_targets(r, term, filled, q, ls, lr, alpha, gamma, lam, "replayed"))
    # The replayed u_1's -alpha log pi = 9 (and 10) reaches step 0 through gamma * lambda.
    jump = gamma * lam * alpha * np.array([18.0 - 0.7 + gamma * lam * (0.5 - 0.2), 20.0 - 1.1])
    np.testing.assert_allclose(replayed[:, 0] - sampled[:, 0], jump, rtol=1e-5)
    # One-step targets (lambda = 0) do not see the return branch at all.
    np.testing.assert_allclose(
        soft_td_targets(r, term, filled, q, ls, lr, alpha, gamma, 0.0, "sampled"),
        soft_td_targets(r, term, filled, q, ls, lr, alpha, gamma, 0.0, "replayed"),
    )


def test_learner_target_takes_the_replayed_actions_log_pi_only_when_asked():
    """Soft policies (1/2, 1/2, e^-30 ...) and every replayed action the unlikely last one:
    the "replayed" target adds -alpha log pi = 30 + log 2 per agent on the return branch,
    "sampled" adds the sampled action's log 2 (the two likely actions tie), as on the value."""
    gamma, lam, alpha, big = 0.9, 0.5, 0.2, 30.0
    spec = EnvSpec(n_agents=2, obs_dim=3, state_dim=4, n_actions=3, episode_limit=3)
    rng = np.random.default_rng(0)
    b = empty_batch(spec, 4)
    batch = b._replace(
        obs=jnp.asarray(rng.normal(size=b.obs.shape), jnp.float32),
        state=jnp.asarray(rng.normal(size=b.state.shape), jnp.float32),
        avail=jnp.ones(b.avail.shape, bool),
        actions=jnp.full(b.actions.shape, 2, jnp.int32),
        reward=jnp.asarray(rng.normal(size=b.reward.shape), jnp.float32),
        filled=jnp.ones(b.filled.shape, bool),
    )
    fixed = jnp.array([0.0, 0.0, -big]) * alpha  # logits / alpha = (0, 0, -30)
    targets = {}
    for form in ("sampled", "replayed"):
        cfg = MaxEntConfig(
            algo="me-qmix",
            mixer="qmix",
            alpha=alpha,
            auto_alpha=False,
            gamma=gamma,
            td_lambda=lam,
            soft_target_entropy=form,
        )
        learner = make_learner(cfg, spec)
        learner.logits = lambda params, qs, state: jnp.broadcast_to(fixed, qs.shape)
        state = learner.init(jax.random.PRNGKey(0))
        loss = jax.jit(learner.loss)  # one compile; eager re-traces every scan
        _, m = loss(state.params, state.target_params, batch, batch.reward, jax.random.PRNGKey(3))
        targets[form] = float(m["target_mean"])
    # Per agent: -log pi(replayed) - (-log pi(sampled)) = 30 exactly (both share log(2 + e^-30)).
    # It enters step t's target once per later step j (t < j < T) with weight (gamma lambda)^(j-t);
    # T = 3: steps 0 and 1 get gl + gl^2 and gl, step 2 none; mean over the 3 steps.
    gl = gamma * lam
    want = alpha * spec.n_agents * big * (2 * gl + gl**2) / 3
    assert targets["replayed"] - targets["sampled"] == pytest.approx(want, rel=1e-4)


def test_me_learner_needs_a_mixer():
    spec = EnvSpec(n_agents=2, obs_dim=2, state_dim=2, n_actions=3, episode_limit=1)
    with pytest.raises(ValueError, match="needs an IGM mixer"):
        make_learner(MaxEntConfig(algo="me-qmix", mixer=None), spec)
    # Eq. 2.2 is one block: stacking needs the skip form (float32 ties otherwise).
    with pytest.raises(ValueError, match="opt_form=skip"):
        make_learner(MaxEntConfig(algo="me-qmix", opt_layers=2), spec)
    assert isinstance(
        make_learner(MaxEntConfig(algo="me-qmix", opt_form="skip", opt_layers=2), spec), MaxEntLearner
    )


def _matrix_cfg(algo, **kw):
    from credo.cli import config_files
    from credo.config import load_config

    overrides = [f"{k}={v}" for k, v in kw.items()]
    return load_config(
        config_class(algo),
        config_files(algo, "matrix:me-igm"),
        overrides,
        base={"algo": algo, "env": "matrix:me-igm"},
    )


def _greedy_joints(cfg):
    tr = Trainer(cfg)
    state = tr.to_devices(tr.init_state())
    while int(np.min(count_value(tr.from_devices(state.env_steps)))) < cfg.total_env_steps:
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
def test_me_qplex_finds_the_optimum_of_the_3x3_game_more_often_than_qplex_on_fresh_seeds():
    """The paper's matrix game at the shipped matrix settings (10k steps), seeds 2000-2009.

    Measured on these seeds, which no setting was chosen on
    (benchmarks/results/matrix_me_igm_seeds2000-2009.md): ME-QPLEX's greedy joint action is
    (A, A) in 7 of 10 seeds, QPLEX's in 2 of 10 (P = 0.75 [0.55, 0.90], better). ME-QMIX vs
    QMIX was 3 vs 2 of 10, inconclusive, so it is not asserted. The earlier claim, ME-QMIX in
    9 of 10 seeds 0-9, was measured on the seeds its replay size was chosen on and did not hold
    on fresh ones. The bounds leave room for seeds spread over a different number of devices.
    """
    me = _greedy_joints(_matrix_cfg("me-qplex", seeds=10, seed=2000))
    qplex = _greedy_joints(_matrix_cfg("qplex", seeds=10, seed=2000))
    assert sum(j == (0, 0) for j in me) >= 5, me
    assert sum(j == (0, 0) for j in qplex) <= 3, qplex


@pytest.mark.parametrize(
    "algo, env, extra",
    [
        # Each compiles a whole Trainer (about a minute on 2 cores): the default suite keeps one.
        ("me-qmix", "lbf:Foraging-5x5-2p-1f-v3", ["policy_transform=none"]),
        pytest.param("me-qmix", "mpe:simple_spread", ["policy_transform=mlp"], marks=pytest.mark.slow),
        pytest.param("me-qplex", "smax:3m", ["opt_form=skip", "opt_layers=2"], marks=pytest.mark.slow),
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
    cfg = load_config(config_class(algo), config_files(algo, env), overrides, base={"algo": algo, "env": env})
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

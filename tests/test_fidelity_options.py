"""Fidelity options (issue 16): each option's forms must behave differently, in the way documented.

* ``wm_input``: the paper's observation world model (encoder trained by the inverse model only,
  reads observations) against credo's substate model (encoders trained by the predictors,
  reads substates).
* ``standardise_advantages``, ``value_norm``, ``grad_clip_scheme`` (joint vs separate clips).
* ``test_greedy`` / ``test_epsilon``: greedy or sampled evaluation, for PPO and value learners.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_ppo import small as ppo_small

import credo.envs as envs
from credo.algos import PPOConfig
from credo.algos.common import eval_policy
from credo.algos.ppo import PPOLearner
from credo.algos.value import ValueConfig
from credo.buffers.episode import EpisodeBatch
from credo.engine.collect import make_collector
from credo.engine.train import Trainer

LBF = "lbf:Foraging-8x8-2p-2f-coop-v3"
MATRIX = "matrix:climbing"


def small(algo="mappo-dg", env=LBF, **kw):
    return ppo_small(algo, env, **kw)  # test_ppo's small config, with DG as the default learner


# --- world model forms --------------------------------------------------------------------


def synthetic(env, key, b=3, t=5, sub_dim=3):
    """A batch of random observations and actions, with substates and local rewards."""
    n, a, d = env.n_agents, env.n_actions, env.obs_dim
    ks = jax.random.split(key, 5)
    batch = EpisodeBatch(
        obs=jax.random.normal(ks[0], (b, t + 1, n, d)),
        state=jnp.zeros((b, t + 1, env.state_dim)),
        avail=jnp.ones((b, t + 1, n, a), bool),
        actions=jax.random.randint(ks[1], (b, t, n), 0, a),
        reward=jnp.zeros((b, t)),
        terminated=jnp.zeros((b, t), bool),
        filled=jnp.ones((b, t), bool),
    )
    extra = {
        "rewards": jax.random.normal(ks[2], (b, t, n)),
        "substate": jax.random.normal(ks[3], (b, t, n, sub_dim)),
        "next_substate": jax.random.normal(ks[4], (b, t, n, sub_dim)),
    }
    return batch, extra


def wm_learner(wm_input):
    env = envs.make(LBF)
    learner = PPOLearner(small(wm_input=wm_input), env.spec, env)
    return env, learner, learner.init(jax.random.PRNGKey(0)).params["world_model"]


def encoder_grads(learner, wm_params, batch, extra, parts):
    """Gradient of the sum of the named loss parts with respect to every parameter."""

    def loss(p):
        _, (_, losses) = learner.world_model_loss(p, batch, extra)
        return sum(losses[k] for k in parts)

    return jax.jit(jax.grad(loss))(wm_params)["params"]


def norm(tree):
    return float(optax.tree.norm(tree))


def test_observation_world_model_trains_its_encoder_by_the_inverse_model_only():
    env, learner, p = wm_learner("observation")
    assert set(p["params"]) == {"encoder", "inverse", "own", "reverse"}
    batch, extra = synthetic(env, jax.random.PRNGKey(1), sub_dim=learner.substate_dim)
    heads = encoder_grads(learner, p, batch, extra, ("own", "reverse"))
    assert norm(heads["encoder"]) == 0.0  # the predictors read detached latents
    assert norm(heads["own"]) > 0 and norm(heads["reverse"]) > 0
    inverse = encoder_grads(learner, p, batch, extra, ("inverse",))
    assert norm(inverse["encoder"]) > 0
    assert norm(inverse["own"]) == 0.0 and norm(inverse["reverse"]) == 0.0
    # The full loss's encoder gradient is the inverse model's, exactly.
    full = encoder_grads(learner, p, batch, extra, ("inverse", "own", "reverse"))
    for a, b in zip(jax.tree.leaves(full["encoder"]), jax.tree.leaves(inverse["encoder"])):
        np.testing.assert_array_equal(a, b)


def test_substate_world_model_trains_its_encoders_through_the_predictors():
    env, learner, p = wm_learner("substate")
    assert "inverse" not in p["params"]
    batch, extra = synthetic(env, jax.random.PRNGKey(1), sub_dim=learner.substate_dim)
    heads = encoder_grads(learner, p, batch, extra, ("own", "reverse"))
    assert norm(heads["encoder"]) > 0 and norm(heads["sub_encoder"]) > 0


def entropies(learner, p, batch, extra):
    _, ((h_own, h_rev), _) = learner.world_model_loss(p, batch, extra)
    return np.asarray(h_own), np.asarray(h_rev)


def test_observation_form_reads_observations_and_the_substate_form_reads_substates():
    for wm_input in ("observation", "substate"):
        env, learner, p = wm_learner(wm_input)
        batch, extra = synthetic(env, jax.random.PRNGKey(2), sub_dim=learner.substate_dim)
        base = entropies(learner, p, batch, extra)
        other_sub = dict(
            extra,
            substate=extra["substate"] + 3.0,
            next_substate=-extra["next_substate"],
            rewards=extra["rewards"] * 5.0,
        )
        # Only the observations of the step after (z_k'): z_j of step t stays the same.
        other_obs = batch._replace(obs=batch.obs.at[:, 1:].multiply(-2.0))
        h_sub = entropies(learner, p, batch, other_sub)
        h_obs = entropies(learner, p, other_obs, extra)
        t = batch.actions.shape[1]
        if wm_input == "observation":
            for a, b in zip(base, h_sub):
                np.testing.assert_array_equal(a, b)
            # k's next observation moves the reverse entropies (the off-diagonal ones).
            off = ~np.eye(env.n_agents, dtype=bool)
            assert np.abs(h_obs[1][:, 0][..., off] - base[1][:, 0][..., off]).max() > 1e-4
        else:
            assert np.abs(h_sub[1] - base[1]).max() > 1e-4
            # The substate form reads obs only for z_j of step t: the obs of the last step
            # (index T, after the final action) is never read.
            last_only = batch._replace(obs=batch.obs.at[:, t].multiply(-2.0))
            for a, b in zip(base, entropies(learner, p, last_only, extra)):
                np.testing.assert_array_equal(a, b)
    # ...which the observation form does read (the final transition's z_k').
    env, learner, p = wm_learner("observation")
    batch, extra = synthetic(env, jax.random.PRNGKey(2), sub_dim=learner.substate_dim)
    base = entropies(learner, p, batch, extra)
    moved = entropies(learner, p, batch._replace(obs=batch.obs.at[:, t].multiply(-2.0)), extra)
    assert np.abs(moved[1][:, t - 1] - base[1][:, t - 1]).max() > 1e-4


def test_observation_world_model_learns_in_an_update_and_records_no_substates():
    env = envs.make(LBF)
    learner = PPOLearner(small(wm_input="observation"), env.spec, env)
    assert not learner.agent_features
    state = learner.init(jax.random.PRNGKey(0))
    batch, _, rec = make_collector(env, learner, 4, record=learner.recorder(env))(
        state.params, jax.random.PRNGKey(4), 0.0
    )
    assert "substate" not in rec
    new, metrics = jax.jit(learner.update)(state, batch, rec, jax.random.PRNGKey(5))
    assert all(bool(jnp.isfinite(v)) for v in metrics.values()), metrics
    assert "wm_inverse_loss" in metrics and float(metrics["wm_inverse_loss"]) > 0
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new.params)
    assert all(jax.tree.leaves(changed))


# --- normalisation and clipping ----------------------------------------------------------


def prepared(**kw):
    """PPO's inputs (advantages, targets) for one batch of the climbing game, and the raw ones."""
    env = envs.make(MATRIX)
    learner = PPOLearner(small("mappo", env=MATRIX, **kw), env.spec, env)
    state = learner.init(jax.random.PRNGKey(0))
    batch, _, rec = make_collector(env, learner, 10, record=learner.recorder(env))(
        state.params, jax.random.PRNGKey(1), 0.0
    )
    data, value_stats, _, _, _ = learner.prepare(state, batch, rec, jax.random.PRNGKey(2))
    values = learner.values(state.params["critic"], batch)  # stats start empty: no denormalising
    adv, returns, _ = learner.advantages(batch, rec, values, jax.random.PRNGKey(2))
    m = np.broadcast_to(np.asarray(batch.filled)[..., None], adv.shape)
    return data, value_stats, state, np.asarray(adv)[m], np.asarray(returns)[m], m


def test_standardise_advantages_on_and_off():
    data, _, _, raw, _, m = prepared(standardise_advantages=True, value_norm=False)
    used = np.asarray(data["adv"])[m]
    assert abs(used.mean()) < 1e-5 and used.std() == pytest.approx(1.0, abs=1e-4)
    assert raw.std() > 1.5  # the climbing game's payoffs: far from unit scale
    data, _, _, raw, _, m = prepared(standardise_advantages=False, value_norm=False)
    np.testing.assert_allclose(np.asarray(data["adv"])[m], raw, rtol=1e-6)


def test_value_norm_on_and_off():
    data, stats, state, _, returns, m = prepared(value_norm=True, standardise_advantages=False)
    targets = np.asarray(data["targets"])[m]
    assert float(stats[0]) > float(state.value_stats[0])  # the moments saw this batch
    # The first batch's moments are its own: normalised targets have mean 0, std 1.
    assert abs(targets.mean()) < 1e-3 and targets.std() == pytest.approx(1.0, abs=1e-3)
    assert returns.std() > 1.5
    data, stats, state, _, returns, m = prepared(value_norm=False, standardise_advantages=False)
    np.testing.assert_allclose(np.asarray(data["targets"])[m], returns, rtol=1e-6)
    np.testing.assert_array_equal(stats, state.value_stats)


def scaled_grads(params, actor, critic):
    """A gradient tree shaped as the actor/critic parameters with the given global norms."""

    def fill(tree, target):
        ones = jax.tree.map(jnp.ones_like, tree)
        return jax.tree.map(lambda x: x * target / optax.tree.norm(ones), ones)

    return {"actor": fill(params["actor"], actor), "critic": fill(params["critic"], critic)}


def test_joint_and_separate_gradient_clips():
    env = envs.make(MATRIX)

    def clipped(**kw):
        learner = PPOLearner(small("mappo", env=MATRIX, **kw), env.spec, env)
        params = learner.init(jax.random.PRNGKey(0)).params
        ac = {k: params[k] for k in ("actor", "critic")}
        out, _ = learner.grad_clip.update(scaled_grads(ac, 30.0, 0.4), learner.grad_clip.init(ac))
        return norm(out["actor"]), norm(out["critic"])

    # Joint: one factor for both; the large actor gradient shrinks the small critic one too.
    actor, critic = clipped(grad_clip_scheme="joint", max_grad_norm=1.0)
    assert np.hypot(actor, critic) == pytest.approx(1.0, rel=1e-5)
    assert critic == pytest.approx(0.4 / np.hypot(30.0, 0.4), rel=1e-4)
    # Separate: each network against its own bound; the critic's is untouched.
    actor, critic = clipped(grad_clip_scheme="separate", actor_grad_clip=1.0, critic_grad_clip=1.0)
    assert actor == pytest.approx(1.0, rel=1e-5) and critic == pytest.approx(0.4, rel=1e-5)
    actor, critic = clipped(grad_clip_scheme="separate", actor_grad_clip=50.0, critic_grad_clip=0.1)
    assert actor == pytest.approx(30.0, rel=1e-5) and critic == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match="grad_clip_scheme"):
        PPOLearner(small("mappo", env=MATRIX, grad_clip_scheme="both"), env.spec, env)


def test_separate_clips_in_an_update():
    env = envs.make(MATRIX)
    learner = PPOLearner(small("mappo", env=MATRIX, grad_clip_scheme="separate"), env.spec, env)
    state = learner.init(jax.random.PRNGKey(0))
    batch, _, rec = make_collector(env, learner, 10, record=learner.recorder(env))(
        state.params, jax.random.PRNGKey(1), 0.0
    )
    new, metrics = jax.jit(learner.update)(state, batch, rec, jax.random.PRNGKey(2))
    assert all(bool(jnp.isfinite(v)) for v in metrics.values())
    # Stateless clips either way: a checkpoint's optimiser state fits both schemes.
    joint = PPOLearner(small("mappo", env=MATRIX), env.spec, env).init(jax.random.PRNGKey(0))
    assert jax.tree.structure(joint.opt_state) == jax.tree.structure(new.opt_state)


# --- greedy or sampled evaluation -------------------------------------------------------------


def eval_returns(cfg):
    trainer = Trainer(cfg)
    params = trainer.to_devices(trainer.init_state()).learner.params
    return np.asarray(trainer.evaluate(params, 0).returns)[0]  # [test_episodes] of the one seed


def test_ppo_evaluation_is_greedy_or_samples_the_policy():
    # The climbing game is deterministic with one state: greedy episodes are all the same.
    base = dict(total_env_steps=100, test_episodes=32)
    greedy = eval_returns(small("mappo", env=MATRIX, test_greedy=True, **base))
    assert len(np.unique(greedy)) == 1
    sampled = eval_returns(small("mappo", env=MATRIX, test_greedy=False, **base))
    assert len(np.unique(sampled)) > 1
    # test_epsilon is not PPO's: still greedy.
    assert len(np.unique(eval_returns(small("mappo", env=MATRIX, test_epsilon=0.5, **base)))) == 1


def test_value_learner_evaluation_uses_test_epsilon():
    base = dict(algo="iql", env=MATRIX, total_env_steps=100, test_episodes=32, buffer_size=32, batch_size=4)
    assert len(np.unique(eval_returns(ValueConfig(**base)))) == 1
    assert len(np.unique(eval_returns(ValueConfig(**base, test_greedy=False)))) == 1  # epsilon 0
    assert len(np.unique(eval_returns(ValueConfig(**base, test_epsilon=0.5)))) > 1


def test_eval_policy_maps_the_switches_to_act_arguments():
    class Ppo:
        explores_with_epsilon = False

    class Q:
        explores_with_epsilon = True

    cfg = lambda **kw: PPOConfig(algo="mappo", **kw)  # noqa: E731
    assert eval_policy(cfg(), Ppo()) == (True, 0.0)
    assert eval_policy(cfg(test_greedy=False), Ppo()) == (False, 0.0)
    assert eval_policy(cfg(test_epsilon=0.05), Ppo()) == (True, 0.0)
    assert eval_policy(cfg(), Q()) == (True, 0.0)
    assert eval_policy(cfg(test_epsilon=0.05), Q()) == (False, 0.05)
    assert eval_policy(cfg(test_greedy=False, test_epsilon=0.05), Q()) == (False, 0.05)
    with pytest.raises(ValueError, match="test_epsilon"):
        eval_policy(cfg(test_epsilon=1.5), Q())

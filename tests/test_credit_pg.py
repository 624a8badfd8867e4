"""Policy-gradient credit: GAE against NumPy, dependence-graph advantages, reachability, graphs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from credo.credit.dependence import (
    dependence_advantage,
    graph_from_entropies,
    precision_recall,
    random_graph,
    reachability,
)
from credo.credit.gae import gae, td_errors


def numpy_gae(rewards, values, terminated, mask, gamma, lam):
    """A plain loop over each episode, written independently of credo's scan."""
    b, t_len = mask.shape
    adv = np.zeros_like(rewards)
    for i in range(b):
        length = int(mask[i].sum())
        acc = np.zeros(rewards.shape[2:])
        for t in reversed(range(length)):
            nxt = 0.0 if terminated[i, t] else values[i, t + 1]
            delta = rewards[i, t] + gamma * nxt - values[i, t]
            acc = delta + gamma * lam * acc
            adv[i, t] = acc
    returns = (adv + values[:, :-1]) * mask.reshape(mask.shape + (1,) * (rewards.ndim - 2))
    return adv, returns


def random_episodes(seed, b=5, t_len=12, n=3):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, t_len + 1, b)
    mask = np.arange(t_len)[None] < lengths[:, None]
    terminated = np.zeros((b, t_len), bool)
    ends = rng.random(b) < 0.5  # half the episodes terminate, the others are cut (bootstrap)
    terminated[np.arange(b), lengths - 1] = ends
    rewards = rng.normal(size=(b, t_len, n)) * mask[..., None]
    values = rng.normal(size=(b, t_len + 1, n))
    return rewards.astype(np.float32), values.astype(np.float32), terminated, mask


@pytest.mark.parametrize("seed,lam", [(0, 0.0), (1, 0.95), (2, 1.0)])
def test_gae_matches_a_numpy_loop(seed, lam):
    r, v, term, mask = random_episodes(seed)
    adv, ret = gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(term), jnp.asarray(mask), 0.99, lam)
    ref_adv, ref_ret = numpy_gae(r, v, term, mask, 0.99, lam)
    np.testing.assert_allclose(adv, ref_adv, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, atol=1e-5)


def test_gae_bootstraps_a_cut_episode_and_not_a_terminated_one():
    r = jnp.zeros((2, 3, 1))
    v = jnp.ones((2, 4, 1))
    mask = jnp.array([[True, True, False], [True, True, False]])
    term = jnp.array([[False, True, False], [False, False, False]])
    adv, _ = gae(r, v, term, mask, 1.0, 0.0)
    assert float(adv[0, 1, 0]) == -1.0  # terminated: 0 - V
    assert float(adv[1, 1, 0]) == 0.0  # cut by the limit: V(final) - V
    assert float(adv[0, 2, 0]) == 0.0  # padding


@pytest.mark.parametrize("seed", range(3))
def test_full_graph_gives_the_global_reward_advantage(seed):
    r, v, term, mask = random_episodes(seed)
    deltas = td_errors(jnp.asarray(r), jnp.asarray(v), jnp.asarray(term), jnp.asarray(mask), 0.99)
    full = jnp.ones((*mask.shape, 3, 3), bool)
    adv = dependence_advantage(deltas, full, jnp.asarray(mask), 0.99, 0.9, meeting_lambda=0.95)
    # Global reward with value sum_j V_j: the same TD errors, summed over agents.
    team, _ = gae(
        jnp.asarray(r.sum(-1)), jnp.asarray(v.sum(-1)), jnp.asarray(term), jnp.asarray(mask), 0.99, 0.9
    )
    np.testing.assert_allclose(adv, np.broadcast_to(np.asarray(team)[..., None], adv.shape), atol=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_identity_graph_gives_the_local_reward_advantage(seed):
    r, v, term, mask = random_episodes(seed)
    deltas = td_errors(jnp.asarray(r), jnp.asarray(v), jnp.asarray(term), jnp.asarray(mask), 0.99)
    ident = jnp.zeros((*mask.shape, 3, 3), bool)  # the diagonal is added
    adv = dependence_advantage(deltas, ident, jnp.asarray(mask), 0.99, 0.9, meeting_lambda=1.0)
    local, _ = gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(term), jnp.asarray(mask), 0.99, 0.9)
    np.testing.assert_allclose(adv, local, atol=1e-5)


def test_meeting_time_averaging_gives_unreached_agents_weight_one_minus_mu():
    r, v, term, mask = random_episodes(5)
    deltas = td_errors(jnp.asarray(r), jnp.asarray(v), jnp.asarray(term), jnp.asarray(mask), 0.99)
    ident = jnp.zeros((*mask.shape, 3, 3), bool)
    mu = 0.8
    adv = dependence_advantage(deltas, ident, jnp.asarray(mask), 0.99, 0.9, meeting_lambda=mu)
    local, _ = gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(term), jnp.asarray(mask), 0.99, 0.9)
    team = local.sum(-1, keepdims=True)
    np.testing.assert_allclose(adv, local + (1 - mu) * (team - local), atol=1e-4)


def numpy_dependence_advantage(deltas, graphs, mask, gamma, lam):
    """Hard truncation (mu = 1) by explicit path search from every (t0, i)."""
    b, t_len, n = deltas.shape
    out = np.zeros_like(deltas)
    for e in range(b):
        for t0 in range(t_len):
            if not mask[e, t0]:
                continue
            for i in range(n):
                reached = {i}
                total = 0.0
                for t in range(t0, t_len):
                    if not mask[e, t]:
                        break
                    # one more hop through G_t: whoever a reached agent influences now
                    g = graphs[e, t] | np.eye(n, dtype=bool)
                    reached = reached | {k for j in reached for k in range(n) if g[j, k]}
                    total += (gamma * lam) ** (t - t0) * sum(deltas[e, t, j] for j in reached)
                out[e, t0, i] = total
    return out


@pytest.mark.parametrize("seed", range(3))
def test_dependence_advantage_matches_explicit_path_search(seed):
    rng = np.random.default_rng(seed)
    b, t_len, n = 3, 9, 4
    mask = np.arange(t_len)[None] < rng.integers(1, t_len + 1, b)[:, None]
    deltas = (rng.normal(size=(b, t_len, n)) * mask[..., None]).astype(np.float32)
    graphs = rng.random((b, t_len, n, n)) < 0.15
    adv = dependence_advantage(jnp.asarray(deltas), jnp.asarray(graphs), jnp.asarray(mask), 0.97, 0.9)
    np.testing.assert_allclose(adv, numpy_dependence_advantage(deltas, graphs, mask, 0.97, 0.9), atol=1e-4)


def test_reachability_on_a_hand_made_chain():
    # 0 -> 1 at step 0, 1 -> 2 at step 2, nothing at step 1: 0 reaches 1 at once, 2 only at step 2.
    n = 3
    g = np.zeros((4, n, n), bool)
    g[0, 0, 1] = True
    g[2, 1, 2] = True
    reach = np.asarray(reachability(jnp.asarray(g), horizon=4))  # [T, H, n, n]
    assert reach[0, 0, 0].tolist() == [True, True, False]
    assert reach[0, 1, 0].tolist() == [True, True, False]
    assert reach[0, 2, 0].tolist() == [True, True, True]
    assert reach[1, 3, 0].tolist() == [True, False, False]  # from step 1, the 0 -> 1 edge is past
    assert reach[0, 3, 2].tolist() == [False, False, True]  # edges are directed
    # Order matters: 1 -> 2 before 0 -> 1 does not make a path 0 -> 2.
    g2 = np.zeros((2, n, n), bool)
    g2[0, 1, 2] = True
    g2[1, 0, 1] = True
    assert np.asarray(reachability(jnp.asarray(g2), 2))[0, 1, 0].tolist() == [True, True, False]


def test_graph_from_entropy_ratio_and_precision_recall():
    h_own = jnp.array([1.0, 1.0])
    h_rev = jnp.array([[1.0, 0.5], [0.95, 1.0]])  # 0's action explains 1's move; 1's does not explain 0's
    g = np.asarray(graph_from_entropies(h_rev, h_own, threshold=0.9))
    assert g.tolist() == [[True, True], [False, True]]
    assert np.asarray(graph_from_entropies(h_rev, h_own, threshold=0.99)).all()
    assert precision_recall(g, np.ones((2, 2), bool)) == (1.0, 0.5)


def test_random_graph_density():
    g = np.asarray(random_graph(jax.random.PRNGKey(0), (2000,), 4, 0.3))
    off = ~np.eye(4, dtype=bool)
    assert g[:, np.eye(4, dtype=bool)].all()
    assert abs(g[:, off].mean() - 0.3) < 0.02

"""Dependence-graph credit (paper 004): advantages that sum other agents' local TD errors
only from the first step at which an interaction path reaches them.

A graph ``G_t [n, n]`` per step has ``G_t[j, k] = 1`` when agent j's action at step t
influences agent k's next state (the diagonal is always on). From agent i at step t0,
the agents reachable by step t are those joined to i by a path through
``G_{t0}, G_{t0+1}, ..., G_t``:

    power_{t0-1} = I,  power_t = clip(power_{t-1} @ G_t),  reach_t = clip(reach_{t-1} + power_t)

and agent i's advantage is

    A_i(t0) = sum_{t >= t0} (gamma lam)^(t - t0) sum_j w_ij(t0, t) delta_j(t),
    w_ij = mu * reach_ij(t0, t) + (1 - mu),

with ``delta_j`` agent j's TD error on its local reward. ``mu = 1`` is the truncated
estimator of the paper's Proposition 5.1: j's errors count from the first step a path
reaches j. ``mu < 1`` is the multi-agent GAE of the authors' code (mu = lam = 0.95 there),
which averages over the possible meeting times: agents not reached yet still count with
weight ``1 - mu``, so a missed edge costs a little bias instead of all of j's credit.
A fully connected graph gives the global-reward advantage (``sum_j delta_j``) and the
identity graph with ``mu = 1`` the local one (``delta_i``), exactly (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

GRAPH_SOURCES = ("learned", "oracle", "full", "identity", "random")


def dependence_advantage(
    deltas, graphs, mask, gamma: float, lam: float, horizon: int | None = None, meeting_lambda: float = 1.0
):
    """Per-agent advantages under per-step dependence graphs.

    deltas: [B, T, n] local TD errors (0 on padding); graphs: [B, T, n, n] bool or {0, 1}
    (``[j, k]``: j influences k; the diagonal is added); mask: [B, T] steps that happened.
    ``horizon``: steps propagated from each t0 (default: the whole episode; the authors
    use 100). Returns [B, T, n], 0 on padding.
    """
    b, t_len, n = deltas.shape
    h = t_len if horizon is None else max(1, min(int(horizon), t_len))
    eye = jnp.eye(n, dtype=jnp.float32)
    g = jnp.maximum(jnp.asarray(graphs, jnp.float32), eye)
    # Pad time by h so that t0 + l never runs past the arrays; padding is masked out.
    g = jnp.concatenate([g, jnp.broadcast_to(eye, (b, h, n, n))], 1)
    d = jnp.concatenate([deltas, jnp.zeros((b, h, n), deltas.dtype)], 1)
    m = jnp.concatenate([mask.astype(jnp.float32), jnp.zeros((b, h), jnp.float32)], 1)
    t0 = jnp.arange(t_len)

    def step(carry, lag):
        power, reach, alive, acc = carry  # [b, T, n, n] x2, [b, T], [b, T, n]
        t = t0 + lag
        power = jnp.minimum(jnp.einsum("btij,btjk->btik", power, g[:, t]), 1.0)
        reach = jnp.maximum(reach, power)
        alive = alive * m[:, t]  # the episode is still running at step t0 + l
        w = meeting_lambda * reach + (1.0 - meeting_lambda)
        contrib = jnp.einsum("btij,btj->bti", w, d[:, t])
        acc = acc + jnp.power(gamma * lam, lag) * alive[..., None] * contrib
        return (power, reach, alive, acc), None

    start = jnp.broadcast_to(eye, (b, t_len, n, n))
    init = (start, start, jnp.ones((b, t_len), jnp.float32), jnp.zeros((b, t_len, n), deltas.dtype))
    (_, _, _, acc), _ = jax.lax.scan(step, init, jnp.arange(h))
    return acc * mask[..., None].astype(acc.dtype)


def reachability(graphs, horizon: int):
    """``reach[t0, l, i, j]``: i reaches j through ``G_{t0..t0+l}`` (graphs [T, n, n]; for inspection).

    Steps past the end of the array use the identity graph.
    """
    t_len, n = graphs.shape[0], graphs.shape[-1]
    eye = jnp.eye(n, dtype=jnp.float32)
    g = jnp.concatenate(
        [jnp.maximum(jnp.asarray(graphs, jnp.float32), eye), jnp.broadcast_to(eye, (horizon, n, n))]
    )
    t0 = jnp.arange(t_len)

    def step(carry, lag):
        power, reach = carry
        power = jnp.minimum(jnp.einsum("tij,tjk->tik", power, g[t0 + lag]), 1.0)
        reach = jnp.maximum(reach, power)
        return (power, reach), reach

    start = jnp.broadcast_to(eye, (t_len, n, n))
    _, reach = jax.lax.scan(step, (start, start), jnp.arange(horizon))
    return jnp.moveaxis(reach, 0, 1) > 0.5  # [T, H, n, n]


def graph_from_entropies(h_reverse, h_own, threshold: float, eps: float = 1e-3):
    """Edges from predictive entropies: ``G[j, k] = H(A_j | z_j, z_k, z_k') / H(A_j | z_j) < c``.

    h_reverse: [..., n, n] (``[j, k]``: predicting j's action from j's latent and k's
    transition); h_own: [..., n]. Knowing k's transition makes j's action more
    predictable exactly when j's action moved k. The diagonal is always on. ``eps``
    keeps the ratio near 1 when both entropies vanish (a deterministic agent).
    """
    n = h_own.shape[-1]
    ratio = (h_reverse + eps) / (h_own[..., :, None] + eps)
    return (ratio < threshold) | jnp.eye(n, dtype=bool)


def random_graph(key, shape: tuple[int, ...], n: int, p: float):
    """Erdos-Renyi control: every directed edge present with probability p, diagonal on. [*shape, n, n]."""
    return jax.random.bernoulli(key, p, (*shape, n, n)) | jnp.eye(n, dtype=bool)


def fixed_graph(kind: str, shape: tuple[int, ...], n: int):
    """``full`` (every agent linked: global credit) or ``identity`` (no links: local credit)."""
    base = jnp.ones((n, n), bool) if kind == "full" else jnp.eye(n, dtype=bool)
    return jnp.broadcast_to(base, (*shape, n, n))


def precision_recall(predicted, oracle, mask=None) -> tuple[float, float]:
    """Off-diagonal edge precision and recall of ``predicted`` against ``oracle`` ([..., n, n] bool)."""
    import numpy as np

    p, o = np.asarray(predicted, bool), np.asarray(oracle, bool)
    n = p.shape[-1]
    off = ~np.eye(n, dtype=bool)
    keep = off if mask is None else (np.asarray(mask, bool)[..., None, None] & off)
    tp = np.sum(p & o & keep)
    pp, op = np.sum(p & keep), np.sum(o & keep)
    return (float(tp / pp) if pp else float("nan"), float(tp / op) if op else float("nan"))

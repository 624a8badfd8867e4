"""Episode collection: ``n_envs`` whole episodes per call, as pymarl's parallel runner.

One ``lax.scan`` over the episode limit steps all envs together; an env that
finished is frozen and its remaining steps are marked unfilled, so every
stored episode starts at a reset (what recurrent agents and TD(lambda) need).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from credo.buffers.episode import EpisodeBatch
from credo.envs.core import check_actions
from credo.envs.wrappers import where_batch


class EpisodeStats(NamedTuple):
    """The outcome of each env's episode in one collection (one episode per env)."""

    returns: jax.Array  # [n_envs] team return of each episode
    lengths: jax.Array  # [n_envs] int32 steps taken
    won: jax.Array  # [n_envs] bool (False where the env reports no win)


def has_win_flag(env) -> bool:
    """Whether ``env`` reports a win (``info["won"]``, as SMAX does), read from the shapes of ``reset``
    without running it; the metrics rows then hold ``train_won`` and ``test_won``.
    """
    _, ts = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    return "won" in ts.info


def make_collector(env, learner, n_envs: int, greedy: bool = False, record=None):
    """``collect(params, key, epsilon) -> (EpisodeBatch [n_envs], EpisodeStats)``, pure and jittable.

    ``greedy`` collects with the execution policy (argmax of each agent's Q).
    ``record(env_state, next_env_state, timestep) -> pytree`` (optional) is called on
    every step with the env states before and after it and the timestep it returned; its
    outputs come back as
    a third result ``[n_envs, T, ...]``, zero on padding (on-policy learners record
    per-agent rewards and oracle graphs this way).
    """
    limit = env.episode_limit
    with_won = has_win_flag(env)

    def collect(params, key, epsilon):
        k_reset, k_run = jax.random.split(key)
        env_state, ts = jax.vmap(env.reset)(jax.random.split(k_reset, n_envs))
        hidden = learner.initial_hidden((n_envs,))
        last = jnp.zeros((n_envs, env.n_agents), jnp.int32)
        done = jnp.zeros((n_envs,), bool)
        won = jnp.zeros((n_envs,), bool)

        def step(carry, k):
            env_state, ts, hidden, last, done, won = carry
            k_act, k_env = jax.random.split(k)
            hidden, actions = learner.act(
                params, hidden, ts.obs, ts.state, ts.avail_actions, last, k_act, epsilon, greedy=greedy
            )
            new_state, new_ts = jax.vmap(env.step)(jax.random.split(k_env, n_envs), env_state, actions)
            filled = ~done
            extra = () if record is None else jax.vmap(record)(env_state, new_state, new_ts)
            extra = jax.tree.map(lambda x: where_batch(filled, x, jnp.zeros_like(x)), extra)
            rec = (
                ts.obs,
                ts.state,
                ts.avail_actions,
                actions,
                jnp.where(filled, new_ts.reward, 0.0),
                filled & new_ts.terminated,
                filled,
                extra,
            )
            if with_won:
                won = won | (filled & new_ts.info["won"])
            # A finished env keeps its final state; its later steps are padding.
            env_state = jax.tree.map(lambda a, b: where_batch(done, a, b), env_state, new_state)
            ts = jax.tree.map(lambda a, b: where_batch(done, a, b), ts, new_ts)
            done = done | new_ts.terminated | new_ts.truncated
            return (env_state, ts, hidden, actions, done, won), rec

        carry, rec = jax.lax.scan(
            step, (env_state, ts, hidden, last, done, won), jax.random.split(k_run, limit)
        )
        _, ts_last, _, _, _, won = carry
        obs, state, avail, actions, reward, terminated, filled, extra = jax.tree.map(
            lambda x: jnp.moveaxis(x, 0, 1), rec
        )
        batch = EpisodeBatch(
            obs=jnp.concatenate([obs, ts_last.obs[:, None]], 1),
            state=jnp.concatenate([state, ts_last.state[:, None]], 1),
            avail=jnp.concatenate([avail, ts_last.avail_actions[:, None]], 1),
            actions=actions,
            reward=reward,
            terminated=terminated,
            filled=filled,
        )
        stats = EpisodeStats(reward.sum(1), filled.sum(1).astype(jnp.int32), won)
        return (batch, stats) if record is None else (batch, stats, extra)

    return collect


def collect_host(
    envs: list,
    learner,
    act_fn,
    params,
    key,
    epsilon,
    episode_seeds: list[int],
    greedy: bool = False,
    record=None,
):
    """The same episodes from host envs stepped in Python (one episode per env).

    ``act_fn`` is the jitted ``learner.act``; returns NumPy ``EpisodeBatch`` and stats,
    and with ``record`` (called as ``record(None, None, timestep)``: host envs have no
    state to show) a third result as ``make_collector``'s.
    """
    n, spec = len(envs), learner.spec
    limit = spec.episode_limit
    tss = [e.reset(seed=s) for e, s in zip(envs, episode_seeds)]
    obs = np.zeros((n, limit + 1, spec.n_agents, spec.obs_dim), np.float32)
    state = np.zeros((n, limit + 1, spec.state_dim), np.float32)
    avail = np.zeros((n, limit + 1, spec.n_agents, spec.n_actions), bool)
    actions = np.zeros((n, limit, spec.n_agents), np.int32)
    reward = np.zeros((n, limit), np.float32)
    terminated = np.zeros((n, limit), bool)
    filled = np.zeros((n, limit), bool)
    won = np.zeros(n, bool)
    done = np.zeros(n, bool)
    hidden = learner.initial_hidden((n,))
    last = np.zeros((n, spec.n_agents), np.int32)
    records: dict[tuple[int, int], object] = {}
    for t in range(limit + 1):
        for i, ts in enumerate(tss):
            if t == 0 or filled[i, t - 1]:  # the observation after step t-1
                obs[i, t], state[i, t], avail[i, t] = ts.obs, ts.state, ts.avail_actions
            else:  # padding repeats the final observation, as the JAX collector does
                obs[i, t], state[i, t], avail[i, t] = obs[i, t - 1], state[i, t - 1], avail[i, t - 1]
        if t == limit or done.all():
            for u in range(t + 1, limit + 1):
                obs[:, u], state[:, u], avail[:, u] = obs[:, t], state[:, t], avail[:, t]
            break
        key, sub = jax.random.split(key)
        hidden, act = act_fn(
            params, hidden, obs[:, t], state[:, t], avail[:, t], last, sub, epsilon, greedy=greedy
        )
        act = np.asarray(act)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            ts = env.step(check_actions(env, act[i], avail[i, t]))
            tss[i] = ts
            actions[i, t], reward[i, t], filled[i, t] = act[i], ts.reward, True
            terminated[i, t] = bool(ts.terminated)
            won[i] |= bool(ts.info.get("won", False))
            if record is not None:
                records[i, t] = record(None, None, ts)
            done[i] = bool(ts.terminated) or bool(ts.truncated)
        last = act
    batch = EpisodeBatch(obs, state, avail, actions, reward, terminated, filled)
    stats = EpisodeStats(reward.sum(1), filled.sum(1).astype(np.int32), won)
    if record is None:
        return batch, stats
    template = jax.tree.map(np.zeros_like, next(iter(records.values())))
    rows = [
        jax.tree.map(lambda *xs: np.stack(xs), *[records.get((i, t), template) for t in range(limit)])
        for i in range(n)
    ]
    return batch, stats, jax.tree.map(lambda *xs: np.stack(xs), *rows)

"""Random-policy rollouts: a smoke test of any env and the core of the env benchmark."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from credo.envs.core import check_actions
from credo.envs.wrappers import VecAutoReset


@dataclass
class RolloutReport:
    """What ``random_rollout`` measured on env ``key``: throughput and statistics of the finished episodes."""

    key: str
    n_envs: int
    steps: int  # env steps in total (n_envs x steps per env)
    episodes: int
    mean_return: float  # mean team return of finished episodes (nan if none finished)
    mean_length: float
    steps_per_second: float  # compile excluded
    compile_seconds: float
    won: float | None = None  # fraction of finished episodes won, where the env reports it


def make_random_rollout(env, n_envs: int, steps: int):
    """A jitted ``rollout(key)`` of ``steps`` random available actions in ``n_envs`` envs.

    Returns per-step ``(episode_done, episode_return, episode_length, won)`` arrays
    of shape [steps, n_envs] (``won`` is False where the env has no win flag) and
    a checksum of every observation and state, so that XLA cannot skip computing
    them (a benchmark that drops them would flatter the env).
    """
    vec = VecAutoReset(env, n_envs)

    def rollout(key):
        k_reset, k_run = jax.random.split(key)
        state, ts = vec.reset(k_reset)

        def body(carry, key):
            state, ts, checksum = carry
            k_act, k_step = jax.random.split(key)
            logits = jnp.where(ts.avail_actions, 0.0, -jnp.inf)  # [n_envs, n_agents, n_actions]
            actions = jax.random.categorical(k_act, logits).astype(jnp.int32)
            state, ts = vec.step(k_step, state, actions)
            checksum = checksum + ts.obs.sum() + ts.state.sum()
            won = ts.info.get("won", jnp.zeros_like(ts.terminated))
            out = (ts.info["episode_done"], ts.info["episode_return"], ts.info["episode_length"], won)
            return (state, ts, checksum), out

        (_, _, checksum), outs = jax.lax.scan(body, (state, ts, 0.0), jax.random.split(k_run, steps))
        return outs, checksum

    return jax.jit(rollout)


def random_rollout(env, n_envs: int = 16, steps: int = 200, seed: int = 0) -> RolloutReport:
    """Runs random available actions and reports throughput and episode statistics."""
    if not getattr(env, "is_jax", True):
        return host_random_rollout(env, steps=n_envs * steps, seed=seed)
    rollout = make_random_rollout(env, n_envs, steps)
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    jax.block_until_ready(rollout(key))  # compile + first run
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    (done, ret, length, won), _ = jax.block_until_ready(rollout(jax.random.key(seed + 1)))
    elapsed = time.perf_counter() - t0
    compile_s -= elapsed  # the first call also ran once
    done = np.asarray(done)
    finished = int(done.sum())
    has_win = "won" in _info_keys(env)
    return RolloutReport(
        key=env.key,
        n_envs=n_envs,
        steps=n_envs * steps,
        episodes=finished,
        mean_return=float(np.asarray(ret)[done].mean()) if finished else float("nan"),
        mean_length=float(np.asarray(length)[done].mean()) if finished else float("nan"),
        steps_per_second=n_envs * steps / elapsed,
        compile_seconds=max(compile_s, 0.0),
        won=float(np.asarray(won)[done].mean()) if (finished and has_win) else None,
    )


def _info_keys(env) -> set:
    _, ts = jax.eval_shape(env.reset, jax.random.key(0))
    return set(ts.info)


def host_random_rollout(env, steps: int = 1000, seed: int = 0) -> RolloutReport:
    """The same report for a host env, stepped in Python."""
    rng = np.random.default_rng(seed)
    ts = env.reset(seed=seed)
    returns, lengths, wins = [], [], []
    ep_ret, ep_len = 0.0, 0
    t0 = time.perf_counter()
    for _ in range(steps):
        avail = np.asarray(ts.avail_actions, bool)
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in avail], np.int32)
        ts = env.step(check_actions(env, actions, avail))
        ep_ret += float(ts.reward)
        ep_len += 1
        if ts.terminated or ts.truncated:
            returns.append(ep_ret)
            lengths.append(ep_len)
            if "won" in ts.info:
                wins.append(bool(ts.info["won"]))
            ep_ret, ep_len = 0.0, 0
            ts = env.reset()
    elapsed = time.perf_counter() - t0
    return RolloutReport(
        key=env.key,
        n_envs=1,
        steps=steps,
        episodes=len(returns),
        mean_return=float(np.mean(returns)) if returns else float("nan"),
        mean_length=float(np.mean(lengths)) if lengths else float("nan"),
        steps_per_second=steps / elapsed,
        compile_seconds=0.0,
        won=float(np.mean(wins)) if wins else None,
    )

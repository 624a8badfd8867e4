"""Settings every training run has, whatever its learner: env, budget, seeds, evaluation, logging.

Evaluation policy (``test_greedy``, ``test_epsilon``): ``eval_policy(cfg, learner)``
turns them into the ``(greedy, epsilon)`` the engine passes to every learner's ``act``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import jax.numpy as jnp

from credo.config import NonNegativeInt, PositiveInt, Range, UnitInterval
from credo.engine.limits import (
    ENV_STEPS_WHY,
    MAX_ENV_STEPS,
    MAX_LOG_INTERVAL,
    MAX_N_ENVS,
    MAX_SEED,
)

LoggerName = Literal["csv", "tensorboard", "wandb"]  # the backends of credo.engine.loggers
# Ranges of the engine's counters (credo.engine.limits says how they were chosen).
EnvSteps = Annotated[int, Range(1, MAX_ENV_STEPS, why=ENV_STEPS_WHY)]
LogInterval = Annotated[
    int,
    Range(
        1,
        MAX_LOG_INTERVAL,
        why="a chunk is the unit of logs, progress and Ctrl-C: longer ones report too rarely",
    ),
]
EnvCount = Annotated[
    int,
    Range(
        1, MAX_N_ENVS, why="one iteration's env steps are counted in one int32 word before they are carried"
    ),
]
Seed = Annotated[int, Range(0, MAX_SEED, why="JAX keeps 32 bits of a seed: seed + i must stay below 2**32")]


@dataclass(frozen=True)
class RunConfig:
    """The fields the engine reads; learners' configs (``ValueConfig``, ``PPOConfig``) extend it."""

    algo: str = ""  # learner name, see `credo list`
    env: str = "lbf:Foraging-8x8-2p-3f-v3"  # env key, see `credo list`
    env_kwargs: dict = field(default_factory=dict)  # keyword arguments for the env
    total_env_steps: EnvSteps = 2_050_000  # training budget in env steps (EPyMARL's t_max)
    seeds: PositiveInt = 1  # independent seeds, trained together as a vmap axis
    seed: Seed = 0  # seed of the first run; run i uses seed + i
    n_envs: EnvCount = (
        1  # parallel envs per seed; one batch of whole episodes per iteration (EPyMARL batch_size_run)
    )
    # evaluation, logging, checkpoints
    test_interval: PositiveInt = 50_000  # env steps between evaluations
    test_episodes: PositiveInt = 100  # episodes per evaluation
    test_greedy: bool = True  # evaluation acts greedily (EPyMARL's default), or as in training if False: PPO and ME-IGM sample their stochastic policies (the dependence-graph authors: False); epsilon-greedy learners act with test_epsilon
    test_epsilon: UnitInterval = 0.0  # evaluation epsilon of epsilon-greedy learners, used whenever > 0, whatever test_greedy (EPyMARL: greedy, 0; the QLLM authors: 0.05); others ignore it
    log_interval: LogInterval = 10_000  # env steps per jitted chunk: the granularity of logs and progress
    save_interval: PositiveInt = (
        200_000  # env steps between checkpoints (also saved at the end and on Ctrl-C)
    )
    keep_snapshots: NonNegativeInt = 3  # parameters-only snapshots of the latest evaluations kept in checkpoints/params/ (0: none); best.npz, each seed's best evaluation, is always kept
    logger: list[LoggerName] = field(default_factory=list)  # copies of the metrics: csv, tensorboard, wandb
    plugins: list[str] = field(
        default_factory=list
    )  # modules imported before the run is built (user algorithms, mixers, envs); a run records those it used


def update_moments(stats, rewards, mask):
    """Chan et al.'s parallel update of (count, mean, M2) with the masked rewards."""
    count, mean, m2 = stats[0], stats[1], stats[2]
    m = mask.astype(jnp.float32)
    n = m.sum()
    batch_mean = jnp.sum(rewards * m) / jnp.maximum(n, 1.0)
    batch_m2 = jnp.sum(((rewards - batch_mean) * m) ** 2)
    total = count + n
    delta = batch_mean - mean
    mean = mean + delta * n / total
    m2 = m2 + batch_m2 + delta**2 * count * n / total
    return jnp.stack([total, mean, m2])


def eval_policy(cfg: RunConfig, learner) -> tuple[bool, float]:
    """``(greedy, epsilon)`` for the learner's ``act`` during evaluation.

    Epsilon-greedy learners (``learner.explores_with_epsilon``) act with ``test_epsilon``
    (greedy when it is 0, whatever ``test_greedy``); the others (PPO, ME-IGM) take the
    argmax if ``test_greedy`` and sample their policies otherwise, with epsilon unused.
    """
    eps = float(cfg.test_epsilon)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"test_epsilon must be in [0, 1], got {cfg.test_epsilon}.")
    if getattr(learner, "explores_with_epsilon", False):
        return bool(cfg.test_greedy and eps == 0.0), eps
    return bool(cfg.test_greedy), 0.0

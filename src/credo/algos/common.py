"""Settings every training run has, whatever its learner: env, budget, seeds, evaluation, logging."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import jax.numpy as jnp

LoggerName = Literal["csv", "tensorboard", "wandb"]  # the backends of credo.engine.loggers


@dataclass(frozen=True)
class RunConfig:
    """The fields the engine reads; learners' configs (``ValueConfig``, ``PPOConfig``) extend it."""

    algo: str = ""  # learner name, see `credo list`
    env: str = "lbf:Foraging-8x8-2p-3f-v3"  # env key, see `credo list`
    env_kwargs: dict = field(default_factory=dict)  # keyword arguments for the env
    total_env_steps: int = 2_050_000  # training budget in env steps (EPyMARL's t_max)
    seeds: int = 1  # independent seeds, trained together as a vmap axis
    seed: int = 0  # seed of the first run; run i uses seed + i
    n_envs: int = (
        1  # parallel envs per seed; one batch of whole episodes per iteration (EPyMARL batch_size_run)
    )
    # evaluation, logging, checkpoints
    test_interval: int = 50_000  # env steps between greedy evaluations
    test_episodes: int = 100  # episodes per evaluation
    log_interval: int = 10_000  # env steps per jitted chunk: the granularity of logs and progress
    save_interval: int = 200_000  # env steps between checkpoints (also saved at the end and on Ctrl-C)
    logger: list[LoggerName] = field(default_factory=list)  # copies of the metrics: csv, tensorboard, wandb


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

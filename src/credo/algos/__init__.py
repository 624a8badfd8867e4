"""Learners. ``make_learner(cfg, spec)`` picks the one for ``cfg.algo``; ``config_class(algo)`` its config."""

from __future__ import annotations

from credo.algos.common import RunConfig
from credo.algos.me_igm import MaxEntLearner
from credo.algos.ppo import PPO_ALGOS, PPOConfig, PPOLearner
from credo.algos.value import ValueConfig, ValueLearner


def config_class(algo: str) -> type:
    """The config dataclass of an algorithm: PPOConfig (policy gradient), RICOLConfig (LLM policies), else ValueConfig."""
    from credo.ricl.ricol import RICOL_ALGOS, RICOLConfig

    if algo in RICOL_ALGOS:
        return RICOLConfig
    return PPOConfig if algo in PPO_ALGOS else ValueConfig


def make_learner(cfg: RunConfig, spec, env=None):
    """PPO for ippo/mappo(-dg), maximum-entropy (ME-IGM) for ``me-*``, plain value decomposition otherwise.

    ``env`` gives learners that can use more than the spec (a learned dependence graph
    reads the env's per-agent substates) what they need.
    """
    if cfg.algo in PPO_ALGOS:
        return PPOLearner(cfg, spec, env)
    return MaxEntLearner(cfg, spec) if cfg.algo.startswith("me-") else ValueLearner(cfg, spec)


__all__ = [
    "MaxEntLearner",
    "PPOConfig",
    "PPOLearner",
    "RunConfig",
    "ValueConfig",
    "ValueLearner",
    "config_class",
    "make_learner",
]

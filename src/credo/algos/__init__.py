"""Learners. ``make_learner(cfg, spec)`` picks the one for ``cfg.algo``."""

from __future__ import annotations

from credo.algos.me_igm import MaxEntLearner
from credo.algos.value import ValueConfig, ValueLearner


def make_learner(cfg: ValueConfig, spec) -> ValueLearner:
    """Maximum-entropy (ME-IGM) for ``me-*`` algorithms, plain value decomposition otherwise."""
    return MaxEntLearner(cfg, spec) if cfg.algo.startswith("me-") else ValueLearner(cfg, spec)


__all__ = ["MaxEntLearner", "ValueConfig", "ValueLearner", "make_learner"]

"""Learners. ``make_learner(cfg, spec)`` picks the one for ``cfg.algo``; ``config_class(algo)`` its config.

Algorithms live in a registry (``credo.algos.registry``): credo's are registered here, a plugin's
with ``credo.register_algo``.
"""

from __future__ import annotations

from pathlib import Path

from credo.algos.common import RunConfig
from credo.algos.me_igm import MaxEntConfig, MaxEntLearner
from credo.algos.ppo import PPO_ALGOS, PPOConfig, PPOLearner
from credo.algos.registry import algorithms, get_algo, register_algo
from credo.algos.value import ValueConfig, ValueLearner
from credo.protocols import check_learner

_CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "algos"

# name -> one line for `credo list` and `credo train --help`
BUILTIN_ALGORITHMS = {
    "iql": "independent Q-learning (no mixer)",
    "vdn": "value decomposition networks: Q_tot = sum Q_i",
    "qmix": "monotone mixing by hypernetworks",
    "qplex": "duelling mixing, IGM-complete",
    "qllm": "a credit function written by an LLM (or by hand) in place of the mixer: --set tfcaf=PATH",
    "me-qmix": "ME-IGM on QMIX: soft policies through order-preserving transformations",
    "me-qplex": "ME-IGM on QPLEX",
    "ippo": "independent PPO: per-agent critics on local observations (reward_mode=global|local)",
    "mappo": "multi-agent PPO: a centralised critic on the global state (reward_mode=global|local)",
    "ippo-dg": "IPPO with dependence-graph credit over local rewards",
    "mappo-dg": "MAPPO with dependence-graph credit over local rewards",
    "ricol": "an LLM policy fine-tuned on RICL's in-context credit (text envs: keydoor, babyai:<task>)",
    "rwr": "an LLM policy fine-tuned by reward-weighted regression on whole episodes (text envs)",
    "reflexion": "an LLM policy with trajectory-level lessons in its prompt, no training (text envs)",
}
RICOL_ALGOS = ("ricol", "rwr", "reflexion")  # credo.ricl.ricol.RICOL_ALGOS, without importing it


def _value_learner(cfg, spec, env=None):
    return MaxEntLearner(cfg, spec) if cfg.algo.startswith("me-") else ValueLearner(cfg, spec)


def _ppo_learner(cfg, spec, env=None):
    return PPOLearner(cfg, spec, env)


def _register_builtins() -> None:
    from credo.ricl.ricol import RICOLConfig

    for name, doc in BUILTIN_ALGORITHMS.items():
        if name in RICOL_ALGOS:
            config, learner = RICOLConfig, None
        elif name in PPO_ALGOS:
            config, learner = PPOConfig, _ppo_learner
        elif name.startswith("me-"):
            config, learner = MaxEntConfig, _value_learner
        else:
            config, learner = ValueConfig, _value_learner
        register_algo(
            name, config=config, learner=learner, doc=doc, defaults=_CONFIGS / f"{name}.yaml", module="credo"
        )


_register_builtins()


def config_class(algo: str) -> type:
    """The config dataclass of an algorithm (PPOConfig, ValueConfig, RICOLConfig, or a plugin's)."""
    return get_algo(algo).config


def make_learner(cfg: RunConfig, spec, env=None):
    """The learner of ``cfg.algo`` for an env with ``spec``: PPO for ippo/mappo(-dg), maximum
    entropy (ME-IGM) for ``me-*``, value decomposition for the rest, or a plugin's.

    ``env`` gives learners that can use more than the spec (a learned dependence graph reads the
    env's per-agent substates) what they need. A plugin's learner is checked against
    ``credo.protocols.Learner`` here, with a message naming what it lacks.
    """
    entry = get_algo(cfg.algo)
    if entry.learner is None:
        raise ValueError(
            f"{cfg.algo} runs LLM policies on text envs, not on the JAX engine: use credo train."
        )
    learner = entry.learner(cfg, spec, env)
    if entry.module != "credo":
        check_learner(learner, cfg.algo)
    return learner


__all__ = [
    "BUILTIN_ALGORITHMS",
    "MaxEntConfig",
    "MaxEntLearner",
    "PPOConfig",
    "PPOLearner",
    "RunConfig",
    "ValueConfig",
    "ValueLearner",
    "algorithms",
    "config_class",
    "get_algo",
    "make_learner",
    "register_algo",
]

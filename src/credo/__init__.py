"""credo: credit assignment in reinforcement learning, on one fast JAX engine.

The public API (``docs/api.md``)::

    import credo
    run = credo.train("qmix", "lbf:Foraging-8x8-2p-3f-v3", steps=200_000, seeds=3)
    run.summary, run.metrics(seed=0), run.evaluate(episodes=100, snapshot="best")
    run = credo.load_run("runs/qmix-...").resume(steps=400_000)
    env = credo.make_env("mpe:simple_spread")

Plugins register their parts with ``credo.register_algo``, ``credo.register_mixer`` and
``credo.register_env_family`` (``credo.plugins`` says how credo finds them). Names are loaded on
first use, so ``import credo`` does not start JAX.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "train": "credo.api",
    "resume": "credo.api",
    "load_run": "credo.api",
    "make_config": "credo.api",
    "make_env": "credo.api",
    "Run": "credo.api",
    "register_algo": "credo.algos.registry",
    "algorithms": "credo.algos.registry",
    "register_mixer": "credo.mixers",
    "register_env_family": ("credo.envs.registry", "register_family"),
    "Family": "credo.envs.registry",
    "EnvSpec": "credo.envs.core",
    "Learner": "credo.protocols",
    "describe": "credo.config",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    target = _EXPORTS.get(name)
    if target is None:
        if name in ("envs", "algos", "engine", "config", "stats", "study", "mixers"):
            return importlib.import_module(f"credo.{name}")  # subpackages, as `import credo; credo.envs`
        raise AttributeError(f"module 'credo' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    if module == "credo.algos.registry":
        importlib.import_module("credo.algos")  # credo's own algorithms are registered there
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return __all__

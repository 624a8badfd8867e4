"""Single-agent text environments for LLM policies (RICL / RICOL, paper 003 chapter 3).

>>> from credo.envs.text import make_text_env
>>> env = make_text_env("keydoor", length=10)
>>> obs, info = env.reset(seed=0)
>>> obs["text"].startswith("Your goal is to open the locked door.")
True

``keydoor`` is the 1D Key-Door corridor with its exact solver
(``credo.envs.text.keydoor``); ``babyai:<task>`` is BabyAI in text
(``credo.envs.text.babyai``, needs ``minigrid``). Both modules are imported on
first use, so importing this package needs neither gymnasium nor minigrid.
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

TEXT_ENVS: tuple[str, ...] = (
    "keydoor",
    "babyai:goto",
    "babyai:pickup",
    "babyai:pick_up_seq_go_to",
    "babyai:open",
)


def make_text_env(name: str, **kwargs):
    """Builds the text env ``name`` (one of ``TEXT_ENVS``) with ``kwargs``.

    ``keydoor`` takes ``length`` and ``max_steps``; ``babyai:<task>`` takes
    ``max_steps`` and ``render_mode``.
    """
    if name == "keydoor":
        return _load("keydoor", "gymnasium").KeyDoorEnv(**kwargs)
    if name in TEXT_ENVS:
        return _load("babyai", "minigrid").BabyAITextEnv(task=name.split(":", 1)[1], **kwargs)
    close = difflib.get_close_matches(str(name), TEXT_ENVS, n=1, cutoff=0.0)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown text env {name!r}. Known text envs: {', '.join(TEXT_ENVS)}.{hint}")


def _load(module: str, package: str) -> ModuleType:
    """Imports ``credo.envs.text.<module>``, turning a missing ``package`` into an install hint."""
    try:
        return importlib.import_module(f"credo.envs.text.{module}")
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] not in (package, "gymnasium"):
            raise
        missing = err.name.split(".")[0]
        raise ModuleNotFoundError(
            f"the text env needs the package {missing!r}, which is not installed. "
            f"Install it with `pip install {missing}`.",
            name=missing,
        ) from err


def _family():
    from credo.envs.registry import Family

    def build(name, **kwargs):
        from credo.envs.text.symbolic import build as build_symbolic

        return build_symbolic(name, **kwargs)

    def names():
        return [n.replace(":", "-") for n in TEXT_ENVS]

    return Family(
        prefix="text",
        build=build,
        names=names,
        kwargs=lambda name: ["max_steps", "episode_limit"] + (["length"] if name == "keydoor" else []),
        doc="text envs' symbolic observations, one agent (host, NumPy): the PPO baseline of RICOL; reward 1 on success",
        install_hint="pip install 'credo[text]'",
        requires=("gymnasium",),
    )


FAMILY = _family()
FAMILIES = [FAMILY]

__all__ = ["FAMILIES", "TEXT_ENVS", "make_text_env"]

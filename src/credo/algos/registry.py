"""The algorithms ``credo train ALGO`` knows: credo's own and those plugins register.

An algorithm is a name, a config dataclass, a learner factory ``(cfg, spec, env) -> Learner``
(``credo.protocols.Learner``) and its default settings (a YAML file, or a mapping). Built-ins are
registered by ``credo.algos``; a plugin calls ``credo.register_algo`` (or ``register_mixer`` with
``algo=True`` for a value-decomposition method that is only a new mixer).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Algorithm:
    """A registered algorithm, as ``register_algo`` records it (``algorithms()`` lists them)."""

    name: str
    doc: str  # one line, shown by `credo list` and `credo train --help`
    config: type  # its config dataclass (a RunConfig subclass for learners on the engine)
    learner: Callable[..., Any] | None  # (cfg, spec, env) -> Learner; None: not on the JAX engine (RICOL)
    defaults: Path | Mapping[str, Any] | None  # its default settings, the first config layer
    module: str = "credo"  # the module that registered it: a run records plugins' modules


_ALGORITHMS: dict[str, Algorithm] = {}


class UnknownAlgorithm(ValueError):
    """An algorithm name that is not registered; the message names close matches and how to load a
    plugin's algorithm."""


def register_algo(
    name: str,
    *,
    config: type,
    learner: Callable[..., Any] | None,
    doc: str = "",
    defaults: str | Path | Mapping[str, Any] | None = None,
    module: str | None = None,
) -> Algorithm:
    """Adds (or replaces) algorithm ``name``; returns its entry.

    ``config``: a dataclass of its settings, usually a subclass of ``ValueConfig`` or ``PPOConfig``
    (every field needs a default and a comment, shown by ``credo train NAME --help``).
    ``learner(cfg, spec, env)`` builds its learner for a run (``credo.protocols.Learner``; checked
    when first built). ``defaults``: a YAML file or a mapping, the first config layer.
    """
    import dataclasses

    if not isinstance(name, str) or not name or any(c.isspace() or c in ":/" for c in name):
        raise ValueError(f"an algorithm name is one word without ':' or '/', got {name!r}.")
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise TypeError(f"algorithm {name!r}: config must be a dataclass, got {config!r}.")
    if learner is not None and not callable(learner):
        raise TypeError(f"algorithm {name!r}: learner must be a callable (cfg, spec, env) -> Learner.")
    if isinstance(defaults, str):
        defaults = Path(defaults)
    if isinstance(defaults, Path) and not defaults.is_file():
        raise ValueError(f"algorithm {name!r}: its defaults file {defaults} does not exist.")
    if module is None:
        module = getattr(learner, "__module__", None) or config.__module__
    entry = Algorithm(
        name, doc.strip().splitlines()[0] if doc.strip() else "", config, learner, defaults, module
    )
    _ALGORITHMS[name] = entry
    return entry


def algorithms() -> dict[str, Algorithm]:
    """Every registered algorithm by name, credo's first."""
    return dict(_ALGORITHMS)


def get_algo(name: str) -> Algorithm:
    """The algorithm ``name``; UnknownAlgorithm (a ValueError) naming close matches otherwise."""
    if name in _ALGORITHMS:
        return _ALGORITHMS[name]
    close = difflib.get_close_matches(str(name), list(_ALGORITHMS), n=2)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownAlgorithm(
        f"unknown algorithm {name!r}.{hint} Algorithms: {', '.join(_ALGORITHMS)}. A plugin's algorithm "
        "needs its module imported: --import MODULE, or an entry point in the 'credo.algos' group."
    )

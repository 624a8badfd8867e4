"""``credo.envs.make("family:name", **kwargs)``: one registry for every env.

A family is a prefix (``matrix``, ``lbf``, ``mpe``, ``smax``, ``pettingzoo``,
``gym``) with a builder. Builders of optional families import their packages
lazily, so ``import credo`` never needs jaxmarl or PettingZoo. Adding a family is
one ``register_family`` call.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field


class EnvKeyError(ValueError):
    """An env key or keyword argument that the registry cannot build."""


@dataclass(frozen=True)
class Family:
    """An env family: the envs under one key prefix, as ``credo.register_env_family`` takes it.

    ``build(name, **kwargs)`` returns a ``MultiAgentEnv`` or ``HostEnv`` for the part of the key after
    ``prefix:``; ``names()`` lists the names ``credo list`` shows and close-match suggestions draw on
    (a family may build names not listed); ``kwargs(name)`` lists the keyword arguments ``make``
    accepts for a name, others raise ``EnvKeyError``. ``doc`` is the family's line in ``credo list``.
    When a module in ``requires`` cannot be found, ``make`` raises ``EnvKeyError`` with ``install_hint``.
    """

    prefix: str
    build: Callable[..., object]  # build(name, **kwargs) -> env
    names: Callable[[], list[str]]  # names shown by `credo list` and used for suggestions
    kwargs: Callable[[str], list[str]]  # accepted keyword arguments for a name
    doc: str
    install_hint: str = ""  # what to install when the family's package is missing
    requires: tuple[str, ...] = field(default_factory=tuple)  # importable modules it needs


_FAMILIES: dict[str, Family] = {}


_MODULES: dict[str, str] = {}  # prefix -> the module that registered it (plugins are recorded in runs)


def register_family(family: Family, module: str | None = None) -> None:
    """Adds (or replaces) an env family under its prefix.

    ``module``: the module a run must import to rebuild the family (default: the module of its
    ``build`` function); a run using a plugin's family records it in its config.yaml.
    """
    if not isinstance(family, Family):
        raise TypeError(f"register_family takes a credo.envs.registry.Family, got {type(family).__name__}.")
    if not family.prefix or ":" in family.prefix or any(c.isspace() for c in family.prefix):
        raise ValueError(f"an env family prefix is one word without ':', got {family.prefix!r}.")
    for part in ("build", "names", "kwargs"):
        if not callable(getattr(family, part)):
            raise TypeError(f"env family {family.prefix!r}: {part} must be callable.")
    _FAMILIES[family.prefix] = family
    _MODULES[family.prefix] = module or getattr(family.build, "__module__", "") or ""


def family_module(prefix: str) -> str:
    """The module that registered env family ``prefix`` ('' if none is known)."""
    return _MODULES.get(prefix, "")


def families() -> dict[str, Family]:
    """The registered families by prefix (a copy: registering goes through ``register_family``)."""
    return dict(_FAMILIES)


def suggest(word: str, options: list[str]) -> str:
    """' Did you mean ...?' with the close matches of ``word``, or an empty string."""
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def split_key(key: str) -> tuple[Family, str]:
    """The family and name of env key ``"family:name"`` (split at the first ``:``).

    Raises ``EnvKeyError`` for a key without ``:`` or with an unknown family, suggesting close matches.
    """
    if not isinstance(key, str) or ":" not in key:
        raise EnvKeyError(
            f"env key {key!r} must look like 'family:name', for example "
            f"'lbf:Foraging-8x8-2p-3f-v3'. Families: {', '.join(sorted(_FAMILIES))}."
            + (suggest(str(key), all_featured_keys()))
        )
    prefix, name = key.split(":", 1)
    if prefix not in _FAMILIES:
        raise EnvKeyError(
            f"unknown env family {prefix!r} in {key!r}. Families: {', '.join(sorted(_FAMILIES))}."
            + suggest(prefix, sorted(_FAMILIES))
        )
    return _FAMILIES[prefix], name


def _check_requirements(family: Family) -> None:
    # find_spec, not import: importing jaxmarl takes seconds and prints to stdout.
    for module in family.requires:
        if importlib.util.find_spec(module) is None:
            raise EnvKeyError(
                f"env family {family.prefix!r} needs the package {module!r}, which is not installed. "
                f"{family.install_hint}"
            )


def make(key: str, **kwargs):
    """Builds the env registered under ``key`` ("family:name") with ``kwargs``.

    Unknown keys and keyword arguments raise ``EnvKeyError`` naming close matches.
    """
    family, name = split_key(key)
    _check_requirements(family)
    accepted = family.kwargs(name)
    for k in kwargs:
        if k not in accepted:
            raise EnvKeyError(
                f"{key!r} does not take keyword argument {k!r}.{suggest(k, accepted)} "
                f"Accepted: {', '.join(accepted) if accepted else 'none'}."
            )
    env = family.build(name, **kwargs)
    env.key = key
    return env


def all_featured_keys() -> list[str]:
    """Every listed ``family:name`` key (each family's ``names()``), sorted by family: for suggestions."""
    return [f"{p}:{n}" for p, f in sorted(_FAMILIES.items()) for n in f.names()]


def unknown_name(family: Family, name: str, detail: str = "") -> EnvKeyError:
    """The error for a name a family does not know, with suggestions."""
    listed = family.names()
    return EnvKeyError(
        f"unknown {family.prefix} env {name!r}. {detail}".rstrip()
        + suggest(name, listed)
        + (f" Known: {', '.join(listed[:12])}{' ...' if len(listed) > 12 else ''}." if listed else "")
    )

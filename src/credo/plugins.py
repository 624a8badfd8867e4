"""User plugins: algorithms, mixers and env families from the user's own package.

A plugin is a module that registers what it adds when imported::

    # mypkg/credo_plugin.py
    import credo
    credo.register_mixer("summax", SumMaxMixer, algo=True)   # a mixer, trainable as `credo train summax`
    credo.register_env_family(Family(prefix="grid", ...))     # an env family: `credo train vdn grid:small`

credo imports it (1) from the entry points of installed packages, groups ``credo.algos``,
``credo.mixers`` and ``credo.envs`` (``[project.entry-points."credo.mixers"] summax =
"mypkg.credo_plugin"``), at every command; (2) from ``--import MODULE``; (3) from a config file's
``plugins: [MODULE]``. A run records the plugin modules it used in its ``config.yaml``
(``plugins``), so ``credo eval``, ``--resume`` and sweeps import them again, and say which is
missing when one cannot be imported.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

GROUPS = ("credo.algos", "credo.mixers", "credo.envs")
_loaded_entry_points = False


class PluginError(ValueError):
    """A plugin module that cannot be imported or registers something malformed."""


def import_plugins(modules: Iterable[str], why: str = "") -> None:
    """Imports each module (registering what it adds); PluginError naming the module otherwise."""
    for module in modules:
        if not isinstance(module, str) or not module.strip():
            raise PluginError(f"a plugin is a module name such as 'mypkg.credo_plugin', got {module!r}.")
        if module in sys.modules:
            continue
        try:
            importlib.import_module(module)
        except ImportError as err:
            because = f" ({why})" if why else ""
            raise PluginError(
                f"plugin module {module!r}{because} cannot be imported: {type(err).__name__}: {err}. "
                "Install its package, or put it on PYTHONPATH."
            ) from None
        except Exception as err:  # noqa: BLE001 - a plugin's own bug: name the plugin, keep one line
            raise PluginError(
                f"plugin module {module!r} failed while importing: {type(err).__name__}: {err}"
            ) from err


def load_entry_points() -> list[str]:
    """Imports the plugins installed packages declare (once per process); returns their names."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return []
    _loaded_entry_points = True
    from importlib.metadata import entry_points

    names = []
    for group in GROUPS:
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
            except Exception as err:  # noqa: BLE001 - one broken plugin must not stop credo
                print(
                    f"credo: warning: plugin {ep.name!r} ({ep.value}, entry point group {group}) failed to "
                    f"load: {type(err).__name__}: {err}",
                    file=sys.stderr,
                )
                continue
            if callable(obj) and not isinstance(obj, type) and ":" in ep.value:
                obj()  # "pkg.module:register": a function that registers
            names.append(ep.value)
    return names


def modules_for(cfg) -> list[str]:
    """The plugin modules that registered ``cfg``'s algorithm, mixer and env family (not credo's)."""
    from credo.algos.registry import algorithms
    from credo.envs.registry import family_module
    from credo.mixers import mixer_module

    found = []
    algo = algorithms().get(getattr(cfg, "algo", ""))
    if algo is not None:
        found.append(algo.module)
    mixer = getattr(cfg, "mixer", None)
    if isinstance(mixer, str):
        found.append(mixer_module(mixer))
    env = getattr(cfg, "env", "")
    if isinstance(env, str) and ":" in env:
        found.append(family_module(env.split(":", 1)[0]))
    return [
        m for m in dict.fromkeys(found) if m and m not in ("__main__", "credo") and not m.startswith("credo.")
    ]

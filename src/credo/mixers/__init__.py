"""Mixers: ``mixer(agent_qs [..., n_agents], state [..., state_dim]) -> q_tot [...]``.

Every mixer is a flax module called as
``mixer.apply(params, agent_qs, state, max_qs=None, actions_onehot=None)``; the
keyword context (each agent's greedy value and the one-hot joint action) is
ignored by all but the mixers that need it (QPLEX). A new mixer in credo is one
file and one line in ``MIXERS``; a user's is ``credo.register_mixer(name, Mixer)``
(``credo.protocols`` has the contract).
"""

from __future__ import annotations

from credo.mixers.qmix import QMixer
from credo.mixers.qplex import QPLEXMixer
from credo.mixers.tfcaf import TFCAFMixer, make_tfcaf_mixer
from credo.mixers.vdn import VDNMixer

# name -> module class, or a factory with the same signature (tfcaf loads and checks a file first)
MIXERS = {"vdn": VDNMixer, "qmix": QMixer, "qplex": QPLEXMixer, "tfcaf": make_tfcaf_mixer}


_MODULES: dict[str, str] = {}  # name -> module of a plugin's mixer (recorded in its runs' config.yaml)


def register_mixer(name: str, factory, *, algo: bool = False, doc: str = "") -> None:
    """Adds mixer ``name``: a Flax module class (or factory) built as
    ``factory(n_agents=, state_dim=, n_actions=, **mixer_kwargs)`` and applied as
    ``mixer.apply(params, agent_qs, state, max_qs=None, actions_onehot=None)``.

    Then ``--set mixer=NAME`` selects it for any value learner; ``algo=True`` also registers an
    algorithm ``NAME`` (the value learner with this mixer and credo's QMIX defaults otherwise), so
    ``credo train NAME ENV`` runs and labels it by its own name.
    """
    from credo.protocols import check_mixer

    if not isinstance(name, str) or not name or name == "none" or any(c.isspace() for c in name):
        raise ValueError(f"a mixer name is one word other than 'none', got {name!r}.")
    check_mixer(factory, name)
    MIXERS[name] = factory
    module = getattr(factory, "__module__", "") or ""
    _MODULES[name] = module
    if algo:
        from pathlib import Path

        from credo.algos import ValueConfig, get_algo, register_algo

        qmix = get_algo("qmix")
        defaults = dict(_yaml(Path(qmix.defaults)), mixer=name)
        register_algo(
            name,
            config=ValueConfig,
            learner=qmix.learner,
            doc=doc or f"value decomposition with the {name} mixer (a plugin: {module})",
            defaults=defaults,
            module=module,
        )


def _yaml(path) -> dict:
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    data.pop("algo", None)
    return data


def mixer_module(name: str) -> str:
    """The module that registered mixer ``name`` ('' for credo's)."""
    return _MODULES.get(name, "")


def make_mixer(name: str | None, n_agents: int, state_dim: int, n_actions: int, **kwargs):
    """The mixer module registered as ``name`` (None means independent learners: no mixer)."""
    if name is None or name == "none":
        return None
    if name not in MIXERS:
        import difflib

        close = difflib.get_close_matches(name, list(MIXERS), n=2)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown mixer {name!r}.{hint} Mixers: {', '.join(MIXERS)}, or none.")
    return MIXERS[name](n_agents=n_agents, state_dim=state_dim, n_actions=n_actions, **kwargs)


__all__ = [
    "MIXERS",
    "QMixer",
    "QPLEXMixer",
    "TFCAFMixer",
    "VDNMixer",
    "make_mixer",
    "mixer_module",
    "register_mixer",
]

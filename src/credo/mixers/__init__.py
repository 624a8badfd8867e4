"""Mixers: ``mixer(agent_qs [..., n_agents], state [..., state_dim]) -> q_tot [...]``.

Every mixer is a flax module called as
``mixer.apply(params, agent_qs, state, max_qs=None, actions_onehot=None)``; the
keyword context (each agent's greedy value and the one-hot joint action) is
ignored by all but the mixers that need it (QPLEX). A new mixer is one file and
one line in ``MIXERS``.
"""

from __future__ import annotations

from credo.mixers.qmix import QMixer
from credo.mixers.qplex import QPLEXMixer
from credo.mixers.tfcaf import TFCAFMixer, make_tfcaf_mixer
from credo.mixers.vdn import VDNMixer

# name -> module class, or a factory with the same signature (tfcaf loads and checks a file first)
MIXERS = {"vdn": VDNMixer, "qmix": QMixer, "qplex": QPLEXMixer, "tfcaf": make_tfcaf_mixer}


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


__all__ = ["MIXERS", "QMixer", "QPLEXMixer", "TFCAFMixer", "VDNMixer", "make_mixer"]

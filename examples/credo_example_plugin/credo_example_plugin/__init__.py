"""An example credo plugin: one mixer and one env family, registered when this module is imported.

Use it without installing (``credo train --import credo_example_plugin maxsum rendezvous:line-5``
with this directory on PYTHONPATH), or ``pip install -e examples/credo_example_plugin``: its entry
points then make credo import it at every command. ``docs/plugins.md`` walks through it.
"""

from __future__ import annotations

import credo
from credo.envs.registry import Family, unknown_name
from credo_example_plugin.mixer import MaxSumMixer
from credo_example_plugin.rendezvous import Rendezvous

credo.register_mixer("maxsum", MaxSumMixer, algo=True, doc="Q_tot = sum Q_i + w(s) max Q_i (example plugin)")


def _build(name: str, length: int | None = None) -> Rendezvous:
    sizes = {"line-5": 5, "line-9": 9}
    if name not in sizes:
        raise unknown_name(FAMILY, name)
    return Rendezvous(length or sizes[name])


FAMILY = Family(
    prefix="rendezvous",
    build=_build,
    names=lambda: ["line-5", "line-9"],
    kwargs=lambda name: ["length"],
    doc="two agents on a line must meet; reward 1 when they share a cell (example plugin)",
)
credo.register_env_family(FAMILY)

"""Multi-agent environments behind one array protocol; see ``credo.envs.core``.

>>> import jax, credo.envs as envs
>>> env = envs.make("lbf:Foraging-8x8-2p-3f-v3")
>>> state, ts = env.reset(jax.random.key(0))
>>> ts.obs.shape  # [n_agents, obs_dim]
(2, 15)
"""

from credo.envs import matrix as _matrix
from credo.envs.core import EnvSpec, HostEnv, MultiAgentEnv, TimeStep, check_actions
from credo.envs.registry import EnvKeyError, families, make, register_family
from credo.envs.wrappers import AutoReset

register_family(_matrix.FAMILY)

for _module in ("lbf", "jaxmarl_adapter", "host", "text"):
    try:
        _mod = __import__(f"credo.envs.{_module}", fromlist=["FAMILIES"])
    except ModuleNotFoundError as _err:  # a family module still being written
        if _err.name != f"credo.envs.{_module}":
            raise
        continue
    for _family in getattr(_mod, "FAMILIES", ()):
        register_family(_family)

__all__ = [
    "AutoReset",
    "EnvKeyError",
    "EnvSpec",
    "HostEnv",
    "MultiAgentEnv",
    "TimeStep",
    "check_actions",
    "families",
    "make",
    "register_family",
]

"""A text env's symbolic observation as a one-agent env of credo's host protocol: the PPO-with-an-MLP baseline.

``SymbolicTupleEnv`` wraps ``make_text_env(name)`` as a gymnasium env with one-entry
``Tuple`` spaces (what ``credo.envs.host.GymEnv`` expects of a multi-agent env):
the observation is the env's ``symbolic`` vector, the action its index. The
reward is 1 on success and 0 otherwise, so a run's test return is its success
rate (BabyAI's own reward, ``1 - 0.9 t / T``, is in ``info["env_reward"]``).
Registered as the env family ``text`` (``text:keydoor``, ``text:babyai-goto``):

    credo train ippo text:babyai-goto --set share_params=true
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

from credo.envs.text import make_text_env


class SymbolicTupleEnv(gymnasium.Env):
    """Text env ``name`` as a one-agent gymnasium env with ``Tuple`` spaces: the ``symbolic`` observation
    (float32 in [0, 1]) and the action index; reward 1 on success, else 0. ``kwargs`` go to
    ``make_text_env``.
    """

    def __init__(self, name: str, **kwargs):
        self.env = make_text_env(name, **kwargs)
        box = self.env.observation_space["symbolic"]
        self.observation_space = spaces.Tuple((spaces.Box(0.0, 1.0, box.shape, np.float32),))
        self.action_space = spaces.Tuple((spaces.Discrete(int(self.env.action_space.n)),))
        self.max_episode_steps = int(getattr(self.env, "max_steps", 0) or self.env.unwrapped.max_steps)

    def reset(self, *, seed=None, options=None):
        """Resets the text env; returns ``((symbolic observation,), info)``."""
        obs, info = self.env.reset(seed=seed, options=options)
        return (obs["symbolic"].astype(np.float32),), info

    def step(self, actions):
        """Steps with ``actions[0]``; returns the gymnasium 5-tuple with the success reward (0 or 1) and the
        env's own reward in ``info["env_reward"]``.
        """
        obs, reward, terminated, truncated, info = self.env.step(int(actions[0]))
        success = bool(info.get("success"))
        return (
            (obs["symbolic"].astype(np.float32),),
            float(success),
            terminated,
            truncated,
            {**info, "env_reward": reward},
        )

    def close(self):
        """Closes the wrapped text env."""
        self.env.close()


def build(name: str, episode_limit: int | None = None, **kwargs):
    """The ``text`` family's builder: ``name`` (``keydoor``, ``babyai-<task>``) as a ``GymEnv`` whose episode
    limit defaults to the text env's ``max_steps``; ``EnvKeyError`` for a name the family does not list.
    """
    from credo.envs.host import GymEnv
    from credo.envs.registry import unknown_name
    from credo.envs.text import FAMILY

    if name not in FAMILY.names():
        raise unknown_name(FAMILY, name)
    env = SymbolicTupleEnv(name.replace("babyai-", "babyai:"), **kwargs)
    return GymEnv(env, episode_limit or env.max_episode_steps)

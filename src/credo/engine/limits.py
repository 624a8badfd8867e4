"""Limits that the engine's counters put on a run's settings, importable without JAX.

The config classes name them in their fields' ranges and the CLI checks its arguments against them
before anything heavy starts. Raise them together with the counters' types.
"""

from __future__ import annotations

# TrainState.env_steps and .episodes (engine/train.py) are wide counters: two int32 words, high
# and low, with 2**61 steps of room. Within a chunk the low word grows by one iteration's steps
# before it is carried, so an iteration (n_envs episodes) and a chunk (log_interval env steps)
# must stay well below 2**30: the caps leave room for episodes of up to 50,000 steps at
# MAX_N_ENVS. Learners' own int32 counters (gradient steps, the target-update clock) are compared
# by differences, which wrap correctly, and optax saturates its step count.
INT32_MAX = 2**31 - 1
MAX_ENV_STEPS = 10**18  # total_env_steps: below the wide counter's 2**61 (2.3e18)
MAX_LOG_INTERVAL = 100_000_000  # env steps per chunk
MAX_N_ENVS = 10_000  # parallel envs per seed
ENV_STEPS_WHY = "the env-step counter (TrainState.env_steps, engine/train.py) holds 2**61 steps"

# JAX keeps 32 bits of an integer seed (PRNGKey(2**40) is PRNGKey(0)), so a larger seed would
# repeat a smaller one without a word; this cap keeps seed + i below 2**32 for 2**31 seeds.
MAX_SEED = 2**31 - 1

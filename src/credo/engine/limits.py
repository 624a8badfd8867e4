"""Limits that the engine's counters put on a run's settings, importable without JAX.

The config classes name them in their fields' ranges and the CLI checks its arguments against them
before anything heavy starts. Raise them together with the counters' types.
"""

from __future__ import annotations

# TrainState.env_steps (engine/train.py) is an int32 per seed: it must stay below 2**31 - 1. A run
# stops at the first chunk boundary at or past its budget, so the counter may end beyond the
# budget by up to log_interval plus one iteration's episodes (n_envs times the episode limit). The
# caps below leave 47 million steps for that iteration: episodes of up to 4,700 steps at
# MAX_N_ENVS, and far longer ones at the usual n_envs of 1 to 64.
INT32_MAX = 2**31 - 1
MAX_ENV_STEPS = 2_000_000_000  # total_env_steps
MAX_LOG_INTERVAL = 100_000_000  # env steps per chunk
MAX_N_ENVS = 10_000  # parallel envs per seed
ENV_STEPS_WHY = "the env-step counter is an int32 (TrainState.env_steps, engine/train.py): a larger budget would overflow it"

# JAX keeps 32 bits of an integer seed (PRNGKey(2**40) is PRNGKey(0)), so a larger seed would
# repeat a smaller one without a word; this cap keeps seed + i below 2**32 for 2**31 seeds.
MAX_SEED = 2**31 - 1

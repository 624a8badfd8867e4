import os
from pathlib import Path

import pytest

# Tests compile the same programs again and again (every Trainer, every resumed run, the CLI in
# subprocesses): JAX's persistent compilation cache turns the repeats into disk reads (about 40%
# of a first run's time). It lives in the user's cache directory, not the checkout, so that a fresh
# clone (CI) reuses the last run's compilations: test_ppo.py took 294 s cold and 68 s warm. Its keys
# are the programs, JAX's version and the flags, so a stale entry is never used; delete the
# directory to measure a cold run. Subprocesses inherit it through the environment.
_cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_cache_home / "credo" / "jax-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# A size limit turns on the cache's file lock: pytest-xdist's workers write the same entries.
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 * 2**30))

# torch (the LLM tests) on one thread: with its default of one per core, the tiny models' updates
# ran 20x slower whenever another process had the cores (98 s instead of 5 s for one test).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Tests run on the CPU, with every core exposed as a host device as the CLI does
# (the engine shards seeds over devices).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={os.cpu_count() or 1}"
    ).strip()


def pytest_addoption(parser):
    parser.addoption(
        "--lbf-key",
        action="append",
        default=[],
        help="an lbforaging gymnasium id (e.g. Foraging-2s-12x12-3p-2f-coop-v3) to run the LBF "
        "parity test on, in place of the built-in list; repeat for several",
    )
    parser.addoption("--lbf-steps", type=int, default=1200, help="steps per map in the LBF parity test")


def pytest_generate_tests(metafunc):
    if "lbf_parity_case" in metafunc.fixturenames:
        from lbf_parity import DEFAULT_CASES

        keys = metafunc.config.getoption("--lbf-key")
        if keys:
            cases = [pytest.param((k, {}), id=k) for k in keys]
        else:
            # Each map compiles its own step (about 10 s): the default suite keeps the four that
            # exercise the most rules (crowding, the penalty, two-level sight and kwargs, coop);
            # the full list runs with -m slow.
            cases = [
                pytest.param(c, id=c[0] + _kw_id(c[1]), marks=() if c[0] in FAST_PARITY else pytest.mark.slow)
                for c in DEFAULT_CASES
            ]
        metafunc.parametrize("lbf_parity_case", cases)


FAST_PARITY = {  # the maps of lbf_parity.DEFAULT_CASES that the default suite runs
    "Foraging-6x6-5p-1f-v3",
    "Foraging-2s-9x9-6p-3f-coop-v3",
    "Foraging-7x7-4p-2f-v3",
    "Foraging-2s-10x10-4p-4f-v3",
}


def _kw_id(kwargs):
    return "" if not kwargs else "[" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + "]"

"""Will a run fit? The memory and disk its training state needs, checked before it starts.

An off-policy run's replay buffer holds ``buffer_size`` whole episodes per seed, padded to the
episode limit: 88 MB for QMIX on an 8x8 LBF map with 2 seeds, about 39 GiB per seed on
``smax:27m_vs_30m``. A run that cannot hold its state fails minutes or hours in, at the first
allocation or checkpoint, so the state's size is computed from shapes alone (nothing allocated)
and compared with what the machine has.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

GiB = 2**30


class ResourceError(ValueError):
    """A run whose training state cannot fit in the memory or on the disk it would use."""


def size(nbytes: float) -> str:
    """``nbytes`` for people: 1.5 GiB, 88.0 MiB, 12 KiB."""
    for unit, scale in (("GiB", GiB), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"


def describe(plan: dict) -> str:
    """``plan`` (from ``Trainer.memory_plan``) in a line: what the run holds and writes per checkpoint."""
    buffer = f", of which the replay buffer {size(plan['buffer'])}" if plan["buffer"] else ""
    return f"training state {size(plan['state'])}{buffer}; each checkpoint writes about as much"


def host_memory_available() -> int | None:
    """Bytes of RAM available to a new allocation (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_memory_limit(device) -> int | None:
    """Bytes an accelerator lets JAX allocate (None on CPU, where the host's RAM is the limit)."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def check(plan: dict, *, n_devices: int, devices: list, checkpoint_dir: str | Path | None) -> list[str]:
    """Raises ResourceError if the state of ``plan`` (from ``Trainer.memory_plan``) cannot fit.

    The state lives on the devices (split over them by seed) and is copied whole to the host for
    each checkpoint; each checkpoint file is about its size, and the previous replay buffer stays
    on disk until the new one is written. Returns warnings for what fits only narrowly.
    """
    state, buffer = plan["state"], plan["buffer"]
    what = f"the training state needs {size(state)}" + (f" (replay buffer {size(buffer)})" if buffer else "")
    fix = "lower buffer_size (--set buffer_size=N), seeds, or the env's episode limit"
    warnings = []
    host = host_memory_available()
    limits = [device_memory_limit(d) for d in devices[:n_devices]]
    on_accelerator = bool(limits) and all(limit is not None for limit in limits)
    if on_accelerator and state / n_devices > min(limits):
        raise ResourceError(
            f"{what}, {size(state / n_devices)} on each of {n_devices} device(s), which allow "
            f"{size(min(limits))}; {fix}."
        )
    # A checkpoint copies the whole state to the host; on a CPU the state itself is in RAM too.
    if host is not None and state > host:
        raise ResourceError(f"{what}, and this machine has {size(host)} of memory available; {fix}.")
    if host is not None and 2 * state > host and not on_accelerator:
        warnings.append(
            f"{what}; with the copy a checkpoint makes, that is more than the {size(host)} of memory "
            "available: the run may be killed when it saves. Consider a smaller buffer_size."
        )
    if checkpoint_dir is not None:
        existing = next(
            (p for p in (Path(checkpoint_dir), *Path(checkpoint_dir).parents) if p.exists()), None
        )
        if existing is not None:
            free = shutil.disk_usage(existing).free
            if state > free:
                raise ResourceError(
                    f"{what} and a checkpoint takes as much on disk, but {existing} has {size(free)} free; "
                    f"free some space, choose another --out, or {fix}."
                )
            if state + buffer > free:
                warnings.append(
                    f"a checkpoint takes {size(state)} and {existing} has {size(free)} free: the second "
                    "checkpoint may not fit while the first's replay buffer is still on disk."
                )
    return warnings


def warn(lines: list[str]) -> None:
    """Prints each line to stderr as ``credo: warning: <line>`` (the warnings of ``check``)."""
    for line in lines:
        print(f"credo: warning: {line}", file=sys.stderr)

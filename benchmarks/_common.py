"""What every benchmark records next to its figures: machine, versions, date."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# The credo command of this interpreter's environment (its bin/ need not be on PATH).
CREDO = [sys.executable, "-m", "credo.cli"]


def version(pkg: str) -> str:
    from credo.engine.metadata import version as _version

    return _version(pkg)


def machine() -> dict:
    """The machine and versions (collected by ``credo.engine.metadata``, as in a run's metadata.json)."""
    from credo.engine import metadata

    m = metadata.machine()
    return {
        "cpu": m["cpu"],
        "cores": m["cores"],
        "platform": m["platform"],
        "python": m["python"],
        "jax": version("jax"),
        "jax_backend": m["jax_backend"],
        "jax_devices": m["device_count"],
        "device_kind": m["device_kind"],
        "jumanji": version("jumanji"),
        "load_average_1m": os.getloadavg()[0],  # other work on the machine while measuring
        "lbforaging": version("lbforaging"),
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def train_run(
    name: str,
    algo: str,
    env: str,
    steps: int | None,
    seeds: int,
    out: Path,
    settings: list[str],
    devices: int = 1,
) -> Path:
    """One ``credo train`` run in ``out/name``, resumable: skipped when finished, resumed when interrupted.

    ``devices``: CPU cores the run shards its seeds over (1 lets jobs run side by side).
    """
    import subprocess

    from credo.proc import run_bounded

    path = out / name
    if (path / "summary.json").exists():
        return path
    from credo.study.sweep import has_checkpoint  # a complete checkpoint, the engine's or RICOL's

    resumable = has_checkpoint(path)
    if path.exists() and not resumable:
        import shutil

        shutil.rmtree(path)  # cut off before its first checkpoint: nothing to resume, start again
    child_env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    if resumable:
        cmd = [*CREDO, "train", "--resume", str(path), "--no-progress"]
    else:
        cmd = [*CREDO, "train", algo, env, "--seeds", str(seeds)] + (["--steps", str(steps)] if steps else [])
        cmd += ["--out", str(out), "--name", name, "--no-progress"]
        cmd += [a for s in settings for a in ("--set", s)]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.log", "a") as f:
        # Bounded: a benchmark killed or interrupted takes its `credo train` child with it.
        run_bounded(cmd, stdout=f, stderr=subprocess.STDOUT, env=child_env, check=True)
    return path


def test_curves(path: Path, seeds: int, field: str = "test_return"):
    """(mean env steps [n_evals], values [seeds, n_evals]) of a run's evaluations."""
    import json

    import numpy as np

    rows = [
        [json.loads(x) for x in (path / "metrics" / f"seed_{i}.jsonl").read_text().splitlines()]
        for i in range(seeds)
    ]
    tests = [[r for r in rs if field in r] for rs in rows]
    n = min(len(t) for t in tests)
    x = np.mean([[r["env_steps"] for r in t[:n]] for t in tests], 0)
    return x, np.array([[r[field] for r in t[:n]] for t in tests])

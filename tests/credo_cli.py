"""Runs the ``credo`` command in a child process, as a user would, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_credo(
    *args: str, cwd: Path, timeout: float = 300, pythonpath: list[Path] = ()
) -> subprocess.CompletedProcess:
    """``python -m credo.cli ARGS`` in ``cwd``, output captured; no compilation cache, so a test
    never reads programs another process is writing. ``pythonpath`` goes before $PYTHONPATH
    (plugin packages that are not installed)."""
    env = {**os.environ, "CREDO_COMPILATION_CACHE": "0"}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), env.get("PYTHONPATH", "")]).strip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "credo.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )

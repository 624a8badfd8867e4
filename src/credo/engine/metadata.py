"""What a run (or a benchmark) was made with: command, code version, libraries, machine, time.

``record(run_path)`` writes ``RUN_DIR/metadata.json`` when a run starts and, when it is
resumed, appends the resume (its command, time, host, commit and devices) to ``resumes``::

    {
      "command": ["credo", "train", "qmix", ...],   # sys.argv of the process
      "cwd": "/home/me/credo",
      "started_utc": "2026-11-22T10:15:00+00:00",
      "credo_version": "0.1.0",
      "git_commit": "e35843c...",                    # null outside a git checkout of credo
      "git_dirty": false,                            # uncommitted changes to tracked files (null: no checkout)
      "python": "3.11.9", "jax": "0.6.2", "jaxlib": "0.6.2", "flax": "0.10.6", "optax": "0.2.5",
      "numpy": "2.2.6",                              # "not installed" where a package is missing
      "jax_backend": "cpu", "device_kind": "cpu", "device_count": 2,   # null in RICOL runs (torch)
      "host": "node17", "cpu": "AMD EPYC 7763 64-Core Processor", "cores": 2,
      "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
      "resumes": [{"command": [...], "cwd": ..., "started_utc": ..., "host": ..., "git_commit": ...,
                   "git_dirty": ..., "jax_backend": ..., "device_kind": ..., "device_count": ...}]
    }

``machine()`` is also what ``benchmarks/_common.machine()`` records next to every benchmark.
Nothing here raises for a missing git, a missing package or an unreadable ``/proc/cpuinfo``.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

METADATA = "metadata.json"
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "numpy")
# The fields of a resume entry (the rest describes the first start only).
RESUME_FIELDS = (
    "command",
    "cwd",
    "started_utc",
    "host",
    "git_commit",
    "git_dirty",
    "jax_backend",
    "device_kind",
    "device_count",
)


def version(pkg: str) -> str:
    """The installed version of ``pkg``, or ``"not installed"``."""
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "not installed"


def now_utc() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-11-22T10:15:00+00:00``)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()`` (may be '')."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine(jax_devices: bool = True) -> dict:
    """Host, CPU, platform, Python and JAX's backend and devices.

    ``jax_devices=False`` leaves JAX's backend uninitialised (its fields None): on a GPU it would
    take most of the memory, which runs of torch models (RICOL) need.
    """
    devices, backend = [], None
    if jax_devices:
        import jax

        devices, backend = jax.local_devices(), jax.default_backend()
    return {
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        # the cores this process may use (taskset, cgroups' cpusets), not the machine's count
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": backend,
        "device_kind": devices[0].device_kind if devices else None,
        "device_count": len(devices) if jax_devices else None,
    }


def git_info(path: str | Path | None = None) -> dict:
    """``{"git_commit", "git_dirty"}`` of the checkout holding credo's source (None, None outside one).

    The package's ``__init__.py`` must be tracked by that repository: a credo installed into
    some other project's checkout (site-packages inside a repository) is not a checkout of credo.
    """
    src = Path(path) if path else Path(__file__).resolve().parents[1]  # src/credo

    def git(*args) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return {"git_commit": None, "git_dirty": None}
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def collect(argv: list[str] | None = None, jax_devices: bool = True, libraries=LIBRARIES) -> dict:
    """The metadata of a run starting now in this process (see the module doc)."""
    from credo import __version__

    m = machine(jax_devices)
    return {
        "command": list(sys.argv if argv is None else argv),
        "cwd": os.getcwd(),
        "started_utc": now_utc(),
        "credo_version": __version__,
        **git_info(),
        "python": m["python"],
        **{lib: version(lib) for lib in libraries},
        "jax_backend": m["jax_backend"],
        "device_kind": m["device_kind"],
        "device_count": m["device_count"],
        "host": m["host"],
        "cpu": m["cpu"],
        "cores": m["cores"],
        "platform": m["platform"],
        "resumes": [],
    }


def record(run_path: str | Path, argv: list[str] | None = None, **kw) -> dict:
    """Writes ``metadata.json`` in a new run, or appends a resume entry to an existing one.

    ``kw`` goes to ``collect`` (RICOL: ``jax_devices=False`` and its torch libraries).
    """
    path = Path(run_path) / METADATA
    info = collect(argv, **kw)
    if path.exists():
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):  # damaged: start it again rather than stop the run
            meta = None
        if isinstance(meta, dict):
            meta.setdefault("resumes", []).append({k: info[k] for k in RESUME_FIELDS})
            info = meta
    path.parent.mkdir(parents=True, exist_ok=True)  # RICOL records it before its first seed makes the dir
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    tmp.replace(path)
    return info


def read(run_path: str | Path) -> dict | None:
    """A run's ``metadata.json`` (None for runs written before it existed)."""
    path = Path(run_path) / METADATA
    return json.loads(path.read_text()) if path.exists() else None

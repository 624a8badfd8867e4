"""Atomic checkpoints of pytrees: one ``.npz`` written to a temporary name, then renamed.

The tree structure is not stored: a run rebuilds its initial state from its
config and fills the leaves in, so loading never unpickles anything.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

import jax
import numpy as np


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (a full disk, say); the previous one is untouched."""

    def __init__(self, path: Path, err: OSError):
        super().__init__(err.errno, err.strerror)
        self.filename = str(path)
        full = err.errno == errno.ENOSPC
        reason = "no space left on device" if full else (err.strerror or str(err)).lower()
        kept = "the last good checkpoint is intact" if path.exists() else "no checkpoint had been written yet"
        fix = "free some space" if full else "fix that"
        self.message = f"{reason} while writing {path}; {kept}. {fix.capitalize()}, then resume the run."

    def __str__(self) -> str:
        return self.message


def save_checkpoint(path: str | Path, tree, meta: dict) -> Path:
    """Writes ``tree``'s leaves and ``meta`` (JSON) to ``path`` atomically.

    Raises CheckpointWriteError if the write fails (a full disk, say); then the temporary file is
    removed and ``path`` still holds the previous checkpoint.
    """
    path = Path(path)
    leaves = jax.tree.leaves(tree)
    arrays = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(path.name + ".tmp-*"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: a reader sees the old or the new file, never half of one
    except OSError as err:
        with contextlib.suppress(OSError):  # a half-written file only takes the space a resume needs
            tmp.unlink(missing_ok=True)
        raise CheckpointWriteError(path, err) from err
    return path


def load_checkpoint(path: str | Path, template):
    """Returns ``(tree, meta)``: ``template``'s structure with the saved leaves."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}.")
    with np.load(path) as data:
        meta = json.loads(bytes(data["__meta__"]).decode())
        leaves, treedef = jax.tree.flatten(template)
        saved = [data[f"leaf_{i:05d}"] for i in range(len(leaves))]
        extra = [k for k in data.files if k.startswith("leaf_")]
    if len(extra) != len(leaves):
        raise ValueError(
            f"checkpoint {path} holds {len(extra)} arrays but this config builds {len(leaves)}; "
            "was the run's config.yaml changed after it was written?"
        )
    for i, (s, t) in enumerate(zip(saved, leaves)):
        if s.shape != np.shape(t):
            raise ValueError(
                f"checkpoint {path}: array {i} has shape {s.shape}, the config builds {np.shape(t)}."
            )
    return jax.tree.unflatten(treedef, [jax.numpy.asarray(s) for s in saved]), meta

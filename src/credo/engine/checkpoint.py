"""Atomic checkpoints of pytrees: one ``.npz`` written to a temporary name, then renamed.

Each array is stored under its tree path (``learner/params/agent/params/fc1/kernel``), so a file
can be read with ``numpy.load`` alone and a mismatch names the leaf. The tree structure itself is
not stored: a run rebuilds its initial state from its config and fills the leaves in, so loading
never unpickles anything. ``meta`` (JSON) rides along as the ``__meta__`` array.

Why not Orbax (installed with Flax): its checkpoints are directories of many files written by
background threads, and a reader needs Orbax; this format is one file, written and renamed in the
training thread (a kill at any moment leaves the previous file whole, which the tests check), read
by NumPy alone. Sharded multi-host arrays, where Orbax shines, are not what a run holds.

Format 2 (named leaves) replaced format 1 (``leaf_00000``, ``leaf_00001``, ... in tree order) on
2026-12-02; format 1 files still load into the same trees.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import zipfile
from pathlib import Path

import jax
import numpy as np

FORMAT = 2
META = "__meta__"


# What to do about a damaged training checkpoint, unless the caller knows better.
RESTART_HINT = "move it away: `credo train --resume RUN_DIR` then starts the run again from the beginning"


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


class CheckpointReadError(ValueError):
    """A checkpoint file that is missing, damaged or does not fit the run's config; the message says what to do."""


def leaf_names(tree) -> list[str]:
    """The tree path of every leaf, ``/``-joined (``learner/opt_state/1/0/mu/agent/params/wi``)."""

    def part(key) -> str:
        for attr in ("name", "key", "idx"):  # GetAttrKey, DictKey / FlattenedIndexKey, SequenceKey
            if hasattr(key, attr):
                return str(getattr(key, attr))
        return str(key)

    names = ["/".join(part(k) for k in path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    if len(set(names)) != len(names) or META in names:
        raise ValueError("two leaves of the tree have the same path; checkpoints need distinct names")
    return names


def save_checkpoint(path: str | Path, tree, meta: dict) -> Path:
    """Writes ``tree``'s leaves (named by their paths) and ``meta`` (JSON) to ``path`` atomically.

    Raises CheckpointWriteError if the write fails (a full disk, say); then the temporary file is
    removed and ``path`` still holds the previous checkpoint. Temporary files left by a process
    killed while saving are removed first.
    """
    path = Path(path)
    arrays = {name: np.asarray(x) for name, x in zip(leaf_names(tree), jax.tree.leaves(tree))}
    arrays[META] = np.frombuffer(json.dumps({**meta, "format": FORMAT}).encode(), np.uint8)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent, path.name)
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


def remove_stale_temporaries(directory: str | Path, name: str = "*") -> None:
    """Deletes ``<name>.tmp-<pid>`` files that processes killed while saving left in ``directory``."""
    for stale in Path(directory).glob(name + ".tmp-*"):
        if stale.is_file():
            with contextlib.suppress(OSError):
                stale.unlink(missing_ok=True)


def read_meta(path: str | Path, *, what: str = "checkpoint", fix: str = "") -> dict:
    """The JSON ``meta`` of a checkpoint, without reading its arrays (``what``, ``fix``: as for load_checkpoint)."""
    with _open(Path(path), what, fix or RESTART_HINT) as data:
        return _meta(Path(path), data, what, fix or RESTART_HINT)


def load_checkpoint(
    path: str | Path, template, *, what: str = "checkpoint", fix: str = RESTART_HINT, upgrade=None
):
    """Returns ``(tree, meta)``: ``template``'s structure with the saved leaves.

    Raises CheckpointReadError, naming the file and the leaf, when the file is missing or damaged
    or its arrays do not fit ``template`` (a config changed after the run started); ``what`` names
    the file's role and ``fix`` what to do about a damaged one, in the message. ``upgrade(name,
    array, shape)`` may turn an array an older credo saved in another shape into ``shape`` (it
    returns None where it cannot).
    """
    path = Path(path)
    names, (leaves, treedef) = leaf_names(template), jax.tree.flatten(template)
    with _open(path, what, fix) as data:
        meta = _meta(path, data, what, fix)
        if meta.get("format", 1) > FORMAT:
            raise CheckpointReadError(
                f"{path} was written by a newer credo (checkpoint format {meta['format']}); upgrade credo to read it."
            )
        stored = [k for k in data.files if k != META]
        # Format 1 stored leaf_00000, ... in the tree's order; format 2 stores each under its name.
        keys = [f"leaf_{i:05d}" for i in range(len(leaves))] if meta.get("format", 1) == 1 else names
        missing = [n for n, k in zip(names, keys) if k not in data.files]
        extra = [k for k in stored if k not in set(keys)]
        if missing or extra:
            raise CheckpointReadError(
                f"{path} holds {len(stored)} arrays but this config builds {len(names)}"
                + (f" (missing {_few(missing)})" if missing else "")
                + (f" (not in this config: {_few(extra)})" if extra else "")
                + "; was the run's config.yaml changed after it was written?"
            )
        try:
            saved = [data[k] for k in keys]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
            raise _damaged(path, err, what, fix) from None
    meta.pop("format", None)  # the caller gets the meta it saved
    for i, (name, s, t) in enumerate(zip(names, saved, leaves)):
        upgraded = upgrade(name, s, np.shape(t)) if s.shape != np.shape(t) and upgrade is not None else None
        if upgraded is not None:
            s = saved[i] = upgraded
        if s.shape != np.shape(t):
            raise CheckpointReadError(
                f"{path}: array {name} has shape {s.shape}, the run's config builds {np.shape(t)}; "
                "was the run's config.yaml changed after it was written?"
            )
    return jax.tree.unflatten(treedef, [jax.numpy.asarray(s) for s in saved]), meta


@contextlib.contextmanager
def _open(path: Path, what: str = "checkpoint", fix: str = RESTART_HINT):
    if not path.is_file():
        raise CheckpointReadError(f"no {what} at {path}.")
    try:
        data = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise _damaged(path, err, what, fix) from None
    with data:
        yield data


def _meta(path: Path, data, what: str = "checkpoint", fix: str = RESTART_HINT) -> dict:
    try:
        meta = json.loads(bytes(data[META]).decode())
    except (KeyError, ValueError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise _damaged(path, err, what, fix) from None
    if not isinstance(meta, dict):
        raise _damaged(path, ValueError("its metadata is not a JSON object"), what, fix)
    return meta


def _damaged(path: Path, err: BaseException, what: str, fix: str) -> CheckpointReadError:
    reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return CheckpointReadError(
        f"{what} {path} is damaged and cannot be read ({reason}). Restore it from a copy, or {fix}."
    )


def _few(names: list[str], k: int = 3) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")

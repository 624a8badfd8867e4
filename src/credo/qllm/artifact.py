"""TFCAF files: a hand-written ``.py`` file, or the ``.json`` artifact that ``credo qllm generate`` writes.

The artifact keeps everything needed to trust and reproduce the function: the
code, the IGM gate gamma, the env it was written for, the backend and model,
every prompt and reply of the coder-evaluator loop, and the checks it passed.
``credo qllm generate`` also writes the code alone next to it as ``.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TFCAF:
    """A TFCAF as ``load_tfcaf`` reads it: the code, its IGM gate, its file and the artifact's other fields."""

    source: str  # the code, defining tfcaf(agent_qs, state)
    gamma: int | None  # IGM gate: 1 = monotone required, 0 = not; None = not said (hand-written file)
    origin: str  # the file it came from
    meta: dict  # the artifact's other fields (empty for a .py file)


def load_tfcaf(path: str | Path) -> TFCAF:
    """Reads a TFCAF from a ``.py`` or ``.json`` file (clear errors for anything else)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"TFCAF file {path} does not exist (write one by hand, or run `credo qllm generate ENV`)."
        )
    if path.suffix == ".json":
        try:
            doc = json.loads(_read_text(path))
            source = doc["code"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path} is not a TFCAF artifact (a JSON object with a 'code' field): {err}"
            ) from None
        if not isinstance(source, str):
            raise ValueError(
                f"{path}: the 'code' field must be the function's source text, not {type(source).__name__}"
                + (" (null: that `credo qllm generate` run found no TFCAF)" if source is None else "")
            )
        gamma = doc.get("gamma")
        if isinstance(gamma, bool) or gamma not in (0, 1, None):
            raise ValueError(f"{path}: gamma must be 0 or 1, got {gamma!r}")
        return TFCAF(source, gamma, str(path), {k: v for k, v in doc.items() if k != "code"})
    if path.suffix != ".py":
        raise ValueError(
            f"TFCAF file {path} must be a .py file (the function) or a .json artifact of `credo qllm generate`."
        )
    return TFCAF(_read_text(path), None, str(path), {})


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file (it is not UTF-8)") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a TFCAF file") from None


def write_json_atomic(path: Path, doc: dict) -> None:
    """Writes ``doc`` as indented JSON to ``path`` (creating its directory) through a temporary file
    and a rename, so ``path`` is never left half-written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def save_artifact(path: Path, doc: dict) -> tuple[Path, Path]:
    """Writes ``path`` (.json) and the code beside it (.py); returns both paths."""
    path = Path(path)
    if path.suffix != ".json":
        path = path.with_suffix(".json")
    write_json_atomic(path, doc)
    py = path.with_suffix(".py")
    header = f"# TFCAF for {doc.get('env', '?')} written by {doc.get('model', '?')} ({doc.get('backend', '?')}); gamma = {doc.get('gamma')}\n"
    py.write_text(header + doc["code"].rstrip() + "\n")
    return path, py

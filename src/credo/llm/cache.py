"""A response cache on disk: one JSON file per request, named by the SHA-256 of the request.

The key is the whole request (backend, model, messages and sampling settings or
continuations) in canonical JSON, so any change to any of them is a new entry.
Files are written atomically (temporary file, then rename), so an interrupted
run never leaves a half-written entry that a rerun would trust. The cache
stores what it is given: ``LLM`` puts only usable responses, and checks what
it gets back (an entry written by an older version may not be usable).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path


def request_key(request: dict) -> str:
    """Hex SHA-256 of the request in canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """The cache under ``root``: ``<root>/<key[:2]>/<key>.json`` (``key = request_key(request)``) holding
    the request and its response."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, request: dict):
        """The stored response of this exact request, or None."""
        path = self._path(request_key(request))
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):  # absent, or unreadable: ask the backend again
            return None
        return entry.get("response") if isinstance(entry, dict) else None

    def put(self, request: dict, response) -> None:
        """Stores ``response`` (JSON-serialisable) for ``request``, atomically; ValueError for None.
        An error while writing leaves no temporary file and is raised.
        """
        if response is None:
            raise ValueError("refusing to cache an empty (None) response")
        path = self._path(request_key(request))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"request": request, "response": response}, f)
            os.replace(tmp, path)
        except BaseException:  # not serialisable, disk full, interrupted: leave no temporary file
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

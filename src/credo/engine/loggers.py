"""Logger backends beside the metrics files: CSV, TensorBoard and Weights & Biases.

``metrics/seed_i.jsonl`` stays the source of truth; with ``--set logger=[csv,tensorboard,wandb]``
every row written there (a training chunk or an evaluation) also goes to each selected backend.
A backend is a small class with ``log(seed, step, row)`` (``step``: the seed's env steps) and
``close()``, built by ``open_loggers`` when a run starts or resumes. Its arguments:

* ``history``: each seed's rows kept in the JSONL (after a resume dropped the rows written
  after the checkpoint); the CSV and TensorBoard backends rewrite their files from them, so
  they mirror the JSONL exactly, a resumed run included;
* ``previous``: each seed's rows before that drop, i.e. everything an earlier process already
  sent; W&B cannot take points back, so it skips those rows when the resumed run writes them
  again (a resumed run recomputes them bit for bit, so nothing is lost).

Seeds are separate runs in TensorBoard and W&B (``logs/tensorboard/seed_i/``; W&B runs
``<run>/seed_i`` in a group named after the run directory), with tags ``train/<key>`` and
``test/<key>`` (``key`` as in the JSONL): that is how both tools expect repetitions, where the
same chart overlays the seeds (TensorBoard) or draws their mean and spread (W&B's grouping),
instead of one chart per seed and metric.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import netrc
import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

LOGGERS = ("csv", "tensorboard", "wandb")
_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}
_INDEX = ("env_steps", "chunk", "eval_index")  # identify a row; not logged as scalars to TB / W&B


def check(names) -> None:
    """Raises ValueError for an unknown logger or a backend whose package is missing (before training)."""
    for name in names:
        if name not in LOGGERS:
            raise ValueError(f"unknown logger {name!r}; valid loggers: {', '.join(LOGGERS)}.")
        pkg = _PACKAGES.get(name)
        if pkg and importlib.util.find_spec(pkg) is None:
            raise ValueError(
                f"logger {name!r} needs the {pkg!r} package, which is not installed: "
                "pip install 'credo[loggers]'"
            )
        if name == "wandb" and _version_tuple(importlib.metadata.version("wandb")) < (0, 19, 10):
            raise ValueError(
                "logger 'wandb' needs wandb >= 0.19.10 (one run per seed in one process): "
                "pip install -U 'wandb>=0.19.10'"
            )


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(m.group()) if (m := re.match(r"\d+", p)) else 0 for p in v.split(".")[:3])


def open_loggers(names, run_path, cfg, history: list[list[dict]], previous: list[list[dict]]) -> list:
    """The selected backends for a run starting (or resuming) in ``run_path``."""
    check(names)
    classes = {"csv": CSVLogger, "tensorboard": TensorBoardLogger, "wandb": WandbLogger}
    out = []
    try:
        for name in dict.fromkeys(names):  # each once, in the given order
            out.append(classes[name](Path(run_path), cfg, history, previous))
    except BaseException:
        for lg in out:
            lg.close()
        raise
    return out


def row_id(row: dict) -> tuple:
    """What identifies a metrics row: its evaluation index, or its chunk for a training row."""
    return ("eval", row["eval_index"]) if "eval_index" in row else ("chunk", row["chunk"])


def scalars(row: dict) -> dict:
    """The row's numeric, non-missing values (lists such as per-episode returns are left out)."""
    return {k: int(v) if isinstance(v, bool) else v for k, v in row.items() if isinstance(v, (int, float))}


def tags(row: dict) -> dict[str, float]:
    """``train/<key>`` or ``test/<key>`` -> value, for TensorBoard and W&B."""
    section = "test" if "eval_index" in row else "train"
    return {f"{section}/{k}": float(v) for k, v in scalars(row).items() if k not in _INDEX}


class CSVLogger:
    """``logs/seed_i.csv``: one row per metrics row, one column per scalar key (empty where absent)."""

    def __init__(self, run_path: Path, cfg, history, previous):
        self.dir = run_path / "logs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rows = [[scalars(r) for r in rows] for rows in history]
        self.columns: list[list[str]] = []
        for i in range(len(history)):
            self.columns.append([])
            self._rewrite(i)

    def path(self, seed: int) -> Path:
        """The CSV file of seed index ``seed``: ``logs/seed_<seed>.csv``."""
        return self.dir / f"seed_{seed}.csv"

    def _rewrite(self, seed: int) -> None:
        seen = dict.fromkeys(k for r in self.rows[seed] for k in r)
        self.columns[seed] = [k for k in _INDEX if k in seen] + [k for k in seen if k not in _INDEX]
        with open(self.path(seed), "w", newline="") as f:
            w = csv.DictWriter(f, self.columns[seed], restval="")
            w.writeheader()
            w.writerows(self.rows[seed])

    def log(self, seed: int, step: int, row: dict) -> None:
        """Appends ``row``'s scalars to the seed's file (``step`` is unused: ``env_steps`` is a column);
        a key not seen before rewrites the file with the wider header.
        """
        flat = scalars(row)
        self.rows[seed].append(flat)
        if set(flat) - set(self.columns[seed]):  # a new column: rewrite with the wider header
            self._rewrite(seed)
            return
        with open(self.path(seed), "a", newline="") as f:
            csv.DictWriter(f, self.columns[seed], restval="").writerow(flat)

    def close(self) -> None:
        """Nothing to do: every ``log`` opens and closes the file."""


class TensorBoardLogger:
    """``logs/tensorboard/seed_i/``: scalar events (``simple_value``, as PyTorch's SummaryWriter).

    Written with TensorBoard's own pure-Python ``EventFileWriter`` (no TensorFlow). When a run
    (re)starts, the event files are written afresh from the kept JSONL rows, so a resumed run
    has each point once.
    """

    def __init__(self, run_path: Path, cfg, history, previous):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.writers = []
        for i, rows in enumerate(history):
            d = run_path / "logs" / "tensorboard" / f"seed_{i}"
            if d.exists():
                shutil.rmtree(d)
            w = EventFileWriter(str(d), flush_secs=30)
            self.writers.append(w)
            for r in rows:
                self._write(i, r["env_steps"], r)
            w.flush()

    def _write(self, seed: int, step: int, row: dict) -> None:
        import time

        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=t, simple_value=v) for t, v in tags(row).items()]
        if values:
            self.writers[seed].add_event(
                Event(wall_time=time.time(), step=int(step), summary=Summary(value=values))
            )

    def log(self, seed: int, step: int, row: dict) -> None:
        """Writes ``row``'s scalars as ``train/<key>`` or ``test/<key>`` at ``step`` env steps and flushes."""
        self._write(seed, step, row)
        self.writers[seed].flush()  # rows come seconds apart: keep the files current for a live TensorBoard

    def close(self) -> None:
        """Flushes and closes every seed's event file."""
        for w in self.writers:
            w.close()


def wandb_mode() -> str:
    """``WANDB_MODE`` if set (online, offline, disabled), else online with an API key, offline without."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return "online" if netrc.netrc(os.environ.get("NETRC")).authenticators(host) else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


class WandbLogger:
    """One W&B run per seed (``<run>/seed_i``, group ``<run>``), files under ``logs/wandb/``.

    The project is ``WANDB_PROJECT`` (default ``credo``), the entity ``WANDB_ENTITY``. Run ids
    are kept in ``logs/wandb_ids.json``: a resumed run continues the same W&B runs and skips the
    rows an earlier process already sent. Offline runs are uploaded later with
    ``wandb sync RUN_DIR/logs/wandb/offline-run-*``.
    """

    def __init__(self, run_path: Path, cfg, history, previous):
        import wandb

        from credo.config import to_dict

        logs = run_path / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        ids_path = logs / "wandb_ids.json"
        ids = json.loads(ids_path.read_text()) if ids_path.exists() else {}
        for i in range(len(history)):
            ids.setdefault(f"seed_{i}", secrets.token_hex(6))
        ids_path.write_text(json.dumps(ids, indent=2) + "\n")
        self.sent = [{row_id(r) for r in rows} for rows in previous]
        self.mode = wandb_mode()
        name, config = run_path.resolve().name, to_dict(cfg)
        self.runs = []
        for i in range(len(history)):
            self.runs.append(
                wandb.init(
                    project=os.environ.get("WANDB_PROJECT", "credo"),
                    group=name,
                    name=f"{name}/seed_{i}",
                    job_type="train",
                    id=ids[f"seed_{i}"],
                    resume="allow",
                    mode=self.mode,
                    dir=str(logs),
                    config={**config, "seed": cfg.seed + i, "seed_index": i},
                    reinit="create_new",  # one live run per seed in this process
                    # the seeds share this process's output: no run captures the console
                    settings=wandb.Settings(console="off"),
                )
            )
        for r in self.runs:
            # env steps as the x axis, not W&B's own step: a resumed run's rows (an evaluation at
            # the step of an already logged chunk) would fall behind W&B's step and be dropped
            r.define_metric("env_steps")
            for section in ("train", "test"):
                r.define_metric(f"{section}/*", step_metric="env_steps")
        if self.mode == "offline":
            print(
                f"wandb: offline; upload with: wandb sync {logs / 'wandb'}/offline-run-*",
                file=sys.stderr,
            )

    def log(self, seed: int, step: int, row: dict) -> None:
        """Logs ``row``'s scalars to the seed's W&B run against ``env_steps`` = ``step``; a row an earlier
        process already sent (a resumed run) is skipped.
        """
        if row_id(row) in self.sent[seed]:
            return
        self.runs[seed].log({"env_steps": int(step), **tags(row)})

    def close(self) -> None:
        """Finishes every seed's W&B run (an online run uploads what is left)."""
        for r in self.runs:
            r.finish()

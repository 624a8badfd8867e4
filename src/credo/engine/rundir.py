"""One directory per run: config, metadata, per-seed metrics, checkpoints, logs, learning curve, summary.

runs/qmix-lbf-Foraging-8x8-2p-3f-v3-20261122-101500/
  config.yaml              the resolved config (what `--resume` rebuilds the run from)
  metadata.json            command line, credo version and git commit, library versions, devices,
                           host, start time (UTC); one `resumes` entry per resume (engine/metadata.py)
  metrics/seed_0.jsonl     the source of truth: one row per chunk (training) and one per evaluation
                           (eval_index, test_return, test_length[, test_won] as means, and
                           test_episode_returns[, test_episode_won]: one value per test episode)
  checkpoints/last.npz     the latest checkpoint, written atomically (engine/checkpoint.py), with
                           its replay buffer in buffer-<chunk>.npz and parameter snapshots of
                           evaluations in params/ (engine/snapshots.py)
  logs/                    with `logger`: seed_0.csv, tensorboard/seed_0/, wandb/ (engine/loggers.py)
  learning_curve.png       test return over env steps: mean and 95% bootstrap band over seeds
  summary.json             final test return per seed, IQM with 95% CI, throughput
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

# JAX and credo.stats are imported where they are used: the CLI checks --name and --out with this
# module before anything heavy starts.

# File systems allow 255 bytes per name; the rest is room for suffixes such as ".tmp-PID".
MAX_NAME_BYTES = 200


class RunDirError(ValueError):
    """A run directory that cannot be made here; the message names the argument and what to do."""


def check_name(name: str) -> str:
    """``name`` if it names one directory inside ``--out``; raises RunDirError otherwise.

    A separator or ``..`` would put the run outside ``--out`` (``../../x``), control characters
    make paths that cannot be read back from a terminal, and a long name fails deep in a write.
    """
    if not name.strip():
        raise RunDirError("--name is empty; give the run directory a name, or leave --name out.")
    if "/" in name or "\\" in name or name in (".", ".."):  # "\\" separates on Windows
        raise RunDirError(
            f"--name {name!r} is a path, not a name: a run directory is made inside --out, so its "
            "name cannot hold '/' or be '..'; choose the parent directory with --out."
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise RunDirError(f"--name {name!r} holds control characters; use letters, digits, '.', '_' or '-'.")
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise RunDirError(
            f"--name is {size} bytes long; the limit is {MAX_NAME_BYTES} (file systems allow 255 per "
            "name, and checkpoints add suffixes). Choose a shorter name."
        )
    return name


def check_out(base: str | Path) -> Path:
    """``base`` if run directories can be made in it; raises RunDirError naming the directory.

    ``base`` may not exist yet: then its nearest existing parent must be a writable directory.
    """
    path = Path(base)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        where = "is a file" if existing == path else f"is under {existing}, which is a file"
        raise RunDirError(f"--out {base} {where}, not a directory; give a directory to hold the runs.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(
            f"--out {base}: cannot write in {existing} (permission denied or a read-only file system); "
            "choose another --out."
        )
    return path


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """Rows of a JSONL file and how many half-written last lines were dropped (0 or 1).

    Only the last non-empty line may be broken (a writer killed mid-line); a broken line
    elsewhere raises ValueError naming the file and line.
    """
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    numbered = [(n, s) for n, s in enumerate(lines, 1) if s.strip()]
    rows, dropped = [], 0
    for k, (n, s) in enumerate(numbered):
        try:
            row = json.loads(s)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if k == len(numbered) - 1:
                dropped += 1
                continue
            raise ValueError(
                f"{path}:{n}: not a JSON row ({err}); only a half-written last line is skipped"
            ) from err
        rows.append(row)
    return rows, dropped


class RunDir:
    """A run directory on disk (the layout is in the module docstring): creating it, appending metrics
    rows, truncating them on resume, and writing the summary and plots. ``create`` makes a new one;
    ``RunDir(path)`` opens an existing one.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.loggers: list = []  # backends of credo.engine.loggers, open between start() and close()

    @classmethod
    def create(cls, cfg, base: str | Path = "runs", name: str | None = None) -> RunDir:
        """A new run directory under ``base`` (named after algo, env and time unless ``name``).

        Raises RunDirError for a bad ``name`` or ``base``, or when the directory cannot be
        written; then nothing it made is left behind.
        """
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = check_name(name or f"{cfg.algo}-{re.sub(r'[^A-Za-z0-9._-]+', '-', cfg.env)}-{stamp}")
        path = check_out(base) / name
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} exists and is a file; pick another --name or --out.")
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(
                f"run directory {path} exists and is not empty; pick another --out or use --resume."
            )
        missing = [p for p in (path, *path.parents) if not p.exists()]
        try:
            cls._write_new(cfg, path)
        except OSError as err:
            _remove_new(path, missing[-1] if missing else None)
            reason = os.strerror(err.errno).lower() if err.errno else str(err)
            raise RunDirError(
                f"cannot make the run directory {path}: {reason} (while writing "
                f"{err.filename or path}); nothing was left behind. Choose another --out."
            ) from None
        return cls(path)

    @staticmethod
    def _write_new(cfg, path: Path) -> None:
        from credo.config import save_config

        (path / "metrics").mkdir(parents=True, exist_ok=True)
        save_config(cfg, path / "config.yaml")

    def seed_file(self, i: int) -> Path:
        """The metrics file of seed index ``i``: ``metrics/seed_<i>.jsonl``."""
        return self.path / "metrics" / f"seed_{i}.jsonl"

    def _append(self, i: int, row: dict) -> None:
        with open(self.seed_file(i), "a") as f:
            f.write(json.dumps(row) + "\n")
        for lg in self.loggers:
            lg.log(i, row["env_steps"], row)

    def start(self, cfg, chunk: int, n_evals: int, n_seeds: int) -> None:
        """A run starts or resumes at (``chunk``, ``n_evals``): records ``metadata.json``, drops the
        rows written after that checkpoint and opens the ``cfg.logger`` backends."""
        from credo.engine import loggers, metadata

        metadata.record(self.path)
        previous = [self.rows(i) for i in range(n_seeds)]
        self.truncate_metrics(chunk, n_evals)
        history = [self.rows(i) for i in range(n_seeds)]
        self.loggers = loggers.open_loggers(getattr(cfg, "logger", []), self.path, cfg, history, previous)

    def close(self) -> None:
        """Closes the logger backends (the JSONL files need nothing)."""
        loggers, self.loggers = self.loggers, []
        for lg in loggers:
            lg.close()

    def rows(self, i: int) -> list[dict]:
        """Seed ``i``'s metrics rows (a half-written last line, from a killed writer, left out)."""
        p = self.seed_file(i)
        return read_jsonl(p)[0] if p.exists() else []

    def truncate_metrics(self, chunk: int, n_evals: int | None = None) -> None:
        """Drops rows written after the checkpoint we resume from (they will be written again),
        and a half-written last line left by a process killed while writing it."""
        for p in sorted((self.path / "metrics").glob("seed_*.jsonl")):
            rows, dropped = read_jsonl(p)
            if dropped:
                print(f"credo: dropped the half-written last line of {p}", file=sys.stderr)
            keep = [
                row
                for row in rows
                if not (
                    row.get("chunk", 0) > chunk
                    if "eval_index" not in row
                    else (n_evals is not None and row["eval_index"] >= n_evals)
                )
            ]
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_text("".join(json.dumps(row) + "\n" for row in keep))
            os.replace(tmp, p)

    def write_chunk(self, chunk: int, env_steps, episodes, out, rate: float, with_won: bool) -> None:
        """One training row per seed from a chunk's outputs ([seed, iteration, ...] arrays)."""
        ep_stats, metrics, eps = out
        returns = np.asarray(ep_stats.returns)  # [S, I, n_envs]
        for i in range(returns.shape[0]):
            row = {
                "chunk": chunk,
                "env_steps": int(env_steps[i]),
                "episodes": int(episodes[i]),
                "train_return": float(returns[i].mean()),
                "epsilon": _finite_or_none(np.asarray(eps)[i][-1]),
                "env_steps_per_s": rate if np.isfinite(rate) else None,
            }
            if with_won:
                row["train_won"] = float(np.asarray(ep_stats.won)[i].mean())
            for k, v in metrics.items():
                v = np.asarray(v)[i]
                row[k] = float(np.nanmean(v)) if np.any(np.isfinite(v)) else None
            self._append(i, row)

    def write_eval(self, entry: dict, index: int, episodes: dict | None = None) -> None:
        """One evaluation row per seed: the means of ``entry`` (as kept in the checkpoint's meta)
        and the per-episode lists of ``episodes`` (``test_episode_returns``: [seeds][episodes])."""
        for i, steps in enumerate(entry["env_steps"]):
            row = {"chunk": entry["chunk"], "eval_index": index, "env_steps": steps}
            row.update({k: v[i] for k, v in entry.items() if k.startswith("test_")})
            row.update({k: v[i] for k, v in (episodes or {}).items()})
            self._append(i, row)

    def finish(self, trainer, env_steps, meta: dict) -> dict:
        """Writes ``summary.json`` and ``learning_curve.png``; returns the summary."""
        import jax

        from credo import stats

        cfg = trainer.cfg
        evals = meta["evals"]
        final = evals[-1]
        agg = stats.aggregate_summary(final["test_return"])
        summary = {
            "algo": cfg.algo,
            "env": cfg.env,
            "total_env_steps": cfg.total_env_steps,
            "env_steps_done": [int(x) for x in env_steps],
            "seeds": trainer.seeds,
            "final_test_return": final["test_return"],
            "final_test_return_iqm": agg["iqm"],
            "final_test_return_ci95": agg["iqm_ci95"],
            "final_test_return_mean": agg["mean"],
            "test_episodes": cfg.test_episodes,
            "train_env_steps_per_s": meta["train_steps"] / meta["train_seconds"]
            if meta["train_seconds"]
            else None,
            "train_env_steps_per_s_per_seed": (
                meta["train_steps"] / meta["train_seconds"] / len(trainer.seeds)
            )
            if meta["train_seconds"]
            else None,
            "compile_seconds": meta["compile_seconds"],
            "train_seconds": meta["train_seconds"],
            "parameters": trainer.learner.param_count(
                jax.eval_shape(trainer.learner.init, jax.random.PRNGKey(0)).params
            ),
        }
        if "test_won" in final:
            won = stats.aggregate_summary(final["test_won"])
            summary.update(
                final_test_won=final["test_won"],
                final_test_won_iqm=won["iqm"],
                final_test_won_ci95=won["iqm_ci95"],
            )
        (self.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.plot(evals, cfg)
        return summary

    def plot(self, evals: list[dict], cfg) -> Path:
        """Draws ``learning_curve.png`` (test return over env steps; mean and 95% bootstrap band over seeds)
        and, when the evaluations hold ``test_won``, ``win_rate.png``; returns the first one's path.

        ``evals``: one dict per evaluation with per-seed lists ``env_steps`` and ``test_return``.
        """
        from credo import stats

        steps = np.array([e["env_steps"] for e in evals], float)  # [n_evals, seeds]
        returns = np.array([e["test_return"] for e in evals], float)
        curves = {cfg.algo: (steps.mean(1), returns.T)}
        out = stats.plot_learning_curves(
            curves, self.path / "learning_curve.png", title=f"{cfg.algo} on {cfg.env}"
        )
        if evals and "test_won" in evals[0]:
            won = np.array([e["test_won"] for e in evals], float)
            stats.plot_learning_curves(
                {cfg.algo: (steps.mean(1), won.T)},
                self.path / "win_rate.png",
                ylabel="test win rate",
                title=f"{cfg.algo} on {cfg.env}",
            )
        return out


def _remove_new(path: Path, created: Path | None) -> None:
    """Undoes a failed create: the directories it made, or what it put in an empty ``path``."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    shutil.rmtree(path / "metrics", ignore_errors=True)
    with contextlib.suppress(OSError):
        (path / "config.yaml").unlink(missing_ok=True)


def _finite_or_none(x) -> float | None:
    return float(x) if np.isfinite(x) else None

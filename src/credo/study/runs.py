"""Reading run directories: find them under paths, load each as a small record, label them.

A run directory (``credo train``, or one cell of ``credo sweep``) holds ``config.yaml`` and
``metrics/seed_<i>.jsonl``; ``summary.json`` appears when it finishes, ``sweep_cell.json`` when
a sweep wrote it and ``metadata.json`` (:mod:`credo.engine.metadata`: machine, versions, start
time) when credo recorded it. :func:`find_run_dirs` finds them (a path may be a run directory, a sweep
directory or any directory above runs), :func:`load_run` reads one as a :class:`Run` and
:func:`load_runs` does both and gives every run its :attr:`Run.label`: the sweep cell's label,
else the algorithm plus the config fields that tell its runs apart (:func:`assign_labels`).

Evaluation rows are the metric rows with a ``test_*`` number (``eval_index`` rows of the engine;
RICOL's per-iteration rows, which carry ``test_success``); any such field is a metric, and the
per-episode lists (``test_episode_returns``, ``test_episode_won``) come with it where present.

Unfinished runs (no ``summary.json``) are loaded with ``finished = False`` and their last
evaluation so far; runs without any evaluation are skipped. Either way ``note`` is told. A
half-written last line of a metrics file (a run killed mid-write) is dropped and counted in
``Run.dropped_lines``. Nothing here imports JAX.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from credo.engine.rundir import read_jsonl  # noqa: F401 - also this module's name for it

__all__ = [
    "BOOKKEEPING_FIELDS",
    "Run",
    "SeedCurve",
    "assign_labels",
    "episode_key",
    "find_run_dirs",
    "load_run",
    "load_runs",
    "resolve_metric",
]

CELL_FILE = "sweep_cell.json"
METADATA_FILE = "metadata.json"  # credo.engine.metadata.METADATA (not imported: it would pull in more)

# Config fields that never name a method: which seeds, how long, how often to log/evaluate/save.
BOOKKEEPING_FIELDS = frozenset(
    {
        "algo",
        "env",
        "seed",
        "seeds",
        "total_env_steps",
        "test_interval",
        "test_episodes",
        "log_interval",
        "save_interval",
        "logger",
        "iterations",
    }
)

# Per-episode list kept next to a per-evaluation metric (the engine's names).
_EPISODE_KEYS = {"test_return": "test_episode_returns", "test_won": "test_episode_won"}

Note = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr)


def episode_key(metric: str) -> str:
    """The eval-row key holding ``metric``'s per-episode values (``test_return`` -> ``test_episode_returns``)."""
    if metric in _EPISODE_KEYS:
        return _EPISODE_KEYS[metric]
    return "test_episode_" + metric.removeprefix("test_")


@dataclass
class SeedCurve:
    """One seed's evaluations of one metric, in env-step order."""

    seed: int  # the seed value (config ``seed`` + index)
    index: int  # i of metrics/seed_<i>.jsonl
    steps: np.ndarray  # int [n_evals]: env steps at each evaluation
    values: np.ndarray  # float [n_evals]: the metric (a mean over test episodes)
    episodes: list[list[float] | None]  # per evaluation, the per-episode values when the row has them

    def at(self, step: int | None = None) -> tuple[float, int] | None:
        """(value, env steps) of the last evaluation, or of the first at or after ``step`` env steps.

        None if the seed has no evaluation (at or after ``step``).
        """
        if self.steps.size == 0:
            return None
        if step is None:
            return float(self.values[-1]), int(self.steps[-1])
        later = np.flatnonzero(self.steps >= step)
        if later.size == 0:
            return None
        k = int(later[0])
        return float(self.values[k]), int(self.steps[k])


@dataclass
class Run:
    """A run directory, read. ``label`` is set by :func:`assign_labels` (``load_runs`` does it)."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None  # summary.json, None while the run is unfinished
    sweep_cell: dict[str, Any] | None  # sweep_cell.json when a sweep wrote the run
    seeds: list[int]  # seed value of each metrics file, by index
    evals: list[list[dict[str, Any]]]  # evaluation rows of each seed, in env-step order
    train_rows: list[list[dict[str, Any]]]  # the other (training) rows of each seed
    dropped_lines: int = 0  # half-written last lines dropped from the metrics files
    metadata: dict[str, Any] | None = None  # metadata.json, None for runs from before credo wrote it
    label: str = ""
    # The run's settings, set with ``label``: sweep_cell.json's overrides, else the label's fields.
    overrides: dict[str, Any] = field(default_factory=dict)
    _metric_cache: dict[str, list[SeedCurve]] = field(default_factory=dict, repr=False)

    @property
    def algo(self) -> str:
        """The config's ``algo`` (else the summary's; ``?`` when neither names it)."""
        return str(self.config.get("algo") or (self.summary or {}).get("algo") or "?")

    @property
    def env(self) -> str:
        """The env key, ``lbf:Foraging-8x8-2p-3f-v3`` say (the config's, else the summary's, else ``?``)."""
        return str(self.config.get("env") or (self.summary or {}).get("env") or "?")

    @property
    def env_family(self) -> str:
        """``lbf`` of ``lbf:Foraging-8x8-2p-3f-v3`` (the env itself when it has no family prefix)."""
        return self.env.split(":", 1)[0]

    @property
    def task(self) -> str:
        """``Foraging-8x8-2p-3f-v3`` of ``lbf:Foraging-8x8-2p-3f-v3``."""
        return self.env.split(":", 1)[-1]

    @property
    def finished(self) -> bool:
        """Whether the run wrote ``summary.json`` (an unfinished run is read up to its last evaluation)."""
        return self.summary is not None

    @property
    def name(self) -> str:
        """The run directory's name (the last part of ``path``; ``label`` is what reports show)."""
        return self.path.name

    @property
    def steps_per_s(self) -> float | None:
        """Training env steps per second, all seeds together: the summary's, else the latest training row's."""
        v = (self.summary or {}).get("train_env_steps_per_s")
        if v is None:
            rates = [r.get("env_steps_per_s") for rows in self.train_rows for r in rows[-1:]]
            rates = [x for x in rates if isinstance(x, int | float)]
            v = float(np.mean(rates)) if rates else None
        return float(v) if v is not None else None

    @property
    def env_steps_trained(self) -> list[int]:
        """Env steps trained by each seed: the summary's, else the last metrics row of each seed."""
        done = (self.summary or {}).get("env_steps_done")
        if isinstance(done, list) and len(done) == len(self.seeds) and all(map(_is_number, done)):
            return [int(x) for x in done]
        return [
            max((int(r.get("env_steps", 0) or 0) for r in [*ev, *tr]), default=0)
            for ev, tr in zip(self.evals, self.train_rows)
        ]

    @property
    def metrics(self) -> list[str]:
        """Names of the numeric ``test_*`` metrics in this run's evaluation rows, sorted."""
        names = {
            k
            for rows in self.evals
            for r in rows
            for k, v in r.items()
            if k.startswith("test_") and _is_number(v)
        }
        return sorted(names)

    def curves(self, metric: str) -> list[SeedCurve]:
        """Each seed's evaluations of ``metric`` (rows where it is missing or null are left out)."""
        if metric not in self._metric_cache:
            ep_key = episode_key(metric)
            out = []
            for i, rows in enumerate(self.evals):
                kept = [r for r in rows if _is_number(r.get(metric))]
                out.append(
                    SeedCurve(
                        seed=self.seeds[i],
                        index=i,
                        steps=np.array([int(r.get("env_steps", 0)) for r in kept], dtype=np.int64),
                        values=np.array([float(r[metric]) for r in kept], dtype=np.float64),
                        episodes=[
                            [float(x) for x in r[ep_key]] if isinstance(r.get(ep_key), list) else None
                            for r in kept
                        ],
                    )
                )
            self._metric_cache[metric] = out
        return self._metric_cache[metric]


def _is_number(v: Any) -> bool:
    """A finite int, float or bool (bools count: win flags)."""
    return isinstance(v, int | float) and bool(np.isfinite(v))


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a run: a ``config.yaml`` file and a ``metrics/`` directory."""
    return (path / "config.yaml").is_file() and (path / "metrics").is_dir()


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run directory at or under ``paths`` (a dir with ``config.yaml`` and ``metrics/``), sorted.

    A run directory's own subdirectories are not searched. Raises FileNotFoundError for a
    path that does not exist and ValueError for one with no run directory under it.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such file or directory: {p}")
        if is_run_dir(p):
            hits = [p]
        else:
            hits = []
            stack = [p] if p.is_dir() else []
            while stack:
                d = stack.pop()
                try:
                    children = sorted(c for c in d.iterdir() if c.is_dir())
                except OSError:
                    continue
                for c in children:
                    (hits.append(c) if is_run_dir(c) else stack.append(c))
            if not hits:
                raise ValueError(
                    f"no run directories under {p} (looked for directories holding config.yaml and "
                    "metrics/, as `credo train` and `credo sweep` write them)"
                )
        for h in sorted(hits):
            if h.resolve() not in {f.resolve() for f in found}:
                found.append(h)
    return found


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # being written: treat as absent
    return data if isinstance(data, dict) else None


def load_run(path: str | Path) -> Run:
    """Reads one run directory (see the module docstring). ``label`` is left empty."""
    path = Path(path)
    if not is_run_dir(path):
        raise ValueError(f"{path} is not a run directory (it needs config.yaml and metrics/)")
    config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path / 'config.yaml'}: expected a mapping of config fields")
    summary = _read_json(path / "summary.json")
    files = {}
    for f in (path / "metrics").glob("seed_*.jsonl"):
        suffix = f.stem.removeprefix("seed_")
        if suffix.isdigit():
            files[int(suffix)] = f
    indices = sorted(files)
    base_seed = int(config.get("seed", 0) or 0)
    summary_seeds = (summary or {}).get("seeds")
    evals, train, dropped, seeds = [], [], 0, []
    for i in indices:
        rows, d = read_jsonl(files[i])
        dropped += d
        ev = [r for r in rows if any(k.startswith("test_") and _is_number(v) for k, v in r.items())]
        if any("eval_index" in r for r in ev):  # a resumed run may repeat an evaluation: keep the last
            by_index: dict[Any, dict] = {}
            for r in ev:
                by_index[r.get("eval_index", ("row", id(r)))] = r
            ev = list(by_index.values())
        ev.sort(key=lambda r: (int(r.get("env_steps", 0)), r.get("eval_index", 0) or 0))
        evals.append(ev)
        train.append([r for r in rows if not any(k.startswith("test_") for k in r)])
        if isinstance(summary_seeds, list) and i < len(summary_seeds):
            seeds.append(int(summary_seeds[i]))
        else:
            seeds.append(base_seed + i)
    return Run(
        path=path,
        config=config,
        summary=summary,
        sweep_cell=_read_json(path / CELL_FILE),
        seeds=seeds,
        evals=evals,
        train_rows=train,
        dropped_lines=dropped,
        metadata=_read_json(path / METADATA_FILE),
    )


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _fmt_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | dict):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


_MISSING = object()


def assign_labels(runs: list[Run]) -> None:
    """Sets each run's ``label``: what ``credo compare`` groups by.

    A run written by a sweep takes its ``sweep_cell.json`` label. Any other run is named
    by its algorithm plus the config fields that tell runs of that algorithm apart, e.g.
    ``mappo[reward_mode=local]``: a field is named when it takes different values among the
    runs of the algorithm on one env (so fields that only follow the env's defaults, like
    ``n_envs``, are not). Seeds, budgets and logging/evaluation/checkpoint intervals
    (:data:`BOOKKEEPING_FIELDS`) never count. Nested fields are flattened
    (``env_kwargs.sight=2``).

    Each run's ``overrides`` are set too: the sweep cell's ``overrides`` where
    ``sweep_cell.json`` has them, else the fields its label names (absent ones left out).
    """
    plain = [r for r in runs if not (r.sweep_cell and r.sweep_cell.get("label"))]
    for r in runs:
        cell = r.sweep_cell or {}
        r.overrides = dict(cell["overrides"]) if isinstance(cell.get("overrides"), dict) else {}
        if cell.get("label"):
            r.label = str(cell["label"])
    by_algo: dict[str, list[Run]] = {}
    for r in plain:
        by_algo.setdefault(r.algo, []).append(r)
    for algo, group in by_algo.items():
        flat = [
            {k: v for k, v in _flatten(r.config).items() if k.split(".")[0] not in BOOKKEEPING_FIELDS}
            for r in group
        ]
        differing: set[str] = set()
        by_env: dict[str, list[int]] = {}
        for j, r in enumerate(group):
            by_env.setdefault(r.env, []).append(j)
        for members in by_env.values():
            keys = set().union(*(flat[j] for j in members))
            for k in keys:
                vals = {json.dumps(flat[j].get(k, _MISSING), sort_keys=True, default=str) for j in members}
                if len(vals) > 1:
                    differing.add(k)
        for j, r in enumerate(group):
            parts = [f"{k}={_fmt_value(flat[j].get(k)) if k in flat[j] else '-'}" for k in sorted(differing)]
            r.label = f"{algo}[{','.join(parts)}]" if parts else algo
            if not (r.sweep_cell and isinstance(r.sweep_cell.get("overrides"), dict)):
                r.overrides = {k: flat[j][k] for k in sorted(differing) if k in flat[j]}


def load_runs(paths: Iterable[str | Path], note: Note | None = _stderr) -> list[Run]:
    """Finds, reads and labels every run under ``paths``.

    Runs without any evaluation are skipped; unfinished runs are kept (``finished``
    False); half-written last lines are dropped. Each of these is reported through
    ``note`` (default: a ``note: ...`` line on stderr; None to stay quiet).
    Raises FileNotFoundError / ValueError when a path holds no run directory.
    """
    note = note or (lambda _msg: None)
    runs = []
    for p in find_run_dirs(paths):
        run = load_run(p)
        if run.dropped_lines:
            note(f"{p}: dropped {run.dropped_lines} half-written last line(s) of its metrics files")
        if not any(run.evals):
            note(f"{p}: no evaluation yet; skipped")
            continue
        if not run.finished:
            last = max((int(rows[-1].get("env_steps", 0)) for rows in run.evals if rows), default=0)
            note(
                f"{p}: unfinished (no summary.json); using its evaluations so far (up to {last:,} env steps)"
            )
        runs.append(run)
    assign_labels(runs)
    return runs


def load_runs_or_fail(paths: list[str]) -> tuple[Note, list[Run]]:
    """``(note, runs)`` for the CLI: notes go to stderr; no run with evaluations is an error."""
    runs = load_runs(paths, note=_stderr)
    if not runs:
        raise ValueError(f"no run with evaluations under {', '.join(map(str, paths))}")
    return _stderr, runs


def resolve_metric(runs: list[Run], metric: str) -> str:
    """``metric`` as named in the eval rows (``return`` finds ``test_return``).

    Raises ValueError naming the metrics present when no run has it.
    """
    present = sorted(set().union(*(r.metrics for r in runs))) if runs else []
    for name in (metric, f"test_{metric}"):
        if name in present:
            return name
    raise ValueError(
        f"unknown metric {metric!r}: the evaluation rows of these runs hold "
        + (", ".join(present) if present else "no test_* metric")
    )

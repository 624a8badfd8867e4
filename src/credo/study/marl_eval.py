"""credo export marl-eval: run directories as InstaDeep marl-eval's raw-experiment JSON.

marl-eval (Gorsane et al. 2022, ``marl_eval.utils.data_processing_utils``) reads::

    {env_name: {task_name: {algorithm: {run_name: {
        "step_0": {"step_count": N, metric: [one value per evaluation episode], ...},
        ...,
        "step_k": {...},
        "absolute_metrics": {metric: [...]}}}}}}

with ``absolute_metrics`` the last key of every run. From credo:

* ``env_name``: the env family (``lbf`` of ``lbf:Foraging-8x8-2p-3f-v3``); ``task_name``: the rest
  (``Foraging-8x8-2p-3f-v3``);
* ``algorithm``: the run's label (as ``credo compare`` groups it);
* ``run_name``: ``seed_<seed>``, made unique within an algorithm by appending ``@<run dir>``
  when two runs of one label share a seed;
* ``step_<k>``: the k-th evaluation, ``step_count`` its env steps. Metrics: ``return`` (per-episode
  test returns), ``win_rate`` (per-episode 0/1 wins, where the env reports them),
  ``success_rate`` (RICOL's ``test_success``), ``episode_length`` (``test_length``), and any
  other numeric ``test_<name>`` as ``<name>``.
  Evaluation rows without per-episode lists (older runs; ``test_length`` and RICOL's metrics, which
  are only kept as means) give the mean as a one-element list, which marl-eval accepts; the export
  says which runs' returns, wins or successes came as means only;
* ``absolute_metrics``: the final evaluation's values. marl-eval's absolute metric re-evaluates the
  best policy with 10x the episodes; credo does not, so treat it as the final score.

marl-eval needs every run of an env to have the same algorithms, tasks, runs and number of
evaluations; the export writes what there is and prints a note when counts differ.
:func:`load_marl_eval` reads such a file back and checks its structure.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credo.study.runs import Run, episode_key, load_runs_or_fail

__all__ = ["cmd_export_marl_eval", "export_marl_eval", "load_marl_eval", "marl_eval_data", "metric_name"]

ABSOLUTE = "absolute_metrics"
# Metrics a run may keep per episode; the others (test_length, ...) are always exported as means.
_PER_EPISODE = ("test_return", "test_won", "test_success")
_NAMES = {
    "test_return": "return",
    "test_won": "win_rate",
    "test_success": "success_rate",
    "test_length": "episode_length",
}
Note = Callable[[str], None]


def metric_name(credo_metric: str) -> str:
    """marl-eval's name for a credo eval-row metric (``test_return`` -> ``return``)."""
    return _NAMES.get(credo_metric, credo_metric.removeprefix("test_"))


def _step_entry(row: dict[str, Any], metrics: list[str], means_only: set[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"step_count": int(row.get("env_steps", 0))}
    for m in metrics:
        if m not in row or row[m] is None:
            continue
        episodes = row.get(episode_key(m))
        if isinstance(episodes, list) and episodes:
            entry[metric_name(m)] = [float(x) for x in episodes]
        else:
            entry[metric_name(m)] = [float(row[m])]
            if m in _PER_EPISODE:
                means_only.add(m)
    return entry


def marl_eval_data(runs: list[Run], note: Note | None = None) -> dict[str, Any]:
    """The marl-eval dict of labelled runs (see the module docstring)."""
    note = note or (lambda _msg: None)
    data: dict[str, Any] = {}
    without_episodes: list[str] = []
    unfinished = [str(r.path) for r in runs if not r.finished]
    for r in runs:
        metrics = r.metrics
        algo = data.setdefault(r.env_family, {}).setdefault(r.task, {}).setdefault(r.label, {})
        means_only: set[str] = set()
        for i, rows in enumerate(r.evals):
            if not rows:
                continue
            name = f"seed_{r.seeds[i]}"
            if name in algo:
                name = f"{name}@{r.name}"
                k = 2
                while name in algo:
                    name, k = f"seed_{r.seeds[i]}@{r.name}#{k}", k + 1
            run: dict[str, Any] = {}
            for k, row in enumerate(rows):
                run[f"step_{k}"] = _step_entry(row, metrics, means_only)
            last = run[f"step_{len(rows) - 1}"]
            run[ABSOLUTE] = {m: list(v) for m, v in last.items() if m != "step_count"}
            algo[name] = run
        if means_only:
            without_episodes.append(f"{r.path} ({', '.join(sorted(means_only))})")
    if without_episodes:
        note(
            "no per-episode values in some evaluation rows; their means are exported as one-element "
            "lists: " + "; ".join(without_episodes)
        )
    if unfinished:
        note("unfinished runs exported with their evaluations so far: " + ", ".join(unfinished))
    for env, tasks in data.items():
        counts = {
            len([k for k in run if k != ABSOLUTE])
            for algos in tasks.values()
            for runs_ in algos.values()
            for run in runs_.values()
        }
        n_runs = {len(runs_) for algos in tasks.values() for runs_ in algos.values()}
        if len(counts) > 1 or len(n_runs) > 1:
            note(
                f"{env}: runs differ in evaluation counts ({sorted(counts)}) or algorithms in run counts "
                f"({sorted(n_runs)}); marl-eval's aggregation needs them equal (its DiagnoseData says where)"
            )
    note("absolute_metrics holds each run's final evaluation (credo does not re-evaluate the best policy)")
    return data


def export_marl_eval(runs: list[Run], path: str | Path, note: Note | None = None) -> dict[str, Any]:
    """Writes the marl-eval JSON of ``runs`` to ``path``; returns the dict."""
    data = marl_eval_data(runs, note)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data) + "\n", encoding="utf-8")
    return data


def load_marl_eval(path: str | Path) -> dict[str, Any]:
    """Reads a marl-eval JSON file and checks its structure; returns the nested dict.

    Raises ValueError naming the first place where the file departs from
    ``{env: {task: {algorithm: {run: {step_k: {"step_count": int, metric: [numbers]}, ...,
    "absolute_metrics": {metric: [numbers]}}}}}}`` (``absolute_metrics``, when present, last).
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))

    def mapping(x: Any, where: str) -> dict:
        if not isinstance(x, dict):
            raise ValueError(f"{path}: {where} must be a JSON object, got {type(x).__name__}")
        return x

    def numbers(x: Any, where: str) -> None:
        if not isinstance(x, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in x
        ):
            raise ValueError(f"{path}: {where} must be a list of numbers")

    for env, tasks in mapping(data, "the top level").items():
        for task, algos in mapping(tasks, env).items():
            for algo, runs in mapping(algos, f"{env}/{task}").items():
                for run, steps in mapping(runs, f"{env}/{task}/{algo}").items():
                    where = f"{env}/{task}/{algo}/{run}"
                    keys = list(mapping(steps, where))
                    if ABSOLUTE in keys and keys[-1] != ABSOLUTE:
                        raise ValueError(f"{path}: {where}: {ABSOLUTE} must be the last key")
                    for key in keys:
                        entry = mapping(steps[key], f"{where}/{key}")
                        if key == ABSOLUTE:
                            for m, v in entry.items():
                                numbers(v, f"{where}/{key}/{m}")
                            continue
                        if not key.startswith("step_"):
                            raise ValueError(
                                f"{path}: {where}: unexpected key {key!r} (step_<k> or {ABSOLUTE})"
                            )
                        if not isinstance(entry.get("step_count"), int):
                            raise ValueError(f"{path}: {where}/{key}: step_count must be an integer")
                        for m, v in entry.items():
                            if m != "step_count":
                                numbers(v, f"{where}/{key}/{m}")
    return data


def cmd_export_marl_eval(args: argparse.Namespace) -> int:
    """``credo export marl-eval``: writes the runs under ``args.paths`` to ``args.out`` as marl-eval's
    raw-experiment JSON (``export_marl_eval``) and prints what it wrote per env and task; returns 0.
    """
    note, runs = load_runs_or_fail(args.paths)
    data = export_marl_eval(runs, args.out, note=note)
    n_runs = sum(len(r) for t in data.values() for a in t.values() for r in a.values())
    summary = ", ".join(
        f"{env}/{task}: {', '.join(f'{algo} ({len(rs)})' for algo, rs in algos.items())}"
        for env, tasks in data.items()
        for task, algos in tasks.items()
    )
    print(
        f"wrote {args.out}: {n_runs} run(s) from {len(runs)} run director{'y' if len(runs) == 1 else 'ies'}; {summary}"
    )
    return 0

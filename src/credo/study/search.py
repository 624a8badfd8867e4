"""Hyperparameter search: Optuna proposes configs, each trial is an ordinary run trained as a Ray task.

A spec with a ``search:`` section::

    name: qmix-lr
    algos: [qmix]
    envs: [lbf:Foraging-8x8-2p-2f-coop-v3]
    seeds: 3
    steps: 2e5
    set: {n_envs: 8}
    search:
      trials: 12                 # the budget: trials in all, over every rerun
      metric: test_return        # a trial's score: IQM over seeds of its final value
      mode: max                  # or min
      sampler: tpe               # tpe (Optuna's default) or random
      seed: 0                    # the sampler's seed
      params:
        lr: {low: 1e-4, high: 1e-2, log: true}     # a float range (log scale)
        batch_size: {low: 16, high: 64, step: 16}  # whole numbers when low/high/step are
        td_lambda: {choices: [0.4, 0.6, 0.8]}

Optuna's ask-and-tell interface keeps its study in ``search.db`` (SQLite) in the sweep directory,
so a rerun continues where the last one stopped: finished trials stay told, trials that were cut
off resume from their run's checkpoint. Each trial is a cell ``trial-NNN`` with the sampled values
as overrides, so ``credo compare`` and ``credo eval`` work on trials as on any run. When the
budget is spent, ``best.yaml`` (the best trial's full config) and ``search.json`` (every trial's
values and score) are written next to the trials.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from credo.engine.metadata import now_utc
from credo.qllm.artifact import write_json_atomic
from credo.study.runs import load_run
from credo.study.spec import Cell, SpecError, SweepSpec, _cell
from credo.study.sweep import RayCells, SweepDisplay, cell_status, resolve_config

SEARCH_KEYS = {"trials", "metric", "mode", "sampler", "seed", "params", "concurrent"}


def search_settings(spec: SweepSpec) -> dict:
    """The ``search:`` section, checked; errors name the key and what it expects."""
    s, where = dict(spec.search or {}), f"{spec.source}: search"
    unknown = set(s) - SEARCH_KEYS
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; keys: {', '.join(sorted(SEARCH_KEYS))}."
        )
    if len(spec.cells) != 1:
        raise SpecError(
            f"{where}: a search tunes one algorithm on one env (this spec has {len(spec.cells)} cells); "
            "give one algo and one env, and no grid or include."
        )
    trials = s.get("trials")
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise SpecError(f"{where}.trials must be a whole number >= 1 (the budget), got {trials!r}.")
    if s.get("mode", "max") not in ("max", "min"):
        raise SpecError(f"{where}.mode must be max or min, got {s['mode']!r}.")
    if s.get("sampler", "tpe") not in ("tpe", "random"):
        raise SpecError(f"{where}.sampler must be tpe or random, got {s['sampler']!r}.")
    params = s.get("params")
    if not isinstance(params, dict) or not params:
        raise SpecError(
            f"{where}.params must map fields to ranges, e.g. lr: {{low: 1e-4, high: 1e-2, log: true}}."
        )
    for name, p in params.items():
        ok = isinstance(p, dict) and (
            ("choices" in p and isinstance(p["choices"], list) and p["choices"])
            or ("low" in p and "high" in p and p["low"] < p["high"])
        )
        if not ok:
            raise SpecError(
                f"{where}.params.{name} must be {{low: A, high: B}} with A < B (optional log: true, step: S) "
                f"or {{choices: [...]}}, got {p!r}."
            )
    return {
        "trials": trials,
        "metric": s.get("metric", "test_return"),
        "mode": s.get("mode", "max"),
        "sampler": s.get("sampler", "tpe"),
        "seed": s.get("seed", 0),
        "params": params,
        "concurrent": s.get("concurrent"),
    }


def suggest(trial, params: dict) -> dict:
    """Values for one trial from its Optuna ``trial``."""
    out = {}
    for name, p in params.items():
        if "choices" in p:
            out[name] = trial.suggest_categorical(name, p["choices"])
        elif all(
            isinstance(p.get(k, 1), int) and not isinstance(p.get(k), bool) for k in ("low", "high", "step")
        ):
            out[name] = trial.suggest_int(
                name, p["low"], p["high"], step=p.get("step", 1), log=p.get("log", False)
            )
        else:
            out[name] = trial.suggest_float(
                name, p["low"], p["high"], step=p.get("step"), log=p.get("log", False)
            )
    return out


def trial_cell(base: Cell, number: int, values: dict) -> Cell:
    """The cell of trial ``number``: the spec's one cell with the trial's sampled ``values`` set."""
    label = f"trial-{number:03d}"
    overrides = {**base.overrides, **values}
    return _cell(number, label, base.algo, base.env, overrides, base.seeds, base.steps, base.plugins)


def trial_score(run: Path, metric: str) -> float | None:
    """IQM over seeds of the metric's final evaluation; None if a seed has no such value."""
    from credo import stats

    finals = [c.at() for c in load_run(run).curves(metric)]
    if not finals or any(f is None for f in finals):
        return None
    return float(stats.iqm([value for value, _ in finals]))


def run_search(
    spec: SweepSpec, out: str | Path, *, address: str | None = None, max_concurrent: int | None = None
) -> dict:
    """Runs the search to its budget of trials; writes ``search.json`` and ``best.yaml``."""
    import optuna

    settings = search_settings(spec)
    root = Path(out).resolve() / spec.name
    root.mkdir(parents=True, exist_ok=True)
    base = spec.cells[0]
    resolve_config(base)  # a bad base config fails here, before Ray starts
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.RandomSampler(seed=settings["seed"])
        if settings["sampler"] == "random"
        else optuna.samplers.TPESampler(seed=settings["seed"])
    )
    study = optuna.create_study(
        study_name=spec.name,
        storage=f"sqlite:///{root / 'search.db'}",
        load_if_exists=True,
        direction="maximize" if settings["mode"] == "max" else "minimize",
        sampler=sampler,
    )
    states = optuna.trial.TrialState
    # Trials cut off by an earlier interruption: their values are fixed, their runs resume.
    unfinished = [t for t in study.trials if t.state in (states.RUNNING, states.WAITING)]
    told = [t for t in study.trials if t.state in (states.COMPLETE, states.FAIL, states.PRUNED)]
    budget = settings["trials"] - len(told)
    trial_cells: dict[str, tuple] = {}  # cell name -> (optuna trial number, Cell)
    rows = []
    spec_like = dataclasses.replace(spec, cells=[], search=None)
    display = SweepDisplay(spec_like, root, rows, progress=False)
    if budget <= 0:
        display.event(f"search {spec.name}: all {settings['trials']} trials are done")
        return _write_results(study, spec, root, settings, base)

    pool = RayCells(spec, root, address=address, max_concurrent=max_concurrent or settings["concurrent"])
    display.event(
        f"search {spec.name}: {budget} of {settings['trials']} trials to run ({len(unfinished)} resumed), "
        f"at most {pool.limit} at a time -> {root}"
    )
    started = 0

    def finish(cell: Cell, result: dict) -> None:
        number, _ = trial_cells[cell.name]
        row = next(r for r in rows if r["name"] == cell.name)
        score = trial_score(root / cell.name, settings["metric"]) if result["status"] == "done" else None
        if score is None:
            study.tell(number, state=states.FAIL)
            row.update(
                status="failed", error=result.get("error") or f"no {settings['metric']} in its evaluations"
            )
            display.cell_finished(cell, row)
        else:
            study.tell(number, score)
            row.update(status="done", seconds=result.get("seconds"), score=score)
            display.event(f"trial {number}: {settings['metric']} IQM {score:.4g}")

    def submit(number: int, values: dict) -> None:
        cell = trial_cell(base, number, values)
        trial_cells[cell.name] = (number, cell)
        rows.append(
            {
                "index": number,
                "name": cell.name,
                "status": "running",
                "log": str(root / "logs" / f"{cell.name}.log"),
            }
        )
        if cell_status(root, cell) == "done":  # finished, but the last process stopped before telling Optuna
            finish(cell, {"status": "done"})
            return
        pool.submit(cell)
        display.event(f"trial {number} {values}: started")

    try:
        queue = [(t.number, t.params) for t in unfinished]
        while started < budget or pool.pending:
            while started < budget and pool.has_room():
                if queue:
                    number, values = queue.pop(0)
                else:
                    trial = study.ask()
                    number, values = trial.number, suggest(trial, settings["params"])
                submit(number, values)
                started += 1
            for cell, result in pool.wait():
                finish(cell, result)
    except KeyboardInterrupt:
        pool.cancel_all()
        display.event("interrupted: rerun the same command to continue the search")
        raise
    finally:
        pool.close()
    return _write_results(study, spec, root, settings, base)


def _write_results(study, spec: SweepSpec, root: Path, settings: dict, base: Cell) -> dict:
    import optuna

    from credo.config import save_config

    states = optuna.trial.TrialState
    trials = [
        {
            "number": t.number,
            "cell": trial_cell(base, t.number, {}).name,
            "state": t.state.name.lower(),
            "params": t.params,
            "score": t.value,
        }
        for t in study.trials
    ]
    doc = {
        "name": spec.name,
        "written": now_utc(),
        "algo": base.algo,
        "env": base.env,
        "metric": settings["metric"],
        "mode": settings["mode"],
        "score": f"IQM over {base.seeds or 'the config default of'} seeds of the final {settings['metric']}",
        "budget_trials": settings["trials"],
        "trials": trials,
    }
    complete = [t for t in study.trials if t.state == states.COMPLETE]
    if complete:
        best = study.best_trial
        best_cell = trial_cell(base, best.number, best.params)
        doc["best"] = {
            "number": best.number,
            "cell": best_cell.name,
            "params": best.params,
            "score": best.value,
        }
        save_config(resolve_config(best_cell), root / "best.yaml")
        doc["best"]["config"] = str(root / "best.yaml")
        print(
            f"best: trial {best.number} {best.params}: {settings['metric']} IQM {best.value:.4g} "
            f"(config {root / 'best.yaml'}, run {root / best_cell.name})"
        )
    else:
        print(f"search {spec.name}: no trial finished with a score")
    write_json_atomic(root / "search.json", doc)
    return doc

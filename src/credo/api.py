"""credo from Python: train, resume, load and evaluate runs; the command line is a layer over this.

>>> import credo
>>> run = credo.train("vdn", "matrix:climbing", steps=2_000, seeds=2, out="runs",
...                   test_interval=500, progress=False)
>>> run.summary["final_test_return_iqm"]        # what `credo train` prints
>>> run.evaluate(episodes=20)["test_return"]     # per seed, greedy
>>> run.metrics(seed=0)[-1]                       # the rows of metrics/seed_0.jsonl
>>> run = credo.load_run(run.path).resume(steps=4_000)   # train it longer

Every function raises ``ValueError`` (``credo.config.ConfigError`` for settings) with a one-line
message on bad input, as the command line prints it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Settings a resumed run may change: when and how it evaluates, logs and saves, and its budget.
# Anything else would make it a different experiment than the one its checkpoint continues.
RESUME_SAFE_FIELDS = (
    "total_env_steps",
    "test_interval",
    "test_episodes",
    "log_interval",
    "save_interval",
    "keep_snapshots",
    "logger",
)


def config_files(algo: str, env_key: str) -> list:
    """The YAML layers of a run: the algorithm's, the env family's, then the pair's, later winning."""
    from credo.algos.ppo import PPO_ALGOS
    from credo.algos.registry import get_algo

    entry = get_algo(algo)
    root = Path(__file__).parent / "configs"
    files = [entry.defaults] if isinstance(entry.defaults, Path) else []
    family = env_key.split(":", 1)[0]
    env_file = root / "envs" / ("ppo" if algo in PPO_ALGOS or _is_ppo(entry) else "") / f"{family}.yaml"
    if env_file.exists():
        files.append(env_file)
    tuned = root / "tuned" / family / f"{algo}.yaml"
    if tuned.exists():
        files.append(tuned)
    return files


def _is_ppo(entry) -> bool:
    from credo.algos.ppo import PPOConfig

    return issubclass(entry.config, PPOConfig)


def make_config(
    algo: str,
    env: str,
    *,
    config: str | Path | None = None,
    steps: int | None = None,
    seeds: int | None = None,
    overrides: list[str] = (),
    **fields: Any,
):
    """The resolved config of a new run of ``algo`` on ``env``.

    Layers, later winning: the algorithm's defaults, the env family's, the tuned pair's
    (``configs/tuned/``), the YAML file ``config`` (a user's, or a run's ``config.yaml``), then
    ``fields`` (Python values), ``overrides`` (``"key=value"`` strings, as ``--set``), ``steps``
    and ``seeds``.
    """
    from credo.config import load_config
    from credo.plugins import import_plugins

    _import_plugins_named(fields.get("plugins"), overrides)  # before the algorithm is looked up
    files = list(config_files(algo, env))
    if config is not None:
        user = _read_yaml(Path(config), "--config")
        import_plugins(user.get("plugins") or [], why=f"listed in {config}")
        files.append(Path(config))
    sets = _overrides(fields, overrides, total_env_steps=steps, seeds=seeds)
    entry = _algo(algo)
    base = {"algo": algo, "env": env}
    if isinstance(entry.defaults, dict):
        base.update(entry.defaults)
    cfg = load_config(entry.config, files, sets, base=base)
    return _with_plugins(cfg)


def _import_plugins_named(plugins, overrides) -> None:
    """Imports the plugins a ``plugins`` field or a ``plugins=[...]`` override names."""
    import yaml

    from credo.plugins import import_plugins

    named = list(plugins or [])
    for text in overrides:
        key, _, raw = text.partition("=")
        if key.strip() == "plugins":
            value = yaml.safe_load(raw)
            named += value if isinstance(value, list) else [value]
    import_plugins(named, why="named in plugins")


def _algo(name: str):
    from credo.algos.registry import get_algo

    return get_algo(name)


def _overrides(fields: dict, overrides, **given) -> list[str]:
    """``key=value`` strings (as ``--set`` takes them): ``fields``' Python values as JSON, then
    ``overrides`` as written, then the ``given`` keywords that are not None."""
    sets = [f"{k}={json.dumps(_plain(v))}" for k, v in fields.items()] + list(overrides)
    return sets + [f"{k}={v}" for k, v in given.items() if v is not None]


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _read_yaml(path: Path, what: str) -> dict:
    import yaml

    if not path.is_file():
        raise ValueError(f"{what} {path}: no such file.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{what} {path} cannot be read ({first}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{what} {path}: the top level must be a mapping of field: value.")
    return data


def _with_plugins(cfg):
    """``cfg`` with ``plugins`` listing the modules that registered its algo, mixer and env family."""
    import dataclasses

    from credo.plugins import modules_for

    if not hasattr(cfg, "plugins"):
        return cfg
    needed = [m for m in modules_for(cfg) if m not in cfg.plugins]
    return dataclasses.replace(cfg, plugins=[*cfg.plugins, *needed]) if needed else cfg


def load_run_config(run_dir, overrides=()):
    """The config of an existing run directory, as the class its algorithm uses.

    The plugins it lists are imported first. A missing, unreadable or hand-damaged
    ``config.yaml`` is a one-line ValueError naming the file (and line) and what to do.
    """
    from credo.algos.registry import UnknownAlgorithm
    from credo.config import ConfigError, load_config
    from credo.plugins import import_plugins

    run, path = Path(run_dir), Path(run_dir) / "config.yaml"
    if not run.is_dir():
        raise ValueError(
            f"{run} is not a run directory ({'a file' if run.exists() else 'it does not exist'})."
        )
    if not path.exists():
        raise ValueError(f"{run} is not a run directory (no config.yaml).")
    fix = f"{path} is the run's resolved config, written when it started: repair it, or start a new run"
    try:
        data = _read_yaml(path, "config")
    except ValueError as err:
        raise ValueError(f"{str(err).removeprefix('config ').rstrip('.')}; {fix}.") from None
    if not isinstance(data.get("algo"), str):
        raise ValueError(f"{path} does not hold a config (no 'algo: NAME' mapping at its top level); {fix}.")
    import_plugins(
        data.get("plugins") or [],
        why=f"the run {run} was made with it: its config.yaml lists it under plugins",
    )
    try:
        entry = _algo(data["algo"])
    except UnknownAlgorithm:
        raise ValueError(f"{path} names an unknown algorithm {data['algo']!r}; {fix}.") from None
    legacy = _legacy_fields(entry.config, data)
    try:
        if legacy:  # a run of before 2026-12-02: its config.yaml lists ME-IGM fields it never used
            kept = {k: v for k, v in data.items() if k not in legacy}
            return load_config(entry.config, [], list(overrides), base=kept)
        return load_config(entry.config, [path], list(overrides))
    except ConfigError as err:
        if str(err).startswith("--set"):
            raise
        raise ValueError(f"{err} ({fix})") from None


def _legacy_fields(cls, data: dict) -> list[str]:
    """Keys of ``data`` that only ME-IGM's config has, in a run of another algorithm: every value
    learner's config.yaml listed them until MaxEntConfig took them (2026-12-02)."""
    import dataclasses

    from credo.algos.me_igm import MaxEntConfig

    own = {f.name for f in dataclasses.fields(cls)}
    me_only = {f.name for f in dataclasses.fields(MaxEntConfig)} - own
    return [k for k in data if k in me_only]


@dataclass
class Run:
    """A run directory: its config, metrics, summary and checkpoints."""

    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    @property
    def config(self):
        """The run's resolved config (its ``config.yaml``)."""
        return load_run_config(self.path)

    @property
    def summary(self) -> dict | None:
        """``summary.json`` (final test returns, IQM and CI, throughput), or None if unfinished."""
        p = self.path / "summary.json"
        return json.loads(p.read_text()) if p.exists() else None

    @property
    def finished(self) -> bool:
        """Whether the run has written ``summary.json``: it trained its whole budget and wrote its
        final evaluation (a stopped or killed run has not)."""
        return (self.path / "summary.json").exists()

    def metrics(self, seed: int | None = None) -> list[dict] | list[list[dict]]:
        """The metrics rows of ``seed`` (training rows and evaluation rows, which hold
        ``eval_index``), or of every seed if None."""
        from credo.engine.rundir import RunDir

        rd = RunDir(self.path)
        if seed is not None:
            return rd.rows(seed)
        return [rd.rows(i) for i in range(len(sorted((self.path / "metrics").glob("seed_*.jsonl"))))]

    def evaluate(self, episodes: int | None = None, snapshot: str = "last") -> dict:
        """Evaluates the parameters of ``snapshot`` (``last``: the training checkpoint; ``best``,
        ``latest`` or ``eval-N``: a parameter snapshot) for ``episodes`` per seed (default: the
        run's ``test_episodes``), acting as the run's evaluations do.

        Returns ``{"seeds", "test_return", "test_won" (where the env reports wins), "episodes",
        "where"}``; returns and win rates are per seed.
        """
        import jax
        import numpy as np

        from credo.engine.checkpoint import load_checkpoint
        from credo.engine.rundir import RunDir
        from credo.engine.snapshots import snapshot_path
        from credo.engine.train import Trainer, count_value

        overrides = [f"test_episodes={episodes}"] if episodes is not None else []
        cfg = load_run_config(self.path, overrides)
        trainer = Trainer(cfg)
        if snapshot == "last":
            state, _ = trainer.load(RunDir(self.path), with_buffer=False)  # the buffer is not needed to act
            params, where = (
                state.learner.params,
                f"checkpoint at {count_value(state.env_steps).tolist()} env steps",
            )
        else:
            path = snapshot_path(self.path, snapshot)
            template = jax.eval_shape(trainer.init_state).learner.params
            params, meta = load_checkpoint(
                path, template, what="parameter snapshot", fix="evaluate another snapshot"
            )
            where = f"snapshot {path.stem} (evaluation {meta['eval_index']}, {meta['env_steps']} env steps)"
        result = trainer.evaluate(trainer.to_devices(params), index=10**6)
        out = {
            "seeds": trainer.seeds,
            "test_return": np.asarray(result.returns).mean(1).tolist(),
            "episodes": cfg.test_episodes,
            "greedy": trainer.eval_greedy,
            "where": where,
        }
        if trainer.with_won:
            out["test_won"] = np.asarray(result.won).mean(1).tolist()
        return out

    def resume(self, steps: int | None = None, *, progress: bool = True, **fields: Any) -> Run:
        """Continues the run (see ``resume``); returns it."""
        return resume(self.path, steps=steps, progress=progress, **fields)


def load_run(path: str | Path) -> Run:
    """The run in ``path``; ValueError if it is not a run directory."""
    run = Run(Path(path))
    load_run_config(run.path)  # a clear error now rather than at first use
    return run


def train(
    algo: str,
    env: str,
    *,
    steps: int | None = None,
    seeds: int | None = None,
    out: str | Path = "runs",
    name: str | None = None,
    config: str | Path | None = None,
    progress: bool = True,
    verbose: bool = True,
    **fields: Any,
) -> Run:
    """Trains ``algo`` on ``env`` in a new run directory under ``out``; returns the finished Run.

    ``fields`` override config fields (``lr=1e-3``, ``n_envs=8``); ``config`` is a YAML file of
    fields (a run's ``config.yaml`` reproduces that run). ``credo train ALGO --help`` lists the fields.
    """
    cfg = make_config(algo, env, config=config, steps=steps, seeds=seeds, **fields)
    return train_config(cfg, out=out, name=name, progress=progress, verbose=verbose)


def train_config(
    cfg, *, out: str | Path = "runs", name: str | None = None, progress=True, verbose=True
) -> Run:
    """Trains a resolved config (from ``make_config``) in a new run directory."""
    from credo.engine import resources
    from credo.engine.rundir import RunDir, check_name, check_out

    if name is not None:
        check_name(name)
    check_out(out)
    if _algo(cfg.algo).learner is None:
        return _train_ricol(cfg, out, name, verbose)
    from credo.engine.train import Trainer

    trainer = Trainer(cfg)
    resources.warn(trainer.check_resources(out))  # a run that cannot fit fails before its directory exists
    run_dir = RunDir.create(cfg, base=out, name=name)
    if verbose:
        print(
            f"{cfg.algo} on {cfg.env}: {cfg.seeds} seed(s), {cfg.total_env_steps:,} env steps each -> {run_dir.path}"
        )
        print(f"  memory: {resources.describe(trainer.memory_plan())}")
        if cfg.logger:
            print(f"  logging to {', '.join(cfg.logger)} in {run_dir.path / 'logs'}")
    trainer.run(run_dir, progress=progress)
    return Run(run_dir.path)


def _train_ricol(cfg, out, name, verbose: bool) -> Run:
    from credo.engine.rundir import RunDir
    from credo.ricl.ricol import RICOLTrainer

    run_dir = RunDir.create(cfg, base=out, name=name)
    if verbose:
        print(
            f"{cfg.algo} on {cfg.env}: {cfg.seeds} seed(s), {cfg.iterations} iterations of "
            f"{cfg.episodes_per_iteration} episodes -> {run_dir.path}"
        )
    RICOLTrainer(cfg, run_dir.path).run()
    return Run(run_dir.path)


def resume_config(run_dir, *, steps: int | None = None, overrides: list[str] = (), **fields: Any):
    """The run's config with the changes a resume may make; returns ``(cfg, changed)``.

    ``changed`` names the fields that differ from ``config.yaml``; fields outside
    ``RESUME_SAFE_FIELDS`` would make it another experiment and raise ValueError.
    """
    from credo.config import to_dict

    cfg = load_run_config(run_dir)
    sets = _overrides(fields, overrides, total_env_steps=steps)
    if not sets:
        return cfg, []
    new = load_run_config(run_dir, sets)
    before, after = to_dict(cfg), to_dict(new)
    changed = [k for k in after if after[k] != before.get(k)]
    unsafe = [k for k in changed if k not in RESUME_SAFE_FIELDS]
    if unsafe:
        raise ValueError(
            f"--resume continues {run_dir} as it was configured; changing {', '.join(unsafe)} would "
            f"make it a different experiment. A resumed run may change only {', '.join(RESUME_SAFE_FIELDS)} "
            "(--steps sets total_env_steps); start a new run for other settings."
        )
    return new, changed


def resume(
    run_dir: str | Path,
    *,
    steps: int | None = None,
    overrides: list[str] = (),
    progress: bool = True,
    verbose: bool = True,
    **fields: Any,
) -> Run:
    """Continues a run from its last checkpoint; ``steps`` extends (or sets) its budget.

    A run stopped before its first checkpoint starts again from the beginning in its directory.
    A finished run and no larger ``steps``: nothing is trained. Only ``RESUME_SAFE_FIELDS`` may
    change (``fields``, ``overrides``); others raise ValueError.
    """
    import numpy as np

    from credo.config import save_config
    from credo.engine import resources
    from credo.engine.rundir import RunDir

    run_dir = RunDir(run_dir)
    cfg, changed = resume_config(run_dir.path, steps=steps, overrides=overrides, **fields)
    if _algo(cfg.algo).learner is None:
        if changed:
            raise ValueError(
                f"--resume continues the {cfg.algo} run {run_dir.path} as it was configured; --steps, --seeds, "
                "--set and --name cannot change it. Start a new run for other settings."
            )
        if verbose:
            print(f"resuming {run_dir.path}")
        from credo.ricl.ricol import RICOLTrainer

        RICOLTrainer(cfg, run_dir.path).run()
        return Run(run_dir.path)
    from credo.engine.train import CHECKPOINT, Trainer, count_value

    trainer = Trainer(cfg)
    say = print if verbose else (lambda *a, **k: None)
    if not (run_dir.path / CHECKPOINT).is_file():
        resources.warn(trainer.check_resources(run_dir.path / "checkpoints"))
        if changed:
            save_config(cfg, run_dir.path / "config.yaml")
        say(
            f"{run_dir.path} has no checkpoint yet (it stopped before the first, due at "
            f"{cfg.save_interval:,} env steps): starting it again from the beginning"
        )
        trainer.run(run_dir, progress=progress)
        return Run(run_dir.path)
    state, meta = trainer.load(run_dir)
    done = int(np.min(count_value(state.env_steps)))
    if "total_env_steps" in changed and cfg.total_env_steps <= done:
        raise ValueError(
            f"{run_dir.path} has trained {done:,} env steps per seed; --steps {cfg.total_env_steps:,} would not "
            "extend it. Give a larger budget."
        )
    if done >= cfg.total_env_steps:
        say(
            f"{run_dir.path} has finished its budget of {cfg.total_env_steps:,} env steps; to train it longer, "
            "add --steps N with N above that."
        )
        return Run(run_dir.path)
    if changed:
        save_config(cfg, run_dir.path / "config.yaml")
        (run_dir.path / "summary.json").unlink(missing_ok=True)  # the run is unfinished again
        say(f"  changed: {', '.join(f'{k} = {getattr(cfg, k)}' for k in changed)}")
    say(f"resuming {run_dir.path} from its checkpoint at {done:,} env steps (chunk {meta['chunk']})")
    trainer.run(run_dir, state, meta, progress=progress)
    return Run(run_dir.path)


def make_env(key: str, **kwargs):
    """The env registered under ``key`` (``family:name``), e.g. ``make_env("lbf:Foraging-8x8-2p-3f-v3")``."""
    import credo.envs as envs

    return envs.make(key, **kwargs)

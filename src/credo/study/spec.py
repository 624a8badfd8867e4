"""Sweep specs: a YAML grid of (algorithm, env, overrides) cells, each trained as one ordinary run.

A spec::

    name: lbf-learning            # the sweep's directory under --out
    algos: [qmix, vdn]            # algorithm names, or labels -> {algo: ..., set: {...}}
    envs: [lbf:Foraging-8x8-2p-2f-coop-v3, lbf:Foraging-8x8-2p-3f-v3]
    seeds: 5                      # per cell, trained together (a vmap axis)
    steps: 2e6                    # env steps per seed (omit: the config's default)
    set: {n_envs: 8}              # overrides for every cell, values as written (lists stay lists)
    grid: {lr: [5e-4, 1e-3]}      # overrides whose lists expand as a product: one cell per value
    include:                      # explicit extra cells
      - {algo: qplex, env: matrix:climbing, set: {lr: 1e-3}}
    exclude:                      # cells of the product to drop (every given key must match)
      - {algo: vdn, grid: {lr: 1e-3}}
    retries: 1                    # re-runs of a crashed cell (it resumes from its checkpoint)
    cpus_per_cell: 1              # Ray CPUs per cell, also its JAX host devices
    gpus_per_cell: 0
    plugins: [mypkg.credo_plugin] # modules every cell imports (as credo train --import MODULE)

The product runs over labels x envs x grid values. ``set`` and ``grid`` are separate because a
config field may itself be a list (``hidden: [64, 64]``): ``set`` passes it as it is, ``grid``
always expands. A cell's label (what ``credo compare`` groups by) is the algo label plus the grid
values, e.g. ``qmix[lr=0.001]``; its name is the label and the env's map, made safe for a path.

A ``search:`` section asks for a hyperparameter search instead of a plain grid (see
``credo.study.search``).
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
from pathlib import Path
from typing import Any

from credo.config import ConfigError, _yaml_load, _yaml_text

SPEC_KEYS = {
    "name": "the sweep's name: its directory under --out",
    "algos": "algorithm names, or a mapping label -> {algo: NAME, set: {...}}",
    "envs": "env keys (see credo list)",
    "seeds": "seeds per cell, trained together",
    "steps": "env steps per seed (default: the config's)",
    "set": "overrides for every cell",
    "grid": "overrides whose lists expand as a product",
    "include": "explicit extra cells: {algo, env, set, label}",
    "exclude": "cells of the product to drop",
    "retries": "re-runs of a crashed cell",
    "cpus_per_cell": "Ray CPUs per cell (and its JAX host devices)",
    "gpus_per_cell": "Ray GPUs per cell",
    "plugins": "plugin modules every cell imports (as credo train --import MODULE)",
    "search": "a hyperparameter search instead of a grid (see docs/studies.md)",
    "description": "free text, kept with the results",
}


class SpecError(ConfigError):
    """A sweep spec that cannot be run: the message says which key and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of a sweep: an algorithm on an env with overrides, ``seeds`` seeds of ``steps``."""

    index: int
    name: str  # the run directory's name under the sweep's directory
    label: str  # what credo compare groups by: algo label + grid values
    algo: str
    env: str
    overrides: dict  # field -> value, applied after the algorithm's and env's YAML
    seeds: int | None
    steps: int | None
    # Plugin modules the cell's ``credo train`` imports (``--import``): its run records the ones it
    # used, so a resumed cell finds them in its config.yaml too.
    plugins: tuple[str, ...] = ()

    def set_args(self) -> list[str]:
        """The overrides as ``key=value`` texts for ``--set``."""
        return [f"{k}={_yaml_text(v, flow=True)}" for k, v in self.overrides.items()]

    def train_args(self, out: Path) -> list[str]:
        """``credo train`` arguments that start this cell from scratch under ``out``."""
        args = ["train", self.algo, self.env, "--out", str(out), "--name", self.name]
        if self.seeds is not None:
            args += ["--seeds", str(self.seeds)]
        if self.steps is not None:
            args += ["--steps", str(self.steps)]
        args += [a for m in self.plugins for a in ("--import", m)]
        return args + [a for s in self.set_args() for a in ("--set", s)]

    def to_dict(self) -> dict:
        """The cell as plain data (``sweep.json``, the cell marker); ``Cell(**d)`` reads it back."""
        return {**dataclasses.asdict(self), "plugins": list(self.plugins)}


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec: its cells in order, and the settings every cell shares."""

    name: str
    cells: list[Cell]
    retries: int = 1
    cpus_per_cell: float = 1
    gpus_per_cell: float = 0
    search: dict | None = None
    plugins: tuple[str, ...] = ()  # imported by every cell
    source: str = ""  # the spec's path
    raw: dict = dataclasses.field(default_factory=dict)  # the spec as read

    def cell(self, index: int) -> Cell:
        """Cell ``index`` (``credo sweep --index``); a SpecError naming the valid range otherwise."""
        if not 0 <= index < len(self.cells):
            raise SpecError(
                f"--index {index} is out of range: this sweep has cells 0..{len(self.cells) - 1}."
            )
        return self.cells[index]


def with_budget(spec: SweepSpec, steps: int | None = None, seeds: int | None = None) -> SweepSpec:
    """The spec with every cell's env steps and/or seeds replaced (``credo sweep --steps/--seeds``)."""
    cells = [dataclasses.replace(c, steps=steps or c.steps, seeds=seeds or c.seeds) for c in spec.cells]
    return dataclasses.replace(spec, cells=cells)


def with_plugins(spec: SweepSpec, modules) -> SweepSpec:
    """The spec with ``modules`` added to every cell's plugins (``credo sweep --import MODULE``)."""
    extra = [m for m in modules if m not in spec.plugins]
    if not extra:
        return spec
    cells = [dataclasses.replace(c, plugins=(*c.plugins, *extra)) for c in spec.cells]
    return dataclasses.replace(spec, cells=cells, plugins=(*spec.plugins, *extra))


def load_spec(path: str | Path) -> SweepSpec:
    """Reads and checks a sweep spec; every error names the key and what it expects."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no sweep spec at {path}.")
    try:
        raw, _ = _yaml_load(path.read_text())
    except Exception as err:  # noqa: BLE001 - YAML's own errors carry the line; keep them
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    return parse_spec(raw, source=str(path))


def parse_spec(raw: Any, source: str = "<spec>") -> SweepSpec:
    """Checks a spec read from YAML (``source`` names it in errors) and expands it into cells."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a sweep spec is a mapping with keys {', '.join(SPEC_KEYS)}.")
    for key in raw:
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), list(SPEC_KEYS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise SpecError(f"{source}: unknown key {key!r}.{hint} Keys: {', '.join(SPEC_KEYS)}.")
    name = raw.get("name") or (Path(source).stem if source != "<spec>" else "sweep")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise SpecError(
            f"{source}: name must be letters, digits, '.', '_' or '-' (it names a directory), got {name!r}."
        )
    seeds = _positive_int(raw.get("seeds"), "seeds", source)
    steps = _positive_int(raw.get("steps"), "steps", source)
    common = _mapping(raw.get("set"), "set", source)
    grid = _mapping(raw.get("grid"), "grid", source)
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise SpecError(
                f"{source}: grid.{k} must be a non-empty list of values (one cell each), got {v!r}; "
                f"a single value belongs under set:."
            )
    both = set(common) & set(grid)
    if both:
        raise SpecError(f"{source}: {', '.join(sorted(both))} given under both set: and grid:; keep one.")
    algos = _algo_labels(raw.get("algos"), source, required=not raw.get("include"))
    envs = raw.get("envs") or []
    if isinstance(envs, str):
        envs = [envs]
    if not isinstance(envs, list) or not all(isinstance(e, str) for e in envs):
        raise SpecError(f"{source}: envs must be a list of env keys, got {envs!r}.")
    if algos and not envs:
        raise SpecError(f"{source}: algos given but no envs: add envs: [KEY, ...] (see credo list).")

    plugins = raw.get("plugins") or []
    if isinstance(plugins, str):
        plugins = [plugins]
    if not isinstance(plugins, list) or not all(isinstance(m, str) and m.strip() for m in plugins):
        raise SpecError(
            f"{source}: plugins must be a list of module names such as [mypkg.credo_plugin], got {plugins!r}."
        )
    plugins = tuple(plugins)

    excludes = raw.get("exclude") or []
    if not isinstance(excludes, list) or not all(isinstance(e, dict) for e in excludes):
        raise SpecError(
            f"{source}: exclude must be a list of mappings such as {{algo: vdn, grid: {{lr: 0.001}}}}."
        )

    cells: list[Cell] = []
    keys = list(grid)
    for label, (algo, algo_set) in algos.items():
        for env in envs:
            for values in itertools.product(*(grid[k] for k in keys)):
                point = dict(zip(keys, values))
                if any(_excluded(x, label, algo, env, point) for x in excludes):
                    continue
                full_label = label + (
                    "[" + ",".join(f"{k}={_yaml_text(v, flow=True)}" for k, v in point.items()) + "]"
                    if point
                    else ""
                )
                overrides = {**common, **algo_set, **point}
                cells.append(_cell(len(cells), full_label, algo, env, overrides, seeds, steps, plugins))
    for i, inc in enumerate(raw.get("include") or []):
        where = f"{source}: include[{i}]"
        if not isinstance(inc, dict) or not inc.get("algo") or not inc.get("env"):
            raise SpecError(f"{where} needs at least algo: and env:, got {inc!r}.")
        unknown = set(inc) - {"algo", "env", "set", "label", "seeds", "steps"}
        if unknown:
            raise SpecError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))}; use algo, env, set, label, seeds, steps."
            )
        extra = _mapping(inc.get("set"), f"include[{i}].set", source)
        label = inc.get("label") or inc["algo"] + (
            "[" + ",".join(f"{k}={_yaml_text(v, flow=True)}" for k, v in extra.items()) + "]" if extra else ""
        )
        cells.append(
            _cell(
                len(cells),
                str(label),
                inc["algo"],
                inc["env"],
                {**common, **extra},
                _positive_int(inc.get("seeds"), f"include[{i}].seeds", source) or seeds,
                _positive_int(inc.get("steps"), f"include[{i}].steps", source) or steps,
                plugins,
            )
        )
    names = [c.name for c in cells]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(
            f"{source}: several cells would share the run directory {dupes[0]!r}; give them distinct labels."
        )
    search = raw.get("search")
    if search is not None and not isinstance(search, dict):
        raise SpecError(f"{source}: search must be a mapping (see docs/studies.md), got {search!r}.")
    if not cells:
        raise SpecError(f"{source}: the spec has no cells: give algos: and envs:, or include:.")
    retries = raw.get("retries", 1)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise SpecError(f"{source}: retries must be a whole number >= 0, got {retries!r}.")
    return SweepSpec(
        name=name,
        cells=cells,
        retries=retries,
        cpus_per_cell=_positive_number(raw.get("cpus_per_cell", 1), "cpus_per_cell", source),
        gpus_per_cell=_positive_number(raw.get("gpus_per_cell", 0), "gpus_per_cell", source, zero=True),
        search=search,
        plugins=plugins,
        source=source,
        raw=raw,
    )


def _cell(index, label, algo, env, overrides, seeds, steps, plugins=()) -> Cell:
    short = env.split(":", 1)[-1]
    # No brackets or spaces in directory names: shells would glob or split them.
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "-", f"{label.replace(']', '')}-{short}").strip("-")
    return Cell(index, name, label, algo, env, overrides, seeds, steps, tuple(plugins))


def _excluded(rule: dict, label: str, algo: str, env: str, point: dict) -> bool:
    if "algo" in rule and rule["algo"] not in (label, algo):
        return False
    if "env" in rule and rule["env"] != env:
        return False
    return all(k in point and point[k] == v for k, v in (rule.get("grid") or {}).items())


def _algo_labels(value, source: str, required: bool) -> dict[str, tuple[str, dict]]:
    if value is None:
        if required:
            raise SpecError(f"{source}: give algos: [NAME, ...] (see credo list) or include: cells.")
        return {}
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if not all(isinstance(a, str) for a in value):
            raise SpecError(
                f"{source}: algos must be names or a mapping label -> {{algo, set}}, got {value!r}."
            )
        return {a: (a, {}) for a in value}
    if isinstance(value, dict):
        out = {}
        for label, body in value.items():
            if not isinstance(body, dict) or "algo" not in body:
                raise SpecError(
                    f"{source}: algos.{label} must be a mapping with algo: NAME (and optional set:), got {body!r}."
                )
            unknown = set(body) - {"algo", "set"}
            if unknown:
                raise SpecError(
                    f"{source}: algos.{label}: unknown key(s) {', '.join(sorted(unknown))}; use algo and set."
                )
            out[str(label)] = (body["algo"], _mapping(body.get("set"), f"algos.{label}.set", source))
        return out
    raise SpecError(f"{source}: algos must be a list of names or a mapping, got {value!r}.")


def _mapping(value, key: str, source: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{source}: {key} must be a mapping field -> value, got {value!r}.")
    return dict(value)


def _positive_int(value, key: str, source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"{source}: {key} must be a whole number >= 1 (2e6 is fine), got {value!r}.")
    return value


def _positive_number(value, key: str, source: str, zero: bool = False) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or value < 0
        or (value == 0 and not zero)
    ):
        raise SpecError(f"{source}: {key} must be a number {'>= 0' if zero else '> 0'}, got {value!r}.")
    return value

"""credo sweep: every cell of a spec runs as a Ray task, each an ordinary ``credo train`` run.

A sweep directory::

    OUT/<sweep-name>/
      spec.yaml            the spec as last run
      sweep.json           every cell: status, attempts, error, log path, seconds (rewritten atomically)
      logs/<cell>.log      the output of each cell's attempts
      <cell>/              an ordinary run directory (credo eval, credo train --resume work on it)
        sweep_cell.json    which sweep and cell it is, and its label (what credo compare groups by)

Why Ray core tasks rather than Ray Tune's ``Tuner``: a cell is already a resumable run with its
own checkpoints, metrics and summary, so the state of a sweep is the state of its run
directories. Tune would keep a second, parallel record (trial directories, experiment state) to
reconcile with ours on every resume, and would run the training inside its trainable's process.
A task per cell keeps one source of truth and lets Ray do what it is good at: placing cells on the
cluster's free CPUs/GPUs (``num_cpus``/``num_gpus`` per task), retrying crashed ones
(``max_retries`` with ``retry_exceptions``) and cancelling them. Each task starts ``credo train``
as a child process bound to it (it dies with its worker), so a crashing cell cannot take the
worker, or other cells, with it, and its output goes to its own log file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from credo.engine.metadata import now_utc
from credo.qllm.artifact import write_json_atomic
from credo.study.runs import CELL_FILE, _read_json  # the marker this writes and credo compare reads
from credo.study.spec import Cell, SweepSpec

SWEEP_FILE = "sweep.json"
USER_ERROR = 2  # credo's exit status for a bad config or input: retrying cannot help


class CellCrashed(RuntimeError):
    """A cell's process ended with an unexpected status: worth another attempt (it resumes)."""


# --- cells on disk ----------------------------------------------------------------------------


def cell_status(root: Path, cell: Cell) -> str:
    """``done`` (it has a summary), ``partial`` (a checkpoint to resume from) or ``new``."""
    run = root / cell.name
    if (run / "summary.json").exists():
        return "done"
    return "partial" if has_checkpoint(run) else "new"


def has_checkpoint(run: Path) -> bool:
    """Whether ``run`` holds a finished checkpoint that ``credo train --resume`` can start from.

    Only a complete one counts: a process killed while saving leaves ``last.npz.tmp-<pid>``
    (engine runs) or ``seed_<i>.tmp/`` (RICOL) behind, and those cannot be resumed from.
    """
    ckpt = run / "checkpoints"
    if (ckpt / "last.npz").is_file():  # credo.engine.train.CHECKPOINT
        return True
    # RICOL: one directory per seed; ``seed_<i>.old`` is the previous one while a swap is under way
    return any(p.is_dir() and not p.name.endswith(".tmp") for p in ckpt.glob("seed_*"))


def cell_argv(root: Path, cell: Cell) -> list[str]:
    """The ``credo`` arguments that run ``cell`` on from where it is: resume, or start afresh.

    A run cut off before its first checkpoint has nothing to resume: its directory is removed
    and the cell starts again.
    """
    run = root / cell.name
    if cell_status(root, cell) == "partial":
        return ["train", "--resume", str(run), "--no-progress"]
    if run.exists():
        shutil.rmtree(run)
    return [*cell.train_args(root), "--no-progress"]


def write_cell_marker(root: Path, spec_name: str, cell: Cell) -> None:
    """Writes the cell's marker file into its run directory (if it exists): which sweep and cell made
    it, so ``credo compare`` labels the run by the cell and a rerun recognises it."""
    run = root / cell.name
    if run.is_dir():
        doc = {"sweep": spec_name, "cell": cell.name, **cell.to_dict()}
        write_json_atomic(run / CELL_FILE, doc)


def config_changes(run: Path, cfg) -> list[str]:
    """How the cell's config now differs from the one its run directory was made with.

    A spec edited after its cells ran (another ``lr``, more steps) keeps the cells' names, so
    without this check a rerun would skip or resume them with the old settings, silently.
    """
    from credo.config import to_dict

    saved_path = run / "config.yaml"
    if not saved_path.exists():
        return []
    from credo.cli import load_run_config

    try:
        saved = to_dict(load_run_config(run))
    except Exception as err:  # noqa: BLE001 - a damaged config.yaml is a change too
        return [f"config.yaml unreadable: {err}"]
    now = to_dict(cfg)
    keys = [k for k in now if saved.get(k) != now[k]]
    return [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in keys]


def cell_env_steps(root: Path, cell: Cell) -> int:
    """Env steps trained so far, summed over seeds (the last metrics row of each seed)."""
    total = 0
    for path in (root / cell.name / "metrics").glob("seed_*.jsonl"):
        total += _last_env_steps(path)
    return total


def _last_env_steps(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            steps = json.loads(line).get("env_steps")
        except (json.JSONDecodeError, AttributeError):
            continue  # a half-written last line
        if isinstance(steps, (int, float)):
            return int(steps)
    return 0


def resolve_config(cell: Cell):
    """The cell's full config, built as ``credo train`` would build it (raises ConfigError)."""
    from credo.api import make_config

    return make_config(cell.algo, cell.env, steps=cell.steps, seeds=cell.seeds, overrides=cell.set_args())


# --- one cell -----------------------------------------------------------------------------------


def run_cell_process(cell_doc: dict, root: str, spec_name: str, cpus: float) -> dict:
    """Runs one cell as a ``credo train`` child process (the body of the Ray task).

    Returns ``{"status": "done"|"failed", ...}``; raises ``CellCrashed`` for a crash, which Ray
    retries (the retry resumes from the cell's last checkpoint).
    """
    from credo.proc import popen_bounded

    task_started = time.time()
    cell = Cell(**{**cell_doc, "plugins": tuple(cell_doc.get("plugins", ()))})
    root_p = Path(root)
    log = root_p / "logs" / f"{cell.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = cell_argv(root_p, cell)
    env = dict(os.environ, XLA_FLAGS=_xla_flags(os.environ.get("XLA_FLAGS", ""), max(1, int(cpus))))
    t0 = time.time()
    with open(log, "a") as f:
        f.write(f"=== {now_utc()} on {os.uname().nodename}: credo {' '.join(argv)}\n")
        f.flush()
        proc = popen_bounded(
            [sys.executable, "-m", "credo.cli", *argv], stdout=f, stderr=subprocess.STDOUT, env=env
        )
        rc = proc.wait()
    write_cell_marker(root_p, spec_name, cell)
    result = {
        "status": "done",
        "returncode": rc,
        "seconds": time.time() - t0,
        "task_started": task_started,
        "log": str(log),
    }
    if rc == 0:
        return result
    tail = _log_tail(log)
    if rc == USER_ERROR:
        return {**result, "status": "failed", "error": tail}
    raise CellCrashed(f"exit status {rc}: {tail}")


def run_cell_inprocess(spec: SweepSpec, root: Path, index: int) -> int:
    """``credo sweep --index I``: runs cell I in this process (for Slurm arrays and the like)."""
    from credo import cli

    cell = spec.cell(index)
    root.mkdir(parents=True, exist_ok=True)
    status = cell_status(root, cell)
    changes = config_changes(root / cell.name, resolve_config(cell)) if status != "new" else []
    if changes:
        raise ValueError(
            f"cell {index} ({cell.name}): its run directory was made with other settings "
            f"({'; '.join(changes)}); use another --out, or delete {root / cell.name} to train it again."
        )
    if status == "done":
        print(f"cell {index} ({cell.name}) is done: {root / cell.name}")
        write_cell_marker(root, spec.name, cell)
        return 0
    argv = cell_argv(root, cell)
    print(f"cell {index} ({cell.name}, {status}): credo {' '.join(argv)}", flush=True)
    try:
        return cli.main(argv)
    finally:
        write_cell_marker(root, spec.name, cell)


# --- the sweep ----------------------------------------------------------------------------------


def plan(spec: SweepSpec, out: Path) -> list[dict]:
    """Every cell with its status on disk (done / partial / new / invalid / changed) and its last run."""
    root = Path(out) / spec.name
    previous = {c["name"]: c for c in (_read_json(root / SWEEP_FILE) or {}).get("cells", [])}
    rows = []
    for cell in spec.cells:
        status, error, budget = cell_status(root, cell), None, None
        try:
            cfg = resolve_config(cell)
        except Exception as err:  # noqa: BLE001 - any config error makes the cell invalid
            if status != "done":
                status, error = "invalid", str(err)
        else:
            if getattr(cfg, "total_env_steps", None):  # RICOL cells count iterations instead
                budget = int(cfg.total_env_steps) * int(cfg.seeds)
            changes = config_changes(root / cell.name, cfg) if status != "new" else []
            if changes:
                status = "changed"
                error = (
                    f"its run directory was made with other settings ({'; '.join(changes)}); "
                    f"rerun the spec with another --out, or delete {root / cell.name} to train it again"
                )
        prev = previous.get(cell.name, {})
        rows.append(
            {
                "index": cell.index,
                "name": cell.name,
                "label": cell.label,
                "algo": cell.algo,
                "env": cell.env,
                "status": status,
                "error": error,
                "last_run": prev.get("status"),
                "attempts": prev.get("attempts", 0),
                "budget": budget,  # env steps over all seeds; None where unknown
                "log": str(root / "logs" / f"{cell.name}.log"),
            }
        )
    return rows


def format_plan(rows: list[dict]) -> str:
    """``plan``'s rows as the table ``credo sweep --dry-run`` prints: index, cell, status, env, and
    the first line of the error of an invalid or changed cell."""
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'#':>3}  {'cell':{width}}  status   env"]
    for r in rows:
        note = ""
        if r["status"] in ("invalid", "changed"):
            note = f"  ({r['error'].splitlines()[0]})"
        elif r["last_run"] == "failed" and r["status"] != "done":
            note = f"  (failed last time: {r['log']})"
        lines.append(f"{r['index']:>3}  {r['name']:{width}}  {r['status']:7}  {r['env']}{note}")
    counts = {
        s: sum(r["status"] == s for r in rows) for s in ("done", "partial", "new", "invalid", "changed")
    }
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" of {len(rows)} cells")
    return "\n".join(lines)


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    progress: bool | None = None,
) -> dict:
    """Runs every cell that is not done; returns the sweep's record (what ``sweep.json`` holds).

    Finished cells are skipped, interrupted ones resume from their checkpoints, crashed ones are
    retried ``spec.retries`` times, and a failed cell never stops the others.
    """
    root = Path(out).resolve() / spec.name
    root.mkdir(parents=True, exist_ok=True)
    if spec.source and Path(spec.source).exists():
        shutil.copyfile(spec.source, root / "spec.yaml")
    rows = plan(spec, root.parent)
    record = {"name": spec.name, "spec": spec.source, "started": now_utc(), "cells": rows}
    by_name = {r["name"]: r for r in rows}
    todo = [c for c in spec.cells if by_name[c.name]["status"] in ("partial", "new")]
    for r in rows:
        if r["status"] in ("invalid", "changed"):
            r.update(status="failed", result=r["status"])
    display = SweepDisplay(spec, root, rows, progress)
    for r in rows:
        if r["status"] == "failed":
            display.event(f"cell {r['index']} {r['name']} failed: {r['result']}: {r['error']}")
    write_json_atomic(root / SWEEP_FILE, record)
    if not todo:
        display.close()
        print(display.summary_line())
        return record

    pool = RayCells(spec, root, address=address, max_concurrent=max_concurrent)
    record["ray_start_seconds"] = pool.start_seconds
    display.event(
        f"sweep {spec.name}: {len(todo)} of {len(spec.cells)} cells to run, at most {pool.limit} at a time "
        f"(Ray: {pool.cpus:g} CPUs, started in {pool.start_seconds:.1f} s) -> {root}"
    )
    queue = list(todo)
    try:
        while queue or pool.pending:
            changed = False
            while queue and pool.has_room():
                cell = queue.pop(0)
                row = by_name[cell.name]
                row.update(status="running", attempts=row["attempts"] + 1, started=now_utc())
                pool.submit(cell)
                display.event(f"cell {cell.index} {cell.name}: started ({row['log']})")
                changed = True
            if changed:
                write_json_atomic(root / SWEEP_FILE, record)
            for cell, result in pool.wait():
                row = by_name[cell.name]
                row.update(
                    status=result["status"],
                    error=result.get("error"),
                    seconds=result.get("seconds"),
                    ray_overhead_seconds=result.get("ray_overhead_seconds"),
                )
                display.cell_finished(cell, row)
                write_json_atomic(root / SWEEP_FILE, record)
            display.update()
    except KeyboardInterrupt:
        for cell in pool.cancel_all():
            by_name[cell.name]["status"] = "interrupted"
        display.event("interrupted: rerun the same command to resume the unfinished cells")
        raise
    finally:
        record["finished"] = now_utc()
        write_json_atomic(root / SWEEP_FILE, record)
        display.close()
        pool.close()
    print(display.summary_line())
    return record


class RayCells:
    """Cells as Ray tasks: at most ``limit`` at a time, crashed ones retried by Ray itself."""

    def __init__(self, spec: SweepSpec, root: Path, *, address: str | None, max_concurrent: int | None):
        import ray

        self.ray, self.spec, self.root = ray, spec, root
        self.started_ray = not ray.is_initialized()
        t0 = time.perf_counter()
        if self.started_ray:
            ray.init(**_ray_init_kwargs(address))
        self.start_seconds = round(time.perf_counter() - t0, 2)
        self.cpus = ray.cluster_resources().get("CPU", 1)
        self.limit = max_concurrent or max(1, int(self.cpus // max(spec.cpus_per_cell, 1e-9)))
        self.task = ray.remote(run_cell_process).options(
            num_cpus=spec.cpus_per_cell,
            num_gpus=spec.gpus_per_cell,
            max_retries=spec.retries,
            retry_exceptions=[CellCrashed],
        )
        self.pending: dict = {}  # ObjectRef -> Cell
        self.submitted: dict = {}  # ObjectRef -> time.time() at submission

    def has_room(self) -> bool:
        """Whether another cell may start (fewer than ``limit`` running)."""
        return len(self.pending) < self.limit

    def submit(self, cell: Cell) -> None:
        """Starts ``cell`` as a Ray task (``run_cell_process``) and tracks it until ``wait`` returns it."""
        ref = self.task.remote(cell.to_dict(), str(self.root), self.spec.name, self.spec.cpus_per_cell)
        self.pending[ref] = cell
        self.submitted[ref] = time.time()

    def wait(self, timeout: float = 2.0) -> list[tuple[Cell, dict]]:
        """The cells that finished within ``timeout`` seconds, with their results."""
        if not self.pending:
            return []
        ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=timeout)
        out = []
        for ref in ready:
            cell = self.pending.pop(ref)
            try:
                result = self.ray.get(ref)
            except Exception as err:  # noqa: BLE001 - the cell failed after its retries
                result = {"status": "failed", "error": _task_error(err)}
            submitted = self.submitted.pop(ref)
            if "task_started" in result:  # Ray's own cost: submission to the task's first line
                result["ray_overhead_seconds"] = round(result["task_started"] - submitted, 3)
            out.append((cell, result))
        return out

    def cancel_all(self) -> list[Cell]:
        """Cancels every running cell (Ctrl-C); returns them. Their checkpoints stay: a rerun resumes."""
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        cells, self.pending = list(self.pending.values()), {}
        return cells

    def close(self) -> None:
        """Shuts Ray down if this sweep started it (not a cluster it joined with ``--address``)."""
        if self.started_ray:
            self.ray.shutdown()


def _xla_flags(flags: str, devices: int) -> str:
    """``flags`` with the host device count set to the cell's CPUs: seeds shard over its own cores."""
    kept = [f for f in flags.split() if not f.startswith("--xla_force_host_platform_device_count")]
    return " ".join([*kept, f"--xla_force_host_platform_device_count={devices}"])


def _ray_init_kwargs(address: str | None) -> dict:
    # Ray reports usage statistics to its servers unless told not to; a study should not phone
    # home by default (and on a machine without network, the attempt only costs time).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address:
        return {"address": address, **kwargs}
    # A fresh local instance even where a cluster runs on this machine: --address picks a cluster.
    return {"address": "local", "num_cpus": os.cpu_count() or 1, **kwargs}


def _task_error(err: Exception) -> str:
    cause = getattr(err, "cause", None)
    text = str(cause if cause is not None else err)
    return text.strip().splitlines()[-1] if text.strip() else type(err).__name__


# --- display ------------------------------------------------------------------------------------


class SweepDisplay:
    """Progress across cells: a bar on a terminal, else a line per event and a periodic summary."""

    def __init__(self, spec: SweepSpec, root: Path, rows: list[dict], progress: bool | None):
        self.root, self.rows, self.spec = root, rows, spec
        self.cells = {c.name: c for c in spec.cells}
        self.tty = sys.stdout.isatty() if progress is None else progress
        self.total = sum(r.get("budget") or 0 for r in rows)
        self.finished_steps: dict[str, int] = {}  # a done cell's env steps: read once
        self.t0, self.steps0 = time.time(), self.env_steps()
        self.last_line = self.t0
        self.bar = None
        if self.tty:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total or None, initial=self.steps0, unit="step", unit_scale=True, desc=spec.name
            )

    def env_steps(self) -> int:
        """Env steps trained so far over all cells and seeds (read from the cells' metrics files)."""
        total = 0
        for r in self.rows:
            if r["name"] in self.finished_steps:
                total += self.finished_steps[r["name"]]
                continue
            steps = cell_env_steps(self.root, self.cells[r["name"]])
            if r["status"] == "done":
                self.finished_steps[r["name"]] = steps
            total += steps
        return total

    def counts(self) -> dict:
        """How many cells are done, running and failed."""
        return {s: sum(r["status"] == s for r in self.rows) for s in ("done", "running", "failed")}

    def status_text(self) -> str:
        """The counts as one line: ``3/8 done, 2 running, 0 failed``."""
        c = self.counts()
        return f"{c['done']}/{len(self.rows)} done, {c['running']} running, {c['failed']} failed"

    def eta(self, steps: int) -> str:
        """Time left at the env-step rate since the sweep started (``ETA ?`` before it is known, and while
        a cell without an env-step budget, such as an LLM policy's counted in iterations, is still to
        finish: its few env steps make the rate meaningless; it read 71 h for a 25-minute sweep)."""
        rate = (steps - self.steps0) / max(time.time() - self.t0, 1e-9)
        unbudgeted = any(not r.get("budget") and r["status"] != "done" for r in self.rows)
        if not self.total or rate <= 0 or unbudgeted:
            return "ETA ?"
        return f"ETA {_duration(max(self.total - steps, 0) / rate)}"

    def event(self, text: str) -> None:
        """Prints a time-stamped line above the progress bar (or as a plain line without one)."""
        line = f"[{dt.datetime.now().strftime('%H:%M:%S')}] {text}"
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def cell_finished(self, cell: Cell, row: dict) -> None:
        """Reports a cell's end: its time when done, its log and error when it failed."""
        if row["status"] == "done":
            self.event(f"cell {cell.index} {cell.name}: done in {row.get('seconds') or 0:.0f} s")
        else:
            self.event(f"cell {cell.index} {cell.name}: FAILED, log {row['log']}: {row.get('error')}")

    def update(self) -> None:
        """Moves the bar to the env steps trained so far and shows the cell counts beside it."""
        if self.bar is not None:
            self.bar.update(self.env_steps() - self.bar.n)
            self.bar.set_postfix_str(self.status_text())
        elif time.time() - self.last_line >= 30:  # the metrics files are read only when shown
            self.last_line = time.time()
            steps = self.env_steps()
            self.event(
                f"{self.status_text()}; {_si(steps)} of {_si(self.total)} env steps; {self.eta(steps)}"
            )

    def summary_line(self) -> str:
        """The sweep's closing line: counts, its directory, and each failed cell with its log."""
        failed = [r for r in self.rows if r["status"] == "failed"]
        text = f"sweep {self.spec.name}: {self.status_text()} ({self.root})"
        for r in failed:
            last = (r.get("error") or "").strip().splitlines()[-1:] or [""]
            text += f"\n  failed: cell {r['index']} {r['name']}: {last[0]} log: {r['log']}"
        return text

    def close(self) -> None:
        """Draws the bar a last time and closes it."""
        if self.bar is not None:
            self.update()
            self.bar.close()
            self.bar = None


# --- small helpers ------------------------------------------------------------------------------


def _log_tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _si(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"

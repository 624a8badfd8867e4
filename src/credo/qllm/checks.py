"""The checks a TFCAF passes before it may train: whitelist, tracing, shapes, finiteness, IGM.

A TFCAF is ``tfcaf(agent_qs [B, n_agents], state [B, state_dim]) -> q_tot [B]``
written with ``jnp``. ``check_tfcaf`` runs, in order:

1. the sandbox's syntax whitelist (``credo.llm.sandbox``), in this process;
2. everything that executes the code, in a separate Python process with a
   memory limit (``RLIMIT_AS``) and a wall-clock limit: definition in the
   restricted namespace, abstract tracing (no allocation) with a bound on every
   intermediate's size, the output shape for several batch sizes, independence
   of the batch rows, finite outputs and gradients on random, env-like and
   extreme inputs, dependence on ``agent_qs``, and (IGM gate on) non-negative
   ``dQ_tot / dQ_i`` everywhere tested;
3. the same code at the batch size training calls it with (``batch_rows``:
   ``batch_size`` x episode steps, ``DEFAULT_BATCH_ROWS`` when the run is not
   known) and at twice that: it must trace in bounded time to a program that
   does not grow with the batch (no Python loop over rows), its memory must
   grow at most linearly with the batch and stay within ``MAX_ELEMENTS_PER_ROW``
   per row, and at ``batch_rows`` rows its outputs and gradients must be finite,
   its rows independent and (IGM gate on) its weights non-negative. The small
   batches alone would pass code whose path depends on the batch size
   (``if agent_qs.shape[0] > 1000: ...``) and that then hangs, allocates
   ``B**3`` elements or returns NaN in training. The trainer (the ``tfcaf``
   mixer) repeats this stage at every batch size it actually traces, before the
   code runs there.

The worker bounds itself, whatever happens to this process (``credo.proc``): it
dies with it (a caller's timeout, Ctrl-C or a job runner's cancellation would
otherwise leave an endless candidate running under init), and ``RLIMIT_CPU``
stops it ``CPU_MARGIN`` seconds of CPU time after the wall-clock limit.

The worker streams one JSON line per check, so a time-out still says which
check was running. Every failure is one line a coder LLM can act on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

ENTRY = "tfcaf"
MAX_INTERMEDIATE = 1 << 22  # elements of any traced intermediate at the check batch size
# Rows of one training call when the run is not known (`credo qllm check`, `credo qllm generate`):
# 64 episodes (QLLM's batch_size) x 256 steps, more than the shipped presets use (LBF 64 x 51 rows,
# SMAX 32 x (episode limit + 1)). The trainer checks the exact sizes it traces.
DEFAULT_BATCH_ROWS = 64 * 256
# At the training batch size an intermediate may hold this many elements per row (64 KiB of
# float32), and MAX_INTERMEDIATE whatever the batch; a [B, B] array at thousands of rows is far above.
MAX_ELEMENTS_PER_ROW = 1 << 14
# The traced program at the training batch size may have at most 2x + this many operations of the
# one at the small check batch: more means it grows with the batch (a Python loop over rows).
TRACE_OPS_SLACK = 64
TRACE_TIME_LIMIT = 10.0  # seconds to trace at one training batch size (training traces it again)
# The values at the training batch size are computed on at most this many input elements per
# array (rows x (n_agents + state_dim)); a larger batch is checked on as many rows as fit.
MAX_RUN_ELEMENTS = 1 << 24
MEMORY_LIMIT = 2 << 30  # bytes of address space the worker may use
TIME_LIMIT = 60.0  # seconds for all runtime checks, JAX start-up included
# RLIMIT_CPU = time limit + this: the wall clock, which this process enforces, comes first for a
# one-threaded loop; the CPU limit is what still holds if this process is gone.
CPU_MARGIN = 5.0
WORKER_CHECKS = [
    "defines tfcaf",
    "traces with jax",
    "memory",
    "output shape",
    "batch rows independent",
    "finite on random inputs",
    "finite on extreme inputs",
    "finite gradients",
    "depends on agent_qs",
    "traces at the training batch size",
    "memory at the training batch size",
    "correct at the training batch size",
    "monotone in every Q_i (IGM)",
]


@dataclass
class Check:
    """One named check (``WORKER_CHECKS`` lists the worker's), its outcome, and why it failed or what
    it measured."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class CheckReport:
    """The checks a candidate went through, in order; ``reason`` is the first failure's line."""

    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # harmless edits made before checking
    source: str = ""  # the code as checked (after those edits)

    @property
    def passed(self) -> bool:
        """True when at least one check ran and every check passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def reason(self) -> str:
        """``name: detail`` of the first failed check, the line a coder LLM gets back; '' if none failed."""
        failed = next((c for c in self.checks if not c.passed), None)
        return f"{failed.name}: {failed.detail}" if failed else ""

    def format(self) -> str:
        """The report for people: one line per check (``PASS``/``FAIL``, name, detail), then the notes."""
        lines = [
            f"{'PASS' if c.passed else 'FAIL'}  {c.name}" + (f": {c.detail}" if c.detail else "")
            for c in self.checks
        ]
        lines += [f"note  {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The report as JSON-ready data (``passed``, ``reason``, ``notes``, ``checks``; not ``source``)."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "notes": self.notes,
            "checks": [asdict(c) for c in self.checks],
        }


def check_tfcaf(
    source: str,
    n_agents: int,
    state_dim: int,
    igm: bool = True,
    states=None,
    time_limit: float = TIME_LIMIT,
    batch_rows: int | Sequence[int] | None = None,
) -> CheckReport:
    """Runs every check on ``source``; ``states`` (``[N, state_dim]``, optional) are real env states to test on.

    ``batch_rows``: the rows of one call in training (``batch_size`` x episode steps), or several
    such sizes, checked together with twice the largest; ``None`` means ``DEFAULT_BATCH_ROWS``.
    Never raises for any ``source``: every problem is a failed check.
    """
    from credo.llm.sandbox import SandboxRejection, check_source, strip_redundant_imports

    if not isinstance(source, str):
        why = f"the code must be text (a Python source string), not {type(source).__name__}"
        return CheckReport(checks=[Check("whitelist", False, why)])
    if batch_rows is None:
        rows = [DEFAULT_BATCH_ROWS]
    else:
        rows = sorted({int(r) for r in (batch_rows if hasattr(batch_rows, "__iter__") else [batch_rows])})
    if not rows or rows[0] < 1:
        raise ValueError(f"batch_rows must be positive numbers of rows, got {batch_rows!r}")
    source, dropped = strip_redundant_imports(source)
    report = CheckReport(notes=[f"dropped the redundant line {d.strip()!r}" for d in dropped], source=source)
    try:
        check_source(source, ENTRY, 2)
    except SandboxRejection as err:
        report.checks.append(Check("whitelist", False, str(err)))
        return report
    report.checks.append(Check("whitelist", True))
    payload = {
        "source": source,
        "n_agents": int(n_agents),
        "state_dim": int(state_dim),
        "igm": bool(igm),
        "batch_rows": rows,
        "states": None if states is None else [[float(x) for x in row] for row in states],
    }
    report.checks += _run_worker(payload, time_limit)
    return report


def _run_worker(payload: dict, time_limit: float) -> list[Check]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "CREDO_SANDBOX_MEMORY": str(MEMORY_LIMIT),
    }
    from credo.proc import popen_bounded

    cpu_limit = time_limit + CPU_MARGIN
    proc = popen_bounded(
        [sys.executable, "-m", "credo.qllm.checks"],
        cpu_seconds=cpu_limit,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out, err = proc.communicate(json.dumps(payload), timeout=time_limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    except BaseException:  # KeyboardInterrupt, a job runner's cancellation: the worker goes first
        proc.kill()
        proc.wait()
        raise
    checks = []
    for line in out.splitlines():
        try:
            checks.append(Check(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    done = {c.name for c in checks}
    running = next((n for n in WORKER_CHECKS if n not in done), "the checks")
    if timed_out:
        checks.append(
            Check(
                "time limit",
                False,
                f"the checks did not finish within {time_limit:g} s (stuck in '{running}': an endless or huge loop?)",
            )
        )
    elif proc.returncode == -signal.SIGXCPU:  # RLIMIT_CPU (a many-threaded worker can reach it first)
        checks.append(
            Check(
                "time limit",
                False,
                f"the checks used more than {cpu_limit:g} s of CPU time (stuck in '{running}': an endless or huge loop?)",
            )
        )
    elif proc.returncode != 0 and (not checks or checks[-1].passed):
        tail = (err.strip().splitlines() or ["no message"])[-1][:300]
        why = (
            "ran out of memory" if "MemoryError" in err or "RESOURCE_EXHAUSTED" in err else f"crashed: {tail}"
        )
        checks.append(Check(running, False, f"the code {why}"))
    return checks


# --- the worker (runs in its own process) ------------------------------------------------


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _avals(jaxpr):
    """Every variable's abstract value in a closed jaxpr, sub-jaxprs (scan, cond, pjit) included."""
    for eqn in jaxpr.eqns:
        yield from (v.aval for v in eqn.outvars)
        for p in eqn.params.values():
            for sub in p if isinstance(p, list | tuple) else [p]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _avals(inner)


class _Deadline(BaseException):  # not an Exception: no handler in JAX may take it for the code's error
    pass


class _deadline:
    """Interrupts the block after ``seconds`` of wall-clock time with ``_Deadline`` (main thread, POSIX)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        # The alarm can land inside C code that drops the exception (CPython then raises
        # SystemError "error return without exception set"): callers read this flag, not the type.
        self.expired = False

    def __enter__(self):
        def expire(signum, frame):
            self.expired = True
            raise _Deadline

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        return False


def _count_ops(jaxpr) -> int:
    """Equations of a jaxpr, those of its sub-jaxprs (scan, cond, pjit bodies) included."""
    n = 0
    for eqn in jaxpr.eqns:
        n += 1
        for p in eqn.params.values():
            for sub in p if isinstance(p, list | tuple) else [p]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    n += _count_ops(inner)
    return n


def _worker(payload: dict):
    """Yields one Check per runtime check, stopping at the first failure."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from credo.llm.sandbox import SandboxRejection, compile_restricted

    n, s_dim, igm = payload["n_agents"], payload["state_dim"], payload["igm"]
    try:
        fn = compile_restricted(payload["source"], ENTRY, 2)
    except SandboxRejection as err:
        yield Check("defines tfcaf", False, str(err))
        return
    except Exception as err:  # noqa: BLE001 - defining the function ran the code's top level
        yield Check("defines tfcaf", False, f"defining the function raised {_first_line(err)}")
        return
    yield Check("defines tfcaf", True)

    B = 5
    spec = (jax.ShapeDtypeStruct((B, n), jnp.float32), jax.ShapeDtypeStruct((B, s_dim), jnp.float32))
    try:
        closed = jax.make_jaxpr(fn)(*spec)
    except Exception as err:  # noqa: BLE001 - any error of the code is a rejection
        yield Check(
            "traces with jax",
            False,
            f"calling tfcaf on agent_qs [{B}, {n}] and state [{B}, {s_dim}] raised {_first_line(err)}",
        )
        return
    yield Check("traces with jax", True)

    sizes = [int(np.prod(a.shape)) for a in _avals(closed.jaxpr) if hasattr(a, "shape")]
    ops_small = _count_ops(closed.jaxpr)
    if sizes and max(sizes) > MAX_INTERMEDIATE:
        yield Check(
            "memory",
            False,
            f"an intermediate array has {max(sizes):,} elements for a batch of {B}; the limit is {MAX_INTERMEDIATE:,}",
        )
        return
    yield Check("memory", True, f"largest intermediate {max(sizes, default=0):,} elements at batch {B}")

    shapes = set()
    for b in (1, B, 32):
        try:
            out = jax.eval_shape(
                fn, jax.ShapeDtypeStruct((b, n), jnp.float32), jax.ShapeDtypeStruct((b, s_dim), jnp.float32)
            )
        except Exception as err:  # noqa: BLE001
            yield Check("output shape", False, f"batch size {b} raised {_first_line(err)}")
            return
        shape = getattr(out, "shape", None)
        if shape not in ((b,), (b, 1)) or not jnp.issubdtype(getattr(out, "dtype", jnp.int32), jnp.floating):
            got = f"{type(out).__name__} {shape} {getattr(out, 'dtype', '')}".strip()
            yield Check(
                "output shape",
                False,
                f"must return a float array of shape [B] (or [B, 1]); for B = {b} it returned {got}",
            )
            return
        shapes.add(len(shape))
    yield Check("output shape", True, "[B, 1] (squeezed to [B])" if 2 in shapes else "[B]")

    def q_tot(q, s):
        return fn(q, s).reshape(q.shape[0])

    rng = np.random.default_rng(0)
    env_states = np.asarray(payload["states"], np.float32) if payload.get("states") else None

    def states_like(m):
        if env_states is not None and len(env_states):
            return env_states[rng.integers(len(env_states), size=m)]
        return rng.normal(size=(m, s_dim)).astype(np.float32)

    m = 64
    random_cases = {
        "Q ~ N(0, 1), env-like states": (rng.normal(size=(m, n)), states_like(m)),
        "Q ~ N(0, 10), state ~ N(0, 1)": (10 * rng.normal(size=(m, n)), rng.normal(size=(m, s_dim))),
        "Q ~ U(-1, 1), state ~ U(0, 1)": (rng.uniform(-1, 1, (m, n)), rng.uniform(0, 1, (m, s_dim))),
    }
    extreme_cases = {
        "Q = 0, state = 0": (np.zeros((m, n)), np.zeros((m, s_dim))),
        "Q = +-1000, state = 0": (rng.choice([-1e3, 1e3], (m, n)), np.zeros((m, s_dim))),
        "Q = +-1000, env-like states": (rng.choice([-1e3, 1e3], (m, n)), states_like(m)),
        "Q ~ N(0, 1), state ~ U(-100, 100)": (rng.normal(size=(m, n)), rng.uniform(-100, 100, (m, s_dim))),
        "equal Q, state = 1": (np.ones((m, n)), np.ones((m, s_dim))),
    }
    cases = {
        k: (jnp.asarray(q, jnp.float32), jnp.asarray(s, jnp.float32))
        for k, (q, s) in {**random_cases, **extreme_cases}.items()
    }
    run = jax.jit(q_tot)
    grad = jax.jit(jax.grad(lambda q, s: q_tot(q, s).sum()))

    # rows independent: q_tot[0] must not move with the other rows' inputs
    q, s = cases["Q ~ N(0, 1), env-like states"]
    try:
        gq, gs = jax.grad(lambda q, s: q_tot(q, s)[0], argnums=(0, 1))(q, s)
    except Exception as err:  # noqa: BLE001
        yield Check("batch rows independent", False, f"differentiating raised {_first_line(err)}")
        return
    # NaN gradients are the finiteness checks' business, not a sign of rows mixing
    finite = lambda g: jnp.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)  # noqa: E731
    leak = float(jnp.abs(finite(gq[1:])).max() + jnp.abs(finite(gs[1:])).max())
    if leak > 0.0:  # no data path between rows gives exactly zero, whatever the rounding
        yield Check(
            "batch rows independent",
            False,
            "q_tot of one batch row depends on the other rows (do not sum, normalise or take max over axis 0)",
        )
        return
    yield Check("batch rows independent", True)

    for name, group in (
        ("finite on random inputs", random_cases),
        ("finite on extreme inputs", extreme_cases),
    ):
        for case in group:
            try:
                out = np.asarray(run(*cases[case]))
            except Exception as err:  # noqa: BLE001
                yield Check(name, False, f"with {case} it raised {_first_line(err)}")
                return
            if not np.all(np.isfinite(out)):
                yield Check(
                    name,
                    False,
                    f"with {case} it returned NaN or inf (division by zero, log of 0 or exp overflow?)",
                )
                return
        yield Check(name, True, f"{len(group)} input sets of {m} rows")

    grads = {}
    for case in cases:
        g = np.asarray(grad(*cases[case]))
        if not np.all(np.isfinite(g)):
            yield Check(
                "finite gradients",
                False,
                f"dQ_tot/dQ_i is NaN or inf with {case} (sqrt or log at 0? a where() that hides a NaN?)",
            )
            return
        grads[case] = g
    yield Check("finite gradients", True)

    if max(float(np.abs(g).max()) for g in grads.values()) < 1e-8:
        yield Check(
            "depends on agent_qs",
            False,
            "q_tot does not change with agent_qs, so the agents cannot learn through it",
        )
        return
    yield Check("depends on agent_qs", True)

    at_training_size = yield from _at_training_size(fn, payload, B, ops_small, states_like)
    if at_training_size is None:
        return
    grads.update(at_training_size)

    if not igm:
        yield Check("monotone in every Q_i (IGM)", True, "not required (IGM gate gamma = 0)")
        return
    for case, g in grads.items():
        worst = float(g.min())
        if worst < -1e-6 * (1.0 + float(np.abs(g).max())):
            yield Check(
                "monotone in every Q_i (IGM)",
                False,
                f"dQ_tot/dQ_i = {worst:.3g} < 0 with {case}; with gamma = 1 every weight on Q_i must be non-negative (use jnp.abs, softmax or exp of the weights)",
            )
            return
    yield Check(
        "monotone in every Q_i (IGM)",
        True,
        "dQ_tot/dQ_i >= 0 on every input set, at the training batch size too",
    )


def _at_training_size(fn, payload: dict, small: int, ops_small: int, states_like):
    """The checks at the batch sizes of training (``batch_rows``) and twice the largest; see the module docstring.

    Returns ``dQ_tot/dQ`` of each input set (for the IGM check, which comes last), None after a failure.
    """
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np

    n, s_dim = payload["n_agents"], payload["state_dim"]
    sizes = sorted(set(payload["batch_rows"]))
    top = sizes[-1]
    shown = ", ".join(f"{b:,}" for b in sizes)
    name = "traces at the training batch size"
    traced = {}
    for b in [*sizes, 2 * top]:
        what = f"{b:,} rows" + (
            " (twice the training batch size)" if b == 2 * top else " (the training batch size)"
        )
        spec = (jax.ShapeDtypeStruct((b, n), jnp.float32), jax.ShapeDtypeStruct((b, s_dim), jnp.float32))
        start = time.perf_counter()
        deadline = _deadline(TRACE_TIME_LIMIT)
        try:
            with deadline:
                closed = jax.make_jaxpr(fn)(*spec)
        except _Deadline:
            closed = None
        except Exception as err:  # noqa: BLE001 - any error of the code is a rejection
            if not deadline.expired:
                yield Check(name, False, f"calling tfcaf on {what} raised {_first_line(err)}")
                return
            closed = None  # the deadline's exception, mangled on its way out of C code
        seconds = time.perf_counter() - start
        if closed is None or seconds > TRACE_TIME_LIMIT:
            yield Check(
                name,
                False,
                f"tracing tfcaf on {what} took {'over ' if closed is None else ''}{seconds:.0f} s (limit "
                f"{TRACE_TIME_LIMIT:g} s): a Python loop over the rows of the batch?",
            )
            return
        out = closed.out_avals[0] if len(closed.out_avals) == 1 else None
        shape = getattr(out, "shape", None)
        if shape not in ((b,), (b, 1)) or not jnp.issubdtype(getattr(out, "dtype", jnp.int32), jnp.floating):
            got = "several outputs" if out is None else f"{shape} {getattr(out, 'dtype', '')}"
            yield Check(
                name,
                False,
                f"must return a float array of shape [B] (or [B, 1]); for B = {b:,} it returned {got}",
            )
            return
        ops = _count_ops(closed.jaxpr)
        if ops > 2 * ops_small + TRACE_OPS_SLACK:
            yield Check(
                name,
                False,
                f"the traced program has {ops:,} operations for {what} but {ops_small:,} for {small}: it grows with "
                "the batch (a Python loop over rows, or code that depends on the batch size?); use jnp operations "
                "on whole columns",
            )
            return
        avals = [int(np.prod(a.shape)) for a in _avals(closed.jaxpr) if hasattr(a, "shape")]
        traced[b] = (max(avals, default=0), sum(avals), seconds)
    took = sum(t[2] for t in traced.values())
    yield Check(name, True, f"{shown} and {2 * top:,} rows in {took:.1f} s")

    name = "memory at the training batch size"
    (big1, total1, _), (big2, total2, _) = traced[top], traced[2 * top]
    if big2 > 2 * big1 + 1024 or total2 > 2 * total1 + 1024:
        largest = big2 > 2 * big1 + 1024
        yield Check(
            name,
            False,
            f"memory grows faster than the batch: {'the largest intermediate' if largest else 'all intermediates together'} "
            f"{'has' if largest else 'have'} {(big1 if largest else total1):,} elements at {top:,} rows and "
            f"{(big2 if largest else total2):,} at {2 * top:,} (an array of shape [B, B] or larger?); "
            "treat each row on its own",
        )
        return
    for b in sizes:
        limit = max(MAX_INTERMEDIATE, b * MAX_ELEMENTS_PER_ROW)
        if traced[b][0] > limit:
            yield Check(
                name,
                False,
                f"an intermediate array has {traced[b][0]:,} elements at the training batch size of {b:,} rows; "
                f"the limit is {limit:,} ({MAX_ELEMENTS_PER_ROW:,} per row)",
            )
            return
    yield Check(name, True, f"largest intermediate {big1:,} elements at {top:,} rows, linear in the batch")

    name = "correct at the training batch size"

    def q_tot(q, s):
        return fn(q, s).reshape(q.shape[0])

    @jax.jit
    def run(q, s):  # one compilation per size: the outputs, dQ_tot/dQ, and the last row's gradient
        out, vjp = jax.vjp(q_tot, q, s)
        last = vjp(jnp.zeros_like(out).at[-1].set(1.0))
        return out, vjp(jnp.ones_like(out))[0], last

    finite = lambda x: jnp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # noqa: E731
    rng, grads = np.random.default_rng(1), {}
    fit = max(1, MAX_RUN_ELEMENTS // max(1, n + s_dim))
    for rows in sizes:
        m = min(rows, fit)
        where = f"at {m:,} rows" + ("" if m == rows else f" (as many as fit of the {rows:,} of training)")
        cases = {
            "Q ~ N(0, 1), env-like states": (rng.normal(size=(m, n)), states_like(m)),
            "Q = +-1000, env-like states": (rng.choice([-1e3, 1e3], (m, n)), states_like(m)),
            "Q = 0, state = 0": (np.zeros((m, n)), np.zeros((m, s_dim))),
        }
        for case, (q, s) in cases.items():
            q, s = jnp.asarray(q, jnp.float32), jnp.asarray(s, jnp.float32)
            try:
                out, g, (gq, gs) = run(q, s)
            except Exception as err:  # noqa: BLE001
                yield Check(name, False, f"{where} with {case} it raised {_first_line(err)}")
                return
            out, g = np.asarray(out), np.asarray(g)
            if not np.all(np.isfinite(out)):
                yield Check(
                    name, False, f"{where} with {case} it returned NaN or inf (it does not at small batches)"
                )
                return
            if not np.all(np.isfinite(g)):
                yield Check(
                    name, False, f"{where} dQ_tot/dQ_i is NaN or inf with {case} (it is not at small batches)"
                )
                return
            grads[f"{case} {where}"] = g
            if m > 1 and float(jnp.abs(finite(gq[:-1])).max() + jnp.abs(finite(gs[:-1])).max()) > 0.0:
                yield Check(name, False, f"{where} q_tot of one batch row depends on the other rows ({case})")
                return
    yield Check(name, True, f"finite, rows independent at {shown} rows")
    return grads


def _worker_main() -> int:
    import resource

    limit = int(os.environ.get("CREDO_SANDBOX_MEMORY", MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    payload = json.loads(sys.stdin.read())
    for check in _worker(payload):
        print(json.dumps(asdict(check)), flush=True)
        if not check.passed:
            break
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())

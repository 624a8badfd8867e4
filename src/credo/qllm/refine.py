"""Refinement from training feedback: train the candidates briefly, show the coder how they learned, keep the best.

Beyond the QLLM paper, in the spirit of Eureka. After the coder-evaluator rounds
of ``credo.qllm.loop``:

1. every distinct candidate that passed the checks trains through the engine
   (``credo.api.train("qllm", env, tfcaf=...)``) for a small budget: ``steps``
   env steps on ``seeds + holdout_seeds`` seeds, vmapped in one run;
2. the learning curve of the first ``seeds`` seeds becomes a few numbers per
   candidate (test return at a few points, final, its trend over the second
   half), and that summary, with each candidate's code, is the coder's context
   for a further round of ``candidates`` new functions, which are checked and
   trained the same way; ``rounds`` such rounds;
3. the kept function is the one with the best *held-out* score: the mean final
   test return of the other ``holdout_seeds`` seeds, whose numbers the coder
   never saw.

Everything is recorded (``Refinement.to_dict``): the budget, each trained
candidate's summary and held-out score, the kept one, and the cost (LLM calls,
seconds and tokens where the backend can count them; training runs, env steps
and seconds).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from credo.llm.base import LLM, Sampling
from credo.qllm.checks import CheckReport, check_tfcaf
from credo.qllm.loop import (
    CODER_ROLE,
    Candidate,
    CoderSetup,
    Constraint,
    QLLMResult,
    write_candidates,
)

# The refinement's runs use seeds from here on, so that a later `credo train qllm ... --seeds N`
# (seeds 0..N-1) of the kept function is not trained on the seeds its selection saw.
SEED_BASE = 1000
SHOWN = 5  # candidates listed in a refinement prompt (the best by their summary); a small coder's context is short


@dataclass(frozen=True)
class Budget:
    """Training per candidate: ``steps`` env steps on ``seeds`` seeds for the summary the coder sees,
    plus ``holdout_seeds`` seeds for the held-out score that chooses; all of them in one vmapped run."""

    steps: int = 20_000
    seeds: int = 2
    holdout_seeds: int = 2
    seed: int = SEED_BASE  # the first seed; the held-out ones follow the summary's

    def __post_init__(self):
        for name in ("steps", "seeds", "holdout_seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"refinement {name} must be a whole number of at least 1, got {value!r}")

    @property
    def total_seeds(self) -> int:
        """Seeds per training run: the summary's and the held-out ones."""
        return self.seeds + self.holdout_seeds

    def test_interval(self) -> int:
        """About four evaluations over the budget, plus the one at step 0 (the engine rounds them to its chunks)."""
        return max(1, self.steps // 4)


@dataclass
class Curve:
    """What one training run returned: evaluation steps and per-seed test returns ``[seed][evaluation]``."""

    steps: list[int]  # env steps of each evaluation (seed 0's count; the seeds of a run step together)
    returns: list[list[float]]  # [seed][evaluation], the summary's seeds first, then the held-out ones
    env_steps: int  # env steps trained, all seeds together
    compile_seconds: float = 0.0
    run_dir: str = ""


Trainer = Callable[[str, str], Curve]  # (code, name) -> Curve; raises on a failed training


@dataclass
class Trained:
    """One candidate's training: where it came from, its curve summary, its held-out score (or error)."""

    id: str  # e.g. "r1c2": round 1, candidate 2 (rounds count on from the coder-evaluator rounds)
    stage: str  # "loop" (the coder-evaluator rounds) or "refine"
    round: int  # 1-based over both stages
    candidate: int  # 1-based within its round
    code: str
    summary: dict | None = None  # what the coder sees (summary seeds only)
    heldout: float | None = None  # mean final test return of the held-out seeds (what chooses)
    heldout_per_seed: list[float] = field(default_factory=list)
    error: str = ""  # why training failed, one line
    duplicate_of: str = ""  # the id of an earlier candidate with the same code (not trained again)
    seconds: float = 0.0  # wall-clock of its training, compile included
    env_steps: int = 0
    run_dir: str = ""


@dataclass
class RefineRound:
    """One refinement round: the coder's prompt (with the summaries), its checked candidates, their ids."""

    index: int  # 1-based over both stages
    coder_prompt: list[dict]
    candidates: list[Candidate]
    trained: list[str] = field(default_factory=list)
    llm_seconds: float = 0.0
    training_seconds: float = 0.0


@dataclass
class Refinement:
    """The whole refinement: budget, rounds, every trained candidate, the kept one and the cost."""

    budget: Budget
    rounds: list[RefineRound]
    trained: list[Trained]
    kept: str | None  # id of the kept candidate; None when no candidate finished training
    kept_code: str
    loop_pick: str | None  # id of the coder-evaluator loop's pick
    cost: dict

    @property
    def kept_entry(self) -> Trained | None:
        """The kept candidate's record."""
        return next((t for t in self.trained if t.id == self.kept), None)

    def comparison(self) -> dict:
        """What the refinement rounds add over the coder-evaluator rounds, by held-out score.

        The best held-out score is a maximum over candidates, so it is biased upward; train the kept
        function on fresh seeds (``credo train qllm ENV --set tfcaf=FILE --seeds N``) for an unbiased number.
        """

        def best(stage):
            scores = [t.heldout for t in self.trained if t.stage == stage and t.heldout is not None]
            return max(scores) if scores else None

        pick = next((t for t in self.trained if t.id == self.loop_pick), None)
        before, after = best("loop"), best("refine")
        return {
            "loop_pick_heldout": pick.heldout if pick else None,
            "best_heldout_loop_rounds": before,
            "best_heldout_refine_rounds": after,
            "refine_gain_over_loop": None if before is None or after is None else after - before,
            "kept_heldout": self.kept_entry.heldout if self.kept_entry else None,
            "note": "held-out scores are means over the held-out seeds at the refinement budget; the best of "
            "several is biased upward: retrain the kept function on fresh seeds to report it",
        }

    def to_dict(self) -> dict:
        """JSON-ready: budget, rounds, trained candidates, kept id, comparison and cost."""
        return {
            "budget": {
                **asdict(self.budget),
                "seeds_summary": list(range(self.budget.seed, self.budget.seed + self.budget.seeds)),
                "seeds_heldout": list(
                    range(self.budget.seed + self.budget.seeds, self.budget.seed + self.budget.total_seeds)
                ),
                "per_candidate": f"{self.budget.steps} env steps x {self.budget.total_seeds} seeds "
                f"({self.budget.seeds} for the summary, {self.budget.holdout_seeds} held out)",
            },
            "rounds": [asdict(r) for r in self.rounds],
            "trained": [asdict(t) for t in self.trained],
            "kept": self.kept,
            "loop_pick": self.loop_pick,
            "comparison": self.comparison(),
            "cost": self.cost,
        }


# --- training ------------------------------------------------------------------------------------


def engine_trainer(
    env: str, gamma: int, budget: Budget, out: Path, env_kwargs: dict | None = None
) -> Trainer:
    """The real trainer: writes the candidate as an artifact in ``out`` and trains it with the QLLM
    config's defaults for ``env`` at ``budget``, one run directory per candidate under ``out/runs``."""
    out = Path(out)

    def train(code: str, name: str) -> Curve:
        import credo.api as api
        from credo.qllm.artifact import write_json_atomic

        path = out / f"{name}.json"
        write_json_atomic(path, {"env": env, "gamma": gamma, "code": code, "note": "refinement candidate"})
        fields = {"env_kwargs": env_kwargs} if env_kwargs else {}
        run = api.train(
            "qllm",
            env,
            steps=budget.steps,
            seeds=budget.total_seeds,
            out=out / "runs",
            name=name,
            progress=False,
            verbose=False,
            tfcaf=str(path),
            seed=budget.seed,
            test_interval=budget.test_interval(),
            **fields,
        )
        return curve_of(run)

    return train


def curve_of(run) -> Curve:
    """The curve of a finished run (``credo.api.Run``): its evaluation rows per seed."""
    summary = run.summary or {}
    rows = run.metrics()
    evals = [[r for r in seed_rows if "eval_index" in r] for seed_rows in rows]
    steps = [int(r["env_steps"]) for r in evals[0]] if evals else []
    return Curve(
        steps=steps,
        returns=[[float(r["test_return"]) for r in e] for e in evals],
        env_steps=int(sum(summary.get("env_steps_done", []))),
        compile_seconds=float(summary.get("compile_seconds") or 0.0),
        run_dir=str(run.path),
    )


def summarise(curve: Curve, seeds: int) -> dict:
    """A few numbers of the first ``seeds`` seeds' curve: the mean test return at (up to) five
    evaluations spread over training, the final one per seed, the best, and the change over the
    second half of training (``trend``)."""
    rows = curve.returns[:seeds]
    n = min(len(r) for r in rows) if rows else 0
    if n == 0:
        return {"points": [], "final": None, "final_per_seed": [], "best": None, "trend": None}
    mean = [sum(r[i] for r in rows) / len(rows) for i in range(n)]
    picks = sorted({round(j * (n - 1) / 4) for j in range(5)})
    mid = mean[(n - 1) // 2]
    change = mean[-1] - mid
    scale = max(abs(x) for x in mean) or 1.0
    word = "flat" if abs(change) <= 0.02 * scale else ("rising" if change > 0 else "falling")
    return {
        "points": [[curve.steps[i] if i < len(curve.steps) else None, _r(mean[i])] for i in picks],
        "final": _r(mean[-1]),
        "final_per_seed": [_r(r[n - 1]) for r in rows],
        "best": _r(max(mean)),
        "trend": f"{word} ({change:+.3g} over the second half)",
    }


def heldout(curve: Curve, seeds: int) -> list[float]:
    """The final test return of each held-out seed (the seeds after the first ``seeds``)."""
    return [float(r[-1]) for r in curve.returns[seeds:] if r]


def _r(x: float) -> float:
    return float(f"{x:.4g}")


# --- what the coder sees -------------------------------------------------------------------------


def describe_trained(t: Trained, budget: Budget, head: str = "") -> str:
    """One candidate for the refinement prompt: its code (without the fixed ``head``) and its summary."""
    code = t.code
    if head and code.startswith(head):
        code = "def tfcaf(agent_qs, state):\n    # ... the named fields, as above ...\n" + code[len(head) :]
    s = t.summary
    if t.error:
        result = f"Training failed: {t.error}"
    elif not s or s["final"] is None:
        result = "No evaluation was recorded."
    else:
        points = ", ".join(f"{v:g} at {step:,} steps" for step, v in s["points"])
        result = (
            f"Test return (mean of {budget.seeds} seed(s)): {points}; final {s['final']:g} "
            f"(per seed {', '.join(f'{x:g}' for x in s['final_per_seed'])}); best {s['best']:g}; trend {s['trend']}."
        )
    return f"Function {t.id}:\n```python\n{code.rstrip()}\n```\n{result}"


def refine_messages(
    task: str, req: str, shown: list[Trained], more: int, budget: Budget, head: str
) -> list[dict]:
    """The coder's prompt of a refinement round: the task, the requirements, the trained functions
    with their learning-curve summaries (best first), and the request for a better one."""
    listing = "\n\n".join(describe_trained(t, budget, head) for t in shown)
    extra = f"\n({more} more function(s) learned less well and are not shown.)" if more else ""
    return [
        {"role": "system", "content": CODER_ROLE},
        {
            "role": "user",
            "content": f"Task:\n{task}\n\n{req}\n\nThese functions were each trained with QLLM for "
            f"{budget.steps:,} env steps; higher test return is better.\n\n{listing}{extra}\n\n"
            "Write a new function that should reach a higher test return than all of these.",
        },
    ]


def _score(t: Trained) -> float:
    """A trained candidate's rank in the prompt: its summary's final return (never the held-out one)."""
    return t.summary["final"] if t.summary and t.summary["final"] is not None else -math.inf


def _key(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.strip().splitlines() if line.strip())


# --- the stage -----------------------------------------------------------------------------------


class MeteredLLM:
    """An LLM that also counts characters and, where the backend has a tokenizer, tokens of every
    request that was not served from the cache (prompt and generated). ``generate`` only."""

    def __init__(self, llm: LLM):
        self.llm = llm
        self.prompt_tokens: int | None = 0 if _tokenizer(llm) else None
        self.reply_tokens: int | None = self.prompt_tokens
        self.reply_chars = 0

    @property
    def backend(self):
        """The wrapped LLM's backend."""
        return self.llm.backend

    def generate(self, messages: list[dict], sampling: Sampling | None = None) -> list[str]:
        """The wrapped ``generate``; counts what it cost."""
        hits = self.llm.cache_hits
        replies = self.llm.generate(messages, sampling)
        if self.llm.cache_hits == hits:  # asked the model, not the cache
            self.reply_chars += sum(len(r) for r in replies)
            if self.prompt_tokens is not None:
                try:
                    backend = self.llm.backend
                    self.prompt_tokens += len(backend.prompt_ids(messages))
                    self.reply_tokens += sum(
                        len(backend.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies
                    )
                except Exception:  # noqa: BLE001 - counting is best effort; stop counting, say so (None)
                    self.prompt_tokens = self.reply_tokens = None
        return replies

    def counts(self) -> dict:
        """Calls, cache hits, seconds in the backend, characters and tokens generated so far."""
        return {
            "calls": self.llm.calls,
            "cache_hits": self.llm.cache_hits,
            "seconds": round(self.llm.seconds, 2),
            "reply_chars": self.reply_chars,
            "prompt_tokens": self.prompt_tokens,
            "reply_tokens": self.reply_tokens,
        }


def _diff(now: dict, before: dict, keys) -> dict:
    """``now - before`` for each of ``keys`` (None where either is None: not counted)."""
    return {f"llm_{k}": None if now[k] is None or before[k] is None else now[k] - before[k] for k in keys}


def _tokenizer(llm) -> bool:
    backend = getattr(llm, "backend", None)
    return hasattr(backend, "prompt_ids") and hasattr(backend, "tokenizer")


def refine(
    coder,
    task: str,
    result: QLLMResult,
    trainer: Trainer,
    *,
    n_agents: int,
    state_dim: int,
    rounds: int,
    budget: Budget,
    candidates: int = 3,
    retries: int = 3,
    temperature: float = 0.7,
    max_tokens: int = 400,
    seed: int = 0,
    check: Callable[..., CheckReport] = check_tfcaf,
    states=None,
    constraint: Constraint | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> Refinement:
    """Trains the loop's passing candidates, runs ``rounds`` refinement rounds, keeps the best held-out.

    ``coder``: an ``LLM`` or ``MeteredLLM``; ``trainer(code, name) -> Curve`` (``engine_trainer``, or a
    fake in tests). A training that raises is recorded with its one-line reason and not selectable.
    """
    setup = CoderSetup.make(n_agents, state_dim, result.gamma, constraint)
    head = constraint.head.removeprefix("```python\n") if constraint is not None else ""
    llm = coder.llm if isinstance(coder, MeteredLLM) else coder
    llm_start = (llm.calls, llm.cache_hits, llm.seconds)
    trained: list[Trained] = []
    seen: dict[str, str] = {}  # code (normalised) -> id of the candidate that trained it
    metered = coder.counts() if isinstance(coder, MeteredLLM) else None
    train_seconds = 0.0

    def train(stage: str, rnd: int, k: int, code: str) -> Trained:
        nonlocal train_seconds
        t = Trained(f"r{rnd}c{k}", stage, rnd, k, code)
        trained.append(t)
        if _key(code) in seen:
            t.duplicate_of = seen[_key(code)]
            first = next(x for x in trained if x.id == t.duplicate_of)
            t.summary, t.heldout, t.heldout_per_seed, t.error = (
                first.summary,
                first.heldout,
                first.heldout_per_seed,
                first.error,
            )
            log(f"  {t.id}: the same code as {t.duplicate_of}, not trained again")
            return t
        seen[_key(code)] = t.id
        start = time.perf_counter()
        try:
            curve = trainer(code, t.id)
            t.summary = summarise(curve, budget.seeds)
            t.heldout_per_seed = heldout(curve, budget.seeds)
            if t.heldout_per_seed:
                t.heldout = _r(sum(t.heldout_per_seed) / len(t.heldout_per_seed))
            t.env_steps, t.run_dir = curve.env_steps, curve.run_dir
            if not t.heldout_per_seed or not all(math.isfinite(x) for x in t.heldout_per_seed):
                t.heldout, t.error = None, "no finite final test return on the held-out seeds"
        except Exception as err:  # noqa: BLE001 - a candidate that cannot train is a result, not a crash
            text = (str(err).strip().splitlines() or [""])[0][:300]
            t.error = f"{type(err).__name__}: {text}" if text else type(err).__name__
        t.seconds = round(time.perf_counter() - start, 2)
        train_seconds += t.seconds
        log(
            f"  trained {t.id} ({t.seconds:.0f} s): "
            + (f"failed: {t.error}" if t.error else f"final {t.summary['final']}, held-out {t.heldout}")
        )
        return t

    # Stage 1: every distinct candidate that passed the coder-evaluator rounds.
    for r in result.rounds:
        for c in r.valid:
            train("loop", r.index + 1, c.index + 1, c.final.code)
    loop_pick = seen.get(_key(result.code)) if result.code is not None else None

    # Stage 2: refinement rounds, each prompted with the summaries of everything trained so far.
    history = []
    for j in range(rounds):
        index = len(result.rounds) + j + 1
        llm_before, train_before = llm.seconds, train_seconds
        ranked = sorted((t for t in trained if not t.duplicate_of), key=_score, reverse=True)
        prompt = refine_messages(task, setup.req, ranked[:SHOWN], max(0, len(ranked) - SHOWN), budget, head)
        cands = write_candidates(
            coder,
            prompt,
            setup,
            index - 1,
            candidates=candidates,
            retries=retries,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            check=check,
            states=states,
            log=log,
            label="refinement round",
        )
        rr = RefineRound(index, prompt, cands)
        rr.llm_seconds = round(llm.seconds - llm_before, 2)
        for c in cands:
            if c.passed:
                rr.trained.append(train("refine", index, c.index + 1, c.final.code).id)
        rr.training_seconds = round(train_seconds - train_before, 2)
        history.append(rr)

    # Keep the best by the held-out seeds' final test return, not by the summary the coder saw:
    # the refinement prompt ranks and shows the summary seeds' numbers, so a candidate can be written
    # to (or lucky on) those seeds, and the maximum over many candidates of one noisy number is biased
    # upward; seeds that no prompt and no ranking used give a selection that is not fitted to the
    # feedback. Ties keep the loop's pick, then the earliest, so refinement changes the result only
    # when a candidate is strictly better on the held-out seeds.
    scored = [t for t in trained if t.heldout is not None and not t.duplicate_of]
    if scored:
        best = max(scored, key=lambda t: (t.heldout, t.id == loop_pick, -trained.index(t)))
        kept, kept_code = best.id, best.code
        log(f"kept {kept} (held-out {best.heldout}); the loop's pick was {loop_pick}")
    else:
        kept, kept_code = None, result.code
        log("no candidate finished training: kept the loop's pick")
    cost = {
        "llm_calls": llm.calls - llm_start[0],
        "llm_cache_hits": llm.cache_hits - llm_start[1],
        "llm_seconds": round(llm.seconds - llm_start[2], 2),
        **(
            {}
            if metered is None
            else _diff(coder.counts(), metered, ("reply_chars", "prompt_tokens", "reply_tokens"))
        ),
        "training_runs": sum(1 for t in trained if not t.duplicate_of),
        "training_env_steps": sum(t.env_steps for t in trained),
        "training_seconds": round(train_seconds, 2),
        "note": "LLM figures here cover the refinement rounds only; training covers every candidate trained",
    }
    return Refinement(budget, history, trained, kept, kept_code or "", loop_pick, cost)

"""The coder-evaluator loop of QLLM: candidates from a coder LLM, sandbox checks, a choice by an evaluator LLM.

One round: the coder writes K candidates for the task; each goes through the
checks of ``credo.qllm.checks``; a rejected candidate goes back to the coder
with the rejection's one-line reason, up to ``retries`` times (a check that
crashes on a candidate rejects it, with the error as the reason: no reply of
the coder can end the loop); the evaluator sees only the candidates that
passed, picks one and gives one sentence of advice, which the next round's
coder prompt carries together with the pick. The result is the last pick. If
no candidate ever passes, the result says so with every reason, and no TFCAF is
produced.

The IGM gate gamma is the user's, or the coder LLM's answer to a yes/no question
about the task (1 when its reply cannot be read: monotone mixing is the safe
default).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from credo.llm.base import LLM, Sampling
from credo.qllm.checks import CheckReport, check_tfcaf
from credo.qllm.grammar import choice_grammar, gamma_grammar, tfcaf_grammar
from credo.qllm.task import Example, StateField, example_code, view_lines

CODER_ROLE = (
    "You are an expert in multi-agent reinforcement learning and in JAX. You write credit assignment functions: "
    "given each agent's Q-value and the global state, they return the team's Q-value Q_tot. They replace the "
    "mixing network of QMIX-style value decomposition and have no trainable parameters."
)
EVALUATOR_ROLE = (
    "You are an expert reviewer of credit assignment functions for multi-agent reinforcement learning. You judge "
    "which candidate best matches the task: how well its weights follow who contributes to the reward, and how "
    "simple and robust the code is."
)


def requirements(n_agents: int, state_dim: int, gamma: int) -> str:
    """The coder's instructions for free generation: the signature and shapes of ``tfcaf``, the rules the
    sandbox checks enforce, and the IGM gate ``gamma`` (1: weights on Q_i must be non-negative).
    """
    igm = (
        "Q_tot must be monotone in every Q_i (gamma = 1): every weight on Q_i must be non-negative, e.g. from "
        "jax.nn.softmax, jnp.abs or jnp.exp."
        if gamma
        else "Q_tot need not be monotone in the Q_i (gamma = 0): weights may be negative."
    )
    return (
        "Write one Python function\n"
        "    def tfcaf(agent_qs, state):\n"
        f"where agent_qs has shape [B, {n_agents}] (one Q-value per agent, B rows of a batch) and state has shape "
        f"[B, {state_dim}], returning q_tot of shape [B]. Typically q_tot = sum_i w_i(state) * agent_qs[:, i] + "
        "b(state), with weights w_i and bias b computed from the state.\n"
        "Rules: use only jnp (jax.numpy, already imported) and jax.nn; no imports, no numpy, no classes, no "
        "while loops, no printing, no files; treat each row of the batch separately (never sum over axis 0); "
        f"avoid division by values that can be zero (add 1e-6). {igm}\n"
        "Reply with the function in a single ```python code block."
    )


@dataclass
class Constraint:
    """Constrained generation: the coder writes the body of ``tfcaf`` under the grammar of ``credo.qllm.grammar``.

    ``fields``: the env's named state view (the first lines of the function);
    ``examples``: worked TFCAFs of other envs for the prompt; ``prefill``: the
    backend continues a prefilled assistant message (the local one), so the
    fixed head is prefilled and the grammar covers the rest; otherwise (servers)
    the grammar starts with the head.
    """

    fields: list[StateField]
    examples: list[Example]
    prefill: bool = True

    @property
    def head(self) -> str:
        """The fixed start of every reply: the code fence, the ``def tfcaf`` line and the named state view."""
        return "```python\ndef tfcaf(agent_qs, state):\n" + view_lines(self.fields)

    def grammar(self, gamma: int) -> str:
        """The GBNF grammar of the function under IGM gate ``gamma`` (from ``head`` on unless prefilled)."""
        return tfcaf_grammar(self.fields, gamma, head="" if self.prefill else self.head).gbnf()

    def reply(self, text: str) -> str:
        """The whole reply (head and body) from what the backend returned."""
        return self.head + text if self.prefill else text


def constraint_for(env, prefill: bool = True, examples: int = 2) -> Constraint:
    """The constraint for ``env``: its state view and ``examples`` worked examples of other envs."""
    from credo.qllm.task import examples_for, state_view

    return Constraint(state_view(env), examples_for(env, examples), prefill)


def constrained_requirements(n_agents: int, state_dim: int, gamma: int, c: Constraint) -> str:
    """The coder's instructions under the grammar: short, with the state's named fields and worked examples."""
    weights = (
        "w = weights from score, never negative: jax.nn.softmax(score, axis=1), or a positive number plus "
        "jax.nn.sigmoid(score)"
        if gamma
        else "w = weights from score (they may be negative)"
    )
    fields = ", ".join(f.name for f in c.fields)  # their shapes and meanings are in the head's comments
    examples = "\n\n".join(
        f"Example for another task. {ex.task}\n```python\n{example_code(ex)}```" for ex in c.examples
    )
    return (
        f"Write tfcaf(agent_qs, state): agent_qs is [B, {n_agents}] (one Q-value per agent), state is "
        f"[B, {state_dim}]; it returns q_tot [B]. The function starts with the state split into named fields "
        f"({fields}; each line says its shape and meaning). Then write, in four short lines:\n"
        f"  score = an expression of the fields, shape [B, {n_agents}]: how much each agent matters now\n"
        f"  {weights}\n"
        "  b = an optional bias from the fields, shape [B, 1]\n"
        "  return jnp.sum(w * agent_qs, axis=1), plus b[:, 0] if you wrote b\n"
        + (f"\n{examples}\n" if examples else "")
    )


def extract_code(reply: str) -> str:
    """The code block of ``reply`` that defines tfcaf (else its first code block, else the text from 'def tfcaf')."""
    blocks = re.findall(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", reply, re.S)
    if not blocks and "```" in reply:  # an unclosed block at the end of a cut reply
        blocks = [reply.split("```", 1)[1].split("\n", 1)[-1]]
    for b in blocks:
        if "def tfcaf" in b:
            return b.strip("\n")
    if blocks:
        return blocks[0].strip("\n")
    i = reply.find("def tfcaf")
    return reply[i:].strip("\n") if i >= 0 else ""


@dataclass
class Attempt:
    """One try of a candidate: the coder's reply, the code taken from it and the checks' report."""

    reply: str  # the coder's text
    code: str  # the code extracted from it
    report: dict  # CheckReport.to_dict()


@dataclass
class Candidate:
    """One of a round's K candidates: its first reply and each retry after a rejection, in order."""

    index: int
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt:
        """The last attempt (the one that passed, or the last rejected one)."""
        return self.attempts[-1]

    @property
    def passed(self) -> bool:
        """Whether the last attempt passed every check."""
        return bool(self.attempts) and self.final.report["passed"]


@dataclass
class Round:
    """One round of the loop: the coder's prompt, its candidates and the evaluator's pick and advice.

    ``evaluator_prompt`` stays None and ``choice`` None when no candidate passed; ``seconds`` is the
    round's wall-clock time.
    """

    index: int
    coder_prompt: list[dict]
    candidates: list[Candidate]
    evaluator_prompt: list[dict] | None = None
    evaluator_reply: str = ""
    choice: int | None = None  # index into candidates
    choice_note: str = ""  # how the choice was read from the reply
    advice: str = ""
    seconds: float = 0.0

    @property
    def valid(self) -> list[Candidate]:
        """The candidates that passed the checks, the ones the evaluator chooses from."""
        return [c for c in self.candidates if c.passed]


@dataclass
class QLLMResult:
    """What ``run_qllm`` returns: the IGM gate and how it was decided, every round, and the chosen code."""

    gamma: int
    gamma_note: str
    rounds: list[Round]
    code: str | None  # the chosen TFCAF, None if no candidate ever passed

    @property
    def passed_per_round(self) -> list[int]:
        """How many candidates passed the checks in each round."""
        return [len(r.valid) for r in self.rounds]

    def failure_report(self) -> str:
        """The message when no candidate passed: each candidate's last rejection reason, one per line."""
        reasons = [
            f"round {r.index + 1}, candidate {c.index + 1}: {c.final.report['reason'] or 'no code'}"
            for r in self.rounds
            for c in r.candidates
        ]
        return "no candidate passed the sandbox checks:\n  " + "\n  ".join(reasons)

    def to_dict(self) -> dict:
        """The record as JSON-ready data: gamma, its note, passes per round and every round (not ``code``)."""
        return {
            "gamma": self.gamma,
            "gamma_note": self.gamma_note,
            "passed_per_round": self.passed_per_round,
            "rounds": [asdict(r) for r in self.rounds],
        }


def infer_gamma(llm: LLM, task: str, seed: int = 0, constrained: bool = False) -> tuple[int, str]:
    """The IGM gate as the LLM reads the task: (gamma, how it was decided)."""
    messages = [
        {"role": "system", "content": CODER_ROLE},
        {
            "role": "user",
            "content": f"Task:\n{task}\n\nIn this task, is the best joint action always the one where every agent "
            "picks the action with its own highest Q-value, so that Q_tot may be monotone in every agent's Q "
            "(the IGM condition)? Matrix games with penalties for miscoordination usually are not. Answer with "
            "one line: GAMMA: 1 (monotone) or GAMMA: 0 (not monotone).",
        },
    ]
    grammar = gamma_grammar().gbnf() if constrained else None
    sampling = Sampling(n=1, temperature=0.0, max_tokens=8 if constrained else 48, seed=seed, grammar=grammar)
    reply = llm.generate(messages, sampling)[0]
    m = re.search(r"GAMMA\s*[:=]\s*([01])", reply, re.I)
    if m:
        return int(m.group(1)), f"inferred by the LLM: {reply.strip()[:200]!r}"
    return (
        1,
        f"the LLM's reply had no 'GAMMA: 0/1' ({reply.strip()[:120]!r}); took gamma = 1 (monotone, the safe default)",
    )


def coder_messages(task: str, req: str, advice: str, previous: str | None) -> list[dict]:
    """The coder's chat messages: the task and requirements, plus the previous round's pick and the
    evaluator's advice when there are any (then it is asked for an improved function).
    """
    extra = ""
    if previous:
        extra += f"\n\nThe evaluator's pick of the previous round:\n```python\n{previous}\n```"
    if advice:
        extra += f"\nThe evaluator's advice: {advice}"
    if previous or advice:
        extra += "\nWrite an improved function."
    return [
        {"role": "system", "content": CODER_ROLE},
        {"role": "user", "content": f"Task:\n{task}\n\n{req}{extra}"},
    ]


def evaluator_messages(task: str, req: str, valid: list[Candidate]) -> list[dict]:
    """The evaluator's chat messages: the task, the requirements and the ``valid`` candidates numbered
    from 1, asking for a ``CHOICE:`` line and an ``ADVICE:`` line.
    """
    listing = "\n\n".join(f"Candidate {i + 1}:\n```python\n{c.final.code}\n```" for i, c in enumerate(valid))
    return [
        {"role": "system", "content": EVALUATOR_ROLE},
        {
            "role": "user",
            "content": f"Task:\n{task}\n\nThe functions had to meet:\n{req}\n\nAll of these candidates passed the "
            f"code checks:\n\n{listing}\n\nPick the best one for this task. Answer in two lines:\n"
            f"CHOICE: <a number from 1 to {len(valid)}>\nADVICE: <one sentence on how to improve it>",
        },
    ]


def ask_evaluator(evaluator: LLM, messages: list[dict], n: int, seed: int, c: Constraint | None) -> str:
    """The evaluator's reply to ``messages`` about ``n`` candidates.

    Free generation without a constraint (``read_choice`` and ``read_advice`` parse it). Under one, the
    ``CHOICE: k`` line is decoded under ``choice_grammar(n)``, so it is always readable (the 135M
    evaluator never wrote one in free text); then, where the backend continues a prefill (the local
    one), the advice is written freely after ``ADVICE:``, one line.
    """
    if c is None:
        return evaluator.generate(messages, Sampling(n=1, temperature=0.0, max_tokens=160, seed=seed))[0]
    choice = evaluator.generate(
        messages, Sampling(n=1, temperature=0.0, max_tokens=8, seed=seed, grammar=choice_grammar(n).gbnf())
    )[0].strip()
    if not c.prefill:
        return choice
    head = choice + "\nADVICE:"
    advice = evaluator.generate(
        [*messages, {"role": "assistant", "content": head}],
        Sampling(n=1, temperature=0.0, max_tokens=48, seed=seed, stop=("\n",)),
    )[0]
    return head + advice.split("\n")[0].rstrip()  # one line, whether or not the backend applied the stop


def read_choice(reply: str, n: int) -> tuple[int, str]:
    """(index in 0..n-1, how it was read). Accepts 'CHOICE: k' or a 0/1 selection array as in the paper."""
    m = re.search(r"CHOICE\s*[:=]?\s*(?:candidate\s*)?(\d+)", reply, re.I)
    if m and 1 <= int(m.group(1)) <= n:
        return int(m.group(1)) - 1, "CHOICE line"
    m = re.search(r"\[\s*([01](?:\s*,\s*[01])*)\s*\]", reply)
    if m:
        bits = [int(b) for b in re.findall(r"[01]", m.group(1))]
        if len(bits) == n and sum(bits) == 1:
            return bits.index(1), "0/1 selection array"
    m = re.search(r"candidate\s*(\d+)", reply, re.I)
    if m and 1 <= int(m.group(1)) <= n:
        return int(m.group(1)) - 1, "first 'candidate k' mentioned"
    return 0, "no valid choice in the reply; took the first valid candidate"


def read_advice(reply: str) -> str:
    """The text after ``ADVICE:`` in the evaluator's reply (at most 400 characters), or an empty string."""
    m = re.search(r"ADVICE\s*[:=]\s*(.+)", reply, re.I)
    return m.group(1).strip()[:400] if m else ""


def run_qllm(
    coder: LLM,
    evaluator: LLM,
    task: str,
    n_agents: int,
    state_dim: int,
    candidates: int = 3,
    rounds: int = 3,
    retries: int = 3,
    gamma: int | None = None,
    states=None,
    temperature: float = 0.7,
    max_tokens: int = 400,
    seed: int = 0,
    check: Callable[..., CheckReport] = check_tfcaf,
    log: Callable[[str], None] = lambda s: None,
    constraint: Constraint | None = None,
) -> QLLMResult:
    """The whole loop; ``check`` is swappable for tests, ``log`` receives one line per event.

    ``constraint``: decode under the TFCAF grammar (``constraint_for(env)``), with the short prompt
    of ``constrained_requirements``; None: free generation, the checks reject what does not pass.
    """
    c = constraint
    if gamma is None:
        gamma, gamma_note = infer_gamma(coder, task, seed, constrained=c is not None)
    else:
        gamma_note = "set by the user"
    log(f"IGM gate gamma = {gamma} ({gamma_note})")
    setup = CoderSetup.make(n_agents, state_dim, gamma, c)
    advice, chosen, history = "", None, []
    for r in range(rounds):
        start = time.perf_counter()
        # under the grammar the previous pick is not shown: the 135M coder copied it verbatim into every
        # candidate of the next round (3 of 3 in rounds 2 and 3 on the climbing game); the advice is kept
        prompt = coder_messages(task, setup.req, advice, chosen if c is None else None)
        cands = write_candidates(
            coder,
            prompt,
            setup,
            r,
            candidates=candidates,
            retries=retries,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            check=check,
            states=states,
            log=log,
        )
        rnd = Round(r, prompt, cands)
        valid = rnd.valid
        if valid:
            # the evaluator reads the plain requirements (not the coder's worked examples), and under the
            # grammar every candidate is four lines, so a short answer is enough
            rnd.evaluator_prompt = evaluator_messages(task, requirements(n_agents, state_dim, gamma), valid)
            rnd.evaluator_reply = ask_evaluator(evaluator, rnd.evaluator_prompt, len(valid), seed, c)
            pick, rnd.choice_note = read_choice(rnd.evaluator_reply, len(valid))
            rnd.choice = valid[pick].index
            rnd.advice = advice = read_advice(rnd.evaluator_reply)
            chosen = valid[pick].final.code
            log(
                f"round {r + 1}: {len(valid)} of {len(cands)} passed; evaluator picked candidate {rnd.choice + 1} ({rnd.choice_note})"
            )
        else:
            advice = "none of the previous candidates passed the checks; the reasons were: " + "; ".join(
                c.final.report["reason"] or "no code block" for c in cands
            )
            log(f"round {r + 1}: no candidate passed")
        rnd.seconds = time.perf_counter() - start
        history.append(rnd)
    return QLLMResult(gamma, gamma_note, history, chosen)


@dataclass(frozen=True)
class CoderSetup:
    """What every coder request of a run shares: the requirements text, the grammar (or None), the
    prefilled assistant message (or none) and how a reply becomes the whole reply (``finish``)."""

    n_agents: int
    state_dim: int
    gamma: int
    req: str
    grammar: str | None
    prefill: list
    finish: Callable[[str], str]

    @classmethod
    def make(cls, n_agents: int, state_dim: int, gamma: int, c: Constraint | None) -> CoderSetup:
        """The setup for free generation (``c`` None) or under the constraint ``c``."""
        if c is None:
            return cls(n_agents, state_dim, gamma, requirements(n_agents, state_dim, gamma), None, [], str)
        return cls(
            n_agents,
            state_dim,
            gamma,
            constrained_requirements(n_agents, state_dim, gamma, c),
            c.grammar(gamma),
            [{"role": "assistant", "content": c.head}] if c.prefill else [],
            c.reply,
        )


def write_candidates(
    coder: LLM,
    prompt: list[dict],
    setup: CoderSetup,
    r: int,
    *,
    candidates: int,
    retries: int,
    temperature: float,
    max_tokens: int,
    seed: int,
    check: Callable[..., CheckReport] = check_tfcaf,
    states=None,
    log: Callable[[str], None] = lambda s: None,
    label: str = "round",
) -> list[Candidate]:
    """The coder's ``candidates`` replies to ``prompt`` (round ``r``, 0-based), each checked; a rejected
    one goes back with its reason up to ``retries`` times. ``label`` names the round in the log."""
    prefill, finish = setup.prefill, setup.finish
    replies = coder.generate(
        [*prompt, *prefill],
        Sampling(
            n=candidates,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed * 1000 + r,
            grammar=setup.grammar,
        ),
    )
    replies = [finish(x) for x in replies]
    cands = []
    for k, reply in enumerate(replies):
        cand, conversation = Candidate(k), [*prompt, {"role": "assistant", "content": reply}]
        for attempt in range(retries + 1):
            code, report = _check_reply(reply, check, setup.n_agents, setup.state_dim, setup.gamma, states)
            cand.attempts.append(Attempt(reply, report.source or code, report.to_dict()))
            log(
                f"{label} {r + 1} candidate {k + 1} try {attempt + 1}: "
                + ("passed" if report.passed else f"rejected: {report.reason}")
            )
            if report.passed or attempt == retries:
                break
            conversation.append(
                {
                    "role": "user",
                    "content": f"Your code was rejected. {report.reason}\nFix this and reply with the whole corrected function in one ```python code block.",
                }
            )
            reply = finish(
                coder.generate(
                    [*conversation, *prefill],
                    Sampling(
                        n=1,
                        temperature=temperature,
                        max_tokens=max_tokens,
                        seed=seed * 1000 + r * 100 + k * 10 + attempt,
                        grammar=setup.grammar,
                    ),
                )[0]
            )
            conversation.append({"role": "assistant", "content": reply})
        cands.append(cand)
    return cands


def _check_reply(reply, check, n_agents: int, state_dim: int, gamma: int, states) -> tuple[str, CheckReport]:
    """(code, report) for one reply of the coder. Never raises for anything in the reply: a check
    that crashes on a candidate rejects that candidate (with the error as the reason), the loop goes on."""
    from credo.qllm.checks import Check

    code = ""
    try:
        code = extract_code(reply) if isinstance(reply, str) else ""
        if not code:
            return code, _no_code_report()
        report = check(code, n_agents, state_dim, igm=bool(gamma), states=states)
        if not isinstance(report, CheckReport):
            raise TypeError(f"the check returned {type(report).__name__}, not a CheckReport")
        return code, report
    except Exception as err:  # noqa: BLE001 - KeyboardInterrupt and the like still end the run
        text = (str(err).strip().splitlines() or [""])[0][:300]
        why = f"the checks crashed on this code ({type(err).__name__}{': ' + text if text else ''}): write simpler code"
        return code, CheckReport(checks=[Check("checks", False, why)], source=code)


def _no_code_report() -> CheckReport:
    from credo.qllm.checks import Check

    return CheckReport(
        checks=[Check("code block", False, "the reply holds no Python code defining tfcaf(agent_qs, state)")]
    )


GRAMMAR_MODES = ("auto", "on", "off")


def constraint_for_backend(mode: str, llm: LLM, env) -> Constraint | None:
    """The constraint ``credo qllm generate --grammar MODE`` asks for, or None (free generation).

    ``auto``: on for the local backend (which enforces the grammar itself), and for an
    OpenAI-compatible server only when it was told where to send a grammar
    (``$CREDO_LLM_GRAMMAR_FIELD``: vLLM ``guided_grammar``, llama.cpp ``grammar``);
    ``on`` requires that; ``off`` never constrains.
    """
    from credo.llm.base import LLMError

    if mode not in GRAMMAR_MODES:
        raise LLMError(f"--grammar {mode!r}: choose one of {', '.join(GRAMMAR_MODES)}.")
    if mode == "off":
        return None
    backend = llm.backend
    if backend.name == "local":
        return constraint_for(env, prefill=True)
    if getattr(backend, "grammar_field", None):
        return constraint_for(env, prefill=False)  # servers do not reliably continue a prefill
    if mode == "on":
        raise LLMError(
            "--grammar on with an OpenAI-compatible server needs $CREDO_LLM_GRAMMAR_FIELD: guided_grammar "
            "(vLLM) or grammar (llama.cpp's server); other servers take no grammar (use --grammar off)."
        )
    return None

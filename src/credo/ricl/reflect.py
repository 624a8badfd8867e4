"""The LLM policy over action letters, and the reflector whose feedback updates it in context.

``LetterPolicy.log_probs`` asks the backend for the next-token log-probability
of every action letter and normalises over them, so the distribution over the
enumerable actions is exact (the paper's ``pi(a|s)``). ``reflect`` asks the
reflector about one step of an episode in hindsight and extracts its feedback.

The reflector's text can be anything. ``parse_feedback`` never raises: a reply
without the feedback line, an empty one, one too long, or one that is mostly not
English text, becomes ``None`` ("no feedback", so the in-context policy equals
the original and the step's advantage is zero) and is counted by its reason in
``FeedbackStats``. Terminal escape sequences, control characters and bidi or
zero-width characters are removed first, and feedback with no letters left
(only NUL bytes, escapes, emoji, symbols, digits or punctuation) counts as empty.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from credo.llm.base import LLM, LLMError, Sampling
from credo.ricl.prompts import Step, TextTask

MAX_FEEDBACK_CHARS = 600
PREFILL = "Verbal Feedback:"
_MARKER = re.compile(r"(?:verbal\s+)?feedback\s*[:：]\s*", re.I)
# ANSI/VT escape sequences: CSI (ESC [ ... or the 8-bit CSI), OSC (ESC ] ... BEL or ESC \), two-byte ESC x
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]?"
)


def clean_text(text: str) -> str:
    """``text`` without terminal escape sequences and invisible characters.

    Removed: ANSI escapes; control characters (Unicode Cc) but newline and tab;
    format characters (Cf: bidi overrides and isolates, zero-width spaces and
    joiners, the BOM, soft hyphens); surrogates, private-use and unassigned code
    points. Carriage returns become newlines.
    """
    text = _ESCAPES.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "".join(
        c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )


def has_letters(text: str) -> bool:
    """Whether ``text`` has a letter (Unicode category L*): emoji, symbols, marks, digits and punctuation are not."""
    return any(unicodedata.category(c).startswith("L") for c in text)


@dataclass
class FeedbackStats:
    """How many reflections gave usable feedback, and why the others did not."""

    counts: Counter = field(default_factory=Counter)

    def add(self, status: str) -> None:
        """Counts one reflection with ``status`` (``ok``, or why its feedback was unusable)."""
        self.counts[status] += 1

    @property
    def total(self) -> int:
        """The number of reflections counted."""
        return sum(self.counts.values())

    @property
    def usable(self) -> int:
        """The number of reflections whose feedback was usable (status ``ok``)."""
        return self.counts["ok"]

    def to_dict(self) -> dict:
        """The counts by status, for the metrics rows and the summary."""
        return dict(self.counts)


def parse_feedback(reply: str, max_chars: int = MAX_FEEDBACK_CHARS) -> tuple[str | None, str]:
    """(feedback or None, status): status is ok, no feedback line, empty, too long or not English.

    The feedback returned is cleaned (``clean_text``); "empty" includes feedback without a letter.
    """
    if not isinstance(reply, str):
        return None, "empty"
    reply = clean_text(reply)
    if not reply.strip():
        return None, "empty"
    found = list(_MARKER.finditer(reply))
    if not found:
        return None, "no feedback line"
    text = reply[found[-1].end() :].strip().strip('"[]').strip()
    text = text.split("\n\n", 1)[0].strip()
    if not has_letters(text):  # nothing, or only emoji, symbols, digits and punctuation
        return None, "empty"
    if len(text) > max_chars:
        return None, "too long"
    letters = [c for c in text if c.isalpha()]
    if letters and sum(c.isascii() for c in letters) / len(letters) < 0.8:
        return None, "not English"
    return text, "ok"


class LetterPolicy:
    """An LLM as a policy over a task's action letters."""

    def __init__(self, llm: LLM, task: TextTask):
        self.llm, self.task = llm, task

    def log_probs(self, obs: str, feedback: str | None = None, mission: str = "") -> np.ndarray:
        """``[A]`` log-probabilities of the actions, normalised over the letters."""
        lp = np.asarray(
            self.llm.logprobs(self.task.policy_messages(obs, feedback, mission), self.task.letters),
            np.float64,
        )
        m = lp.max()
        return lp - (m + np.log(np.exp(lp - m).sum()))

    def log_probs_many(self, queries: list[tuple[str, str | None, str]]) -> list[np.ndarray]:
        """``log_probs`` of several ``(obs, feedback, mission)`` queries, asked together (the local
        backend runs them as batched forward passes).
        """
        lps = self.llm.logprobs_many(
            [(self.task.policy_messages(obs, fb, mission), self.task.letters) for obs, fb, mission in queries]
        )
        out = []
        for lp in lps:
            lp = np.asarray(lp, np.float64)
            m = lp.max()
            out.append(lp - (m + np.log(np.exp(lp - m).sum())))
        return out

    def sample(self, rng: np.random.Generator, obs: str, mission: str = "") -> tuple[int, np.ndarray]:
        """Samples an action at ``obs`` (without feedback): ``(action index, [A] log-probabilities)``."""
        logp = self.log_probs(obs, mission=mission)
        return int(rng.choice(len(logp), p=np.exp(logp))), logp


def reflect(
    reflector: LLM,
    task: TextTask,
    steps: list[Step],
    t: int,
    stats: FeedbackStats,
    mission: str = "",
    max_tokens: int = 160,
    seed: int = 0,
    prefill: bool = False,
    horizon: int | None = None,
) -> tuple[str | None, str]:
    """The reflector's feedback on step ``t`` in hindsight, and its raw reply (feedback None if unusable).

    ``prefill`` starts the reflector's reply with the feedback marker, so that a
    model too small to follow the format (SmolLM2-135M never does) still writes
    into it, at the price of the paper's analysis before the feedback. ``horizon``
    caps the hindsight shown (the prompt's length is most of a reflection's cost).
    """
    messages = _reflector_messages(task, steps, t, mission, prefill, horizon)
    try:
        reply = reflector.generate(
            messages, Sampling(n=1, temperature=0.7, max_tokens=max_tokens, seed=seed)
        )[0]
    except LLMError:
        stats.add("LLM error")
        return None, ""
    return _parsed(reply, stats, prefill)


def _reflector_messages(task, steps, t, mission, prefill, horizon) -> list[dict]:
    messages = task.reflector_messages(steps, t, mission, horizon)
    return [*messages, {"role": "assistant", "content": PREFILL}] if prefill else messages


def _parsed(reply: str, stats: FeedbackStats, prefill: bool) -> tuple[str | None, str]:
    if prefill:
        reply = f"{PREFILL} {reply}"
    feedback, status = parse_feedback(reply)
    stats.add(status)
    return feedback, reply


def reflect_many(
    reflector: LLM,
    task: TextTask,
    items: list[tuple[list[Step], int, str, int]],
    stats: FeedbackStats,
    max_tokens: int = 160,
    prefill: bool = False,
    horizon: int | None = None,
) -> list[tuple[str | None, str]]:
    """``reflect`` on several ``(steps, t, mission, seed)`` items, asked in one request to the reflector
    (the local backend generates them as batches, the shared prompt prefix run once per batch).

    If the batch fails with an ``LLMError``, each item is asked again on its own, so that one bad reply
    costs only its own feedback.
    """
    requests = [
        (
            _reflector_messages(task, steps, t, mission, prefill, horizon),
            Sampling(n=1, temperature=0.7, max_tokens=max_tokens, seed=seed),
        )
        for steps, t, mission, seed in items
    ]
    try:
        replies = reflector.generate_many(requests)
    except LLMError:
        return [
            reflect(reflector, task, steps, t, stats, mission, max_tokens, seed, prefill, horizon)
            for steps, t, mission, seed in items
        ]
    return [_parsed(r[0], stats, prefill) for r in replies]

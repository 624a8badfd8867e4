"""The LLM policy over action letters, and the reflector whose feedback updates it in context.

``LetterPolicy.log_probs`` asks the backend for the next-token log-probability
of every action letter and normalises over them, so the distribution over the
enumerable actions is exact (the paper's ``pi(a|s)``). ``reflect`` asks the
reflector about one step of an episode in hindsight and extracts its feedback.

The reflector's text can be anything. ``parse_feedback`` never raises: a reply
without the feedback line, an empty one, one too long, or one that is mostly not
English text, becomes ``None`` ("no feedback", so the in-context policy equals
the original and the step's advantage is zero) and is counted by its reason in
``FeedbackStats``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from credo.llm.base import LLM, LLMError, Sampling
from credo.ricl.prompts import Step, TextTask

MAX_FEEDBACK_CHARS = 600
PREFILL = "Verbal Feedback:"
_MARKER = re.compile(r"(?:verbal\s+)?feedback\s*[:：]\s*", re.I)


@dataclass
class FeedbackStats:
    """How many reflections gave usable feedback, and why the others did not."""

    counts: Counter = field(default_factory=Counter)

    def add(self, status: str) -> None:
        self.counts[status] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def usable(self) -> int:
        return self.counts["ok"]

    def to_dict(self) -> dict:
        return dict(self.counts)


def parse_feedback(reply: str, max_chars: int = MAX_FEEDBACK_CHARS) -> tuple[str | None, str]:
    """(feedback or None, status): status is ok, no feedback line, empty, too long or not English."""
    if not isinstance(reply, str) or not reply.strip():
        return None, "empty"
    found = list(_MARKER.finditer(reply))
    if not found:
        return None, "no feedback line"
    text = reply[found[-1].end() :].strip().strip('"[]').strip()
    text = text.split("\n\n", 1)[0].strip()
    if not text:
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

    def sample(self, rng: np.random.Generator, obs: str, mission: str = "") -> tuple[int, np.ndarray]:
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
    messages = task.reflector_messages(steps, t, mission, horizon)
    if prefill:
        messages = [*messages, {"role": "assistant", "content": PREFILL}]
    try:
        reply = reflector.generate(
            messages, Sampling(n=1, temperature=0.7, max_tokens=max_tokens, seed=seed)
        )[0]
    except LLMError:
        stats.add("LLM error")
        return None, ""
    if prefill:
        reply = f"{PREFILL} {reply}"
    feedback, status = parse_feedback(reply)
    stats.add(status)
    return feedback, reply

"""The one interface every LLM backend offers: chat generation and log-probabilities of continuations.

A backend implements two methods on plain lists of chat messages
(``{"role": ..., "content": ...}``):

* ``_generate(messages, sampling) -> list[str]``: ``sampling.n`` replies;
* ``_logprobs(messages, continuations) -> list[float]``: for each continuation,
  ``log p(continuation | messages)`` when it is written as the start of the
  assistant's reply.

``LLM`` wraps a backend with the on-disk response cache and a log of every
request, so a rerun with the same requests is reproducible and free. Callers
(QLLM's coder and evaluator, RICL's policy and reflector) use only ``LLM``.
Only a usable response is cached: a list of strings (``generate``) or one
number per continuation (``logprobs``); anything else is a ``BadReplyError``,
and a cache entry that is not usable is asked again.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


class LLMError(RuntimeError):
    """An LLM that cannot be reached, loaded or asked: the message says what to do about it."""


class BadReplyError(LLMError):
    """An LLM answered with a reply that cannot be used (no choices, not JSON, not text...).

    The message names the endpoint (or backend) and what was wrong; such a reply is never cached.
    """


def describe(value) -> str:
    """A short name of a JSON value's kind, for error messages: 'null', 'a number', 'an empty list'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, dict):
        return "an empty object" if not value else "an object"
    if isinstance(value, list | tuple):
        return "an empty list" if not value else f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def usable_response(request: dict, response) -> tuple[object, str | None]:
    """(``response`` in its stored form, None) if it answers ``request`` usably, else (None, why not).

    ``generate``: a non-empty list of strings. ``logprobs``: one number (not NaN) per continuation.
    """
    if request["kind"] == "generate":
        if not isinstance(response, list) or not response:
            return None, f"{describe(response)} where a list of replies was expected"
        for i, text in enumerate(response):
            if not isinstance(text, str):
                return None, f"reply {i} is {describe(text)}, not text"
        return list(response), None
    want = len(request["continuations"])
    if not isinstance(response, list | tuple) or len(response) != want:
        return None, f"{describe(response)} where {want} log-probabilities were expected"
    for x in response:
        if isinstance(x, bool) or not isinstance(x, numbers.Real) or math.isnan(float(x)):
            return None, f"a log-probability that is {x!r}, not a number"
    return [float(x) for x in response], None


@dataclass(frozen=True)
class Sampling:
    """How to sample a reply."""

    n: int = 1  # replies to return
    temperature: float = 0.7  # 0 = greedy decoding
    max_tokens: int = 256  # new tokens per reply
    stop: tuple[str, ...] = ()  # a reply ends before the first of these strings
    seed: int = 0  # sampling seed: part of the cache key, so a new seed draws new replies
    # a GBNF grammar every reply must follow (constrained decoding; credo.llm.constrain), or None.
    # The local backend enforces it; the openai backend sends it where the server takes one.
    grammar: str | None = None

    def __post_init__(self):
        if self.n < 1 or self.max_tokens < 1 or self.temperature < 0:
            raise ValueError(f"bad sampling settings {self}: need n >= 1, max_tokens >= 1, temperature >= 0.")
        object.__setattr__(self, "stop", tuple(self.stop))


def _generate_request(messages: list[Message], sampling: Sampling) -> dict:
    """The cache key of a generation request; unconstrained requests keep the keys they always had."""
    settings = asdict(sampling)
    if settings["grammar"] is None:
        del settings["grammar"]
    return {"kind": "generate", "messages": messages, "sampling": settings}


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to (not including) the earliest stop string."""
    ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(ends)] if ends else text


class Backend:
    """Base of the backends; subclasses set ``name`` and ``model`` and implement the two methods."""

    name: str = ""
    model: str = ""

    def _generate(self, messages: list[Message], sampling: Sampling) -> list[str]:
        raise NotImplementedError

    def _logprobs(self, messages: list[Message], continuations: list[str]) -> list[float]:
        raise NotImplementedError

    def _generate_many(self, requests: list[tuple[list[Message], Sampling]]) -> list[list[str]]:
        """The replies to several (messages, sampling) requests; a backend that can batch them overrides
        this (the local one runs them as one batched generation), the others answer one at a time.
        """
        return [self._generate(m, s) for m, s in requests]

    def _logprobs_many(self, requests: list[tuple[list[Message], list[str]]]) -> list[list[float]]:
        """The log-probabilities of several (messages, continuations) requests; one at a time unless overridden."""
        return [self._logprobs(m, c) for m, c in requests]


@dataclass
class LLM:
    """A backend with a response cache (``cache_dir``) and a request log (``log_path``, JSONL).

    Either may be None. ``calls`` / ``cache_hits`` / ``seconds`` count what was asked.
    """

    backend: Backend
    cache_dir: Path | None = None
    log_path: Path | None = None
    calls: int = 0
    cache_hits: int = 0
    seconds: float = 0.0  # time spent in the backend (cache hits cost nothing)
    _cache: object = field(default=None, repr=False)

    def __post_init__(self):
        from credo.llm.cache import ResponseCache

        self._cache = ResponseCache(Path(self.cache_dir)) if self.cache_dir else None

    @property
    def model(self) -> str:
        """The backend's model name (part of every cache key)."""
        return self.backend.model

    def generate(self, messages: list[Message], sampling: Sampling | None = None) -> list[str]:
        """``sampling.n`` replies to ``messages``.

        A final ``assistant`` message is a prefill that the reply continues (the
        local backend; OpenAI-compatible servers differ: vLLM continues it, OpenAI
        answers after it). The returned text excludes the prefill.
        """
        sampling = sampling or Sampling()
        request = _generate_request(messages, sampling)
        return self._ask(request, lambda: self.backend._generate(messages, sampling))

    def generate_many(self, requests: list[tuple[list[Message], Sampling]]) -> list[list[str]]:
        """The replies to several ``(messages, sampling)`` requests, as ``generate`` would give each.

        Cached replies are taken from the cache; the others go to the backend in one call (the local
        backend batches them: a sampled reply then depends on the batch it was drawn in, seeded by the
        first request's seed, while a greedy one does not). Each request is cached and logged on its own.
        """
        fulls = [_generate_request(messages, sampling) for messages, sampling in requests]
        return self._ask_many(fulls, lambda todo: self.backend._generate_many([requests[i] for i in todo]))

    def logprobs_many(self, requests: list[tuple[list[Message], list[str]]]) -> list[list[float]]:
        """``logprobs`` of several ``(messages, continuations)`` requests (batched by the local backend)."""
        fulls = [
            {"kind": "logprobs", "messages": messages, "continuations": list(continuations)}
            for messages, continuations in requests
        ]
        out = self._ask_many(fulls, lambda todo: self.backend._logprobs_many([requests[i] for i in todo]))
        return [[float(x) for x in r] for r in out]

    def _ask_many(self, fulls: list[dict], call) -> list:
        """The responses to several requests: cached ones from the cache, the others from one backend
        ``call(indices)``, each checked, cached and logged on its own (the batch's time split evenly)."""
        out = [self._cached(request) for request in fulls]
        todo = [i for i, hit in enumerate(out) if hit is None]
        if todo:
            start = time.perf_counter()
            answers = call(todo)
            took = (time.perf_counter() - start) / len(todo)
            for i, answer in zip(todo, answers, strict=True):
                out[i] = self._store(fulls[i], answer, took)
        return out

    def logprobs(self, messages: list[Message], continuations: list[str]) -> list[float]:
        """``log p(c | messages)`` for each continuation ``c`` of the assistant's reply."""
        request = {"kind": "logprobs", "messages": messages, "continuations": list(continuations)}
        return [float(x) for x in self._ask(request, lambda: self.backend._logprobs(messages, continuations))]

    def _ask(self, request: dict, call):
        cached = self._cached(request)
        if cached is not None:
            return cached
        start = time.perf_counter()
        response = call()
        return self._store(request, response, time.perf_counter() - start)

    def _cached(self, request: dict):
        """Counts the call; the cached usable response to ``request``, or None (logged if a hit)."""
        self.calls += 1
        full = {"backend": self.backend.name, "model": self.backend.model, **request}
        stored = self._cache.get(full) if self._cache else None
        if stored is not None:
            cached, bad = usable_response(request, stored)
            if bad is None:
                self.cache_hits += 1
                self._log(full, cached, 0.0, cached=True)
                return cached
            # an entry that cannot be used (an older credo cached bad replies): ask again, overwrite it
        return None

    def _store(self, request: dict, response, took: float):
        """Checks the backend's ``response`` to ``request`` (BadReplyError if unusable), caches and logs it."""
        full = {"backend": self.backend.name, "model": self.backend.model, **request}
        self.seconds += took
        response, bad = usable_response(request, response)
        if bad is not None:
            raise BadReplyError(
                f"the {self.backend.name} LLM ({self.backend.model}) returned {bad}; nothing was cached."
            )
        if self._cache:
            self._cache.put(full, response)
        self._log(full, response, took, cached=False)
        return response

    def _log(self, request: dict, response, seconds: float, cached: bool) -> None:
        if self.log_path is None:
            return
        path = Path(self.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        row = {
            "time": time.time(),
            "seconds": round(seconds, 3),
            "cached": cached,
            **request,
            "response": response,
        }
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")

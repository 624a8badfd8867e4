"""LLMs behind an OpenAI-compatible HTTP endpoint: OpenAI, DeepSeek, vLLM, Ollama, llama.cpp servers.

Configuration: ``base_url`` (default ``$CREDO_LLM_BASE_URL``, else OpenAI's),
``model``, and the API key from the environment variable ``api_key_env``
(default ``OPENAI_API_KEY``; servers on localhost need none).

Time: ``timeout`` (> 0 seconds) bounds each HTTP request as a whole, from
connecting to the last byte of the reply, so a server that drips its reply a
byte at a time ends in an error too. Failed requests are retried ``retries``
times with exponential backoff (the ``openai`` client's own retry loop:
connection errors, timeouts, 408/409/429 and 5xx), so one request takes at
most about ``(retries + 1) * timeout`` seconds plus the backoff.

Replies: the body is parsed and checked here, not trusted. A reply that cannot
be used (not JSON, an HTML page, no ``choices``, an empty ``choices`` list,
content that is not text, malformed log-probabilities) is asked again, at most
``retries`` more times in a loop, and then raises ``BadReplyError``, whose
message names the endpoint and what was wrong with the last reply. Such a
reply is never returned, so never cached.

Log-probabilities of continuations come from the chat endpoint's
``top_logprobs`` of the first reply token, so they are exact for single-token
continuations (action letters) that appear among the ``top_logprobs`` (20)
most likely tokens; an absent one gets the 20th token's log-probability, an
upper bound.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import re
import sys
import threading
import time
import warnings
from urllib.parse import urlparse

from credo.llm.base import Backend, BadReplyError, LLMError, Message, Sampling, cut_at_stop, describe

TOP_LOGPROBS = 20  # the most the chat endpoint returns
BAD_REPLY_BACKOFF = 0.25  # seconds before the first re-ask of an unusable reply; doubles, at most 4 s

GRAMMAR_FIELDS = ("guided_grammar", "grammar")  # vLLM, llama.cpp server


def _is_local(url: str) -> bool:
    return (urlparse(url).hostname or "") in ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def check_timeout(timeout) -> float:
    """``timeout`` as float seconds, or LLMError: it must be a finite number > 0."""
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise LLMError(
            f"--timeout must be a number of seconds > 0 (it bounds each HTTP request to the LLM), got {timeout!r}."
        )
    return seconds


def check_retries(retries) -> int:
    """``retries`` as an int, or LLMError: it must be a whole number >= 0 (a bool is refused)."""
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
        raise LLMError(f"--retries-http must be a whole number >= 0, got {retries!r}.")
    return int(retries)


_ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]+")


def excerpt(text, limit: int = 120) -> str:
    """``text`` on one line, at most ``limit`` characters, without terminal escapes, control, bidi or
    zero-width characters (a server's words go into a one-line error message)."""
    one = " ".join(_CONTROL.sub(" ", _ANSI.sub("", str(text))).split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def _retries(n: int) -> str:
    return f"{n} {'retry' if n == 1 else 'retries'}"


class _Unusable(Exception):
    """What is wrong with one reply; becomes a BadReplyError once the re-asks are spent."""


def parse_body(body: bytes) -> dict:
    """The reply's JSON object, or _Unusable saying what the body is instead."""
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        raise _Unusable("the body is empty")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:
        if text.lstrip()[:1] == "<":
            raise _Unusable(
                f"the body is an HTML/XML page, not JSON ({excerpt(text, 80)!r}); is --base-url the API's "
                "address (often ending in /v1)?"
            ) from None
        where = (
            f": {err.msg} at line {err.lineno} column {err.colno}"
            if isinstance(err, json.JSONDecodeError)
            else ""
        )
        raise _Unusable(f"the body is not valid JSON{where} ({excerpt(text, 80)!r})") from None
    if not isinstance(doc, dict):
        raise _Unusable(f"the JSON body is {describe(doc)}, not an object")
    return doc


def choices_of(doc: dict) -> list:
    """The non-empty ``choices`` list of a chat-completion object, or _Unusable."""
    if doc.get("choices") is None and doc.get("error") is not None:
        err = doc["error"]
        message = err.get("message", err) if isinstance(err, dict) else err
        raise _Unusable(f"it is an error, not a completion: {excerpt(message)!r}")
    if "choices" not in doc:
        keys = ", ".join(repr(excerpt(k, 30)) for k in list(doc)[:8]) or "none"
        raise _Unusable(f"it has no 'choices' (its keys: {keys})")
    choices = doc["choices"]
    if not isinstance(choices, list):
        raise _Unusable(f"'choices' is {describe(choices)}, not a list")
    if not choices:
        raise _Unusable("'choices' is an empty list")
    return choices


def texts_of(doc: dict, stop: tuple[str, ...]) -> list[str]:
    """The reply texts of a chat completion (null content counts as an empty reply), or _Unusable."""
    texts = []
    for i, choice in enumerate(choices_of(doc)):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise _Unusable(f"choice {i} has no 'message' object")
        content = message.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise _Unusable(f"the content of choice {i} is {describe(content)}, not a string")
        texts.append(cut_at_stop(content, stop))
    return texts


def top_logprobs_of(doc: dict) -> list[tuple[str, float]] | None:
    """(token, log-probability) pairs of the first reply token; None if the reply has none; _Unusable if malformed."""
    choice = choices_of(doc)[0]
    if not isinstance(choice, dict):
        raise _Unusable(f"choice 0 is {describe(choice)}, not an object")
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    first = content[0] if isinstance(content, list) else None
    top = first.get("top_logprobs") if isinstance(first, dict) else None
    if not isinstance(top, list) or not top:
        raise _Unusable(f"'top_logprobs' of the first token is {describe(top)}, not a list of tokens")
    pairs = []
    for t in top:
        token = t.get("token") if isinstance(t, dict) else None
        lp = t.get("logprob") if isinstance(t, dict) else None
        if (
            not isinstance(token, str)
            or isinstance(lp, bool)
            or not isinstance(lp, numbers.Real)
            or math.isnan(lp)
        ):
            raise _Unusable(
                f"a top_logprobs entry is not a token with a numeric logprob: {excerpt(repr(t), 80)}"
            )
        pairs.append((token, float(lp)))
    return pairs


# --- a deadline over a whole HTTP request ------------------------------------------------
#
# httpx's timeouts bound each network operation (connect, one read, one write), so a server
# that sends a byte a second never times out. The deadline below is started when the
# transport takes a request and caps every connect, TLS handshake, read and write of that
# request at the time left, so the whole exchange, status line to last byte, ends in time.


class _Deadline:
    """The end of the request in flight, per thread (the sync client reads its reply in the asking thread)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._local = threading.local()

    def start(self) -> None:
        self._local.end = time.monotonic() + self.seconds

    def left(self, timeout: float | None, error: type[Exception]) -> float | None:
        end = getattr(self._local, "end", None)
        if end is None:
            return timeout
        left = end - time.monotonic()
        if left <= 0:
            raise error(f"the request took more than {self.seconds:g} s")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream:
    """A network stream whose every read and write ends by the deadline (httpcore's NetworkStream interface)."""

    def __init__(self, inner, deadline: _Deadline, errors):
        self._inner, self._deadline, self._errors = inner, deadline, errors

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout, self._errors.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout, self._errors.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        left = self._deadline.left(timeout, self._errors.ConnectTimeout)
        tls = self._inner.start_tls(ssl_context, server_hostname, left)
        return _DeadlineStream(tls, self._deadline, self._errors)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _DeadlineNetwork:
    """httpcore's NetworkBackend interface: connections whose streams keep the deadline."""

    def __init__(self, inner, deadline: _Deadline, errors):
        self._inner, self._deadline, self._errors = inner, deadline, errors

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        left = self._deadline.left(timeout, self._errors.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline, self._errors)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        left = self._deadline.left(timeout, self._errors.ConnectTimeout)
        stream = self._inner.connect_unix_socket(path, left, socket_options)
        return _DeadlineStream(stream, self._deadline, self._errors)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineTransport:
    """An httpx transport that starts the deadline for each request it is handed."""

    def __init__(self, inner, deadline: _Deadline):
        self._inner, self._deadline = inner, deadline
        # httpx's HTTPTransport keeps its httpcore pool in ``_pool``, the pool its network
        # backend in ``_network_backend`` (httpx/httpcore, and the httpx2/httpcore2 forks of
        # openai >= 3); the timeout exceptions are those of the pool's own package
        pool = getattr(inner, "_pool", None)
        network = getattr(pool, "_network_backend", None)
        errors = sys.modules.get(type(pool).__module__.partition(".")[0])
        if network is None or not hasattr(errors, "ReadTimeout"):
            warnings.warn(
                "credo: this httpx version hides its network backend, so --timeout bounds each read "
                "of an LLM request, not the whole request.",
                stacklevel=3,
            )
            return
        pool._network_backend = _DeadlineNetwork(network, deadline, errors)

    def handle_request(self, request):
        self._deadline.start()  # the reply's body is read after this returns, in this thread, in time
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self):
        self._inner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._inner.__exit__(*exc)


def _deadline_client(openai, seconds: float):
    """The openai package's default httpx client, except that each request ends within ``seconds``."""
    deadline = _Deadline(seconds)

    class Client(openai.DefaultHttpxClient):
        # both hooks: httpx builds the direct transport with the first, one per proxy (from the
        # environment too) with the second
        def _init_transport(self, *args, **kwargs):
            return _DeadlineTransport(super()._init_transport(*args, **kwargs), deadline)

        def _init_proxy_transport(self, *args, **kwargs):
            return _DeadlineTransport(super()._init_proxy_transport(*args, **kwargs), deadline)

    return Client(timeout=seconds)


class OpenAIBackend(Backend):
    """The backend of an OpenAI-compatible chat-completions endpoint (see the module docstring).

    Raises LLMError when the ``openai`` package is missing, when a non-local ``base_url`` has no API
    key in ``$api_key_env``, or for a bad ``timeout``, ``retries`` or ``grammar_field``.
    ``grammar_field`` (else ``$CREDO_LLM_GRAMMAR_FIELD``) names the request field that carries a
    grammar: ``guided_grammar`` (vLLM) or ``grammar`` (llama.cpp's server); without it no grammar
    is sent.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        retries: int = 3,
        grammar_field: str | None = None,
    ):
        if importlib.util.find_spec("openai") is None:
            raise LLMError(
                "the OpenAI-compatible backend needs the openai package: pip install 'credo[llm]'."
            )
        import openai

        timeout, retries = check_timeout(timeout), check_retries(retries)
        self.model = model
        self.base_url = base_url or os.environ.get("CREDO_LLM_BASE_URL") or "https://api.openai.com/v1"
        self.endpoint = self.base_url.rstrip("/") + "/chat/completions"
        key = os.environ.get(api_key_env)
        if not key:
            if not _is_local(self.base_url):
                raise LLMError(
                    f"no API key for {self.base_url}: set the environment variable {api_key_env} "
                    "(or name another with --api-key-env)."
                )
            key = "none"  # local servers (vLLM, Ollama, llama.cpp) ignore the key
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key,
            timeout=timeout,
            max_retries=retries,
            http_client=_deadline_client(openai, timeout),
        )
        self.timeout, self.retries = timeout, retries
        # where a request carries a grammar: vLLM reads `guided_grammar`, llama.cpp's server `grammar`.
        # Opt-in (--grammar-field or $CREDO_LLM_GRAMMAR_FIELD): other servers refuse unknown fields, so
        # without it a grammar is not sent and the replies go through the checks unconstrained.
        field = grammar_field or os.environ.get("CREDO_LLM_GRAMMAR_FIELD") or None
        if field not in (None, *GRAMMAR_FIELDS):
            raise LLMError(
                f"grammar field {field!r}: choose {' or '.join(GRAMMAR_FIELDS)} (vLLM or llama.cpp's server)."
            )
        self.grammar_field = field

    def _post(self, **kwargs) -> dict:
        """One chat-completions request (with the client's HTTP retries): the reply's JSON object."""
        o = self._openai
        try:
            raw = self.client.chat.completions.with_raw_response.create(model=self.model, **kwargs)
            body = raw.http_response.content
        except o.APITimeoutError as err:
            raise LLMError(
                f"the LLM endpoint {self.endpoint} did not answer within {self.timeout:g} s "
                f"({_retries(self.retries)}); raise --timeout or check the server."
            ) from err
        except o.APIConnectionError as err:
            raise LLMError(
                f"cannot reach the LLM endpoint {self.endpoint} ({_retries(self.retries)}): "
                f"{excerpt(err.__cause__ or err)}. Is the server running, and is --base-url "
                "(or $CREDO_LLM_BASE_URL) right?"
            ) from err
        except o.AuthenticationError as err:
            raise LLMError(f"the LLM endpoint {self.endpoint} refused the API key: {excerpt(err)}") from err
        except o.APIStatusError as err:
            raise LLMError(
                f"the LLM endpoint {self.endpoint} answered HTTP {err.status_code}: {excerpt(err.message, 300)}"
            ) from err
        except o.OpenAIError as err:
            raise LLMError(
                f"the LLM endpoint {self.endpoint} failed: {type(err).__name__}: {excerpt(err, 300)}"
            ) from err
        return parse_body(body)

    def _ask(self, extract, **kwargs):
        """``extract(reply)`` of the first usable reply; an unusable one is asked again ``retries`` times.

        A loop, not recursion: at most ``retries + 1`` replies, then BadReplyError.
        """
        tries = self.retries + 1
        for attempt in range(tries):
            if attempt:
                time.sleep(min(BAD_REPLY_BACKOFF * 2 ** (attempt - 1), 4.0))
            try:
                return extract(self._post(**kwargs))
            except _Unusable as err:
                problem = str(err)
        raise BadReplyError(
            f"the LLM endpoint {self.endpoint} sent a reply that cannot be used "
            f"({'once' if tries == 1 else f'{tries} times in a row'}; nothing was cached): {problem}. "
            f"It must be an OpenAI-compatible chat-completions API serving the model {self.model!r}."
        )

    def _generate(self, messages: list[Message], sampling: Sampling) -> list[str]:
        def ask(n: int, seed: int) -> list[str]:
            return self._ask(
                lambda doc: texts_of(doc, sampling.stop),
                messages=messages,
                n=n,
                temperature=sampling.temperature,
                max_tokens=sampling.max_tokens,
                stop=list(sampling.stop)[:4] or None,  # the API takes at most 4
                seed=seed,
                **self.grammar_body(sampling),
            )

        texts = ask(sampling.n, sampling.seed)
        extra = 0
        while len(texts) < sampling.n:  # some servers ignore n: ask for the rest one by one
            extra += 1  # each ask adds at least one reply, so at most n - 1 of them
            texts += ask(1, sampling.seed + extra)
        return texts[: sampling.n]

    def grammar_body(self, sampling: Sampling) -> dict:
        """``{"extra_body": {field: grammar}}`` when the request has a grammar and the server takes one, else {}."""
        if not sampling.grammar or not self.grammar_field:
            return {}
        return {"extra_body": {self.grammar_field: sampling.grammar}}

    def _logprobs(self, messages: list[Message], continuations: list[str]) -> list[float]:
        top = self._ask(
            top_logprobs_of,
            messages=messages,
            max_tokens=1,
            temperature=0,
            logprobs=True,
            top_logprobs=TOP_LOGPROBS,
        )
        if top is None:
            raise LLMError(
                f"the LLM endpoint {self.endpoint} returned no log-probabilities; the server must support "
                "logprobs=True."
            )
        top = [(token.strip(), lp) for token, lp in top]
        floor = min(lp for _, lp in top)
        out = []
        for c in continuations:
            # " A" and "A" are different tokens with one meaning: add their probabilities
            hits = [lp for tok, lp in top if tok == c.strip()]
            if not hits and len(c.strip()) > 1:
                raise LLMError(
                    f"continuation {c!r} is not a single token among the top {TOP_LOGPROBS}; the OpenAI-compatible "
                    "backend scores single-token continuations (such as action letters) only."
                )
            p = sum(math.exp(lp) for lp in hits)
            out.append((math.log(p) if p > 0 else -math.inf) if hits else floor)
        return out

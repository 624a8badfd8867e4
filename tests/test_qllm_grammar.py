"""The TFCAF grammar of constrained decoding agrees with the sandbox's whitelist, and what it generates passes.

Sentences are drawn without any LLM: random walks of the grammar (``Grammar.sample``),
and a random-logits "model" decoded through the real grammar engine and logits
processor with the embedded model's tokenizer.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from credo.llm import sandbox
from credo.llm.sandbox import SandboxRejection, check_source, compile_restricted
from credo.qllm import grammar as G
from credo.qllm import task as T
from credo.qllm.loop import Constraint, constrained_requirements, extract_code, run_qllm

# env stand-ins with the attributes the views read (the real envs' sizes), so no env is built here
ENVS = {
    "matrix:climbing": SimpleNamespace(key="matrix:climbing", n_agents=2, state_dim=2),
    "lbf:Foraging-8x8-2p-3f-v3": SimpleNamespace(
        key="lbf:Foraging-8x8-2p-3f-v3", n_agents=2, n_food=3, state_dim=15
    ),
    "mpe:simple_spread": SimpleNamespace(
        key="mpe:simple_spread", scenario="simple_spread", n_agents=3, obs_dim=18, state_dim=54
    ),
    "smax:3m": SimpleNamespace(key="smax:3m", n_agents=3, n_enemies=3, state_dim=60),
    "other:env": SimpleNamespace(key="other:env", n_agents=4, state_dim=7),
}


def head(fields) -> str:
    return "def tfcaf(agent_qs, state):\n" + T.view_lines(fields)


def code_of(fields, sentence: str) -> str:
    """The function a sentence (the body after the prefilled head, ending with the closing fence) completes."""
    assert sentence.endswith("\n" + G.FENCE_END)
    return head(fields) + sentence[: -len(G.FENCE_END)]


# --- one source: the whitelist and the grammar -------------------------------------------------


def test_every_whitelisted_name_is_classified_by_the_grammar():
    assert G.whitelist_mismatch() == []


@pytest.mark.parametrize(
    "table, change",
    [
        ("JNP_FUNCTIONS", lambda names: sorted([*names, "exp2"])),  # a name added to the whitelist
        (
            "JNP_FUNCTIONS",
            lambda names: [n for n in names if n != "tanh"],
        ),  # a name the grammar uses, removed
        ("JAX_NN_FUNCTIONS", lambda names: [n for n in names if n != "softmax"]),
        ("ARRAY_ATTRIBUTES", lambda names: [n for n in names if n != "reshape"]),
    ],
)
def test_a_whitelist_change_without_a_grammar_change_is_caught(monkeypatch, table, change):
    before = list(getattr(sandbox, table))
    monkeypatch.setattr(sandbox, table, change(before))
    problems = G.whitelist_mismatch()
    changed = set(before) ^ set(getattr(sandbox, table))
    assert problems and all(any(name in p for p in problems) for name in changed), problems
    # what the grammar emits follows the sandbox at once: a removed name is no longer generated
    text = G.tfcaf_grammar(T.state_view(ENVS["lbf:Foraging-8x8-2p-3f-v3"]), gamma=0).gbnf()
    if table == "JNP_FUNCTIONS" and "tanh" in changed:
        assert '"jnp.tanh"' not in text and '"jax.nn.tanh"' in text
    if table == "JAX_NN_FUNCTIONS":
        assert "softmax" not in text


def test_the_grammar_names_only_whitelisted_functions():
    fields = T.state_view(ENVS["mpe:simple_spread"])
    text = G.tfcaf_grammar(fields, gamma=0).gbnf()
    import re

    for module, name in re.findall(r"\b(jnp|jax\.nn)\.([a-z_0-9]+)", text):
        table = sandbox.JNP_FUNCTIONS if module == "jnp" else sandbox.JAX_NN_FUNCTIONS
        assert name in table, f"{module}.{name}"


# --- random walks of the grammar pass the sandbox ------------------------------------------------


@pytest.mark.parametrize("key", list(ENVS))
@pytest.mark.parametrize("gamma", [0, 1])
def test_random_sentences_pass_the_whitelist(key, gamma):
    fields = T.state_view(ENVS[key])
    g = G.tfcaf_grammar(fields, gamma)
    rng = random.Random(hash((key, gamma)) & 0xFFFF)
    seen = set()
    for _ in range(300):
        sentence = g.sample(rng)
        seen.add(sentence)
        check_source(code_of(fields, sentence), "tfcaf", 2)
    assert len(seen) > 250  # the grammar is not one function in disguise


def _run_view(key: str, rows: int = 5):
    """The view's fields, evaluated in the sandbox's namespace on random states."""
    env = ENVS[key]
    fields = T.state_view(env)
    source = head(fields) + f"    return ({', '.join(f.name for f in fields)},)\n"
    fn = compile_restricted(source, "tfcaf", 2)
    rng = np.random.default_rng(0)
    q = rng.normal(size=(rows, env.n_agents)).astype(np.float32)
    s = rng.normal(size=(rows, env.state_dim)).astype(np.float32)
    return env, fields, fn(q, s), s


@pytest.mark.parametrize("key", list(ENVS))
def test_the_state_view_has_the_shapes_it_declares(key):
    env, fields, values, _ = _run_view(key)
    for f, v in zip(fields, values):
        if f.kind == "agents":
            assert v.shape == (5, env.n_agents), f.name
        elif f.kind == "row":
            assert v.shape == (5, 1), f.name
        else:
            assert v.ndim == 2 and v.shape[0] == 5, f.name
        assert np.all(np.isfinite(np.asarray(v))), f.name


def test_the_state_views_read_the_documented_slots():
    _, fields, values, s = _run_view("lbf:Foraging-8x8-2p-3f-v3")
    v = dict(zip([f.name for f in fields], values))
    np.testing.assert_allclose(v["agent_level"], s[:, [2, 5]])
    np.testing.assert_allclose(v["food_level"], s[:, [8, 11, 14]])
    near = np.min(
        np.abs(s[:, [0, 3], None] - s[:, None, [6, 9, 12]])
        + np.abs(s[:, [1, 4], None] - s[:, None, [7, 10, 13]]),
        axis=2,
    )
    np.testing.assert_allclose(v["food_dist"], near, rtol=1e-5)
    _, fields, values, s = _run_view("mpe:simple_spread")
    v = dict(zip([f.name for f in fields], values))
    np.testing.assert_allclose(v["agent_x"], s[:, [2, 20, 38]])
    lm = s.reshape(5, 3, 18)[:, :, 4:10].reshape(5, 3, 3, 2)
    np.testing.assert_allclose(v["landmark_dist"], np.sqrt((lm**2).sum(-1).min(-1) + 1e-6), rtol=1e-5)


# --- worked examples --------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(ENVS))
def test_the_prompt_never_shows_an_example_of_the_target_family(key):
    env = ENVS[key]
    family = key.split(":")[0]
    chosen = T.examples_for(env)
    assert len(chosen) == 2 and all(ex.family != family for ex in chosen)
    c = Constraint(T.state_view(env), chosen)
    text = constrained_requirements(env.n_agents, env.state_dim, 1, c)
    assert all(f.name in text for f in c.fields)


# --- the engine: a random-logits model decoded under the grammar --------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("llguidance")
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from credo.llm.local import embedded_gguf

    path = embedded_gguf()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="module")
def engine(tokenizer):
    from credo.llm.constrain import make_engine

    return make_engine(tokenizer, len(tokenizer), "llguidance")


def _engine_accepts(tokenizer, engine, g: G.Grammar, text: str) -> bool:
    """Whether the engine lets ``text`` through ``g`` token by token and then allows the end of the sequence."""
    m = engine.matcher(engine.compile(g.gbnf()))
    for t in tokenizer(text, add_special_tokens=False)["input_ids"]:
        if not engine.allowed(m)[t]:
            return False
        engine.consume(m, t)
    return bool(engine.allowed(m)[tokenizer.eos_token_id])


def test_the_worked_examples_are_grammar_sentences_that_pass_the_whitelist(tokenizer, engine):
    for ex in T.EXAMPLES:
        check_source(T.example_code(ex), "tfcaf", 2)
        g = G.tfcaf_grammar(list(ex.fields), gamma=1)
        # the example's body is one of the grammar's sentences: the engine accepts it token by token
        assert _engine_accepts(tokenizer, engine, g, ex.body + G.FENCE_END), ex.family
        assert not _engine_accepts(tokenizer, engine, g, ex.body.replace("jnp.sum", "np.sum") + G.FENCE_END)


def test_random_walks_are_accepted_by_the_engine(tokenizer, engine):
    """The GBNF rendering means the same language to the engine as the grammar's own random walks."""
    fields = T.state_view(ENVS["mpe:simple_spread"])
    g = G.tfcaf_grammar(fields, 1)
    rng = random.Random(3)
    for _ in range(20):
        assert _engine_accepts(tokenizer, engine, g, g.sample(rng))


@pytest.mark.parametrize("key", ["matrix:climbing", "lbf:Foraging-8x8-2p-3f-v3", "mpe:simple_spread"])
@pytest.mark.parametrize("gamma", [0, 1])
def test_random_logits_decoded_under_the_grammar_pass_the_whitelist(tokenizer, engine, key, gamma):
    """A "model" with random logits, through the same logits processor the local backend uses."""
    import torch

    from credo.llm.constrain import GrammarLogitsProcessor

    fields = T.state_view(ENVS[key])
    gbnf = G.tfcaf_grammar(fields, gamma).gbnf()
    rows, prompt = 8, [1, 2, 3]
    eos = tokenizer.eos_token_id
    proc = GrammarLogitsProcessor(engine, gbnf, rows, len(prompt), eos)
    ids = torch.tensor([prompt] * rows)
    gen = torch.Generator().manual_seed(gamma * 100 + len(key))
    for _ in range(400):
        scores = torch.randn(rows, len(tokenizer), generator=gen) * 5
        nxt = proc(ids, scores).argmax(-1)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if all(eos in row for row in ids[:, len(prompt) :].tolist()):
            break
    texts = []
    for row in ids[:, len(prompt) :].tolist():
        assert eos in row, "a sequence did not finish within 400 tokens"
        text = tokenizer.decode(row[: row.index(eos)])
        texts.append(text)
        check_source(code_of(fields, text), "tfcaf", 2)
        assert extract_code("```python\n" + code_of(fields, text) + "```").startswith("def tfcaf")
    assert len(set(texts)) > 1


def test_the_processor_refuses_a_token_outside_the_grammar(tokenizer, engine):
    import torch

    from credo.llm.base import LLMError
    from credo.llm.constrain import GrammarLogitsProcessor

    gbnf = G.gamma_grammar().gbnf()
    proc = GrammarLogitsProcessor(engine, gbnf, 1, 1, tokenizer.eos_token_id)
    allowed = torch.isfinite(proc(torch.tensor([[1]]), torch.zeros(1, len(tokenizer))))
    assert 0 < int(allowed.sum()) < 50  # "G", "GA", "GAMMA" ... not the whole vocabulary
    bad = tokenizer("import", add_special_tokens=False)["input_ids"][0]
    with pytest.raises(LLMError, match="left the grammar"):
        proc(torch.tensor([[1, bad]]), torch.zeros(1, len(tokenizer)))


# --- the checks beyond the whitelist ------------------------------------------------------------


def _full_check_cases(n_per: int, keys=("matrix:climbing", "lbf:Foraging-8x8-2p-3f-v3", "mpe:simple_spread")):
    cases = []
    for key in keys:
        fields = T.state_view(ENVS[key])
        for gamma in (0, 1):
            rng = random.Random(7 + gamma)
            g = G.tfcaf_grammar(fields, gamma)
            cases += [(key, gamma, code_of(fields, g.sample(rng))) for _ in range(n_per)]
    return cases


def _assert_checks_pass(key, gamma, code):
    from credo.qllm.checks import check_tfcaf

    env = ENVS[key]
    report = check_tfcaf(code, env.n_agents, env.state_dim, igm=bool(gamma), batch_rows=256)
    passed = report.passed
    if not passed and gamma == 0:
        # without the IGM gate the grammar allows weights that can vanish: the one check it cannot promise
        assert report.checks[-1].name == "depends on agent_qs", report.format()
        return
    assert passed, f"{key} gamma={gamma}\n{code}\n{report.format()}"


@pytest.mark.parametrize("key, gamma, code", _full_check_cases(1, ("lbf:Foraging-8x8-2p-3f-v3",))[1:])
def test_a_grammar_sentence_passes_every_check(key, gamma, code):
    _assert_checks_pass(key, gamma, code)


@pytest.mark.slow
@pytest.mark.parametrize("key, gamma, code", _full_check_cases(4))
def test_grammar_sentences_pass_every_check(key, gamma, code):
    _assert_checks_pass(key, gamma, code)


@pytest.mark.slow
@pytest.mark.parametrize("ex", T.EXAMPLES, ids=lambda ex: ex.family)
def test_the_worked_examples_pass_every_check(ex):
    from credo.qllm.checks import check_tfcaf

    env = {
        "lbf": ENVS["lbf:Foraging-8x8-2p-3f-v3"],
        "mpe": ENVS["mpe:simple_spread"],
        "smax": ENVS["smax:3m"],
    }
    e = env[ex.family]
    report = check_tfcaf(T.example_code(ex), e.n_agents, e.state_dim, igm=True, batch_rows=256)
    assert report.passed, report.format()


# --- the loop and the backends ------------------------------------------------------------------


class _GrammarWalker:
    """A backend that answers a grammar request with a random sentence of it (and records the requests)."""

    name, model = "walker", "walker"

    def __init__(self, fields, gamma):
        self.g = G.tfcaf_grammar(fields, gamma)
        self.rng = random.Random(0)
        self.requests = []

    def _generate(self, messages, sampling):
        self.requests.append((messages, sampling))
        if sampling.grammar == G.gamma_grammar().gbnf():
            return ["GAMMA: 1"]
        if sampling.grammar == G.choice_grammar(3).gbnf():
            return ["CHOICE: 2"]
        if sampling.grammar is None:  # the advice, continuing the prefilled choice
            assert messages[-1]["role"] == "assistant" and messages[-1]["content"].endswith("ADVICE:")
            return [" fine.\nCHOICE: 3"]  # the line ends the advice, whatever follows it
        assert sampling.grammar == self.g.gbnf()
        return [self.g.sample(self.rng) for _ in range(sampling.n)]


def test_the_loop_prefills_the_head_and_decodes_under_the_grammar():
    from credo.llm.base import LLM

    env = ENVS["lbf:Foraging-8x8-2p-3f-v3"]
    fields = T.state_view(env)
    backend = _GrammarWalker(fields, 1)
    llm = LLM(backend)

    def check(code, n_agents, state_dim, igm=True, states=None):
        from credo.qllm.checks import Check, CheckReport

        try:
            check_source(code, "tfcaf", 2)
            return CheckReport([Check("whitelist", True)], source=code)
        except SandboxRejection as err:
            return CheckReport([Check("whitelist", False, str(err))], source=code)

    c = Constraint(fields, T.examples_for(env))
    result = run_qllm(llm, llm, "a task", 2, 15, candidates=3, rounds=2, check=check, constraint=c)
    assert result.gamma == 1 and result.passed_per_round == [3, 3]
    coder_calls = [(m, s) for m, s in backend.requests if s.grammar and "score" in s.grammar]
    assert coder_calls and all(m[-1] == {"role": "assistant", "content": c.head} for m, s in coder_calls)
    assert result.code.startswith("def tfcaf(agent_qs, state):\n    agent_row = ")
    # the evaluator's choice is decoded under its own grammar, so it is read from its CHOICE line
    first = result.rounds[0]
    assert (first.choice, first.choice_note, first.advice) == (1, "CHOICE line", "fine.")
    assert first.evaluator_reply == "CHOICE: 2\nADVICE: fine."


def test_the_choice_grammar_allows_exactly_the_candidates_numbers():
    import random

    g = G.choice_grammar(3)
    assert {g.sample(random.Random(i)) for i in range(60)} == {"CHOICE: 1", "CHOICE: 2", "CHOICE: 3"}
    assert G.choice_grammar(1).gbnf() == 'root ::= "CHOICE: " k\nk ::= "1"'
    with pytest.raises(ValueError, match="at least one candidate"):
        G.choice_grammar(0)


def test_the_openai_backend_sends_the_grammar_only_when_asked(monkeypatch):
    """Through a local fake server: the request body carries the grammar in the named field, or nothing."""
    pytest.importorskip("openai")
    from fake_openai import FakeOpenAI  # tests/ is on the path, as for test_llm.py

    from credo.llm import make_llm
    from credo.llm.base import LLMError, Sampling
    from credo.llm.openai_compat import OpenAIBackend

    chat = [{"role": "user", "content": "answer"}]
    s = Sampling(grammar='root ::= "x"')
    monkeypatch.delenv("CREDO_LLM_GRAMMAR_FIELD", raising=False)
    with FakeOpenAI(lambda body: ["x"]) as server:
        make_llm("openai", "m", base_url=server.url, cache_dir=False).generate(chat, s)
        monkeypatch.setenv("CREDO_LLM_GRAMMAR_FIELD", "guided_grammar")
        vllm = make_llm("openai", "m", base_url=server.url, cache_dir=False)
        vllm.generate(chat, s)
        vllm.generate(chat, Sampling())
        monkeypatch.setenv("CREDO_LLM_GRAMMAR_FIELD", "grammar")
        make_llm("openai", "m", base_url=server.url, cache_dir=False).generate(chat, s)
    plain, guided, unconstrained, llamacpp = server.requests
    assert "guided_grammar" not in plain and "grammar" not in plain
    assert guided["guided_grammar"] == 'root ::= "x"' and "grammar" not in guided
    assert "guided_grammar" not in unconstrained
    assert llamacpp["grammar"] == 'root ::= "x"'
    with pytest.raises(LLMError, match="grammar field"):
        OpenAIBackend("m", base_url="http://localhost:1/v1", grammar_field="regex")


def test_unconstrained_requests_keep_their_cache_keys(tmp_path):
    from credo.llm.base import LLM, Sampling

    class Echo:
        name, model = "echo", "echo"

        def _generate(self, messages, sampling):
            return ["x"] * sampling.n

    llm = LLM(Echo(), log_path=tmp_path / "log.jsonl")
    llm.generate([{"role": "user", "content": "hi"}], Sampling())
    llm.generate([{"role": "user", "content": "hi"}], Sampling(grammar='root ::= "x"'))
    import json

    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert "grammar" not in rows[0]["sampling"] and rows[1]["sampling"]["grammar"] == 'root ::= "x"'


def test_grammar_modes_pick_the_constraint_per_backend():
    from credo.llm.base import LLMError
    from credo.qllm.loop import constraint_for_backend

    env = ENVS["mpe:simple_spread"]
    local = SimpleNamespace(backend=SimpleNamespace(name="local"))
    plain = SimpleNamespace(backend=SimpleNamespace(name="openai", grammar_field=None))
    vllm = SimpleNamespace(backend=SimpleNamespace(name="openai", grammar_field="guided_grammar"))
    c = constraint_for_backend("auto", local, env)
    assert c.prefill and "landmark_dist" in c.head and c.grammar(1).startswith('root ::= "    score = "')
    assert constraint_for_backend("off", local, env) is None
    assert constraint_for_backend("auto", plain, env) is None
    with pytest.raises(LLMError, match="CREDO_LLM_GRAMMAR_FIELD"):
        constraint_for_backend("on", plain, env)
    served = constraint_for_backend("auto", vllm, env)
    assert not served.prefill and served.grammar(1).startswith(
        'root ::= "```python\\ndef tfcaf(agent_qs, state):'
    )
    # a server's reply is the whole fenced function: what the loop extracts passes the whitelist
    sentence = G.tfcaf_grammar(served.fields, 1, head=served.head).sample(random.Random(0))
    check_source(extract_code(served.reply(sentence)), "tfcaf", 2)


@pytest.mark.slow
def test_the_embedded_model_decodes_under_the_grammar():
    """SmolLM2-135M through LLM.generate: the shared prompt pass, the grammar processor, the seeding."""
    from credo.llm import make_llm
    from credo.llm.base import Sampling
    from credo.qllm.loop import coder_messages

    llm = make_llm("local", cache_dir=False)
    env = ENVS["lbf:Foraging-8x8-2p-3f-v3"]
    c = Constraint(T.state_view(env), T.examples_for(env))
    req = constrained_requirements(env.n_agents, env.state_dim, 1, c)
    messages = [
        *coder_messages("Level-Based Foraging.", req, "", None),
        {"role": "assistant", "content": c.head},
    ]
    sampling = Sampling(n=3, temperature=0.7, max_tokens=200, seed=0, grammar=c.grammar(1))
    out = llm.generate(messages, sampling)
    assert len(out) == 3
    for text in out:
        assert text.endswith(G.FENCE_END)
        check_source(extract_code(c.reply(text)), "tfcaf", 2)
    assert llm.generate(messages, sampling) == out  # seeded, the shared prompt pass included

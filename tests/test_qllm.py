"""QLLM: the coder-evaluator loop's logic, TFCAF files, the tfcaf mixer in the engine, and the qllm CLI."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from credo.llm.base import LLM, Backend
from credo.qllm.checks import Check, CheckReport
from credo.qllm.loop import extract_code, read_advice, read_choice, run_qllm

GOOD = "def tfcaf(agent_qs, state):\n    return jnp.sum(agent_qs, axis=-1)\n"
GOOD2 = "def tfcaf(agent_qs, state):\n    w = jax.nn.softmax(state[:, :2], axis=-1)\n    return jnp.sum(w * agent_qs, axis=-1)\n"
BAD_IMPORT = "import os\ndef tfcaf(agent_qs, state):\n    return agent_qs.sum(-1)\n"


def block(code: str) -> str:
    return f"Here is the function:\n```python\n{code}```\nIt weights the agents."


class Scripted(Backend):
    """Replies from a function of (messages, call index); keeps every request."""

    name, model = "scripted", "script"

    def __init__(self, reply):
        self.reply, self.requests = reply, []

    def _generate(self, messages, sampling):
        self.requests.append(list(messages))  # the loop appends to its conversation later
        out = self.reply(messages, len(self.requests) - 1)
        return out if isinstance(out, list) else [out] * sampling.n


def fake_check(code, n_agents, state_dim, igm=True, states=None):
    """The whitelist's verdict only (fast); the real checks are tested in test_sandbox.py."""
    from credo.llm.sandbox import SandboxRejection, check_source

    try:
        check_source(code, "tfcaf", 2)
        return CheckReport([Check("whitelist", True)], source=code)
    except SandboxRejection as err:
        return CheckReport([Check("whitelist", False, str(err))], source=code)


def is_evaluator(messages) -> bool:
    return "reviewer" in messages[0]["content"]


def test_extract_code_finds_the_tfcaf_block():
    assert extract_code(block(GOOD)) == GOOD.rstrip("\n")
    two = "```python\nx = 1\n```\nand\n```python\n" + GOOD + "```"
    assert extract_code(two).startswith("def tfcaf")
    assert extract_code("Sure! " + GOOD).startswith("def tfcaf")
    assert extract_code("```python\n" + GOOD).startswith("def tfcaf")  # cut before the closing fence
    assert extract_code("no code here") == ""


def test_reading_the_evaluator_is_robust():
    assert read_choice("CHOICE: 2\nADVICE: use the levels.", 3) == (1, "CHOICE line")
    assert read_choice("I select [0, 0, 1].", 3)[0] == 2
    assert read_choice("Candidate 3 is best.", 3)[0] == 2
    assert read_choice("CHOICE: 7", 3) == (0, "no valid choice in the reply; took the first valid candidate")
    assert read_choice("", 2)[0] == 0
    assert read_advice("CHOICE: 1\nADVICE: weight by level.") == "weight by level."
    assert read_advice("nothing") == ""


def test_a_rejected_candidate_goes_back_with_its_reason_and_retries_are_bounded():
    def reply(messages, i):
        if is_evaluator(messages):
            return "CHOICE: 1\nADVICE: fine."
        if len(messages) == 2:  # first try of each candidate: candidate 2 is broken
            return [block(GOOD), block(BAD_IMPORT)]
        return block(BAD_IMPORT)  # every fix of candidate 2 is still broken

    coder = Scripted(reply)
    llm = LLM(coder)
    result = run_qllm(llm, llm, "task", 2, 4, candidates=2, rounds=1, retries=2, gamma=1, check=fake_check)
    cands = result.rounds[0].candidates
    assert [len(c.attempts) for c in cands] == [1, 3]  # 1 try + 2 bounded retries
    fixes = [m for m in coder.requests if len(m) > 2]
    assert len(fixes) == 2
    assert "no imports" in fixes[0][-1]["content"] and fixes[0][-2]["role"] == "assistant"
    assert len(fixes[1]) == len(fixes[0]) + 2  # the conversation grows with each try
    assert result.code == GOOD.rstrip("\n") and result.passed_per_round == [1]


def test_a_fixed_candidate_passes_on_retry():
    def reply(messages, i):
        if is_evaluator(messages):
            return "CHOICE: 1"
        return block(BAD_IMPORT) if len(messages) == 2 else block(GOOD2)

    llm = LLM(Scripted(reply))
    result = run_qllm(llm, llm, "task", 2, 4, candidates=1, rounds=1, retries=3, gamma=1, check=fake_check)
    c = result.rounds[0].candidates[0]
    assert len(c.attempts) == 2 and c.passed and result.code == GOOD2.rstrip("\n")


def test_the_evaluator_sees_and_chooses_only_valid_candidates():
    seen = []

    def reply(messages, i):
        if is_evaluator(messages):
            seen.append(messages[1]["content"])
            return "CHOICE: 2\nADVICE: use softmax."  # 2 of the valid ones
        return [block(BAD_IMPORT), block(GOOD), block(GOOD2)]

    llm = LLM(Scripted(reply))
    result = run_qllm(llm, llm, "task", 2, 4, candidates=3, rounds=2, retries=0, gamma=1, check=fake_check)
    assert "import os" not in seen[0] and "Candidate 3" not in seen[0]
    assert result.rounds[0].choice == 2  # candidate index 2 (GOOD2), the second valid one
    assert result.code == GOOD2.rstrip("\n")
    # round 2's coder prompt carries the pick and the advice
    coder_round2 = [m for m in llm.backend.requests if not is_evaluator(m)][1]
    assert "use softmax." in coder_round2[1]["content"] and "softmax(state" in coder_round2[1]["content"]


def test_no_valid_candidate_ends_with_a_report_of_every_reason():
    llm = LLM(Scripted(lambda m, i: "I cannot write code."))
    result = run_qllm(llm, llm, "task", 2, 4, candidates=2, rounds=2, retries=1, gamma=0, check=fake_check)
    assert result.code is None and result.passed_per_round == [0, 0]
    report = result.failure_report()
    assert report.count("no Python code") == 4 and "round 2, candidate 2" in report
    assert not any(is_evaluator(m) for m in llm.backend.requests)  # nothing to choose from


def test_gamma_is_inferred_from_the_llm_or_defaults_to_monotone():
    def reply(messages, i):
        if "GAMMA" in messages[-1]["content"]:
            return "The game punishes miscoordination.\nGAMMA: 0"
        return "CHOICE: 1" if is_evaluator(messages) else block(GOOD)

    llm = LLM(Scripted(reply))
    result = run_qllm(llm, llm, "task", 2, 4, candidates=1, rounds=1, check=fake_check)
    assert result.gamma == 0 and "inferred" in result.gamma_note
    vague = LLM(Scripted(lambda m, i: "CHOICE: 1" if is_evaluator(m) else "maybe " + block(GOOD)))
    result = run_qllm(vague, vague, "task", 2, 4, candidates=1, rounds=1, check=fake_check)
    assert result.gamma == 1 and "safe default" in result.gamma_note
    assert "monotone in every Q_i (gamma = 1)" in vague.backend.requests[1][1]["content"]


def test_the_loop_uses_the_real_checks():
    llm = LLM(
        Scripted(
            lambda m, i: (
                "CHOICE: 1"
                if is_evaluator(m)
                else block("def tfcaf(agent_qs, state):\n    return agent_qs[:, 0] - agent_qs[:, 1]\n")
            )
        )
    )
    result = run_qllm(llm, llm, "task", 2, 4, candidates=1, rounds=1, retries=0, gamma=1)
    assert result.code is None and "monotone" in result.rounds[0].candidates[0].final.report["reason"]


# --- TFCAF files, the mixer, the CLI -----------------------------------------------------


def _tfcaf_file(tmp_path, code=GOOD2, name="f.py"):
    path = tmp_path / name
    path.write_text(code)
    return path


def test_tfcaf_files_load_and_bad_ones_say_why(tmp_path):
    from credo.qllm.artifact import load_tfcaf, save_artifact

    assert load_tfcaf(_tfcaf_file(tmp_path)).gamma is None
    js, py = save_artifact(
        tmp_path / "a.json", {"code": GOOD, "gamma": 0, "env": "matrix:climbing", "model": "m"}
    )
    t = load_tfcaf(js)
    assert t.source == GOOD and t.gamma == 0 and t.meta["env"] == "matrix:climbing"
    assert "def tfcaf" in py.read_text()
    with pytest.raises(FileNotFoundError, match="credo qllm generate"):
        load_tfcaf(tmp_path / "missing.py")
    (tmp_path / "x.txt").write_text(GOOD)
    with pytest.raises(ValueError, match=".py file"):
        load_tfcaf(tmp_path / "x.txt")
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(ValueError, match="'code' field"):
        load_tfcaf(tmp_path / "b.json")


def test_the_tfcaf_mixer_computes_the_function_and_has_no_parameters(tmp_path):
    from credo.mixers import make_mixer

    mixer = make_mixer("tfcaf", 2, 4, 3, path=str(_tfcaf_file(tmp_path)))
    q, s = jnp.arange(12.0).reshape(2, 3, 2), jnp.ones((2, 3, 4))  # [T, B, n]: any leading axes
    params = mixer.init(jax.random.PRNGKey(0), q, s)
    assert jax.tree.leaves(params) == []
    np.testing.assert_allclose(
        mixer.apply(params, q, s), q.mean(-1) * 1.0, rtol=1e-6
    )  # equal softmax weights
    bad = _tfcaf_file(
        tmp_path, "def tfcaf(agent_qs, state):\n    return agent_qs[:, 0] - agent_qs[:, 1]\n", "bad.py"
    )
    with pytest.raises(ValueError, match="rejected by the sandbox.*monotone"):
        make_mixer("tfcaf", 2, 4, 3, path=str(bad))
    make_mixer("tfcaf", 2, 4, 3, path=str(bad), gamma=0)  # the IGM gate off accepts it
    with pytest.raises(ValueError, match="--set tfcaf=PATH"):
        make_mixer("tfcaf", 2, 4, 3)


def test_qllm_trains_in_the_engine_with_fewer_parameters_than_qmix(tmp_path):
    from credo.cli import main

    path = _tfcaf_file(tmp_path, "def tfcaf(agent_qs, state):\n    return jnp.sum(agent_qs, axis=-1)\n")
    common = [
        "matrix:climbing",
        "--steps",
        "2000",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--set",
        "test_interval=1000",
        "--set",
        "hidden_dim=64",  # the same agent network: QLLM's authors use 128, QMIX's defaults 64
    ]
    assert main(["train", "qllm", *common, "--name", "q", "--set", f"tfcaf={path}"]) == 0
    assert main(["train", "qmix", *common, "--name", "m"]) == 0
    q = json.loads((tmp_path / "q" / "summary.json").read_text())
    m = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert q["parameters"]["mixer"] == 0 and m["parameters"]["mixer"] > 0
    assert q["parameters"]["agent"] == m["parameters"]["agent"]
    assert np.isfinite(q["final_test_return"]).all()


def test_cli_check_prints_each_check_and_exits_non_zero_on_rejection(tmp_path, capsys):
    from credo.cli import main

    good = _tfcaf_file(tmp_path)
    assert main(["qllm", "check", "lbf:Foraging-8x8-2p-3f-v3", str(good)]) == 0
    out = capsys.readouterr().out
    assert "PASS  monotone in every Q_i (IGM)" in out and "accepted" in out
    bad = _tfcaf_file(tmp_path, "import os\n" + GOOD, "bad.py")
    assert main(["qllm", "check", "lbf:Foraging-8x8-2p-3f-v3", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  whitelist: line 1: no imports" in out and "rejected" in out
    assert main(["qllm", "check", "lbf:Foraging-8x8-2p-3f-v3", str(tmp_path / "none.py")]) == 2


def test_cli_generate_end_to_end_against_an_openai_compatible_server(tmp_path, monkeypatch, capsys):
    from fake_openai import FakeOpenAI

    from credo.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def reply(body):
        if "reviewer" in body["messages"][0]["content"]:
            return ["CHOICE: 1\nADVICE: none."]
        if "GAMMA" in body["messages"][-1]["content"]:
            return ["GAMMA: 0"]
        return [block(GOOD)] * body.get("n", 1)

    out = tmp_path / "t" / "tfcaf.json"
    with FakeOpenAI(reply) as server:
        args = [
            "qllm",
            "generate",
            "matrix:climbing",
            "--backend",
            "openai",
            "--model",
            "fake",
            "--base-url",
            server.url,
        ]
        args += ["--rounds", "2", "--candidates", "2", "--out", str(out), "--cache", str(tmp_path / "cache")]
        assert main(args) == 0
        n_requests = len(server.requests)
        assert main(args) == 0  # a rerun is served from the cache
        assert len(server.requests) == n_requests
    doc = json.loads(out.read_text())
    assert doc["gamma"] == 0 and doc["passed_per_round"] == [2, 2] and doc["code"] == GOOD.rstrip("\n")
    assert len(doc["rounds"]) == 2 and doc["rounds"][0]["evaluator_reply"].startswith("CHOICE: 1")
    assert (out.parent / "tfcaf.py").exists() and (out.parent / "llm_log.jsonl").exists()
    assert "credo train qllm matrix:climbing --set tfcaf=" in capsys.readouterr().out


@pytest.mark.slow
def test_the_loop_end_to_end_with_the_embedded_model(tmp_path):
    """SmolLM2-135M as coder and evaluator: the loop ends with a TFCAF or a report of every rejection."""
    import credo.envs as envs
    from credo.llm import make_llm
    from credo.qllm.task import describe_env

    env = envs.make("matrix:climbing")
    llm = make_llm("local", cache_dir=tmp_path / "cache", log_path=tmp_path / "log.jsonl")
    result = run_qllm(
        llm, llm, describe_env(env), 2, env.spec.state_dim, candidates=2, rounds=1, retries=1, max_tokens=96
    )
    cands = result.rounds[0].candidates
    assert len(cands) == 2 and all(1 <= len(c.attempts) <= 2 for c in cands)
    assert (result.code is not None) == any(c.passed for c in cands)
    if result.code is None:
        assert "no candidate passed" in result.failure_report()
    assert (tmp_path / "log.jsonl").exists()

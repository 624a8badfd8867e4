"""QLLM refinement from training feedback (credo.qllm.refine, `credo qllm generate --refine-rounds N`).

The selection logic runs against a fake trainer that returns given curves (fast, and it makes the
better candidate certain); one test trains a real candidate through the engine at a tiny budget, and
the CLI test trains one for real too (its fake coder repeats one function, so it trains once).
"""

from __future__ import annotations

import json

import pytest
from test_qllm import GOOD, Scripted, block, fake_check, is_evaluator

from credo.llm.base import LLM
from credo.qllm.loop import run_qllm
from credo.qllm.refine import Budget, Curve, MeteredLLM, engine_trainer, refine, summarise

A = "def tfcaf(agent_qs, state):\n    return jnp.sum(agent_qs, axis=-1)\n"
B = "def tfcaf(agent_qs, state):\n    return jnp.max(agent_qs, axis=-1)\n"
C = "def tfcaf(agent_qs, state):\n    return 2.0 * jnp.sum(agent_qs, axis=-1)\n"


def _key(code: str) -> str:
    return code.strip()


def fake_trainer(scores: dict, calls: list, fail: tuple = ()):
    """A trainer returning, for each code, a curve whose summary seed ends at ``shown`` and whose
    held-out seed ends at ``held``: ``scores[code] = (shown, held)``."""

    def train(code, name):
        calls.append((name, code))
        if _key(code) in {_key(f) for f in fail}:
            raise ValueError("the tfcaf mixer's check failed at the training batch size\nsecond line")
        shown, held = scores[_key(code)]
        return Curve(
            steps=[0, 250, 500, 750, 1000],
            returns=[[0.0, shown / 4, shown / 2, shown * 0.75, shown], [0.0, 0.0, 0.0, 0.0, held]],
            env_steps=2000,
            run_dir=f"/runs/{name}",
        )

    return train


def _coder(loop_replies, refine_replies, choice=1):
    """A scripted coder-evaluator: the loop's rounds get ``loop_replies``, refinement rounds (their
    prompt says 'were each trained') ``refine_replies``; the evaluator picks ``choice``."""

    def reply(messages, i):
        if is_evaluator(messages):
            return f"CHOICE: {choice}\nADVICE: fine."
        if "were each trained" in messages[-1]["content"]:
            return [block(c) for c in refine_replies]
        return [block(c) for c in loop_replies]

    backend = Scripted(reply)
    return backend, LLM(backend)


def _loop(llm, candidates=2):
    return run_qllm(llm, llm, "the task", 2, 3, candidates=candidates, rounds=1, gamma=1, check=fake_check)


def _refine(llm, result, trainer, rounds=1, candidates=2):
    return refine(
        llm,
        "the task",
        result,
        trainer,
        n_agents=2,
        state_dim=3,
        rounds=rounds,
        budget=Budget(1000, 1, 1),
        candidates=candidates,
        check=fake_check,
    )


def test_the_refinement_prompt_carries_the_summaries_and_the_best_held_out_candidate_is_kept():
    backend, llm = _coder([A, B], [C, A])
    result = _loop(llm)
    calls = []
    # B looks best on the seed the coder sees (20) but is worst held out (0.125); C is best held out
    scores = {_key(A): (5.0, 4.0), _key(B): (20.0, 0.125), _key(C): (10.0, 30.0)}
    ref = _refine(llm, result, fake_trainer(scores, calls))
    refine_prompts = [m for m in backend.requests if "were each trained" in m[-1]["content"]]
    assert len(refine_prompts) == 1
    text = refine_prompts[0][-1]["content"]
    assert "Function r1c1" in text and "Function r1c2" in text and "jnp.max(agent_qs" in text
    assert "final 20 " in text and "final 5 " in text and "10 at 500 steps" in text and "rising" in text
    assert text.index("Function r1c2") < text.index("Function r1c1")  # best (by the shown seeds) first
    assert "0.125" not in text and "held" not in text  # the coder never sees the held-out seeds
    assert "more function" not in text  # all of them shown
    # A came again in the refinement round: recorded as a duplicate, not trained twice
    assert [name for name, _ in calls] == ["r1c1", "r1c2", "r2c1"]
    dup = next(t for t in ref.trained if t.id == "r2c2")
    assert dup.duplicate_of == "r1c1" and dup.heldout == 4.0
    assert ref.kept == "r2c1" and ref.kept_code == C.rstrip("\n")
    assert ref.loop_pick == "r1c1"
    c = ref.comparison()
    assert c["loop_pick_heldout"] == 4.0 and c["best_heldout_loop_rounds"] == 4.0
    assert c["best_heldout_refine_rounds"] == 30.0 and c["refine_gain_over_loop"] == 26.0
    doc = ref.to_dict()
    json.dumps(doc)  # JSON-ready
    assert doc["budget"]["steps"] == 1000 and doc["budget"]["seeds_summary"] == [1000]
    assert doc["budget"]["seeds_heldout"] == [1001]
    assert doc["cost"]["training_runs"] == 3 and doc["cost"]["training_env_steps"] == 6000
    assert doc["cost"]["llm_calls"] == 1  # one coder request for the refinement round's two candidates
    assert doc["rounds"][0]["index"] == 2 and doc["rounds"][0]["trained"] == ["r2c1", "r2c2"]


def test_the_held_out_score_chooses_not_the_shown_one_and_ties_keep_the_loop_pick():
    _, llm = _coder([A, B], [], choice=2)  # the evaluator picks B
    result = _loop(llm)
    ref = _refine(llm, result, fake_trainer({_key(A): (1.0, 7.0), _key(B): (9.0, 3.0)}, []), rounds=0)
    assert ref.rounds == [] and ref.loop_pick == "r1c2" and ref.kept == "r1c1"  # A: best held out
    tie = _refine(llm, result, fake_trainer({_key(A): (1.0, 3.0), _key(B): (1.0, 3.0)}, []), rounds=0)
    assert tie.kept == "r1c2"  # equal held-out scores: the loop's pick stays


def test_a_candidate_that_fails_training_is_recorded_and_not_kept():
    _, llm = _coder([A, B], [])
    result = _loop(llm)
    trainer = fake_trainer({_key(B): (1.0, 1.0)}, [], fail=(A,))
    ref = _refine(llm, result, trainer, rounds=0)
    failed = next(t for t in ref.trained if t.id == "r1c1")
    assert failed.error.startswith("ValueError: the tfcaf mixer's check failed") and "\n" not in failed.error
    assert failed.heldout is None and ref.kept == "r1c2"


def test_the_prompt_shows_the_best_few_and_counts_the_rest():
    from credo.qllm.refine import SHOWN

    codes = [
        f"def tfcaf(agent_qs, state):\n    return {k + 1}.0 * jnp.sum(agent_qs, axis=-1)\n" for k in range(7)
    ]
    backend, llm = _coder(codes, codes[:1])
    result = _loop(llm, candidates=7)
    scores = {_key(c): (float(k), 0.0) for k, c in enumerate(codes)}
    _refine(llm, result, fake_trainer(scores, []), candidates=1)
    text = next(m for m in backend.requests if "were each trained" in m[-1]["content"])[-1]["content"]
    assert text.count("Function r1c") == SHOWN and "Function r1c7" in text and "Function r1c1:" not in text
    assert f"({7 - SHOWN} more function(s) learned less well and are not shown.)" in text


def test_the_summary_is_a_few_numbers():
    curve = Curve(
        steps=list(range(0, 10_001, 1000)), returns=[[float(i) for i in range(11)]] * 2, env_steps=0
    )
    s = summarise(curve, 2)
    assert [p[0] for p in s["points"]] == [0, 2000, 5000, 8000, 10000]
    assert s["final"] == 10.0 and s["final_per_seed"] == [10.0, 10.0] and s["best"] == 10.0
    assert s["trend"] == "rising (+5 over the second half)"


def test_a_candidate_trains_through_the_engine_at_a_tiny_budget(tmp_path):
    budget = Budget(500, 1, 1)
    curve = engine_trainer("matrix:climbing", 1, budget, tmp_path)(A, "r1c1")
    assert json.loads((tmp_path / "r1c1.json").read_text())["code"] == A
    assert (tmp_path / "runs" / "r1c1" / "summary.json").exists()
    assert len(curve.returns) == 2 and curve.steps[0] == 0 and len(curve.returns[0]) == len(curve.steps) >= 2
    assert curve.env_steps >= 2 * 500
    config = (tmp_path / "runs" / "r1c1" / "config.yaml").read_text()
    assert "seed: 1000" in config and "seeds: 2" in config  # the refinement's own seeds


def _generate(server, out, *extra):
    return [
        "qllm",
        "generate",
        "matrix:climbing",
        "--backend",
        "openai",
        "--model",
        "fake",
        "--base-url",
        server.url,
        "--rounds",
        "1",
        "--candidates",
        "2",
        "--gamma",
        "1",
        "--out",
        str(out),
        "--no-cache",
        *extra,
    ]


def _server_reply(body):
    if "reviewer" in body["messages"][0]["content"]:
        return ["CHOICE: 1\nADVICE: none."]
    return [block(GOOD)] * body.get("n", 1)


def test_cli_refinement_records_budget_summaries_choice_and_cost(tmp_path, monkeypatch, capsys):
    from fake_openai import FakeOpenAI

    from credo.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "g" / "tfcaf.json"
    with FakeOpenAI(_server_reply) as server:
        extra = [
            "--refine-rounds",
            "1",
            "--refine-steps",
            "500",
            "--refine-seeds",
            "1",
            "--refine-holdout-seeds",
            "1",
        ]
        assert main(_generate(server, out, *extra)) == 0
    doc = json.loads(out.read_text())
    ref = doc["refinement"]
    assert doc["settings"]["refine_rounds"] == 1 and doc["settings"]["refine_steps"] == 500
    assert ref["budget"]["per_candidate"] == "500 env steps x 2 seeds (1 for the summary, 1 held out)"
    # the fake coder writes the same function every time: trained once, the others are duplicates
    assert [t["id"] for t in ref["trained"]] == ["r1c1", "r1c2", "r2c1", "r2c2"]
    first = ref["trained"][0]
    assert first["summary"]["final"] is not None and first["heldout"] is not None and not first["error"]
    assert all(t["duplicate_of"] == "r1c1" for t in ref["trained"][1:])
    assert ref["kept"] == "r1c1" and ref["loop_pick"] == "r1c1" and doc["code"] == GOOD.rstrip("\n")
    assert "Function r1c1" in ref["rounds"][0]["coder_prompt"][-1]["content"]
    cost = doc["selection_cost"]
    assert cost["training_runs"] == 1 and cost["training_env_steps"] >= 1000 and cost["training_seconds"] > 0
    assert (
        cost["llm_calls"] == 3 and cost["llm_seconds"] >= 0
    )  # round 1's coder and evaluator, refinement's coder
    assert cost["llm_prompt_tokens"] is None  # an OpenAI-compatible server: no tokenizer here to count with
    assert (out.parent / "tfcaf-refine" / "runs" / "r1c1" / "summary.json").exists()
    printed = capsys.readouterr().out
    assert "refinement: kept r1c1" in printed and "selection cost: LLM" in printed
    with FakeOpenAI(_server_reply) as server:  # the refinement's directory is not overwritten
        assert main(_generate(server, out, "--refine-rounds", "1")) == 2
    assert "tfcaf-refine exists and is not empty" in capsys.readouterr().err


def test_zero_refinement_rounds_change_nothing(tmp_path, monkeypatch):
    from fake_openai import FakeOpenAI

    import credo.qllm.refine as refine_module
    from credo.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def no_training(*args, **kwargs):
        raise AssertionError("no training without --refine-rounds")

    monkeypatch.setattr(refine_module, "engine_trainer", no_training)
    docs, requests = [], []
    for i, extra in enumerate([[], ["--refine-rounds", "0", "--refine-steps", "500"]]):
        out = tmp_path / str(i) / "tfcaf.json"
        with FakeOpenAI(_server_reply) as server:
            assert main(_generate(server, out, *extra)) == 0
            requests.append(server.requests)
        doc = json.loads(out.read_text())
        for k in ("created", "seconds", "model_load_seconds", "llm_seconds"):
            doc.pop(k)
        for r in doc["rounds"]:
            r.pop("seconds")
        docs.append(doc)
        assert not (out.parent / "tfcaf-refine").exists()
    assert docs[0] == docs[1] and "refinement" not in docs[0] and "selection_cost" not in docs[0]
    assert requests[0] == requests[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--refine-rounds", "-1"], "argument --refine-rounds: must be at least 0"),
        (["--refine-rounds", "x"], "argument --refine-rounds: expects a whole number"),
        (["--refine-steps", "0"], "argument --refine-steps: must be at least 1"),
        (["--refine-seeds", "0"], "argument --refine-seeds: must be at least 1"),
        (["--refine-holdout-seeds", "2.5"], "argument --refine-holdout-seeds: expects a whole number"),
    ],
)
def test_bad_refinement_settings_are_one_line_errors(tmp_path, capsys, args, message):
    from credo.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["qllm", "generate", "matrix:climbing", "--out", str(tmp_path / "t.json"), *args])
    err = capsys.readouterr().err.strip()
    assert exit.value.code == 2 and "\n" not in err and message in err
    assert list(tmp_path.iterdir()) == []


def test_the_metered_llm_counts_what_it_asks():
    backend, llm = _coder([A], [])
    metered = MeteredLLM(llm)
    metered.generate([{"role": "user", "content": "write"}])
    counts = metered.counts()
    assert counts["calls"] == 1 and counts["reply_chars"] == len(block(A))
    assert counts["prompt_tokens"] is None  # the scripted backend has no tokenizer


def test_under_the_grammar_the_prompt_leaves_out_the_fixed_field_lines():
    from credo.qllm.refine import Trained, describe_trained

    head = "def tfcaf(agent_qs, state):\n    t = state[:, 1:2]  # [B, 1] time step\n"
    code = head + "    score = t * jnp.ones_like(agent_qs)\n    return jnp.sum(score * agent_qs, axis=1)"
    summary = {
        "points": [[0, 1.0]],
        "final": 1.0,
        "final_per_seed": [1.0],
        "best": 1.0,
        "trend": "flat (+0 ...)",
    }
    text = describe_trained(Trained("r1c1", "loop", 1, 1, code, summary), Budget(1000, 1, 1), head)
    assert "state[:, 1:2]" not in text and "# ... the named fields, as above ..." in text
    assert "    score = t * jnp.ones_like(agent_qs)" in text and "final 1 (per seed 1)" in text


def _qllm_train(server, out, *extra):
    return ["qllm", "train", *_generate(server, out)[2:-1], *extra]  # generate's options, less --no-cache


def test_qllm_train_goes_from_an_env_to_a_trained_run(tmp_path, monkeypatch, capsys):
    from fake_openai import FakeOpenAI

    from credo.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "q"
    with FakeOpenAI(_server_reply) as server:
        args = _qllm_train(server, out, "--no-cache", "--steps", "500", "--seeds", "2", "--no-progress")
        assert main(args) == 0
    artifact = json.loads((out / "tfcaf.json").read_text())
    assert artifact["code"] == GOOD.rstrip("\n") and artifact["env"] == "matrix:climbing"
    config = (out / "train" / "config.yaml").read_text()
    assert f"tfcaf: {out / 'tfcaf.json'}" in config and "seeds: 2" in config and "algo: qllm" in config
    assert json.loads((out / "train" / "summary.json").read_text())["env_steps_done"][0] >= 500
    assert "training QLLM with the generated TFCAF" in capsys.readouterr().out


def test_qllm_train_rejects_bad_training_settings_before_asking_the_llm(tmp_path, monkeypatch, capsys):
    from fake_openai import FakeOpenAI

    from credo.cli import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(_server_reply) as server:
        assert main(_qllm_train(server, tmp_path / "q", "--train-set", "lr=-1")) == 2
        assert server.requests == []
    assert "lr" in capsys.readouterr().err

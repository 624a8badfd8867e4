"""Hostile LLM-written code (QLLM): shape-gated credit functions, source text that attacks the checker
itself, candidates whose checks crash, and training runs whose loss turns NaN.

Each case ends in a clean rejection (a failed check with a one-line reason), a one-line error, or a
stopped run without a summary, in bounded time and memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from credo_cli import run_credo

from credo.llm.base import LLM, Backend
from credo.llm.sandbox import MAX_DEPTH, SandboxRejection, check_source
from credo.qllm.checks import DEFAULT_BATCH_ROWS, check_tfcaf
from credo.qllm.loop import run_qllm


def fn(body: str) -> str:
    return "def tfcaf(agent_qs, state):\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"


def gated(body: str, when: str = "agent_qs.shape[0] > 1000") -> str:
    """A VDN-like function that does ``body`` to ``q`` only when ``when`` holds (a batch-size gate)."""
    return fn(
        f"q = agent_qs.sum(-1)\nif {when}:\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
        + "\nreturn q"
    )


GOOD = fn("w = jax.nn.softmax(state[:, :2], axis=-1)\nreturn jnp.sum(w * agent_qs, axis=-1)")
NAN_WHEN_LARGE = gated("q = q * jnp.log(q * 0.0 - 1.0)")  # log(-1): NaN


def _credo(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_credo(*args, cwd=cwd, timeout=timeout)


def _failed(report):
    return next(c for c in report.checks if not c.passed)


# --- 1. shape-gated behaviour: checked at the training batch size and twice it ------------------

# (name, source, failing check, words of its reason); each passes every small-batch check
SHAPE_GATED = [
    ("NaN only for large batches", NAN_WHEN_LARGE, "correct at the training batch size", "NaN"),
    (
        "negative weights only for large batches",
        gated("q = -q"),
        "monotone in every Q_i (IGM)",
        "< 0 with Q ~ N(0, 1), env-like states at 2,048 rows",
    ),
    (
        "mixes rows only for large batches",
        gated("q = q + jnp.mean(agent_qs)"),
        "correct at the training batch size",
        "other rows",
    ),
    (
        "memory cubic in the batch",
        gated(
            "z = jnp.zeros((agent_qs.shape[0], agent_qs.shape[0], agent_qs.shape[0]))\nq = q + 0.0 * z.sum()"
        ),
        "memory at the training batch size",
        "grows faster than the batch",
    ),
    (
        "memory quadratic in the batch, no gate",
        fn("e = jnp.eye(agent_qs.shape[0])\nreturn jnp.diag(e @ agent_qs).sum() * 0.0 + agent_qs.sum(-1)"),
        "memory at the training batch size",
        "[B, B]",
    ),
    (
        "Python loop over the rows",
        fn(
            "q = agent_qs.sum(-1)\nfor i in range(min(agent_qs.shape[0], 300)):\n    q = q + 0.0 * agent_qs[i, 0]\nreturn q"
        ),
        "traces at the training batch size",
        "grows with the batch",
    ),
    (
        "hangs at trace time for large batches",
        gated(
            "for i in range(agent_qs.shape[0]):\n    for j in range(agent_qs.shape[0]):\n        q = q + 0.0"
        ),
        "traces at the training batch size",
        "took over 10 s",
    ),
]


@pytest.mark.parametrize("name, source, check, words", SHAPE_GATED, ids=[c[0] for c in SHAPE_GATED])
def test_shape_gated_code_is_rejected_at_the_training_batch_size(name, source, check, words):
    start = time.perf_counter()
    report = check_tfcaf(source, 2, 4, batch_rows=2048)
    assert not report.passed, report.format()
    failed = _failed(report)
    # On a loaded machine (CI's two workers compiling) the child's start-up can use up the whole
    # 60 s budget first: then the overall time limit rejects it, naming the stage it was stuck in.
    overall = failed.name == "time limit" and f"stuck in '{check}'" in failed.detail
    assert (failed.name == check and words in failed.detail) or overall, report.format()
    assert "\n" not in report.reason
    passed = {c.name for c in report.checks if c.passed}
    assert {
        "finite on random inputs",
        "finite gradients",
        "depends on agent_qs",
    } <= passed  # small batches pass
    assert time.perf_counter() - start < 90  # the 60 s budget of the checks, and the child's start


def test_without_a_run_the_checks_use_the_documented_large_default():
    assert DEFAULT_BATCH_ROWS >= 64 * 200  # QLLM's batch of 64 episodes of 200 steps
    report = check_tfcaf(NAN_WHEN_LARGE.replace("> 1000", f"> {DEFAULT_BATCH_ROWS - 1}"), 2, 4)
    assert not report.passed and f"{DEFAULT_BATCH_ROWS:,} rows" in report.reason, report.format()
    good = check_tfcaf(GOOD, 2, 4, batch_rows=[100, 200])  # several training sizes in one run
    assert good.passed, good.format()
    traced = next(c for c in good.checks if c.name == "traces at the training batch size")
    assert "100, 200 and 400 rows" in traced.detail, good.format()


def test_cli_check_rejects_shape_gated_code(tmp_path):
    path = tmp_path / "gated.py"
    path.write_text(NAN_WHEN_LARGE)
    out = _credo("qllm", "check", "matrix:climbing", str(path), cwd=tmp_path)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "FAIL  correct at the training batch size" in out.stdout and "Traceback" not in out.stderr


def _train(tmp_path, algo: str, *sets: str, steps: int = 2000):
    from credo.cli import main

    args = ["train", algo, "matrix:climbing", "--steps", str(steps), "--out", str(tmp_path), "--name", "run"]
    args += ["--no-progress", "--set", "test_interval=1000"]
    for s in sets:
        args += ["--set", s]
    return main(args), tmp_path / "run"


def test_training_checks_the_exact_batch_size_before_the_code_runs_there(tmp_path, capsys):
    # NaN only between 65 and 9999 rows: the small checks (up to 64) and the default size miss it;
    # training with batch_size 100 calls it on 100 and 200 rows (one-step episodes, and targets)
    source = NAN_WHEN_LARGE.replace(
        "agent_qs.shape[0] > 1000", "agent_qs.shape[0] > 64 and agent_qs.shape[0] < 10000"
    )
    assert check_tfcaf(source, 2, 2).passed
    path = tmp_path / "gated.py"
    path.write_text(source)
    code, run = _train(tmp_path, "qllm", f"tfcaf={path}", "batch_size=100")
    err = capsys.readouterr().err
    assert code == 2, err
    assert "rejected at the batch size training calls it with" in err and "NaN" in err, err
    assert not (run / "summary.json").exists()


def test_a_run_whose_tfcaf_turns_nan_stops_without_a_summary(tmp_path, monkeypatch, capsys):
    # a gate the checks cannot see (the per-size check is switched off): the trainer itself stops
    import credo.mixers.tfcaf as tfcaf

    monkeypatch.setattr(tfcaf, "check_batch_size", lambda *a, **k: None)
    source = NAN_WHEN_LARGE.replace(
        "agent_qs.shape[0] > 1000", "agent_qs.shape[0] > 64 and agent_qs.shape[0] < 10000"
    )
    path = tmp_path / "gated.py"
    path.write_text(source)
    code, run = _train(tmp_path, "qllm", f"tfcaf={path}", "batch_size=100")
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("credo: error: training stopped:") and "\n" not in err, err
    assert "became NaN or inf in chunk" in err and "between env steps" in err and "TFCAF" in err, err
    assert not (run / "summary.json").exists()


@pytest.mark.parametrize("algo", ["qmix", "mappo"])
def test_every_learner_stops_when_its_loss_turns_nan(tmp_path, monkeypatch, algo):
    """A learner whose updates poison its parameters and loss (as a NaN credit function does)."""
    from credo.algos import make_learner
    from credo.engine import train
    from credo.engine.rundir import RunDir

    def poisoning(learner):
        update = learner.update

        def poisoned(state, *args):
            state, metrics = update(state, *args)
            nan = lambda x: x * jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else x  # noqa: E731
            metrics = {k: nan(v) if "loss" in k else v for k, v in metrics.items()}
            return state._replace(params=jax.tree.map(nan, state.params)), metrics

        learner.update = poisoned
        return learner

    monkeypatch.setattr(train, "make_learner", lambda *a: poisoning(make_learner(*a)))
    from credo.algos import config_class
    from credo.cli import config_files
    from credo.config import load_config

    cfg = load_config(
        config_class(algo),
        config_files(algo, "matrix:climbing"),
        ["total_env_steps=3000", "test_interval=1000", "log_interval=500"],
        base={"algo": algo, "env": "matrix:climbing"},
    )
    trainer = train.Trainer(cfg)
    run_dir = RunDir.create(cfg, base=str(tmp_path), name="run")
    with pytest.raises(
        train.TrainingDiverged, match=r"seed 0 became NaN or inf in chunk \d+, between env steps"
    ):
        trainer.run(run_dir, progress=False)
    assert not (run_dir.path / "summary.json").exists()


def test_a_healthy_warm_up_is_not_taken_for_divergence(tmp_path):
    """Before the buffer holds batch_size episodes every metric is NaN by design: the run goes on."""
    code, run = _train(tmp_path, "qmix", "batch_size=200", "log_interval=100", steps=1500)
    assert code == 0 and (run / "summary.json").exists()
    rows = [json.loads(x) for x in (run / "metrics" / "seed_0.jsonl").read_text().splitlines()]
    assert any(r.get("loss", 0) is None for r in rows if "train_return" in r)  # a warm-up chunk was there


# --- 2. source text that attacks the checker: clean rejections in bounded time and memory -------

ATTACKS = [
    ("tower of powers", fn("x = 2**2**2**2**2**2\nreturn agent_qs.sum(-1)"), "exponent"),
    ("tower at the top level", "X = 2**2**2**2**2**2\n" + fn("return agent_qs.sum(-1)"), "exponent"),
    ("nested powers", fn("x = ((((9**64)**64)**64)**64)**64\nreturn agent_qs.sum(-1)"), "too large"),
    (
        "nested powers as a default",
        "def tfcaf(agent_qs, state, k=((9**64)**64)**64):\n    return agent_qs.sum(-1)\n",
        "too large",
    ),
    ("huge power", fn("x = 10**10**8\nreturn agent_qs.sum(-1)"), "exponent"),
    ("product chain", fn("x = " + "*".join(["9999999"] * 60) + "\nreturn agent_qs.sum(-1)"), "too large"),
    ("string bomb", fn("x = 'a'*10**10\nreturn agent_qs.sum(-1)"), "repetition"),
    ("huge literal", fn("x = 1" + "0" * 5000 + "\nreturn agent_qs.sum(-1)"), "limit"),
    ("float exponent tower", fn("x = 1.5**64**64\nreturn agent_qs.sum(-1)"), "exponent"),
    ("long sum", fn("x = " + "+".join(["1"] * 1500) + "\nreturn agent_qs.sum(-1)"), "levels deep"),
    ("deep subscripts", fn("x = agent_qs" + "[0]" * 1500 + "\nreturn agent_qs.sum(-1)"), "levels deep"),
    (
        "deep conditional",
        fn("x = " + "1 if agent_qs else " * 1000 + "2\nreturn agent_qs.sum(-1)"),
        "levels deep",
    ),
    ("deep unary", fn("x = " + "-" * 3000 + "agent_qs\nreturn agent_qs.sum(-1)"), "nests too deeply"),
    ("deep attributes", fn("x = agent_qs" + ".T" * 3000 + "\nreturn agent_qs.sum(-1)"), "nests too deeply"),
    ("deep lists", fn("x = " + "[" * 150 + "1" + "]" * 150 + "\nreturn agent_qs.sum(-1)"), "levels deep"),
    ("deep calls", fn("x = " + "jnp.abs(" * 300 + "agent_qs" + ")" * 300 + "\nreturn x.sum(-1)"), "nested"),
    (
        "null bytes",
        fn("return agent_qs.sum(-1)") + "\0",
        "syntax error: source code string cannot contain null",
    ),
    ("an integer", 5, "must be text"),
    ("null", None, "must be text"),
    ("a list", ["def tfcaf(agent_qs, state):", "    return agent_qs.sum(-1)"], "must be text"),
    ("a dict", {"code": "x"}, "must be text"),
]


@pytest.mark.parametrize("name, source, words", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attacks_on_the_checker_are_clean_rejections(name, source, words):
    start = time.perf_counter()
    report = check_tfcaf(source, 2, 4)
    assert time.perf_counter() - start < 2.0  # rejected by the whitelist, in this process, no worker
    assert not report.passed and report.checks[0].name == "whitelist", report.format()
    assert words in report.reason and "\n" not in report.reason, report.reason
    if isinstance(source, str):
        with pytest.raises(SandboxRejection, match=words.replace("[", r"\[")):
            check_source(source, "tfcaf", 2)


def test_code_just_inside_the_depth_limit_is_still_accepted():
    check_source(fn("x = " + "+".join(["agent_qs"] * (MAX_DEPTH - 10)) + "\nreturn x.sum(-1)"), "tfcaf", 2)


def test_every_attack_is_bounded_in_time_and_memory_in_a_limited_process():
    """All of them in one child with 2 GiB of address space and 60 s of CPU: none may need more."""
    from credo.proc import run_bounded

    script = textwrap.dedent(
        """
        import json, sys
        from credo.qllm.checks import check_tfcaf
        for source in json.loads(sys.stdin.read()):
            assert not check_tfcaf(source, 2, 4).passed
        print("all rejected")
        """
    )
    sources = [s for _, s, _ in ATTACKS]
    done = run_bounded(
        [sys.executable, "-c", script],
        cpu_seconds=60,
        memory_bytes=2 << 30,
        input=json.dumps(sources),
        timeout=120,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert done.returncode == 0 and "all rejected" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"code": 5, "gamma": 1}, "not int"),
        ({"code": None}, "found no TFCAF"),
        ({"code": ["def tfcaf(agent_qs, state):"]}, "not list"),
        ({"code": {"x": 1}}, "not dict"),
        ({"code": "def tfcaf(agent_qs, state):\n    return agent_qs.sum(-1)\n", "gamma": True}, "gamma"),
        ([1, 2], "'code' field"),
        ("just text", "'code' field"),
    ],
)
def test_artifacts_whose_code_is_not_text_are_refused_with_a_message(tmp_path, doc, words):
    from credo.qllm.artifact import load_tfcaf

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=words) as err:
        load_tfcaf(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unreadable_tfcaf_files_are_refused_with_a_message(tmp_path):
    from credo.qllm.artifact import load_tfcaf

    (tmp_path / "bin.py").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_tfcaf(tmp_path / "bin.py")
    (tmp_path / "dir.py").mkdir()
    with pytest.raises(ValueError, match="directory"):
        load_tfcaf(tmp_path / "dir.py")


def test_cli_check_of_an_artifact_with_non_text_code_is_one_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"code": 5, "gamma": 1}))
    out = _credo("qllm", "check", "matrix:climbing", str(path), cwd=tmp_path, timeout=120)
    err = out.stderr.strip()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert err.splitlines()[-1].startswith("credo: error: ") and "'code' field must be" in err, err


# --- 3. generate: a candidate whose checks crash is a rejected candidate ---------------------


class Scripted(Backend):
    """Replies from a function of (messages, call index)."""

    name, model = "scripted", "script"

    def __init__(self, reply):
        self.reply, self.calls = reply, 0

    def _generate(self, messages, sampling):
        self.calls += 1
        out = self.reply(messages)
        return out if isinstance(out, list) else [out] * sampling.n


def block(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\n"


CRASHES = "def tfcaf(agent_qs, state):\n    return agent_qs.sum(-1) * 1.0\n"  # the check below crashes on it


def replies(coder: list[str]):
    def reply(messages):
        if "reviewer" in messages[0]["content"]:
            return "CHOICE: 1\nADVICE: fine."
        return coder if len(messages) == 2 else block(CRASHES)  # every retry crashes again

    return reply


def crashing_check(code, *args, **kw):
    if code.strip() == CRASHES.strip():
        raise RecursionError("maximum recursion depth exceeded")
    return check_tfcaf(code, *args, **kw)


def test_a_crashing_check_rejects_the_candidate_and_the_loop_goes_on():
    hostile = [a[1] for a in ATTACKS if isinstance(a[1], str)][:6]
    coder = [block(CRASHES), *[block(h) for h in hostile], block(GOOD), "no code at all"]
    llm = LLM(Scripted(replies(coder)))
    result = run_qllm(
        llm, llm, "task", 2, 4, candidates=len(coder), rounds=1, retries=1, gamma=1, check=crashing_check
    )
    cands = result.rounds[0].candidates
    first = cands[0].final.report
    assert not first["passed"] and "the checks crashed on this code (RecursionError" in first["reason"]
    assert len(cands[0].attempts) == 2  # retried like any rejection, and crashed again
    assert all(not c.passed for c in cands[1:-2]) and cands[-2].passed and not cands[-1].passed
    assert result.code == GOOD.rstrip("\n")
    assert "round 1, candidate 1: checks: the checks crashed" in result.failure_report()


def test_cli_generate_records_a_crashing_candidate_as_rejected(tmp_path, monkeypatch, capsys):
    import credo.llm
    import credo.llm.sandbox as sandbox
    from credo.cli import main

    real = sandbox.check_source

    def check_source(source, *args):  # the whitelist crashing on one candidate, as deep code once made it
        if source.strip() == CRASHES.strip():
            raise RecursionError("maximum recursion depth exceeded")
        return real(source, *args)

    monkeypatch.setattr(sandbox, "check_source", check_source)
    monkeypatch.setattr(
        credo.llm, "make_llm", lambda *a, **k: LLM(Scripted(replies([block(CRASHES), block(GOOD)])))
    )
    out = tmp_path / "t" / "tfcaf.json"
    args = ["qllm", "generate", "matrix:climbing", "--rounds", "1", "--candidates", "2", "--retries", "0"]
    assert main([*args, "--gamma", "1", "--out", str(out)]) == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    first, second = doc["rounds"][0]["candidates"]
    assert not first["attempts"][0]["report"]["passed"]
    assert "the checks crashed on this code (RecursionError" in first["attempts"][0]["report"]["reason"]
    assert second["attempts"][0]["report"]["passed"] and doc["code"] == GOOD.rstrip("\n")
    assert doc["passed_per_round"] == [1]


def test_the_trace_deadline_is_known_to_have_fired_when_its_exception_comes_out_mangled():
    # CPython turns an alarm that lands inside some C code into SystemError ("error return without
    # exception set"); the check must still read that as the time limit, not as the code's error.
    from credo.qllm.checks import _Deadline, _deadline

    deadline = _deadline(0.05)
    with pytest.raises(SystemError):
        with deadline:
            try:
                time.sleep(5)
            except _Deadline:
                raise SystemError("error return without exception set") from None
    assert deadline.expired
    quick = _deadline(5)
    with quick:
        pass
    assert not quick.expired

"""Runs and checkpoints handled as a careless or hostile user would (issue 18): damaged or
hand-edited files, runs killed at awkward moments, and resumes that ask for changes. Each case
ends in a clean one-line error, a clean restart or a clean extension, never a traceback.

Bad config values and arguments are in test_hostile_config.py, LLM endpoints in
test_hostile_llm.py, LLM-written credit functions in test_hostile_sandbox.py, Ctrl-C and SIGTERM
in test_interrupt.py.

One small finished run (VDN on a matrix game, 2 seeds) is trained in process once; each test
works on its own copy. CLI cases run ``credo`` in a child process, as a user meets it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from credo_cli import run_credo

from credo.algos.value import ValueConfig
from credo.config import save_config
from credo.engine import resources
from credo.engine.checkpoint import CheckpointReadError, leaf_names, load_checkpoint, read_meta
from credo.engine.rundir import RunDir
from credo.engine.snapshots import ParamSnapshots
from credo.engine.train import CHECKPOINT, Trainer

STEPS = 600


def _cfg(**kw) -> ValueConfig:
    base = dict(
        algo="vdn",
        env="matrix:climbing",
        mixer="vdn",
        total_env_steps=STEPS,
        n_envs=4,
        seeds=2,
        test_interval=200,
        test_episodes=2,
        log_interval=100,
        save_interval=300,
        keep_snapshots=2,
    )
    base.update(kw)
    return ValueConfig(**base)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("finished")
    cfg = _cfg()
    rd = RunDir.create(cfg, base, "run")
    Trainer(cfg).run(rd, progress=False)
    return rd.path


@pytest.fixture
def run(finished, tmp_path) -> Path:
    """A private copy of the finished run."""
    return Path(shutil.copytree(finished, tmp_path / "run"))


class _Result:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _in_process(capsys, *args: str) -> _Result:
    """``credo ARGS`` through ``credo.cli.main`` in this process: the same code as the command,
    without a child's 7 s of imports (the error cases never train)."""
    from credo.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return _Result(code, out, err)


def _one_line_error(result, *needles: str) -> str:
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], err[-2000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# --- what a run directory holds ------------------------------------------------------------------


def test_a_checkpoint_names_its_arrays_and_keeps_the_replay_buffer_in_its_own_file(run):
    ckpt = run / "checkpoints"
    with np.load(ckpt / "last.npz") as data:
        names = set(data.files)
    assert "learner/params/agent/params/fc1/kernel" in names and "env_steps" in names
    assert not any(n.startswith("buffer") for n in names)  # the buffer is not in last.npz
    meta = read_meta(ckpt / "last.npz")
    buffer = ckpt / meta["buffer_file"]
    assert [p.name for p in ckpt.glob("buffer-*.npz")] == [buffer.name]  # older buffers are gone
    with np.load(buffer) as data:
        assert "data/obs" in data.files and data["data/obs"].shape[:2] == (2, 5000)


def test_parameter_snapshots_keep_the_latest_evaluations_and_each_seeds_best(run):
    params = run / "checkpoints" / "params"
    evals = [json.loads(line) for line in (run / "metrics" / "seed_0.jsonl").read_text().splitlines()]
    evals = [r for r in evals if "eval_index" in r]
    last = evals[-1]["eval_index"]
    assert sorted(p.name for p in params.glob("eval-*.npz")) == [
        f"eval-{last - 1:04d}.npz",
        f"eval-{last:04d}.npz",
    ]
    best = read_meta(params / "best.npz")
    for seed in range(2):
        rows = [json.loads(x) for x in (run / "metrics" / f"seed_{seed}.jsonl").read_text().splitlines()]
        returns = [r["test_return"] for r in rows if "eval_index" in r]
        assert best["eval_index"][seed] == int(np.argmax(returns))  # the first of the best
        assert best["test_return"][seed] == max(returns)


def test_best_snapshot_takes_each_seed_from_its_own_best_evaluation(tmp_path):
    snaps = ParamSnapshots(tmp_path, keep=1)
    p = lambda a, b: {"w": np.array([[a, a], [b, b]], np.float32)}  # noqa: E731 - [seed, 2]
    snaps.record(0, p(1, 1), [10, 10], [0.5, 0.9])
    snaps.record(1, p(2, 2), [20, 20], [0.7, 0.8])  # seed 0 improves, seed 1 does not
    snaps.record(2, p(3, 3), [30, 30], [0.7, 0.9])  # ties keep the earlier one
    best, meta = load_checkpoint(tmp_path / "checkpoints/params/best.npz", p(0, 0))
    assert np.asarray(best["w"]).tolist() == [[2, 2], [1, 1]]
    assert meta == {"eval_index": [1, 0], "env_steps": [20, 10], "test_return": [0.7, 0.9]}
    assert [x.name for x in (tmp_path / "checkpoints/params").glob("eval-*")] == ["eval-0002.npz"]
    # A resumed run that redoes evaluation 1 onwards forgets a best taken from them.
    again = ParamSnapshots(tmp_path, keep=1)
    again.resume(n_evals=1)
    assert not (tmp_path / "checkpoints/params/best.npz").exists()


def test_credo_eval_evaluates_a_snapshot_and_names_a_bad_one(run, tmp_path):
    ok = run_credo("eval", str(run), "--snapshot", "best", "--episodes", "2", cwd=tmp_path)
    assert ok.returncode == 0 and "snapshot best (evaluation" in ok.stdout, ok.stderr[-2000:]
    _one_line_error(
        run_credo("eval", str(run), "--snapshot", "first", cwd=tmp_path), "unknown snapshot 'first'", "eval-N"
    )
    _one_line_error(
        run_credo("eval", str(run), "--snapshot", "eval-0", cwd=tmp_path), "no parameter snapshot at"
    )


def test_a_format_1_checkpoint_still_loads(tmp_path):
    tree = {"a": np.arange(3.0), "b": {"c": np.ones((2, 2))}}
    arrays = {f"leaf_{i:05d}": x for i, x in enumerate(jax.tree.leaves(tree))}
    arrays["__meta__"] = np.frombuffer(json.dumps({"chunk": 3}).encode(), np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    loaded, meta = load_checkpoint(tmp_path / "old.npz", tree)
    assert meta == {"chunk": 3} and np.asarray(loaded["b"]["c"]).tolist() == [[1, 1], [1, 1]]
    assert leaf_names(tree) == ["a", "b/c"]


# --- damaged files: one line naming the file and what to do -------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b"\0" * 1000), id="zeros"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
    ],
)
def test_a_damaged_checkpoint_is_one_line_naming_it_and_what_to_do(run, tmp_path, capsys, damage):
    damage(run / CHECKPOINT)
    needles = (f"checkpoint {run / CHECKPOINT} is damaged", "move it away")
    _one_line_error(_in_process(capsys, "train", "--resume", str(run)), *needles)
    _one_line_error(_in_process(capsys, "eval", str(run)), *needles)


def test_a_damaged_checkpoint_is_one_line_from_the_command(run, tmp_path):
    (run / CHECKPOINT).write_bytes((run / CHECKPOINT).read_bytes()[:1000])
    _one_line_error(
        run_credo("train", "--resume", str(run), cwd=tmp_path),
        f"checkpoint {run / CHECKPOINT} is damaged",
        f"`credo train --resume {run}` then starts the run again from the beginning",
    )


def test_a_missing_or_damaged_replay_buffer_is_one_line(run, tmp_path):
    buffer = run / "checkpoints" / read_meta(run / CHECKPOINT)["buffer_file"]
    buffer.write_bytes(b"PK\x03\x04 not really a zip")
    err = _one_line_error(
        run_credo("train", "--resume", str(run), cwd=tmp_path), f"replay buffer {buffer} is damaged"
    )
    assert f"move {run / 'checkpoints'} away" in err
    assert (
        run_credo("eval", str(run), "--episodes", "2", cwd=tmp_path).returncode == 0
    )  # eval needs no buffer
    buffer.unlink()
    _one_line_error(run_credo("train", "--resume", str(run), cwd=tmp_path), f"no replay buffer at {buffer}")


def test_a_checkpoint_that_does_not_fit_the_config_names_the_array(run):
    cfg = _cfg(hidden_dim=16)
    with pytest.raises(CheckpointReadError, match=r"array learner/params/agent/params/.* has shape"):
        Trainer(cfg).load(RunDir(run))


@pytest.mark.parametrize(
    "text, needle",
    [
        ("algo: vdn\nlr: [0.1\n", "cannot be read"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("algo: zmix\n", "unknown algorithm 'zmix'"),
        ("algo: vdn\nlr: fast\n", "lr"),
        ("\xff\xfe binary", "cannot be read"),
    ],
    ids=["bad-yaml", "a-list", "unknown-algo", "bad-value", "binary"],
)
def test_a_hand_damaged_config_yaml_is_one_line(run, capsys, text, needle):
    (run / "config.yaml").write_bytes(text.encode("latin-1"))
    for args in (["train", "--resume", str(run)], ["eval", str(run)]):
        _one_line_error(_in_process(capsys, *args), str(run / "config.yaml"), needle)


def test_a_hand_damaged_config_yaml_is_one_line_from_the_command(run, tmp_path):
    (run / "config.yaml").write_text("algo: vdn\nlr: [0.1\n")
    _one_line_error(
        run_credo("eval", str(run), cwd=tmp_path), f"{run / 'config.yaml'} cannot be read", "repair it"
    )


def test_a_broken_metrics_line_before_the_last_is_one_line(run, capsys):
    metrics = run / "metrics" / "seed_0.jsonl"
    lines = metrics.read_text().splitlines()
    lines[1] = lines[1][:20]
    metrics.write_text("\n".join(lines) + "\n")
    save_config(_cfg(total_env_steps=STEPS * 2), run / "config.yaml")  # so that resuming trains
    _one_line_error(_in_process(capsys, "train", "--resume", str(run)), f"{metrics}:2: not a JSON row")


# --- killed runs ---------------------------------------------------------------------------------


def test_a_run_killed_before_its_first_checkpoint_starts_again_with_resume(tmp_path):
    """No checkpoint, a stale temporary from the killed save and a half-written metrics line:
    ``--resume`` starts the run again from the beginning in its directory and finishes it."""
    cfg = _cfg(total_env_steps=400)
    rd = RunDir.create(cfg, tmp_path, "killed")
    (rd.path / "checkpoints").mkdir()
    (rd.path / "checkpoints" / "last.npz.tmp-4242").write_bytes(b"half a file")
    row = {"chunk": 1, "env_steps": 100, "episodes": 100, "train_return": 1.0}
    rd.seed_file(0).write_text(json.dumps(row) + "\n" + '{"chunk": 2, "env_st')
    result = run_credo("train", "--resume", str(rd.path), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no checkpoint yet" in result.stdout and "starting it again from the beginning" in result.stdout
    assert "dropped the half-written last line" in result.stderr
    assert not list((rd.path / "checkpoints").glob("*.tmp-*"))
    rows = [json.loads(x) for x in rd.seed_file(0).read_text().splitlines()]
    chunks = [r["chunk"] for r in rows if "eval_index" not in r]
    assert chunks == list(range(1, len(chunks) + 1))  # written once each, in order
    assert json.loads((rd.path / "summary.json").read_text())["env_steps_done"][0] >= 400


# --- resuming with changes -----------------------------------------------------------------------


def test_resume_with_steps_extends_a_finished_run(run, tmp_path):
    done = json.loads((run / "summary.json").read_text())["env_steps_done"]
    result = run_credo(
        "train", "--resume", str(run), "--steps", "900", "--set", "test_episodes=3", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The message names the checkpoint's env steps (the end of the first budget), not an evaluation's.
    assert f"from its checkpoint at {min(done):,} env steps" in result.stdout
    assert "changed: total_env_steps = 900, test_episodes = 3" in result.stdout
    assert yaml.safe_load((run / "config.yaml").read_text())["total_env_steps"] == 900
    summary = json.loads((run / "summary.json").read_text())
    assert min(summary["env_steps_done"]) >= 900 and summary["test_episodes"] == 3
    # Finished again: without a larger --steps there is nothing to do.
    again = run_credo("train", "--resume", str(run), cwd=tmp_path)
    assert again.returncode == 0 and "has finished its budget of 900 env steps" in again.stdout


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--steps", "100"], ["has trained", "would not extend it"]),
        (["--steps", "5000", "--set", "lr=0.1"], ["changing lr would make it a different experiment"]),
        (["--set", "mixer=qmix"], ["changing mixer"]),
        (["--seeds", "3"], ["keeps the run's 2 seed(s)"]),
        (["--name", "other"], ["--name names a new run directory"]),
    ],
    ids=["fewer-steps", "lr", "mixer", "seeds", "name"],
)
def test_resume_refuses_changes_that_make_another_experiment(run, capsys, args, needles):
    before = (run / "config.yaml").read_text()
    _one_line_error(_in_process(capsys, "train", "--resume", str(run), *args), *needles)
    assert (run / "config.yaml").read_text() == before


def test_resume_refuses_another_algo_or_env(run, tmp_path):
    _one_line_error(
        run_credo("train", "qmix", "matrix:climbing", "--resume", str(run), cwd=tmp_path), "ALGO 'qmix'"
    )
    _one_line_error(
        run_credo("train", "vdn", "matrix:penalty", "--resume", str(run), cwd=tmp_path), "ENV 'matrix"
    )


# --- memory and disk -----------------------------------------------------------------------------


def test_a_run_whose_replay_buffer_cannot_fit_is_refused_before_its_directory_exists(tmp_path):
    result = run_credo(
        "train",
        "qmix",
        "lbf:Foraging-8x8-2p-3f-v3",
        "--set",
        "buffer_size=200000000",
        "--out",
        "runs",
        cwd=tmp_path,
    )
    _one_line_error(result, "the training state needs", "replay buffer", "of memory available", "buffer_size")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_resource_check_names_memory_and_disk(tmp_path, monkeypatch):
    plan = {"state": 10 * resources.GiB, "buffer": 9 * resources.GiB}
    monkeypatch.setattr(resources, "host_memory_available", lambda: 4 * resources.GiB)
    with pytest.raises(
        resources.ResourceError, match=r"needs 10\.0 GiB \(replay buffer 9\.0 GiB\).*4\.0 GiB"
    ):
        resources.check(plan, n_devices=1, devices=[], checkpoint_dir=tmp_path)
    monkeypatch.setattr(resources, "host_memory_available", lambda: 15 * resources.GiB)
    warnings = resources.check(plan, n_devices=1, devices=[], checkpoint_dir=None)
    assert len(warnings) == 1 and "may be killed when it saves" in warnings[0]

    class Usage:
        free = 5 * resources.GiB

    monkeypatch.setattr(resources.shutil, "disk_usage", lambda _: Usage)
    with pytest.raises(resources.ResourceError, match="has 5.0 GiB free"):
        resources.check(plan, n_devices=1, devices=[], checkpoint_dir=tmp_path / "not" / "yet")

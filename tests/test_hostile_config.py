"""Bad values (issue 18): each is a one-line error naming the field or argument, before anything is
built or written. Config ranges are checked with ``load_config``; the CLI's behaviour in a
subprocess, as a user meets it."""

from __future__ import annotations

import errno
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
from credo_cli import run_credo

from credo.config import (
    ConfigError,
    PositiveInt,
    Range,
    UnitInterval,
    describe,
    from_dict,
    load_config,
    save_config,
    to_dict,
)

# --- the Range mechanism ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ranged:
    count: PositiveInt = 1  # a count
    rate: Annotated[float, Range(gt=0, le=1)] = 0.5  # a rate
    share: UnitInterval = 0.5  # a share
    budget: Annotated[int, Range(1, 1000, why="the counter is small")] = 10  # a budget
    batch: PositiveInt = 4  # a batch
    store: Annotated[int, Range(ge="batch", why="batches come from it")] = 8  # a store
    layers: tuple[PositiveInt, ...] = (3,)  # layer sizes
    limit: PositiveInt | None = None  # an optional limit
    plain: float = 1.0  # a plain float
    anything: Annotated[float, Range(finite=False)] = 0.0  # nan and inf welcome


@pytest.mark.parametrize(
    "override, message",
    [
        ("count=0", "field 'count' (a count) must be >= 1, got 0"),
        ("rate=0", "field 'rate' (a rate) must be in (0, 1], got 0"),
        ("rate=1.5", "must be in (0, 1], got 1.5"),
        ("share=-0.5", "field 'share' (a share) must be in [0, 1], got -0.5"),
        ("budget=1001", "must be in [1, 1000], got 1001 (the counter is small)"),
        ("store=2", "field 'store' (a store) must be at least batch (4), got 2 (batches come from it)"),
        ("layers=[3, 0]", "field 'layers' (layer sizes) expects tuple[int >= 1, ...], got [3, 0]"),
        ("limit=0", "field 'limit' (an optional limit) must be >= 1, got 0"),
        ("plain=.nan", "expects float, got nan (float): write a finite number"),
        ("plain=.inf", "expects float, got inf (float): write a finite number"),
        ("plain=1e999", "got inf (float): write a finite number"),
        ("rate=.nan", "expects float in (0, 1], got nan"),
    ],
)
def test_ranges_reject_with_the_field_its_range_and_why(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(Ranged, overrides=[override])
    assert message in str(err.value) and str(err.value).startswith("--set: ")
    assert err.value.field == override.split("=")[0] and "\n" not in str(err.value)


def test_ranges_accept_their_bounds_and_non_finite_where_allowed():
    cfg = load_config(Ranged, overrides=["count=1", "rate=1", "budget=1000", "store=4", "limit=null"])
    assert (cfg.count, cfg.rate, cfg.budget, cfg.store, cfg.limit) == (1, 1.0, 1000, 4, None)
    assert math.isnan(load_config(Ranged, overrides=["anything=.nan"]).anything)
    assert load_config(Ranged, overrides=["anything=-.inf"]).anything == -math.inf


def test_cross_field_errors_name_the_source_of_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("count: 2\nstore: 6\n")
    with pytest.raises(ConfigError) as err:
        load_config(Ranged, [path], ["batch=8"])
    assert str(err.value) == (
        f"{path}:2: field 'store' (a store) must be at least batch (8), got 6 "
        "(batches come from it; batch is from --set)"
    )


def test_describe_shows_the_ranges():
    rows = {line.split()[0]: line for line in describe(Ranged).splitlines()[2:]}
    assert "int >= 1" in rows["count"] and "float in (0, 1]" in rows["rate"]
    assert "int in [1, 1000]" in rows["budget"] and "int >= batch" in rows["store"]
    assert "tuple[int >= 1, ...]" in rows["layers"] and "int >= 1 | None" in rows["limit"]


def test_ranges_that_cannot_work_are_the_class_authors_error():
    with pytest.raises(TypeError, match="at most one lower bound"):
        Range(ge=0, gt=0)

    @dataclass(frozen=True)
    class Typo:
        size: Annotated[int, Range(ge="batch_sise")] = 1  # a size

    with pytest.raises(TypeError, match="'batch_sise' is not a field"):
        from_dict(Typo, {})


# --- the learners' configs -------------------------------------------------------------------


def _classes():
    from credo.algos import MaxEntConfig, PPOConfig, RunConfig, ValueConfig
    from credo.ricl.ricol import RICOLConfig

    return {
        "run": RunConfig,
        "value": ValueConfig,
        "me": MaxEntConfig,
        "ppo": PPOConfig,
        "ricol": RICOLConfig,
    }


BAD = [
    # every learner on the JAX engine
    ("run", "total_env_steps=0", "must be in [1, 1_000_000_000_000_000_000]"),
    ("run", "total_env_steps=-5", "must be in [1, 1_000_000_000_000_000_000]"),
    ("run", "total_env_steps=1e30", "the env-step counter"),
    ("run", "total_env_steps=1_000_000_000_000_000_001", "holds 2**61 steps"),
    ("run", "seeds=0", "must be >= 1"),
    ("run", "seeds=-2", "must be >= 1"),
    ("run", "seed=-1", "must be in [0, 2_147_483_647]"),
    ("run", "seed=4294967296", "JAX keeps 32 bits"),
    ("run", "n_envs=0", "must be in [1, 10_000]"),
    ("run", "n_envs=100000", "one iteration's env steps are counted in one int32 word"),
    ("run", "test_interval=0", "must be >= 1"),
    ("run", "test_episodes=0", "must be >= 1"),
    ("run", "test_epsilon=1.5", "must be in [0, 1]"),
    ("run", "log_interval=0", "must be in [1, 100_000_000]"),
    ("run", "log_interval=-10", "must be in [1, 100_000_000]"),
    ("run", "save_interval=0", "must be >= 1"),
    # value-based learners
    ("value", "batch_size=0", "must be >= 1"),
    ("value", "buffer_size=8", "must be at least batch_size (32), got 8"),
    ("value", "lr=0", "must be > 0"),
    ("value", "lr=-1e-3", "must be > 0"),
    ("value", "lr=.nan", "write a finite number"),
    ("value", "lr=.inf", "write a finite number"),
    ("value", "lr=nan", "expects float > 0, got 'nan'"),
    ("value", "gamma=1.01", "must be in [0, 1]"),
    ("value", "gamma=-0.1", "must be in [0, 1]"),
    ("value", "td_lambda=2", "must be in [0, 1]"),
    ("value", "epsilon_start=1.5", "must be in [0, 1]"),
    ("value", "epsilon_finish=-0.05", "must be in [0, 1]"),
    ("value", "epsilon_anneal_steps=-1", "must be >= 0"),
    ("value", "tau=0", "must be in (0, 1]"),
    ("value", "tau=1.5", "must be in (0, 1]"),
    ("value", "grad_clip=0", "must be > 0"),
    ("value", "updates_per_iteration=0", "must be >= 1"),
    ("value", "target_update_interval=0", "must be >= 1"),
    ("value", "hidden_dim=0", "must be >= 1"),
    ("value", "tfcaf_gamma=2", "must be in [0, 1]"),
    ("me", "alpha=0", "must be > 0"),
    ("me", "target_entropy_per_agent=.nan", "write a finite number"),
    # PPO and dependence graphs
    ("ppo", "n_envs=0", "must be in [1, 10_000]"),
    ("ppo", "lr=.nan", "write a finite number"),
    ("ppo", "epochs=0", "must be >= 1"),
    ("ppo", "minibatches=0", "must be >= 1"),
    ("ppo", "clip_eps=0", "must be > 0"),
    ("ppo", "ent_coef=-0.01", "must be >= 0"),
    ("ppo", "gamma=2", "must be in [0, 1]"),
    ("ppo", "gae_lambda=-0.5", "must be in [0, 1]"),
    ("ppo", "graph_p=1.5", "must be in [0, 1]"),
    ("ppo", "meeting_lambda=1.1", "must be in [0, 1]"),
    ("ppo", "wm_hidden=[64, 0]", "item 1 is 0 (int), not int >= 1"),
    ("ppo", "wm_epochs=0", "must be >= 1"),
    # LLM policies
    ("ricol", "iterations=0", "must be >= 1"),
    ("ricol", "episodes_per_iteration=0", "must be >= 1"),
    ("ricol", "test_episodes=0", "must be >= 1"),
    ("ricol", "batch_size=0", "must be >= 1"),
    ("ricol", "lr=0", "must be > 0"),
    ("ricol", "alpha=1.5", "must be in [0, 1]"),
    ("ricol", "feedback_accuracy=2", "must be in [0, 1]"),
    ("ricol", "memory=0", "must be >= 1"),
    ("ricol", "max_steps=0", "must be >= 1"),
    ("ricol", "hindsight_steps=-1", "must be >= 0"),
    ("ricol", "seeds=0", "must be >= 1"),
]


@pytest.mark.parametrize("kind, override, message", BAD, ids=[f"{k}:{o}" for k, o, _ in BAD])
def test_learner_configs_refuse_bad_values_naming_the_field(kind, override, message):
    field = override.split("=")[0]
    with pytest.raises(ConfigError) as err:
        load_config(_classes()[kind], overrides=[override])
    text = str(err.value)
    assert text.startswith(f"--set: field '{field}' ") and message in text, text
    assert err.value.field == field and "\n" not in text


GOOD = [
    ("run", "total_env_steps=2e9"),
    ("run", "total_env_steps=1e12"),  # beyond the int32 counter of before 2026-12-02
    ("run", "seed=2147483647"),
    ("run", "test_epsilon=1"),
    ("value", "gamma=0"),
    ("value", "gamma=1"),
    ("value", "td_lambda=0"),
    ("value", "tau=1"),
    ("value", "epsilon_anneal_steps=0"),
    ("value", "tfcaf_gamma=0"),
    ("value", "tfcaf_gamma=null"),
    ("ppo", "ent_coef=0"),
    ("ppo", "graph_threshold=0"),
    ("ppo", "graph_threshold=2.0"),
    ("ricol", "hindsight_steps=0"),
]


@pytest.mark.parametrize("kind, override", GOOD, ids=[f"{k}:{o}" for k, o in GOOD])
def test_values_at_the_bounds_are_accepted(kind, override):
    load_config(_classes()[kind], overrides=[override])


def test_buffer_may_equal_the_batch_and_a_smaller_batch_fixes_a_small_buffer():
    cls = _classes()["value"]
    assert load_config(cls, overrides=["buffer_size=32", "batch_size=32"]).buffer_size == 32
    assert load_config(cls, overrides=["buffer_size=16", "batch_size=2"]).buffer_size == 16


def test_defaults_and_every_shipped_config_are_within_range():
    from credo.algos import config_class
    from credo.cli import ALGORITHMS, config_files
    from credo.ricl.ricol import RICOL_ALGOS

    for cls in _classes().values():
        assert from_dict(cls, to_dict(cls())) == cls()
    envs = ["lbf:Foraging-8x8-2p-3f-v3", "mpe:simple_spread", "matrix:climbing", "smax:3m"]
    for algo in ALGORITHMS:
        for env in ["keydoor", "babyai:goto"] if algo in RICOL_ALGOS else envs:
            load_config(config_class(algo), config_files(algo, env), [], base={"algo": algo, "env": env})


def test_the_limits_keep_the_wide_env_step_counter_from_overflowing():
    from credo.engine.limits import INT32_MAX, MAX_ENV_STEPS, MAX_LOG_INTERVAL, MAX_N_ENVS
    from credo.engine.train import COUNT_BASE

    # The low word takes one iteration (n_envs episodes, 50,000 steps each here, longer than any
    # shipped env's) before its carry; the high word the budget plus the last chunk's overshoot.
    assert COUNT_BASE - 1 + MAX_N_ENVS * 50_000 <= INT32_MAX
    assert (MAX_ENV_STEPS + MAX_LOG_INTERVAL + MAX_N_ENVS * 50_000) // COUNT_BASE <= INT32_MAX


def test_the_wide_counter_counts_past_int32_and_reads_old_checkpoints():
    import jax.numpy as jnp

    from credo.engine.train import _widen_counters, count_add, count_float, count_value, count_wrapped

    count = jnp.array([1, 2**30 - 5], jnp.int32)  # 2**31 - 5 steps
    for _ in range(3):
        count = count_add(count, 1_000_000)
    assert int(count_value(count)) == 2**31 - 5 + 3_000_000  # past int32's 2**31 - 1
    assert float(count_float(count)) == pytest.approx(2**31 + 2_999_995)
    later = count_add(count, 200)
    assert int(count_wrapped(later) - count_wrapped(count)) == 200  # differences survive the wrap
    big = jnp.array([2**31 - 2, 5], jnp.int32)  # near the top of the high word: ~2.3e18 steps
    assert int(count_value(big)) == (2**31 - 2) * 2**30 + 5
    old = np.array([7, 2**31 - 1], np.int32)  # a checkpoint of before 2026-12-02: one int32 per seed
    assert count_value(_widen_counters("env_steps", old, (2, 2))).tolist() == [7, 2**31 - 1]
    assert _widen_counters("learner/updates", old, (2, 2)) is None


def test_a_saved_config_out_of_range_is_refused_on_load(tmp_path):
    cls = _classes()["value"]
    path = save_config(cls(test_episodes=0), tmp_path / "config.yaml")  # direct construction: unchecked
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+: field 'test_episodes' .*must be >= 1, got 0"):
        load_config(cls, [path])


# --- the command line ------------------------------------------------------------------------


def _credo(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return run_credo(*args, cwd=cwd, timeout=timeout)


def _assert_one_line_error(out: subprocess.CompletedProcess, *names: str) -> None:
    err = out.stderr.strip()
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "\n" not in err, out.stderr
    assert err.startswith("credo: error: "), err
    for name in names:
        assert name in err, (name, err)


TRAIN = ["train", "qmix", "matrix:climbing"]
ARGUMENTS = [
    ([*TRAIN, "--seeds", "0"], "argument --seeds: must be at least 1"),
    ([*TRAIN, "--seeds", "-3"], "argument --seeds: must be at least 1"),
    ([*TRAIN, "--steps", "0"], "argument --steps: must be at least 1"),
    ([*TRAIN, "--steps", "-5"], "argument --steps: must be at least 1"),
    ([*TRAIN, "--steps", "1e30"], "argument --steps: must be at most 1_000_000_000_000_000_000"),
    ([*TRAIN, "--steps", "2.5"], "argument --steps: expects a whole number"),
    (["rollout", "matrix:climbing", "--steps", "-5"], "argument --steps: must be at least 1"),
    (["rollout", "matrix:climbing", "--envs", "0"], "argument --envs: must be at least 1"),
    (["eval", "RUN", "--episodes", "-3"], "argument --episodes: must be at least 1"),
    (["eval", "RUN", "--episodes", "0"], "argument --episodes: must be at least 1"),
    ([*TRAIN, "--name", "../../x"], "--name '../../x' is a path"),
    ([*TRAIN, "--name", ".."], "--name '..' is a path"),
    ([*TRAIN, "--name", "a" * 300], "--name is 300 bytes long; the limit is 200"),
]


@pytest.mark.parametrize("args, message", ARGUMENTS, ids=[" ".join(a)[:60] for a, _ in ARGUMENTS])
def test_bad_arguments_are_one_line_errors_and_write_nothing(tmp_path, args, message):
    out_dir = ["--out", str(tmp_path / "a" / "b")] if args[0] == "train" else []
    _assert_one_line_error(_credo(*args, *out_dir, cwd=tmp_path), message)
    assert list(tmp_path.iterdir()) == []  # no --out, no ../../x beside it, no default runs/


def test_argument_errors_come_before_jax_is_imported(tmp_path):
    code = (
        "import sys\n"
        "from credo.cli import main\n"
        "try:\n"
        "    rc = main(sys.argv[1:])\n"
        "except SystemExit as exit:\n"
        "    rc = exit.code\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
        "sys.exit(rc)\n"
    )
    for args in (["--seeds", "0"], ["--name", "../x"], ["--out", str(tmp_path / "file")]):
        (tmp_path / "file").write_text("")
        out = subprocess.run(
            [sys.executable, "-c", code, *TRAIN, *args], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 2 and "jax was imported" not in out.stderr, out.stderr


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_out_naming_a_file_is_refused(tmp_path, where):
    (tmp_path / "file").write_text("not a directory")
    out = _credo(*TRAIN, "--out", where, cwd=tmp_path)
    _assert_one_line_error(out, f"--out {where}", "not a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_read_only_out_is_refused_naming_the_directory(tmp_path):
    # Root writes into a chmod 555 directory, so the check's view of the directory is faked here:
    # os.access is what it asks (and what a read-only mount answers as well).
    code = (
        "import os, sys\n"
        "os.access = lambda path, mode, **kw: False\n"
        "from credo.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *TRAIN, "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    _assert_one_line_error(out, f"--out {tmp_path / 'runs'}: cannot write in {tmp_path}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_out_is_refused_for_real(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        out = _credo(*TRAIN, "--out", str(locked), cwd=tmp_path)
        _assert_one_line_error(out, f"cannot write in {locked}")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


SETTINGS = [
    ("test_interval=0", "field 'test_interval'"),  # hung forever
    ("save_interval=0", "field 'save_interval'"),  # hung forever
    ("n_envs=0", "field 'n_envs'"),
    ("log_interval=-1", "field 'log_interval'"),
    ("batch_size=0", "field 'batch_size'"),
    ("lr=.nan", "field 'lr'"),
    ("test_episodes=0", "field 'test_episodes'"),  # failed only after training
    ("buffer_size=4", "field 'buffer_size'"),
]


@pytest.mark.parametrize("setting, message", SETTINGS, ids=[s for s, _ in SETTINGS])
def test_bad_set_values_fail_fast_before_a_run_directory_exists(tmp_path, setting, message):
    out = _credo(*TRAIN, "--out", "runs", "--set", setting, cwd=tmp_path, timeout=60)
    _assert_one_line_error(out, f"--set: {message}")
    assert not (tmp_path / "runs").exists()


# --- writing the run directory and checkpoints -----------------------------------------------


def test_run_dir_create_leaves_nothing_behind_when_a_write_fails(tmp_path, monkeypatch):
    from credo.engine import rundir
    from credo.engine.rundir import RunDir, RunDirError

    def full(cfg, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("credo.config.save_config", full)
    cfg = _classes()["value"]()
    with pytest.raises(RunDirError, match=r"cannot make the run directory .*: no space left on device"):
        RunDir.create(cfg, tmp_path / "runs" / "deep", "r")
    assert list(tmp_path.iterdir()) == []  # runs/ was made by create, so it goes too
    (tmp_path / "empty").mkdir()  # an empty directory of the user's stays, emptied again
    with pytest.raises(RunDirError):
        RunDir.create(cfg, tmp_path, "empty")
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(RunDirError, match="is a path"):
        RunDir.create(cfg, tmp_path, "../x")
    assert rundir.check_name("qmix-lbf-2024.01_a") == "qmix-lbf-2024.01_a"


def _tree(value: float) -> dict:
    return {"w": np.full((3, 4), value, np.float32), "n": np.arange(5)}


def test_a_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from credo.engine import checkpoint
    from credo.engine.checkpoint import CheckpointWriteError, load_checkpoint, save_checkpoint

    path = tmp_path / "checkpoints" / "last.npz"
    save_checkpoint(path, _tree(1.0), {"step": 1})
    real_savez = np.savez

    def savez_then_full(f, **arrays):  # a part of the file is written, then the disk is full
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.np, "savez", savez_then_full)
    with pytest.raises(CheckpointWriteError) as err:
        save_checkpoint(path, _tree(2.0), {"step": 2})
    assert str(err.value) == (
        f"no space left on device while writing {path}; the last good checkpoint is intact. "
        "Free some space, then resume the run."
    )
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.npz"]  # no .tmp-* left
    tree, meta = load_checkpoint(path, _tree(0.0))
    assert meta == {"step": 1} and np.all(np.asarray(tree["w"]) == 1.0)

    with pytest.raises(CheckpointWriteError, match="no checkpoint had been written yet"):
        save_checkpoint(tmp_path / "other" / "last.npz", _tree(3.0), {})
    monkeypatch.setattr(checkpoint.np, "savez", real_savez)
    save_checkpoint(path, _tree(2.0), {"step": 2})  # space again: the next save goes through
    assert load_checkpoint(path, _tree(0.0))[1] == {"step": 2}


def test_the_cli_reports_a_failed_checkpoint_in_one_line(monkeypatch, capsys, tmp_path):
    from credo import cli
    from credo.engine.checkpoint import CheckpointWriteError

    def train_until_the_disk_is_full(args):
        raise CheckpointWriteError(tmp_path / "last.npz", OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(cli, "cmd_rollout", train_until_the_disk_is_full)
    monkeypatch.setattr(cli, "use_all_cpu_cores", lambda: None)  # no JAX settings for this process
    monkeypatch.setattr(cli, "use_compilation_cache", lambda: None)
    assert cli.main(["rollout", "matrix:climbing"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"credo: error: no space left on device while writing {tmp_path / 'last.npz'}; "
        "no checkpoint had been written yet. Free some space, then resume the run."
    )

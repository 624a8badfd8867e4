"""What a run directory holds beside the metrics: per-episode test returns, metadata.json, loggers.

One tiny run (VDN on a matrix game, 2 seeds, 600 env steps) is shared by the tests: it is
interrupted after 2 chunks, resumed for 2 more, then its checkpoint is rolled back to the first
interruption (a crash after rows were written but before the next checkpoint) and resumed to
the end, with every logger on.
"""

import csv
import datetime as dt
import importlib.util
import json
import re
import struct
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from credo.algos.value import ValueConfig
from credo.config import ConfigError, load_config
from credo.engine import loggers, metadata
from credo.engine.rundir import RunDir
from credo.engine.train import Trainer

SEEDS, TEST_EPISODES = 2, 5


def _cfg(**kw):
    base = dict(
        algo="vdn",
        env="matrix:me-igm",
        mixer="vdn",
        total_env_steps=600,
        n_envs=4,
        seeds=SEEDS,
        test_interval=200,
        test_episodes=TEST_EPISODES,
        log_interval=100,  # 25 iterations of 4 one-step episodes per chunk
        save_interval=10**9,
        logger=["csv", "tensorboard", "wandb"],
    )
    base.update(kw)
    return ValueConfig(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("outputs")
    mp = pytest.MonkeyPatch()
    for var, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": base / "wandb",
        "WANDB_CONFIG_DIR": base / "wandb-config",
        "WANDB_CACHE_DIR": base / "wandb-cache",
        "WANDB_DATA_DIR": base / "wandb-data",
    }.items():
        mp.setenv(var, str(value))
    try:
        cfg = _cfg()
        tr = Trainer(cfg)  # one trainer throughout: its compiled chunks are reused
        rd = RunDir.create(cfg, base, "run")
        assert tr.run(rd, max_chunks=2, progress=False) is None
        # The checkpoint at chunk 2: last.npz and its replay buffer (the params snapshots stay as
        # a crash would leave them, ahead of it).
        saved = {p.name: p.read_bytes() for p in (rd.path / "checkpoints").glob("*.npz")}
        assert sorted(saved) == ["buffer-00000002.npz", "last.npz"]
        state, meta = tr.load(rd)
        assert tr.run(rd, state, meta, max_chunks=2, progress=False) is None  # chunks 3, 4, eval 1
        rows_before_crash = [len(rd.rows(i)) for i in range(SEEDS)]
        for p in (rd.path / "checkpoints").glob("*.npz"):  # "crashed" before chunk 4's checkpoint
            p.unlink()
        for name, data in saved.items():
            (rd.path / "checkpoints" / name).write_bytes(data)
        state, meta = tr.load(rd)
        summary = tr.run(rd, state, meta, progress=False)
        yield rd, summary, rows_before_crash
    finally:
        mp.undo()


def test_eval_rows_hold_every_test_episode(run):
    rd, summary, _ = run
    for i in range(SEEDS):
        evals = [r for r in rd.rows(i) if "eval_index" in r]
        assert [r["eval_index"] for r in evals] == [0, 1, 2, 3]  # at 0, 200, 400 and 600 env steps
        for r in evals:
            assert len(r["test_episode_returns"]) == TEST_EPISODES
            assert all(isinstance(x, float) for x in r["test_episode_returns"])
            assert np.mean(r["test_episode_returns"]) == pytest.approx(r["test_return"], rel=1e-5, abs=1e-6)
            assert "test_episode_won" not in r  # the matrix game reports no wins
        assert summary["final_test_return"][i] == evals[-1]["test_return"]
    # The checkpoint's meta keeps the means only.
    _, meta = Trainer(_cfg(logger=[])).load(rd)
    assert all(not any(k.startswith("test_episode") for k in e) for e in meta["evals"])


def test_per_episode_returns_are_rounded_and_wins_listed(tmp_path):
    """The win branch (SMAX has wins; too slow here) on made-up evaluation results."""
    from credo.engine.collect import EpisodeStats

    cfg = _cfg(logger=[])
    tr = Trainer(cfg)
    tr.with_won = True
    returns = np.array([[1.23456789, 2.0, -3.5, 0.1, 7.0], [0.0, 1e-7, 123456.789, 5.0, 5.0]], np.float32)
    won = np.array([[True, False, True, True, False], [False] * 5])
    tr.evaluate = lambda params, index: EpisodeStats(returns, np.ones_like(returns, np.int32), won)
    rd = RunDir.create(cfg, tmp_path, "won")
    meta = {"chunk": 0, "evals": [], "next_test": 0}
    tr._record_eval(tr.to_devices(tr.init_state()), meta, rd)
    for i in range(SEEDS):
        (row,) = rd.rows(i)
        assert row["test_episode_returns"] == [float(f"{x:.6g}") for x in returns[i].astype(float)]
        assert row["test_episode_won"] == won[i].astype(int).tolist()
        assert row["test_won"] == pytest.approx(won[i].mean())
        assert row["test_return"] == pytest.approx(float(returns[i].astype(float).mean()))
    assert rd.rows(0)[0]["test_episode_returns"][0] == 1.23457
    assert set(meta["evals"][0]) == {"chunk", "env_steps", "test_return", "test_length", "test_won"}


def test_metadata_records_the_start_and_every_resume(run):
    rd, _, _ = run
    meta = json.loads((rd.path / "metadata.json").read_text())
    for key in (
        "command",
        "cwd",
        "started_utc",
        "credo_version",
        "git_commit",
        "git_dirty",
        "python",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "numpy",
        "jax_backend",
        "device_kind",
        "device_count",
        "host",
        "cpu",
        "cores",
        "platform",
        "resumes",
    ):
        assert key in meta, key
    assert meta["command"] == sys.argv
    assert dt.datetime.fromisoformat(meta["started_utc"]).utcoffset() == dt.timedelta(0)
    assert meta["jax_backend"] == "cpu" and meta["device_count"] >= 1
    assert meta["jax"] != "not installed" and meta["flax"] != "not installed"
    import credo

    assert meta["credo_version"] == credo.__version__
    if meta["git_commit"] is not None:  # this test file runs from a checkout, mostly
        assert re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"]) and isinstance(meta["git_dirty"], bool)
    assert len(meta["resumes"]) == 2
    for r in meta["resumes"]:
        assert set(r) == set(metadata.RESUME_FIELDS)
        assert r["started_utc"] >= meta["started_utc"]


def test_git_info_outside_a_checkout(tmp_path):
    assert metadata.git_info(tmp_path) == {"git_commit": None, "git_dirty": None}


def test_benchmarks_machine_keeps_its_keys():
    spec = importlib.util.spec_from_file_location(
        "_bench_common", Path(__file__).parents[1] / "benchmarks" / "_common.py"
    )
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    m = common.machine()
    for key in ("cpu", "cores", "platform", "python", "jax", "jax_backend", "jax_devices", "load_average_1m"):
        assert key in m, key


def test_csv_has_one_row_per_metrics_row_after_a_resume(run):
    rd, _, rows_before_crash = run
    for i in range(SEEDS):
        rows = rd.rows(i)
        ids = [loggers.row_id(r) for r in rows]
        assert len(ids) == len(set(ids)) == 6 + 4  # 6 chunks, 4 evaluations: nothing twice
        assert rows_before_crash[i] > 2 + 1  # the rolled-back rows were there
        with open(rd.path / "logs" / f"seed_{i}.csv", newline="") as f:
            table = list(csv.DictReader(f))
        assert len(table) == len(rows)
        for row, line in zip(rows, table, strict=True):
            assert int(line["env_steps"]) == row["env_steps"]
            for k in ("test_return", "train_return", "loss"):
                if row.get(k) is not None:
                    assert float(line[k]) == pytest.approx(row[k])
                else:
                    assert line[k] == ""
            assert "test_episode_returns" not in line


def test_tensorboard_events_hold_each_point_once(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rd, _, _ = run
    for i in range(SEEDS):
        rows = rd.rows(i)
        acc = EventAccumulator(str(rd.path / "logs" / "tensorboard" / f"seed_{i}"))
        acc.Reload()
        assert {"test/test_return", "train/train_return", "train/loss"} <= set(acc.Tags()["scalars"])
        tests = [(r["env_steps"], r["test_return"]) for r in rows if "eval_index" in r]
        got = [(e.step, e.value) for e in acc.Scalars("test/test_return")]
        assert [s for s, _ in got] == [s for s, _ in tests]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in tests], rtol=1e-6)
        train = [r["env_steps"] for r in rows if "eval_index" not in r]
        assert [e.step for e in acc.Scalars("train/train_return")] == train


def _wandb_records(path):
    """The protobuf records of a W&B run file (a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, out, pos, part = path.read_bytes(), [], 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        part = chunk if kind in (1, 2) else part + chunk
        if kind in (1, 4):  # full, last
            rec = pb.Record()
            rec.ParseFromString(part)
            out.append(rec)
    return out


def test_wandb_offline_runs_hold_each_point_once(run):
    rd, _, _ = run
    ids = json.loads((rd.path / "logs" / "wandb_ids.json").read_text())
    runs = sorted((rd.path / "logs" / "wandb").glob("offline-run-*"))
    assert len(runs) == 3 * SEEDS  # one per seed and process: the start and two resumes
    for i in range(SEEDS):
        files = [f for d in runs for f in d.glob(f"run-{ids[f'seed_{i}']}.wandb")]
        assert len(files) == 3
        points = Counter()
        for f in files:
            for rec in _wandb_records(f):
                if rec.WhichOneof("record_type") == "history":
                    items = {
                        it.key or "/".join(it.nested_key): json.loads(it.value_json)
                        for it in rec.history.item
                    }
                    section = "test" if "test/test_return" in items else "train"
                    points[(section, items["env_steps"])] += 1
        expected = Counter(("test" if "eval_index" in r else "train", r["env_steps"]) for r in rd.rows(i))
        assert points == expected


def test_unknown_or_missing_logger_fails_before_training(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="'csv', 'tensorboard', 'wandb'"):
        load_config(ValueConfig, [], ["logger=[tensorbord]"], base={"algo": "vdn", "env": "matrix:me-igm"})
    with pytest.raises(ValueError, match="unknown logger 'mlflow'; valid loggers: csv, tensorboard, wandb"):
        Trainer(_cfg(logger=["mlflow"]))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r"pip install 'credo\[loggers\]'"):
        Trainer(_cfg(logger=["csv", "wandb"]))
    loggers.check(["csv"])  # needs nothing


def test_wandb_mode_defaults_to_offline_without_a_key(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert loggers.wandb_mode() == "offline"
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    assert loggers.wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert loggers.wandb_mode() == "disabled"

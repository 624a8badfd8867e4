"""Ctrl-C and SIGTERM during training: the chunk in progress finishes, is saved, and the run says how
to continue (issue 18: the chunk's state is donated to it, so saving from inside it lost everything)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_training_saves_the_finished_chunk_and_exits_130(tmp_path, sig):
    run = tmp_path / "r"
    cmd = [sys.executable, "-m", "credo.cli", "train", "qmix", "matrix:climbing", "--steps", "5000000"]
    cmd += ["--out", str(tmp_path), "--name", "r", "--no-progress"]
    for kv in ("log_interval=4000", "test_interval=10000000", "save_interval=10000000", "test_episodes=2"):
        cmd += ["--set", kv]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored across exec.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    metrics = run / "metrics" / "seed_0.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline:  # a few chunks in: the next signal lands inside one
        lines = metrics.read_text().splitlines() if metrics.exists() else []
        if sum('"eval_index"' not in line for line in lines) >= 3:  # training rows, not evaluations
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("no chunk finished: " + proc.communicate()[1][-2000:])
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: saved" in err and f"credo train --resume {run}" in err, err
    assert "Traceback" not in err, err
    with np.load(run / "checkpoints" / "last.npz") as data:
        meta = json.loads(bytes(data["__meta__"]).decode())
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    chunks = [r["chunk"] for r in rows if "eval_index" not in r]
    assert meta["chunk"] == max(chunks) >= 3, (meta["chunk"], chunks)  # the last chunk written is saved
    assert not (run / "summary.json").exists()
    if sig != signal.SIGINT:
        return
    # Resumed to a shorter budget: every chunk appears once, in order, and env steps follow chunks.
    done = max(r["env_steps"] for r in rows)
    resumed = subprocess.run(
        [*cmd[:4], "--resume", str(run), "--steps", str(done + 8000), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from its checkpoint at {done:,} env steps (chunk {meta['chunk']})" in resumed.stdout
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    train = [r for r in rows if "eval_index" not in r]
    assert [r["chunk"] for r in train] == list(range(1, len(train) + 1))
    steps = [r["env_steps"] for r in train]
    assert steps == sorted(steps) and len(set(steps)) == len(steps) and steps[-1] >= done + 8000

"""credo sweep: specs expand into the right cells; a sweep runs on a local Ray instance, resumes,
isolates a failing cell; --index and --dry-run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from credo.study.spec import SpecError, parse_spec

# One cell trains in seconds: 2 seeds of QMIX on the one-step climbing game.
TINY = {
    "test_interval": 500,
    "test_episodes": 4,
    "log_interval": 250,
    "save_interval": 500,
    "buffer_size": 64,
    "batch_size": 8,
}


def _spec(tmp_path: Path, doc: dict, name: str = "spec.yaml") -> Path:
    import yaml

    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _cli(*args, cwd, timeout=600, env=None):
    return subprocess.run(
        [sys.executable, "-m", "credo.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


# --- specs ---------------------------------------------------------------------------------------


def test_grid_expands_as_a_product_with_labels_includes_and_excludes():
    spec = parse_spec(
        {
            "name": "s",
            "algos": ["qmix", "vdn"],
            "envs": ["matrix:climbing", "matrix:penalty"],
            "seeds": 3,
            "steps": 2e3,
            "set": {"hidden_dim": 32, "n_envs": 4},
            "grid": {"lr": [1e-3, 5e-4]},
            "exclude": [{"algo": "vdn", "grid": {"lr": 5e-4}}],
            "include": [{"algo": "qplex", "env": "matrix:climbing", "set": {"lr": 1e-2}, "seeds": 5}],
        }
    )
    names = [c.name for c in spec.cells]
    assert len(spec.cells) == 2 * 2 * 2 - 2 + 1, names
    assert [c.index for c in spec.cells] == list(range(len(spec.cells)))
    first = spec.cells[0]
    assert (first.algo, first.env, first.seeds, first.steps) == ("qmix", "matrix:climbing", 3, 2000)
    assert first.overrides == {"hidden_dim": 32, "n_envs": 4, "lr": 1e-3}
    assert first.label == "qmix[lr=0.001]" and first.name == "qmix-lr=0.001-climbing"
    assert not any(c.algo == "vdn" and c.overrides["lr"] == 5e-4 for c in spec.cells)
    inc = spec.cells[-1]
    assert (inc.algo, inc.seeds, inc.label, inc.overrides["lr"]) == ("qplex", 5, "qplex[lr=0.01]", 1e-2)
    assert "--set" in first.train_args(Path("out")) and "lr=0.001" in first.train_args(Path("out"))


def test_a_cell_killed_while_saving_its_first_checkpoint_starts_again(tmp_path):
    # A SIGKILL during the atomic save leaves only the temporary file: nothing to resume from.
    from credo.study.sweep import cell_argv, cell_status

    spec = parse_spec({"name": "s", "algos": ["qmix"], "envs": ["matrix:climbing"], "steps": 1000})
    cell = spec.cells[0]
    run = tmp_path / cell.name
    assert cell_status(tmp_path, cell) == "new"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.npz.tmp-4242").write_bytes(b"half a file")
    (run / "config.yaml").write_text("algo: qmix\n")
    assert cell_status(tmp_path, cell) == "new"
    assert "--resume" not in cell_argv(tmp_path, cell) and not run.exists()  # cleared, started afresh
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "seed_0.tmp").mkdir()  # RICOL's layout, cut off the same way
    assert cell_status(tmp_path, cell) == "new"
    (run / "checkpoints" / "last.npz").write_bytes(b"")
    assert cell_status(tmp_path, cell) == "partial"
    assert cell_argv(tmp_path, cell)[:2] == ["train", "--resume"]
    (run / "checkpoints" / "last.npz").unlink()
    (run / "checkpoints" / "seed_0").mkdir()
    assert cell_status(tmp_path, cell) == "partial"


def test_labelled_algos_carry_their_own_overrides():
    spec = parse_spec(
        {
            "algos": {
                "mappo-local": {"algo": "mappo", "set": {"reward_mode": "local"}},
                "mappo-dg": {"algo": "mappo-dg"},
            },
            "envs": ["lbf:Foraging-8x8-2p-2f-v3"],
            "set": {"hidden": [64, 64]},  # a list under set: stays a value, no expansion
        },
        source="dep.yaml",
    )
    assert spec.name == "dep"
    assert [c.label for c in spec.cells] == ["mappo-local", "mappo-dg"]
    assert spec.cells[0].overrides == {"hidden": [64, 64], "reward_mode": "local"}
    assert spec.cells[0].set_args() == ["hidden=[64, 64]", "reward_mode=local"]


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"algos": ["qmix"], "envs": ["matrix:climbing"], "seed": 3}, "Did you mean 'seeds'"),
        ({"algos": ["qmix"]}, "no envs"),
        ({"envs": ["matrix:climbing"]}, "give algos"),
        ({"algos": ["qmix"], "envs": ["matrix:climbing"], "grid": {"lr": 1e-3}}, "non-empty list"),
        ({"algos": ["qmix"], "envs": ["matrix:climbing"], "steps": -5}, "steps must be a whole number"),
        ({"algos": ["qmix"], "envs": ["matrix:climbing"], "name": "a b"}, "name must be"),
        (
            {"algos": ["qmix"], "envs": ["matrix:climbing"], "set": {"lr": 1}, "grid": {"lr": [1, 2]}},
            "both set: and grid:",
        ),
        ({"include": [{"algo": "qmix"}]}, "needs at least algo: and env:"),
        ({"algos": ["qmix"], "envs": ["matrix:climbing"], "plugins": [""]}, "plugins must be a list"),
        ({"algos": ["qmix"], "envs": ["matrix:climbing"], "plugins": {"a": 1}}, "plugins must be a list"),
    ],
)
def test_bad_specs_say_what_is_wrong(doc, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(doc, source="bad.yaml")


# --- running -------------------------------------------------------------------------------------


def _sweep_doc(**extra) -> dict:
    return {
        "name": "tiny",
        "algos": ["qmix"],
        "envs": ["matrix:climbing"],
        "seeds": 2,
        "steps": 1500,
        "set": dict(TINY),
        "grid": {"lr": [1e-3, 5e-4]},
        **extra,
    }


def _attempts(log: Path) -> int:
    return log.read_text().count("=== ") if log.exists() else 0


def test_sweep_runs_on_local_ray_isolates_a_failing_cell_and_reruns_nothing(tmp_path):
    bad = {"algo": "qmix", "env": "matrix:climbing", "label": "bad-env", "set": {"env_kwargs": {"bogus": 1}}}
    invalid = {"algo": "qmix", "env": "matrix:climbing", "label": "bad-config", "set": {"lr": "fast"}}
    spec = _spec(tmp_path, _sweep_doc(include=[bad, invalid], retries=1))
    out = _cli("sweep", str(spec), "--out", "runs", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr  # some cells failed
    root = tmp_path / "runs" / "tiny"
    record = json.loads((root / "sweep.json").read_text())
    status = {c["name"]: c["status"] for c in record["cells"]}
    assert status == {
        "qmix-lr=0.001-climbing": "done",
        "qmix-lr=0.0005-climbing": "done",
        "bad-env-climbing": "failed",
        "bad-config-climbing": "failed",
    }, out.stdout
    # the failures are reported with their cause and log path; the bad config never reached Ray
    assert "bogus" in out.stdout and str(root / "logs" / "bad-env-climbing.log") in out.stdout
    assert "fast" in out.stdout
    assert not (root / "logs" / "bad-config-climbing.log").exists()
    assert _attempts(root / "logs" / "bad-env-climbing.log") == 1, "a user error is not retried"
    # every good cell is an ordinary run directory, marked with its sweep label
    for name in ("qmix-lr=0.001-climbing", "qmix-lr=0.0005-climbing"):
        run = root / name
        summary = json.loads((run / "summary.json").read_text())
        assert len(summary["final_test_return"]) == 2
        marker = json.loads((run / "sweep_cell.json").read_text())
        assert marker["sweep"] == "tiny" and marker["label"].startswith("qmix[lr=")
    assert record["ray_start_seconds"] > 0

    # rerunning trains nothing: the done cells start no attempt
    logs = {p.name: _attempts(p) for p in (root / "logs").glob("qmix*.log")}
    out = _cli("sweep", str(spec), "--out", "runs", "--no-progress", cwd=tmp_path)
    assert {p.name: _attempts(p) for p in (root / "logs").glob("qmix*.log")} == logs
    assert "2/4 done" in out.stdout

    # --dry-run shows the status of every cell
    out = _cli("sweep", str(spec), "--out", "runs", "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.search(r"qmix-lr=0.001-climbing +done", out.stdout) and "invalid" in out.stdout


def test_dry_run_runs_nothing_and_index_runs_exactly_one_cell(tmp_path):
    spec = _spec(tmp_path, _sweep_doc())
    out = _cli("sweep", str(spec), "--out", "runs", "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("  new  ") == 2 and "2 new of 2 cells" in out.stdout
    assert not (tmp_path / "runs").exists()

    out = _cli("sweep", str(spec), "--out", "runs", "--index", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    root = tmp_path / "runs" / "tiny"
    assert sorted(p.name for p in root.iterdir()) == ["qmix-lr=0.0005-climbing"]
    assert (root / "qmix-lr=0.0005-climbing" / "summary.json").exists()
    out = _cli("sweep", str(spec), "--out", "runs", "--index", "2", cwd=tmp_path)
    assert out.returncode == 2 and "out of range" in out.stderr


def test_an_interrupted_sweep_resumes_its_cells_from_their_checkpoints(tmp_path):
    # Long enough cells that the sweep is interrupted while they train.
    spec = _spec(
        tmp_path, _sweep_doc(steps=60_000, set={**TINY, "save_interval": 2000, "test_interval": 20_000})
    )
    root = tmp_path / "runs" / "tiny"
    proc = subprocess.Popen(
        [sys.executable, "-m", "credo.cli", "sweep", str(spec), "--out", "runs", "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        # pytest-xdist's workers ignore SIGINT, and an ignored signal stays ignored across exec.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        if list(root.glob("*/checkpoints/last.npz")):
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("no cell wrote a checkpoint: " + proc.communicate()[0])
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the driver's whole group
    try:
        proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert not list(root.glob("*/summary.json")), "the cells should have been cut off before finishing"

    out = _cli("sweep", str(spec), "--out", "runs", "--dry-run", cwd=tmp_path)
    assert "partial" in out.stdout, out.stdout
    out = _cli("sweep", str(spec), "--out", "runs", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(list(root.glob("*/summary.json"))) == 2
    resumed = [p for p in (root / "logs").glob("*.log") if "--resume" in p.read_text()]
    assert resumed, "at least one cell continues from its checkpoint"
    for run in root.glob("qmix*"):
        rows = [json.loads(x) for x in (run / "metrics" / "seed_0.jsonl").read_text().splitlines()]
        chunks = [r["chunk"] for r in rows if "eval_index" not in r]
        assert chunks == sorted(set(chunks)), "a resumed run writes no chunk twice"


def test_search_spends_its_budget_writes_the_best_config_and_resumes_as_done(tmp_path):
    doc = {
        "name": "search",
        "algos": ["qmix"],
        "envs": ["matrix:climbing"],
        "seeds": 2,
        "steps": 1000,
        "set": dict(TINY),
        "search": {
            "trials": 2,
            "sampler": "random",
            "params": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "td_lambda": {"choices": [0.0, 0.5]}},
        },
    }
    spec = _spec(tmp_path, doc)
    out = _cli("sweep", str(spec), "--out", "runs", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    root = tmp_path / "runs" / "search"
    result = json.loads((root / "search.json").read_text())
    assert [t["state"] for t in result["trials"]] == ["complete", "complete"]
    best = result["best"]
    assert best["score"] == max(t["score"] for t in result["trials"])
    assert (root / best["cell"] / "summary.json").exists()
    import yaml

    config = yaml.safe_load((root / "best.yaml").read_text())
    assert (
        config["lr"] == pytest.approx(best["params"]["lr"])
        and config["td_lambda"] == best["params"]["td_lambda"]
    )
    # the budget is spent: a rerun trains nothing
    out = _cli("sweep", str(spec), "--out", "runs", cwd=tmp_path)
    assert out.returncode == 0 and "all 2 trials are done" in out.stdout, out.stdout + out.stderr
    assert len(list(root.glob("trial-*/summary.json"))) == 2


def test_bad_search_sections_say_what_is_wrong(tmp_path):
    from credo.study.search import search_settings

    base = {"algos": ["qmix"], "envs": ["matrix:climbing"]}
    with pytest.raises(SpecError, match="trials must be"):
        search_settings(parse_spec({**base, "search": {"params": {"lr": {"low": 0, "high": 1}}}}))
    with pytest.raises(SpecError, match="low: A, high: B"):
        search_settings(
            parse_spec({**base, "search": {"trials": 2, "params": {"lr": {"low": 1, "high": 0}}}})
        )
    with pytest.raises(SpecError, match="one algorithm on one env"):
        search_settings(
            parse_spec(
                {
                    **base,
                    "algos": ["qmix", "vdn"],
                    "search": {"trials": 2, "params": {"lr": {"choices": [1]}}},
                }
            )
        )


def test_a_cell_whose_settings_changed_since_it_ran_is_flagged_not_skipped(tmp_path):
    """Editing a spec keeps its cells' names: a done or partial cell made with other settings
    must not be silently skipped or resumed with the old ones."""
    from credo.config import save_config
    from credo.study.sweep import format_plan, plan, resolve_config

    spec = parse_spec(_sweep_doc(), source=str(tmp_path / "tiny.yaml"))
    cell = spec.cells[0]
    run = tmp_path / "runs" / "tiny" / cell.name
    old = parse_spec(_sweep_doc(steps=999, set={**TINY, "batch_size": 4}), source="x.yaml").cells[0]
    save_config(resolve_config(old), run / "config.yaml")
    (run / "summary.json").write_text("{}")
    same = tmp_path / "runs" / "tiny" / spec.cells[1].name
    save_config(resolve_config(spec.cells[1]), same / "config.yaml")
    (same / "summary.json").write_text("{}")

    rows = plan(spec, tmp_path / "runs")
    assert [r["status"] for r in rows] == ["changed", "done"]
    assert "batch_size: 4 -> 8" in rows[0]["error"] and "total_env_steps: 999 -> 1500" in rows[0]["error"]
    assert "changed" in format_plan(rows)
    out = _cli(
        "sweep",
        str(_spec(tmp_path, _sweep_doc(), "tiny.yaml")),
        "--out",
        "runs",
        "--index",
        "0",
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "other settings" in out.stderr


def test_the_eta_waits_for_cells_without_an_env_step_budget(tmp_path):
    from credo.study.spec import load_spec
    from credo.study.sweep import SweepDisplay, plan

    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        "name: mixed\nalgos: {}\ninclude:\n"
        "  - {label: rwr, algo: rwr, env: keydoor}\n"
        "  - {label: ppo, algo: ippo, env: matrix:climbing, steps: 1000}\nseeds: 1\n"
    )
    spec = load_spec(spec_path)
    rows = plan(spec, tmp_path / "runs")
    assert [r["budget"] for r in rows][0] is None and rows[1]["budget"] == 1000
    display = SweepDisplay(spec, tmp_path / "runs", rows, progress=False)
    display.t0 -= 10.0  # ten seconds in, 100 env steps trained
    assert display.eta(100) == "ETA ?"  # the LLM cell's iterations make the env-step rate meaningless
    rows[0]["status"] = "done"
    assert display.eta(100).startswith("ETA ") and display.eta(100) != "ETA ?"

"""credo compare and credo.study.runs, on synthetic run directories (no training: seconds)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from credo import stats
from credo.cli import main
from credo.study.compare import compare, render_markdown, verdict, verdict_line
from credo.study.runs import find_run_dirs, load_run, load_runs

PNG = b"\x89PNG\r\n\x1a\n"


def write_run(
    path: Path,
    finals,
    *,
    algo: str = "qmix",
    env: str = "matrix:climbing",
    steps=(0, 1000, 2000),
    config: dict | None = None,
    metric: str = "test_return",
    episodes: int | None = 4,
    finished: bool = True,
    sweep_label: str | None = None,
    seed: int = 0,
    curves=None,
) -> Path:
    """A run directory as `credo train` writes it, with known scores.

    ``finals[i]`` is seed i's metric at the last evaluation; earlier evaluations ramp up to it
    linearly from 0 (or ``curves[i][k]`` gives seed i's value at evaluation k). With ``episodes``,
    every eval row also has per-episode values whose mean is the row's value.
    """
    path.mkdir(parents=True, exist_ok=True)
    cfg = {
        "algo": algo,
        "env": env,
        "env_kwargs": {},
        "total_env_steps": int(steps[-1]),
        "seeds": len(finals),
        "seed": seed,
        "n_envs": 8,
        "test_interval": 1000,
        "test_episodes": episodes or 4,
        "log_interval": 500,
        "save_interval": 5000,
        "lr": 0.0005,
    }
    cfg.update(config or {})
    (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (path / "metrics").mkdir(exist_ok=True)
    n = len(steps)
    for i, final in enumerate(finals):
        vals = curves[i] if curves is not None else [final * k / max(n - 1, 1) for k in range(n)]
        lines = []
        for k, (s, v) in enumerate(zip(steps, vals)):
            lines.append({"chunk": k, "env_steps": int(s), "train_return": 0.0, "env_steps_per_s": 1000.0})
            row = {"chunk": k, "eval_index": k, "env_steps": int(s), metric: float(v), "test_length": 1.0}
            if episodes and metric == "test_return":
                spread = np.linspace(-1, 1, episodes)
                row["test_episode_returns"] = [float(v + d) for d in spread]
            lines.append(row)
        (path / "metrics" / f"seed_{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if finished:
        summary = {
            "algo": algo,
            "env": env,
            "seeds": [seed + i for i in range(len(finals))],
            f"final_{metric}": [float(f) for f in finals],
            "env_steps_done": [int(steps[-1])] * len(finals),
            "train_env_steps_per_s": 2500.0,
        }
        (path / "summary.json").write_text(json.dumps(summary))
    if sweep_label is not None:
        cell = {"sweep": "s", "cell": path.name, "index": 0, "label": sweep_label, "algo": algo, "env": env}
        cell["overrides"] = config or {}
        (path / "sweep_cell.json").write_text(json.dumps(cell))
    return path


def _group(block: dict, label: str) -> dict:
    return next(g for g in block["groups"] if g["label"] == label)


def _pair(pairs: list[dict], a: str, b: str) -> dict:
    return next(p for p in pairs if (p["a"], p["b"]) == (a, b))


# --- the verdict rule ------------------------------------------------------------------


def test_verdict_rule():
    assert verdict(0.9, 0.7, 1.0, 10) == "better"
    assert verdict(0.1, 0.0, 0.3, 10) == "worse"
    assert verdict(0.7, 0.4, 0.95, 3) == "inconclusive at 3 seeds"
    assert verdict(0.75, 0.5, 1.0, 5) == "inconclusive at 5 seeds"  # a CI touching 0.5 is not enough
    assert verdict(0.25, 0.0, 0.5, 5) == "inconclusive at 5 seeds"
    assert verdict(1.0, 1.0, 1.0, 1) == "inconclusive at 1 seed"  # one seed: the CI collapsed
    with pytest.raises(ValueError, match="probability"):
        verdict(1.2, 0.5, 1.0, 3)
    with pytest.raises(ValueError, match="lo <= hi"):
        verdict(0.5, 0.8, 0.6, 3)
    assert verdict_line("A", "B", 0.9, 0.7, 1.0, 10, 8).startswith("A better than B: P(A > B) = 0.90")
    assert verdict_line("A", "B", 0.6, 0.3, 0.9, 3, 4).startswith("A vs B: inconclusive at 3 seeds")


# --- final scores, CIs and verdicts ----------------------------------------------------


def test_separated_groups_at_10_seeds_better_and_worse(tmp_path):
    rng = np.random.default_rng(0)
    good = 10 + rng.normal(size=10)
    bad = rng.normal(size=10)
    write_run(tmp_path / "q", good, algo="qmix")
    write_run(tmp_path / "v", bad, algo="vdn")
    runs = load_runs([tmp_path], note=None)
    res = compare(runs, "test_return", n_boot=2000, seed=0)
    block = res["envs"]["matrix:climbing"]
    q = _group(block, "qmix")
    # every statistic is credo.stats' own, on the final scores
    for key, statistic in (("iqm", stats.iqm), ("median", np.median), ("mean", np.mean)):
        p, lo, hi = stats.stratified_bootstrap_ci(good, statistic, n_boot=2000, seed=0)
        assert q[key] == {"point": pytest.approx(p), "low": pytest.approx(lo), "high": pytest.approx(hi)}
    assert q["per_seed"] == pytest.approx(good.tolist())
    assert q["n_seeds"] == 10 and q["env_steps"] == {"min": 2000, "max": 2000}
    assert q["steps_per_s"] == 2500.0
    # optimality gap of the scores normalised over every run on the env
    lo_, hi_ = min(good.min(), bad.min()), max(good.max(), bad.max())
    gap = stats.stratified_bootstrap_ci((good - lo_) / (hi_ - lo_), stats.optimality_gap, n_boot=2000, seed=0)
    assert q["optimality_gap"]["point"] == pytest.approx(gap[0])
    assert q["optimality_gap"]["high"] == pytest.approx(gap[2])
    # groups sorted best first; P(qmix > vdn) = 1 with a CI above 0.5
    assert [g["label"] for g in block["groups"]] == ["qmix", "vdn"]
    pair = _pair(block["pairs"], "qmix", "vdn")
    assert (pair["poi"], pair["low"], pair["high"]) == pytest.approx(
        stats.probability_of_improvement(good, bad, n_boot=2000, seed=0)
    )
    assert pair["verdict"] == "better"
    assert "qmix better than vdn" in render_markdown(res)
    # against a baseline: the worse group reads "worse"
    res_b = compare(runs, "test_return", baseline="qmix", n_boot=500)
    (only,) = res_b["envs"]["matrix:climbing"]["pairs"]
    assert (only["a"], only["b"], only["verdict"]) == ("vdn", "qmix", "worse")
    assert "vdn worse than qmix" in only["line"]


def test_overlapping_groups_at_3_seeds_are_inconclusive(tmp_path):
    write_run(tmp_path / "q", [1.0, 2.0, 3.0], algo="qmix")
    write_run(tmp_path / "v", [1.5, 2.5, 3.5, 0.5], algo="vdn")
    res = compare(load_runs([tmp_path], note=None), n_boot=1000)
    (pair,) = res["envs"]["matrix:climbing"]["pairs"]
    assert pair["verdict"] == "inconclusive at 3 seeds"
    assert pair["low"] < 0.5 < pair["high"]
    assert "inconclusive at 3 seeds" in render_markdown(res)


def test_step_scores_the_evaluation_at_or_after_n(tmp_path):
    # the long run reaches 9 at 6000 steps but scores 3 at 3000 like the short one's last evaluation
    write_run(tmp_path / "short", [3.0, 3.0], algo="qmix", steps=(0, 1000, 2000, 3000))
    write_run(
        tmp_path / "long",
        [9.0, 9.0],
        algo="vdn",
        steps=(0, 2000, 3000, 6000),
        curves=[[0, 1, 3, 9], [0, 1, 3, 9]],
    )
    runs = load_runs([tmp_path], note=None)
    last = compare(runs, n_boot=200)["envs"]["matrix:climbing"]
    assert _group(last, "vdn")["per_seed"] == [9.0, 9.0]
    at = compare(runs, step=2500, n_boot=200)
    block = at["envs"]["matrix:climbing"]
    assert _group(block, "vdn")["per_seed"] == [3.0, 3.0]
    assert _group(block, "vdn")["env_steps"] == {"min": 3000, "max": 3000}
    assert _group(block, "qmix")["per_seed"] == [3.0, 3.0]
    # past the short run's last evaluation: its seeds are left out, with a note
    late = compare(runs, step=4000, n_boot=200)
    assert [g["label"] for g in late["envs"]["matrix:climbing"]["groups"]] == ["vdn"]
    assert any("no evaluation at or after 4,000" in n for n in late["notes"])


def test_sample_efficiency_curve_is_the_iqm_not_the_mean(tmp_path):
    finals = [0.0, 1.0, 2.0, 100.0]  # an outlier: IQM 1.5, mean 25.75
    write_run(tmp_path / "q", finals)
    res = compare(load_runs([tmp_path], note=None), n_boot=300)
    curve = res["envs"]["matrix:climbing"]["sample_efficiency"]["qmix"]
    assert curve["steps"] == [0, 1000, 2000]
    assert curve["iqm"][-1] == pytest.approx(stats.iqm(finals)) == pytest.approx(1.5)
    assert curve["iqm"][1] == pytest.approx(stats.iqm([f / 2 for f in finals]))
    assert all(lo <= p <= hi for p, lo, hi in zip(curve["iqm"], curve["low"], curve["high"]))


# --- grouping ----------------------------------------------------------------------------


def test_grouping_by_sweep_label_pools_seeds(tmp_path):
    write_run(tmp_path / "sw" / "a", [1, 2, 3], sweep_label="qmix[lr=0.001]", config={"lr": 0.001})
    write_run(tmp_path / "sw" / "b", [4, 5], sweep_label="qmix[lr=0.001]", config={"lr": 0.001}, seed=3)
    write_run(tmp_path / "sw" / "c", [6, 7], sweep_label="fast", config={"lr": 0.01})
    runs = load_runs([tmp_path / "sw"], note=None)
    assert sorted(r.label for r in runs) == ["fast", "qmix[lr=0.001]", "qmix[lr=0.001]"]
    block = compare(runs, n_boot=200)["envs"]["matrix:climbing"]
    pooled = _group(block, "qmix[lr=0.001]")
    assert pooled["n_seeds"] == 5 and sorted(pooled["per_seed"]) == [1, 2, 3, 4, 5]
    assert sorted(s["seed"] for s in pooled["seeds"]) == [0, 1, 2, 3, 4]
    assert _group(block, "fast")["n_seeds"] == 2


def test_grouping_by_differing_overrides(tmp_path):
    # lr and reward_mode tell the runs apart; seeds, budgets and intervals do not
    write_run(tmp_path / "a", [1, 2], config={"lr": 0.001, "test_interval": 500, "seed": 7})
    write_run(tmp_path / "b", [3, 4], config={"lr": 0.001, "total_env_steps": 9000}, steps=(0, 1000, 9000))
    write_run(tmp_path / "c", [5, 6], config={"lr": 0.0005, "log_interval": 100})
    write_run(tmp_path / "d", [1, 1], algo="mappo", config={"reward_mode": "local"})
    write_run(tmp_path / "e", [2, 2], algo="mappo", config={"reward_mode": "global"})
    # on another env, n_envs follows that env's defaults: it differs across envs, not within one
    write_run(tmp_path / "f", [3, 3], algo="vdn", config={"n_envs": 8})
    write_run(tmp_path / "g", [3, 3], algo="vdn", env="lbf:Foraging-8x8-2p-3f-v3", config={"n_envs": 16})
    labels = {r.name: r.label for r in load_runs([tmp_path], note=None)}
    assert labels == {
        "a": "qmix[lr=0.001]",
        "b": "qmix[lr=0.001]",
        "c": "qmix[lr=0.0005]",
        "d": "mappo[reward_mode=local]",
        "e": "mappo[reward_mode=global]",
        "f": "vdn",
        "g": "vdn",
    }
    block = compare(load_runs([tmp_path], note=None), n_boot=200)["envs"]["matrix:climbing"]
    assert sorted(_group(block, "qmix[lr=0.001]")["per_seed"]) == [1, 2, 3, 4]


def test_min_max_normalisation_across_envs(tmp_path):
    a1, b1 = np.array([0.2, 0.4, 0.6, 0.8]), np.array([0.1, 0.2, 0.3, 0.0])
    a2, b2 = np.array([500.0, 900, 700, 1000]), np.array([100.0, 0, 300, 200])
    write_run(tmp_path / "a1", a1, algo="qmix", env="matrix:climbing")
    write_run(tmp_path / "b1", b1, algo="vdn", env="matrix:climbing")
    write_run(tmp_path / "a2", a2, algo="qmix", env="lbf:Foraging-8x8-2p-3f-v3")
    write_run(tmp_path / "b2", b2, algo="vdn", env="lbf:Foraging-8x8-2p-3f-v3")
    res = compare(load_runs([tmp_path], note=None), n_boot=1000)
    agg = res["aggregate"]
    assert agg["envs"] == ["lbf:Foraging-8x8-2p-3f-v3", "matrix:climbing"]
    assert res["envs"]["matrix:climbing"]["normalisation"] == {"low": 0.0, "high": 0.8}
    assert res["envs"]["lbf:Foraging-8x8-2p-3f-v3"]["normalisation"] == {"low": 0.0, "high": 1000.0}
    # [n_seeds, n_envs], normalised over every run on each env, columns in env order
    qm = np.stack([stats.min_max_normalise(a2, 0, 1000), stats.min_max_normalise(a1, 0, 0.8)], axis=1)
    vm = np.stack([stats.min_max_normalise(b2, 0, 1000), stats.min_max_normalise(b1, 0, 0.8)], axis=1)
    q = _group(agg, "qmix")
    np.testing.assert_allclose(q["normalised_per_env"], qm.T)
    p, lo, hi = stats.stratified_bootstrap_ci(qm, stats.iqm, n_boot=1000, seed=0)
    assert (q["iqm"]["point"], q["iqm"]["low"], q["iqm"]["high"]) == pytest.approx((p, lo, hi))
    pair = _pair(agg["pairs"], "qmix", "vdn")
    assert pair["poi"] == pytest.approx(stats.probability_of_improvement(qm, vm, n_boot=1000)[0])
    assert pair["verdict"] == "better"
    md = render_markdown(res)
    assert "## All envs (2, min-max normalised per env)" in md and "all envs: qmix better than vdn" in md


# --- reading run directories ---------------------------------------------------------------


def test_half_written_last_line_is_dropped(tmp_path):
    run = write_run(tmp_path / "r", [2.0, 4.0])
    with open(run / "metrics" / "seed_1.jsonl", "a") as f:
        f.write('{"chunk": 3, "eval_index": 3, "env_steps": 3000, "test_ret')
    notes = []
    (loaded,) = load_runs([tmp_path], note=notes.append)
    assert loaded.dropped_lines == 1 and any("half-written" in n for n in notes)
    assert [c.at()[0] for c in loaded.curves("test_return")] == [2.0, 4.0]
    # a broken line in the middle is corruption, not an interrupted write
    text = (run / "metrics" / "seed_0.jsonl").read_text().splitlines()
    text[1] = text[1][:10]
    (run / "metrics" / "seed_0.jsonl").write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"seed_0.jsonl:2"):
        load_run(run)


def test_run_record(tmp_path):
    run = write_run(tmp_path / "sweep" / "cell", [1.0, 3.0], seed=5, env="lbf:Foraging-8x8-2p-3f-v3")
    assert find_run_dirs([tmp_path]) == [run]
    (r,) = load_runs([tmp_path], note=None)
    assert (r.algo, r.env, r.env_family, r.task) == (
        "qmix",
        "lbf:Foraging-8x8-2p-3f-v3",
        "lbf",
        "Foraging-8x8-2p-3f-v3",
    )
    assert r.seeds == [5, 6] and r.finished and r.steps_per_s == 2500.0
    assert r.metrics == ["test_length", "test_return"]
    c = r.curves("test_return")[1]
    assert c.seed == 6 and c.steps.tolist() == [0, 1000, 2000] and c.values.tolist() == [0.0, 1.5, 3.0]
    assert c.episodes[-1] == pytest.approx([2.0, 3 - 1 / 3, 3 + 1 / 3, 4.0])
    assert c.at(1) == (1.5, 1000) and c.at(2001) is None


def test_unfinished_run_is_kept_with_a_note_and_empty_one_skipped(tmp_path):
    write_run(tmp_path / "done", [1.0, 2.0])
    write_run(tmp_path / "running", [5.0, 6.0], algo="vdn", finished=False)
    empty = tmp_path / "new"
    (empty / "metrics").mkdir(parents=True)
    (empty / "config.yaml").write_text("algo: iql\nenv: matrix:climbing\n")
    notes = []
    runs = load_runs([tmp_path], note=notes.append)
    assert sorted(r.name for r in runs) == ["done", "running"]
    assert any("running: unfinished" in n for n in notes) and any(
        "new: no evaluation yet" in n for n in notes
    )
    res = compare(runs, n_boot=200)
    assert _group(res["envs"]["matrix:climbing"], "vdn")["finished"] is False
    assert "| vdn * |" in render_markdown(res)


def test_any_metric_of_the_eval_rows(tmp_path):
    # RICOL-style rows: test_success, no eval_index, no per-episode list
    for name, finals in (("ricol", [0.5, 0.75, 1.0]), ("rwr", [0.0, 0.25, 0.0])):
        run = tmp_path / name
        (run / "metrics").mkdir(parents=True)
        (run / "config.yaml").write_text(f"algo: {name}\nenv: babyai:goto\nseed: 0\nseeds: 3\n")
        for i, f in enumerate(finals):
            rows = [
                {"iteration": k, "env_steps": 100 * k, "test_success": f * k / 2, "test_return": 0.1}
                for k in range(3)
            ]
            (run / "metrics" / f"seed_{i}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = load_runs([tmp_path], note=None)
    res = compare(runs, "success", n_boot=200)  # test_ prefix optional
    assert res["metric"] == "test_success"
    assert _group(res["envs"]["babyai:goto"], "ricol")["per_seed"] == [0.5, 0.75, 1.0]
    with pytest.raises(ValueError, match=r"unknown metric 'test_won'.*test_return, test_success"):
        compare(runs, "test_won")


# --- the command line --------------------------------------------------------------------


def test_cli_writes_markdown_json_and_pngs(tmp_path, capsys):
    write_run(tmp_path / "runs" / "q", [8.0, 8.0, 7.0, 8.0], algo="qmix")
    write_run(tmp_path / "runs" / "v", [0.0, -12.0, 0.0, 0.0], algo="vdn")
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "runs"), "--out", str(out), "--n-boot", "300"]) == 0
    printed = capsys.readouterr().out
    assert "| qmix | 4 |" in printed and "qmix better than vdn" in printed
    for name in ("performance_profiles.png", "sample_efficiency.png"):
        assert (out / name).read_bytes()[:8] == PNG
    md = (out / "compare.md").read_text()
    assert md in printed
    data = json.loads((out / "compare.json").read_text())
    assert data["metric"] == "test_return" and len(data["runs"]) == 2
    assert _pair(data["envs"]["matrix:climbing"]["pairs"], "qmix", "vdn")["verdict"] == "better"
    # default --out: the first directory given
    assert main(["compare", str(tmp_path / "runs"), "--n-boot", "50"]) == 0
    assert (tmp_path / "runs" / "compare.md").is_file()


def test_cli_errors_name_what_is_there(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 2
    assert "no run directories under" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    write_run(tmp_path / "runs" / "q", [1.0, 2.0], algo="qmix")
    write_run(tmp_path / "runs" / "v", [1.0, 2.0], algo="vdn")
    assert main(["compare", str(tmp_path / "runs"), "--metric", "test_won"]) == 2
    err = capsys.readouterr().err
    assert "unknown metric 'test_won'" in err and "test_length, test_return" in err
    assert main(["compare", str(tmp_path / "runs"), "--baseline", "qplex"]) == 2
    err = capsys.readouterr().err
    assert "'qplex' is not among the labels: qmix, vdn" in err


# --- provenance ----------------------------------------------------------------------------


def _metadata(host: str = "node17", device_kind: str = "cpu", resumes=()) -> dict:
    return {
        "command": ["credo", "train", "qmix", "matrix:climbing"],
        "cwd": "/home/me/credo",
        "started_utc": "2026-11-22T10:15:00+00:00",
        "credo_version": "0.1.0",
        "git_commit": "e35843c0123456789abcdef0123456789abcdef0",
        "git_dirty": False,
        "python": "3.11.9",
        "jax": "0.6.2",
        "jax_backend": "cpu",
        "device_kind": device_kind,
        "device_count": 2,
        "host": host,
        "cpu": "AMD EPYC 7763 64-Core Processor",
        "cores": 2,
        "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
        "resumes": list(resumes),
    }


def test_outputs_record_date_command_machine_and_settings(tmp_path):
    old = write_run(tmp_path / "runs" / "old", [1.0, 2.0], algo="vdn", config={"lr": 0.001})
    cell = write_run(
        tmp_path / "runs" / "cell", [5.0, 6.0, 7.0], sweep_label="fast", config={"lr": 0.01, "n_envs": 16}
    )
    (cell / "metadata.json").write_text(json.dumps(_metadata()))
    cmd = ["/venv/bin/credo", "compare", "runs", "--out", "results"]
    res = compare(load_runs([tmp_path / "runs"], note=None), n_boot=100, command=cmd)
    prov = res["provenance"]
    assert prov["command"] == ["credo", "compare", "runs", "--out", "results"]
    written = dt.datetime.fromisoformat(prov["written_utc"])
    assert abs((dt.datetime.now(dt.UTC) - written).total_seconds()) < 60
    assert prov["machine"] is None  # the old run has no metadata.json: no machine shared by all
    runs = {Path(r["path"]).name: r for r in res["runs"]}
    # a sweep cell's settings are its overrides; a plain run's, the fields its label names
    assert runs["cell"]["overrides"] == {"lr": 0.01, "n_envs": 16}
    assert runs["cell"]["overrides_from"] == "sweep_cell.json"
    assert runs["old"]["overrides"] == {} and runs["old"]["label"] == "vdn"
    assert runs["cell"]["env_steps"] == [2000, 2000, 2000] and runs["cell"]["seeds"] == [0, 1, 2]
    assert runs["cell"]["machine"] == {
        "cpu": "AMD EPYC 7763 64-Core Processor",
        "cores": 2,
        "jax_backend": "cpu",
        "device_kind": "cpu",
        "device_count": 2,
        "host": "node17",
    }
    assert runs["cell"]["started_utc"] == "2026-11-22T10:15:00+00:00"
    assert runs["cell"]["git_commit"].startswith("e35843c") and runs["cell"]["metadata"]["jax"] == "0.6.2"
    assert runs["old"]["metadata"] is None
    assert runs["old"]["machine_text"] == "no metadata.json (run before credo recorded it)"
    md = render_markdown(res)
    assert f"Written {written:%Y-%m-%d %H:%M} UTC by `credo compare runs --out results`" in md
    assert (
        "Machine: not recorded for 1 of 2 runs; see Runs." in md
        and "Runs made with credo 0.1.0 at e35843c012." in md
    )
    runs_table = md[md.index("## Runs") :]
    assert "| path | label | settings | seeds | env steps per seed | started | machine |" in runs_table
    assert (
        f"| {cell} | fast | lr=0.01, n_envs=16 | 0-2 | 2,000 | 2026-11-22 10:15 | "
        "AMD EPYC 7763 64-Core Processor, 2 cores, jax cpu (cpu x 2), host node17 |" in runs_table
    )
    assert f"| {old} | vdn | - | 0, 1 | 2,000 | - | no metadata.json (run before credo recorded it) |" in md
    # with metadata everywhere on one machine: said once at the top, no machine column
    (old / "metadata.json").write_text(json.dumps(_metadata()))
    write_run(tmp_path / "runs" / "plain", [3.0, 3.0], algo="vdn", config={"lr": 0.005})
    (tmp_path / "runs" / "plain" / "metadata.json").write_text(json.dumps(_metadata()))
    res = compare(load_runs([tmp_path / "runs"], note=None), n_boot=100, command=cmd)
    assert res["provenance"]["machine"]["host"] == "node17"
    md = render_markdown(res)
    assert "Machine: AMD EPYC 7763 64-Core Processor, 2 cores, jax cpu (cpu x 2), host node17." in md
    assert "| path | label | settings | seeds | env steps per seed | started |\n" in md
    runs = {Path(r["path"]).name: r for r in res["runs"]}
    assert runs["plain"]["overrides"] == {"lr": 0.005} and runs["plain"]["label"] == "vdn[lr=0.005]"
    # a resume on another machine: the machine is no longer shared, and the run says where
    gpu = {"host": "gpu3", "jax_backend": "gpu", "device_kind": "NVIDIA H200", "device_count": 1}
    resumed = _metadata(resumes=[{"started_utc": "2026-11-23T08:00:00+00:00", **gpu}])
    (old / "metadata.json").write_text(json.dumps(resumed))
    res = compare(load_runs([tmp_path / "runs"], note=None), n_boot=100, command=cmd)
    assert res["provenance"]["machine"] is None
    md = render_markdown(res)
    assert "Machine: not the same for every run; see Runs." in md
    assert "2026-11-22 10:15 (resumed 1x)" in md and "resumed on jax gpu (NVIDIA H200 x 1), host gpu3" in md


def test_cli_outputs_carry_provenance(tmp_path, monkeypatch):
    write_run(tmp_path / "runs" / "q", [8.0, 8.0], algo="qmix")
    (tmp_path / "runs" / "q" / "metadata.json").write_text(json.dumps(_metadata(device_kind="cpu")))
    out = tmp_path / "cmp"
    argv = ["compare", str(tmp_path / "runs"), "--out", str(out), "--n-boot", "50"]
    monkeypatch.setattr(sys, "argv", [".venv/bin/credo", *argv])
    assert main(argv) == 0
    data = json.loads((out / "compare.json").read_text())
    assert data["provenance"]["command"] == ["credo", *argv]
    assert data["provenance"]["machine"]["cpu"] == "AMD EPYC 7763 64-Core Processor"
    md = (out / "compare.md").read_text()
    assert f"by `credo {' '.join(argv)}`" in md and "Machine: AMD EPYC 7763" in md


def test_curves_align_seeds_by_evaluation_when_episode_lengths_shift_their_steps():
    """Seeds on one schedule whose last evaluations land at different env steps (episodes of
    varying length) keep every seed in every point: no seed drops out near the end."""
    import numpy as np

    from credo.study.compare import _iqm_curve
    from credo.study.runs import SeedCurve

    ends = [117_838, 119_546, 118_900]
    curves = [
        SeedCurve(i, i, np.array([0, 100_000, end]), np.array([0.0, 0.5, 1.0 + i]), [None] * 3)
        for i, end in enumerate(ends)
    ]
    curve = _iqm_curve(curves, n_boot=200, seed=0)
    assert curve["n_seeds"] == [3, 3, 3]
    assert curve["steps"] == [0, 100_000, round(np.mean(ends))]
    assert curve["iqm"][-1] == pytest.approx(2.0)  # the IQM of 1, 2, 3

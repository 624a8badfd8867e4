"""credo export marl-eval: marl-eval's raw-experiment JSON, written and read back."""

from __future__ import annotations

import json

import pytest
from test_compare import write_run

from credo.cli import main
from credo.study.marl_eval import ABSOLUTE, export_marl_eval, load_marl_eval, metric_name
from credo.study.runs import load_runs


def test_export_round_trips_every_run_step_and_episode(tmp_path):
    write_run(tmp_path / "runs" / "q", [4.0, 6.0], algo="qmix", env="lbf:Foraging-8x8-2p-3f-v3")
    # same label (sweep cells of one label): seeds 0, 1 again -> run names made unique
    write_run(tmp_path / "runs" / "q2", [5.0, 7.0], algo="qmix", env="lbf:Foraging-8x8-2p-3f-v3")
    write_run(tmp_path / "runs" / "v", [1.0], algo="vdn", env="matrix:climbing", steps=(0, 500, 1000, 1500))
    runs = load_runs([tmp_path / "runs"], note=None)
    out = tmp_path / "marl.json"
    notes = []
    written = export_marl_eval(runs, out, note=notes.append)
    data = load_marl_eval(out)
    assert data == written
    assert set(data) == {"lbf", "matrix"}
    assert set(data["lbf"]) == {"Foraging-8x8-2p-3f-v3"} and set(data["matrix"]) == {"climbing"}
    qmix = data["lbf"]["Foraging-8x8-2p-3f-v3"]["qmix"]
    assert sorted(qmix) == ["seed_0", "seed_0@q2", "seed_1", "seed_1@q2"]
    # every run, every evaluation, every per-episode return, in order; absolute_metrics last
    for r in runs:
        algo = data[r.env_family][r.task][r.label]
        for c in r.curves("test_return"):
            name = f"seed_{c.seed}" if r.name in ("q", "v") else f"seed_{c.seed}@{r.name}"
            run = algo[name]
            assert list(run) == [f"step_{k}" for k in range(len(c.steps))] + [ABSOLUTE]
            for k, (s, eps) in enumerate(zip(c.steps, c.episodes)):
                assert run[f"step_{k}"]["step_count"] == int(s)
                assert run[f"step_{k}"]["return"] == eps and len(eps) == 4
                assert run[f"step_{k}"]["episode_length"] == [1.0]  # a mean-only metric: one element
            assert run[ABSOLUTE]["return"] == c.episodes[-1]
    assert data["matrix"]["climbing"]["vdn"]["seed_0"]["step_3"]["return"] == pytest.approx(
        [0.0, 1 - 1 / 3, 1 + 1 / 3, 2.0]
    )
    assert not any("one-element lists" in n for n in notes)  # returns per episode; lengths are means
    assert any("absolute_metrics" in n for n in notes)


def test_runs_without_episode_values_export_the_mean(tmp_path):
    write_run(tmp_path / "old", [3.0, 5.0], episodes=None)
    notes = []
    data = export_marl_eval(load_runs([tmp_path], note=None), tmp_path / "m.json", note=notes.append)
    run = data["matrix"]["climbing"]["qmix"]["seed_1"]
    assert run["step_2"]["return"] == [5.0] and run["step_1"]["return"] == [2.5]
    assert any("one-element lists" in n and "old" in n and "test_return" in n for n in notes)


def test_metric_names():
    assert metric_name("test_return") == "return"
    assert metric_name("test_won") == "win_rate"
    assert metric_name("test_success") == "success_rate"
    assert metric_name("test_expert_prob") == "expert_prob"


def test_win_rate_per_episode_list(tmp_path):
    run = write_run(tmp_path / "r", [1.0], env="smax:3m", steps=(0, 100))
    p = run / "metrics" / "seed_0.jsonl"
    rows = [json.loads(x) for x in p.read_text().splitlines()]
    for row in rows:
        if "eval_index" in row:
            row.update(test_won=0.5, test_episode_won=[1, 0, 1, 0])
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = export_marl_eval(load_runs([tmp_path], note=None), tmp_path / "m.json")
    assert data["smax"]["3m"]["qmix"]["seed_0"]["step_1"]["win_rate"] == [1.0, 0.0, 1.0, 0.0]


def test_reader_rejects_malformed_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"lbf": {"t": {"a": {"r": {"step_0": {"return": [1.0]}}}}}}))
    with pytest.raises(ValueError, match="step_count must be an integer"):
        load_marl_eval(bad)
    bad.write_text(json.dumps({"lbf": {"t": {"a": {"r": {ABSOLUTE: {}, "step_0": {"step_count": 1}}}}}}))
    with pytest.raises(ValueError, match="must be the last key"):
        load_marl_eval(bad)
    bad.write_text(json.dumps({"lbf": {"t": {"a": {"r": {"step_0": {"step_count": 1, "return": 3}}}}}}))
    with pytest.raises(ValueError, match="list of numbers"):
        load_marl_eval(bad)


def test_cli_export(tmp_path, capsys):
    write_run(tmp_path / "sweep" / "a", [1.0, 2.0], sweep_label="qmix[lr=0.001]")
    out = tmp_path / "out" / "marl.json"
    assert main(["export", "marl-eval", str(tmp_path / "sweep"), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    data = load_marl_eval(out)
    assert sorted(data["matrix"]["climbing"]["qmix[lr=0.001]"]) == ["seed_0", "seed_1"]
    assert main(["export", "marl-eval", str(tmp_path / "nothing"), "-o", str(out)]) == 2
    assert "no such file or directory" in capsys.readouterr().err

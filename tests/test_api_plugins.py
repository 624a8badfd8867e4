"""The Python API and user plugins (issue 19): the example plugin under examples/ (a mixer and an
env family) trains, evaluates and resumes from Python and from the command line; runs record the
plugins they need; entry points, ``--import`` and ``--config`` work; plugins that break the
contracts are told what they lack."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from credo_cli import run_credo

import credo
from credo.api import load_run_config
from credo.engine.rundir import RunDir

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "examples" / "credo_example_plugin"
SMALL = dict(test_interval=400, log_interval=200, test_episodes=4, save_interval=400)


@pytest.fixture(scope="module")
def plugin():
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import credo_example_plugin

        yield credo_example_plugin
    finally:
        sys.path.remove(str(PLUGIN_DIR))


@pytest.fixture(scope="module")
def trained(plugin, tmp_path_factory):
    """The example mixer on the example env, trained through ``credo.train``."""
    out = tmp_path_factory.mktemp("api")
    return credo.train(
        "maxsum", "rendezvous:line-5", steps=800, seeds=2, out=out, name="run", progress=False, **SMALL
    )


# --- the Python API ------------------------------------------------------------------------------


def test_import_credo_exposes_the_api_without_starting_jax():
    code = "import sys, credo; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    assert {"train", "resume", "load_run", "Run", "make_env", "register_algo", "register_mixer"} <= set(
        dir(credo)
    )
    assert (Path(credo.__file__).parent / "py.typed").exists()


def test_train_from_python_with_a_plugin_mixer_and_env(trained):
    assert trained.finished and trained.summary["algo"] == "maxsum"
    assert trained.summary["env"] == "rendezvous:line-5" and len(trained.summary["final_test_return"]) == 2
    cfg = trained.config
    assert cfg.mixer == "maxsum" and cfg.plugins == ["credo_example_plugin.mixer", "credo_example_plugin"]
    rows = trained.metrics(seed=0)
    assert rows[-1]["eval_index"] >= 1 and any("loss" in r for r in rows)
    assert len(trained.metrics()) == 2


def test_evaluate_a_run_from_python(trained):
    result = trained.evaluate(episodes=3)
    assert result["episodes"] == 3 and len(result["test_return"]) == 2 and result["greedy"]
    best = trained.evaluate(episodes=3, snapshot="best")
    assert best["where"].startswith("snapshot best")


def test_load_run_and_resume_it_longer_from_python(trained, tmp_path):
    import shutil

    copy = credo.load_run(shutil.copytree(trained.path, tmp_path / "copy"))
    assert copy.summary["final_test_return"] == trained.summary["final_test_return"]
    longer = copy.resume(steps=1_200, progress=False, verbose=False)
    assert min(longer.summary["env_steps_done"]) >= 1_200 and longer.config.total_env_steps == 1_200
    with pytest.raises(ValueError, match="changing lr would make it a different experiment"):
        copy.resume(steps=2_000, lr=0.5)
    with pytest.raises(ValueError, match="not a run directory"):
        credo.load_run(tmp_path / "nothing")


def test_make_config_layers_a_file_then_fields(tmp_path):
    (tmp_path / "mine.yaml").write_text("lr: 0.001\nn_envs: 4\n")
    cfg = credo.make_config("qmix", "matrix:climbing", config=tmp_path / "mine.yaml", n_envs=2, seeds=3)
    assert (cfg.lr, cfg.n_envs, cfg.seeds, cfg.mixer) == (0.001, 2, 3, "qmix")


# --- plugins from the command line ---------------------------------------------------------------


def test_a_plugin_trains_evaluates_and_resumes_from_the_cli(tmp_path):
    args = ["--steps", "600", "--no-progress", "--out", str(tmp_path), "--name", "p"]
    for kv in ("test_interval=300", "log_interval=150", "test_episodes=2"):
        args += ["--set", kv]
    made = run_credo(
        "train",
        "--import",
        "credo_example_plugin",
        "maxsum",
        "rendezvous:line-5",
        *args,
        cwd=tmp_path,
        pythonpath=[PLUGIN_DIR],
    )
    assert made.returncode == 0, made.stderr[-3000:]
    run = tmp_path / "p"
    assert yaml.safe_load((run / "config.yaml").read_text())["plugins"] == [
        "credo_example_plugin.mixer",
        "credo_example_plugin",
    ]
    # No --import: the run's config.yaml names the plugin.
    ev = run_credo("eval", str(run), "--episodes", "2", cwd=tmp_path, pythonpath=[PLUGIN_DIR])
    assert ev.returncode == 0 and "maxsum on rendezvous:line-5" in ev.stdout, ev.stderr[-3000:]
    longer = run_credo(
        "train",
        "--resume",
        str(run),
        "--steps",
        "900",
        "--no-progress",
        cwd=tmp_path,
        pythonpath=[PLUGIN_DIR],
    )
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert RunDir(run).rows(0)[-1]["env_steps"] >= 900 > 600
    # Without the plugin on the path: one line naming it and what to do.
    lost = run_credo("eval", str(run), cwd=tmp_path)
    assert lost.returncode == 2 and len(lost.stderr.strip().splitlines()) == 1, lost.stderr
    assert (
        "plugin module 'credo_example_plugin.mixer'" in lost.stderr and "Install its package" in lost.stderr
    )


def test_entry_points_make_a_plugin_visible_without_import(tmp_path):
    """An installed plugin: a dist-info directory with entry points, as pip leaves it."""
    site = tmp_path / "site"
    info = site / "credo_example_plugin-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: credo-example-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[credo.mixers]\nmaxsum = credo_example_plugin\n")
    helped = run_credo("train", "maxsum", "--help", cwd=tmp_path, pythonpath=[PLUGIN_DIR, site])
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert "maxsum: Q_tot = sum Q_i + w(s) max Q_i" in helped.stdout and "mixing_embed_dim" in helped.stdout
    unknown = run_credo("train", "maxsum", "--help", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown algorithm 'maxsum'" in unknown.stderr


# --- contracts -----------------------------------------------------------------------------------


def test_a_mixer_without_the_constructor_contract_is_refused_at_registration():
    import flax.linen as nn

    class Bare(nn.Module):
        @nn.compact
        def __call__(self, agent_qs, state, max_qs=None, actions_onehot=None):
            return agent_qs.sum(-1)

    with pytest.raises(TypeError, match=r"takes no n_agents, state_dim, n_actions"):
        credo.register_mixer("bare", Bare)


def test_a_learner_missing_part_of_the_protocol_is_named(tmp_path):
    from credo.algos import ValueConfig, make_learner
    from credo.algos.registry import _ALGORITHMS
    from credo.envs import make

    class Half:
        spec, explores_with_epsilon, on_policy = None, True, False

        def init(self, key): ...

        def act(self, params, hidden, obs, state, avail, last_actions, key, epsilon, greedy=False): ...

    credo.register_algo("half", config=ValueConfig, learner=lambda cfg, spec, env: Half(), module="my_plugin")
    try:
        with pytest.raises(TypeError, match=r"lacks initial_hidden, update, param_count"):
            make_learner(ValueConfig(algo="half"), make("matrix:climbing").spec)
    finally:
        _ALGORITHMS.pop("half")


# --- configs -------------------------------------------------------------------------------------


def test_train_help_lists_the_algorithms_fields(tmp_path):
    qmix = run_credo("train", "qmix", "--help", cwd=tmp_path)
    assert qmix.returncode == 0 and "mixing_embed_dim" in qmix.stdout and "alpha_lr" not in qmix.stdout
    me = run_credo("train", "me-qmix", "--help", cwd=tmp_path)
    assert "alpha_lr" in me.stdout and "policy_transform" in me.stdout


def test_a_runs_config_records_only_its_learners_fields_and_old_ones_still_load(trained, tmp_path):
    from credo.algos import MaxEntConfig, ValueConfig

    fields = yaml.safe_load((trained.path / "config.yaml").read_text())
    assert "alpha_lr" not in fields and "policy_transform" not in fields
    assert {f.name for f in dataclasses.fields(MaxEntConfig)} > {
        f.name for f in dataclasses.fields(ValueConfig)
    }
    # A run of before 2026-12-02 listed the ME-IGM fields in every value learner's config.yaml.
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.yaml").write_text(
        yaml.safe_dump({**fields, "plugins": fields["plugins"], "alpha_lr": 0.3, "policy_transform": "opt"})
    )
    assert load_run_config(old).mixer == "maxsum"


def test_config_file_reruns_a_run_and_foreign_names_are_explained(trained, tmp_path, capsys):
    from credo.cli import main

    cfg = credo.make_config("maxsum", "rendezvous:line-5", config=trained.path / "config.yaml")
    assert dataclasses.asdict(cfg) == dataclasses.asdict(trained.config)
    assert main(["train", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path)]) == 2
    assert "--config" in capsys.readouterr().err
    assert main(["train", "vdn", "matrix:climbing", "--set", "batch_size_run=4", "--out", str(tmp_path)]) == 2
    assert "unknown field 'batch_size_run' (EPyMARL's name; here it is 'n_envs')" in capsys.readouterr().err
    assert json.loads((trained.path / "summary.json").read_text())["algo"] == "maxsum"


def test_a_sweep_passes_its_plugins_to_every_cell(tmp_path):
    """A spec's ``plugins:`` and ``credo sweep --import`` reach each cell's ``credo train``."""
    from credo.study.spec import load_spec, with_plugins

    spec = tmp_path / "plug.yaml"
    body = {
        "name": "plug",
        "algos": ["maxsum"],
        "envs": ["rendezvous:line-5"],
        "seeds": 1,
        "steps": 400,
        "set": {"test_interval": 200, "log_interval": 100, "test_episodes": 2},
    }
    spec.write_text(yaml.safe_dump(body))
    cell = with_plugins(load_spec(spec), ["credo_example_plugin"]).cells[0]
    assert cell.train_args(tmp_path)[-8:-6] == ["--import", "credo_example_plugin"]
    # Without the plugin the cells are invalid; --import makes them valid.
    bare = run_credo("sweep", str(spec), "--dry-run", "--out", str(tmp_path), cwd=tmp_path)
    assert bare.returncode == 0 and "invalid" in bare.stdout, bare.stdout + bare.stderr
    dry = run_credo(
        "sweep", "--import", "credo_example_plugin", str(spec), "--dry-run", "--out", str(tmp_path),
        cwd=tmp_path, pythonpath=[PLUGIN_DIR],
    )  # fmt: skip
    assert dry.returncode == 0 and "invalid" not in dry.stdout and " new " in dry.stdout, dry.stdout
    # The spec's own plugins: list, and a cell run in its own process (as a Slurm array would).
    spec.write_text(yaml.safe_dump({**body, "plugins": ["credo_example_plugin"]}))
    ran = run_credo(
        "sweep", str(spec), "--index", "0", "--out", str(tmp_path), cwd=tmp_path, pythonpath=[PLUGIN_DIR]
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    run = tmp_path / "plug" / "maxsum-line-5"
    assert "credo_example_plugin" in yaml.safe_load((run / "config.yaml").read_text())["plugins"]
    again = run_credo(
        "sweep", str(spec), "--dry-run", "--out", str(tmp_path), cwd=tmp_path, pythonpath=[PLUGIN_DIR]
    )
    assert again.returncode == 0 and " done " in again.stdout, again.stdout + again.stderr

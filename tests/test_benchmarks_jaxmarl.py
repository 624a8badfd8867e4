"""benchmarks/jaxmarl_side_by_side.py without a JaxMARL checkout: its errors, and how it builds
JaxMARL's config (from small YAML files written here; the real ones live in the user's checkout)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "jaxmarl_side_by_side.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def one_line_error(r) -> str:
    assert r.returncode != 0
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_missing_checkout_is_one_clear_line(tmp_path):
    line = one_line_error(run("--jaxmarl-dir", str(tmp_path / "nowhere")))
    assert "no such directory" in line and "git clone https://github.com/FLAIROx/JaxMARL" in line


def test_folder_without_baselines_is_one_clear_line(tmp_path):
    line = one_line_error(run("--jaxmarl-dir", str(tmp_path)))
    assert "no baselines/ folder" in line and str(tmp_path) in line


def test_checkout_without_the_script_names_it(tmp_path):
    (tmp_path / "baselines").mkdir()
    line = one_line_error(run("--jaxmarl-dir", str(tmp_path), "--only", "ippo"))
    assert "baselines/IPPO/ippo_ff_mpe.py is missing" in line


def _module():
    spec = importlib.util.spec_from_file_location("jaxmarl_side_by_side", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_config_is_the_yaml_with_the_full_runs_test_cadence(tmp_path):
    pytest.importorskip("omegaconf")
    mod = _module()
    q = tmp_path / "baselines/QLearning/config"
    (q / "alg").mkdir(parents=True)
    (q / "config.yaml").write_text('"NUM_SEEDS": 2\n"SEED": 0\n"WANDB_MODE": "disabled"\n')
    (q / "alg/ql_rnn_mpe.yaml").write_text(
        '"TOTAL_TIMESTEPS": 1e7\n"NUM_ENVS": 8\n"NUM_STEPS": 26\n"LR": 0.005\n'
        '"TEST_DURING_TRAINING": True\n"TEST_INTERVAL": 0.05\n'
    )
    cfg, changes, full = mod.jaxmarl_config(tmp_path, "qmix", 416_000)
    assert full["TOTAL_TIMESTEPS"] == 1e7 and full["LR"] == 0.005  # OmegaConf reads 1e7 as a float
    assert cfg["TOTAL_TIMESTEPS"] == 416_000 and cfg["NUM_SEEDS"] == 1 and cfg["LR"] == 0.005
    updates = 416_000 // 26 // 8
    assert int(updates * cfg["TEST_INTERVAL"]) == int(10_000_000 // 26 // 8 * 0.05)  # every 2403 updates
    assert set(changes) == {"TOTAL_TIMESTEPS", "NUM_SEEDS", "TEST_INTERVAL"}
    assert mod.env_steps(cfg) == updates * 26 * 8


def test_only_main_modules_are_stubbed_and_others_must_be_installed(tmp_path, monkeypatch):
    mod = _module()
    script = tmp_path / mod.CASES["ippo"]["script"]
    script.parent.mkdir(parents=True)
    script.write_text("import json\nimport credo_logger_not_installed\n")
    monkeypatch.setitem(mod.STUBBABLE, "credo_logger_not_installed", "logging")
    monkeypatch.delitem(sys.modules, "credo_logger_not_installed", raising=False)
    done = mod.prepare_imports(tmp_path, ["ippo"], "installed")
    assert done["stubbed"] == {"credo_logger_not_installed": "logging"}
    assert sys.modules["credo_logger_not_installed"].__credo_stub__
    sys.modules.pop("credo_logger_not_installed")
    script.write_text("import credo_buffer_not_installed\n")
    with pytest.raises(SystemExit, match="credo_buffer_not_installed, not installed: pip install"):
        mod.prepare_imports(tmp_path, ["ippo"], "installed")

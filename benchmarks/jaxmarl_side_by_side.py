"""credo against JaxMARL's own baseline scripts, side by side in one run: QMIX and IPPO on MPE.

Issue 17's targets: credo's QMIX at JaxMARL's ``ql_rnn_mpe`` setting and credo's IPPO at its
``ippo_ff_mpe`` setting each at least 1.5x JaxMARL's env steps per second, measured in one process,
alternating (credo, JaxMARL, credo, JaxMARL, ...) so that both sides see the same machine and load,
and the ratio is never a division by a number from another day.

How to run it. JaxMARL is not part of credo and is never copied into it: fetch it separately, and
point the benchmark to the checkout, whose scripts it imports at run time (``importlib``) and whose
unmodified ``make_train(config)`` it calls::

    git clone https://github.com/FLAIROx/JaxMARL /path/to/JaxMARL
    pip install -e ".[bench]"          # or: make bench (distrax, flashbax, omegaconf, hydra-core)
    python benchmarks/jaxmarl_side_by_side.py --jaxmarl-dir /path/to/JaxMARL
    python benchmarks/jaxmarl_side_by_side.py --jaxmarl-dir /path/to/JaxMARL --only qmix --pairs 2 --steps 2e5 --no-write

It writes ``benchmarks/results/jaxmarl_side_by_side.{json,md}``.

What each side runs (one seed, compile excluded and reported separately):

* JaxMARL: ``baselines/QLearning/qmix_rnn.py`` with ``config/config.yaml`` + ``config/alg/ql_rnn_mpe.yaml``
  and ``baselines/IPPO/ippo_ff_mpe.py`` with ``config/ippo_ff_mpe.yaml``, loaded with OmegaConf as
  hydra does. Changed: ``TOTAL_TIMESTEPS`` (``--steps``, a measurement size), ``NUM_SEEDS`` 1 and, for
  QMIX, ``TEST_INTERVAL`` so that the greedy tests keep the cadence they have in the YAML's full run
  (one every ``int(NUM_UPDATES_full * TEST_INTERVAL)`` updates: the YAML's fraction of a short
  budget would test 20 times per run whatever its length). Everything else is as the YAML says.
  ``jax.jit(make_train(config))`` is compiled ahead of time (``.lower(key).compile()``) and timed
  once per pair (``block_until_ready``). Env steps: ``NUM_UPDATES x NUM_STEPS x NUM_ENVS``,
  training only.
* credo: ``train_throughput.measure`` at its ``jaxmarl`` setting (QMIX) and ``ppo_throughput``'s
  ``jaxmarl-ippo`` case (IPPO): the engine's jitted training chunks for ``--seconds``; its
  evaluation is not part of a chunk.

Where the matched settings differ from JaxMARL's YAMLs is printed and written with the results.
The modules the scripts import at top level must be installed; only ``hydra`` (its decorator on
``main()``) and ``wandb`` (logging) are replaced by stubs, and only when they are not importable;
the output says which were. The QMIX profile (``--no-profile`` skips it) splits an iteration of credo's
QMIX into collection and update (``phase_profile.py``) against JaxMARL's, timed through its
unmodified ``make_train`` with learning switched off by config, and each side's bare env rollout.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count() or 1}")

from _common import RESULTS, machine, now  # noqa: E402

CLONE = "git clone https://github.com/FLAIROx/JaxMARL"
TARGET = 1.5
ENV = "mpe:simple_spread"
# JaxMARL's scripts and the YAMLs hydra composes for them (later files win; QMIX's alg file is the
# `alg` group that qmix_rnn.py's single_run() merges over the top-level config).
CASES = {
    "qmix": dict(
        script="baselines/QLearning/qmix_rnn.py",
        config="baselines/QLearning/config/config.yaml",
        alg="baselines/QLearning/config/alg/ql_rnn_mpe.yaml",
        default_steps=312_000,  # 1500 updates of 8 envs x 26 steps
    ),
    "ippo": dict(
        script="baselines/IPPO/ippo_ff_mpe.py",
        config="baselines/IPPO/config/ippo_ff_mpe.yaml",
        alg=None,
        default_steps=524_288,  # 256 updates of 16 envs x 128 steps
    ),
}
# Imported by the scripts for their main() only: replaced by a stub when not installed.
STUBBABLE = {"hydra": "hydra's @hydra.main decorator on main()", "wandb": "wandb.init/log (logging)"}
# Env steps of each of the profile's JaxMARL runs.
PROFILE_STEPS = 52_000  # 250 updates of 8 envs x 26 steps


def fail(msg: str):
    """Exits with one line on stderr."""
    sys.exit(f"jaxmarl_side_by_side: error: {msg}")


def check_checkout(path: str, cases) -> Path:
    """The JaxMARL checkout, with the scripts and YAMLs of ``cases``, or a one-line error."""
    root = Path(path).expanduser()
    if not root.is_dir():
        fail(f"--jaxmarl-dir {path}: no such directory (fetch JaxMARL first: {CLONE})")
    if not (root / "baselines").is_dir():
        fail(f"--jaxmarl-dir {path}: no baselines/ folder, not a JaxMARL checkout ({CLONE})")
    for case in cases:
        for key in ("script", "config", "alg"):
            rel = CASES[case][key]
            if rel and not (root / rel).is_file():
                fail(
                    f"--jaxmarl-dir {path}: {rel} is missing (JaxMARL moved it? this benchmark knows {CLONE} as of c793d09)"
                )
    return root.resolve()


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown (not a git checkout)"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not found)"


def top_level_imports(script: Path) -> set[str]:
    """Top-level module names the script imports (the modules its import needs)."""
    names = set()
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _stub(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__credo_stub__ = True
    if name == "hydra":
        mod.main = lambda *a, **k: lambda f: f
    else:  # wandb
        mod.init = mod.log = mod.finish = lambda *a, **k: None
    return mod


def prepare_imports(root: Path, cases, jaxmarl_source: str) -> dict:
    """Puts the checkout's jaxmarl first if asked, checks the scripts' imports, stubs hydra/wandb
    only when missing. Returns what was done, for the results."""
    if jaxmarl_source == "checkout":
        sys.path.insert(0, str(root))
    needed = sorted(
        set().union(*(top_level_imports(root / CASES[c]["script"]) for c in cases)) - sys.stdlib_module_names
    )
    missing, stubbed = [], {}
    for name in needed:
        if importlib.util.find_spec(name) is not None:
            continue
        if name in STUBBABLE:
            sys.modules[name] = _stub(name)
            stubbed[name] = STUBBABLE[name]
        else:
            missing.append(name)
    if missing:
        hint = "pip install -e '.[bench]' (or make bench)"
        if "jaxmarl" in missing:
            hint += "; or --jaxmarl-source checkout to import the checkout's own jaxmarl"
        fail(f"JaxMARL's scripts import {', '.join(missing)}, not installed: {hint}")
    versions = {}
    for name in needed:
        if name in stubbed:
            versions[name] = "stub"
            continue
        try:
            from importlib.metadata import version

            dist = {"hydra": "hydra-core", "wandb": "wandb"}.get(name, name)
            versions[name] = version(dist)
        except Exception:
            versions[name] = "?"
    return dict(modules=versions, stubbed=stubbed)


def jaxmarl_package(root: Path) -> dict:
    """Which jaxmarl the JaxMARL side (and credo's MPE) imported, and whether its MPE env and the
    baselines' wrappers are the checkout's code byte for byte."""
    import jaxmarl

    pkg = Path(jaxmarl.__file__).parent
    same, differ = 0, []
    for rel in [
        "wrappers/baselines.py",
        *sorted(
            p.relative_to(root / "jaxmarl").as_posix()
            for p in (root / "jaxmarl/environments/mpe").glob("*.py")
        ),
    ]:
        a, b = pkg / rel, root / "jaxmarl" / rel
        if (
            a.is_file()
            and b.is_file()
            and hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
        ):
            same += 1
        else:
            differ.append(rel)
    from_checkout = pkg.resolve().is_relative_to(root)
    return dict(
        path=str(pkg),
        version=getattr(jaxmarl, "__version__", "?"),
        source="the checkout" if from_checkout else "the installed package",
        mpe_and_wrappers_identical_to_checkout=not differ,
        files_compared=same + len(differ),
        files_differing=differ,
    )


def load_script(root: Path, case: str):
    rel = CASES[case]["script"]
    spec = importlib.util.spec_from_file_location(f"jaxmarl_baseline_{Path(rel).stem}", root / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def jaxmarl_config(root: Path, case: str, steps: int, **changes) -> tuple[dict, dict, dict]:
    """JaxMARL's config for ``case`` from its YAMLs (as hydra composes them), the measurement's
    changes applied. Returns (config, the changes as {key: (yaml value, used value)}, the YAML's)."""
    from omegaconf import OmegaConf

    c = CASES[case]
    cfg = OmegaConf.to_container(OmegaConf.load(root / c["config"]))
    if c["alg"]:
        cfg["alg"] = OmegaConf.to_container(OmegaConf.load(root / c["alg"]))
        cfg = {**cfg, **cfg["alg"]}  # what qmix_rnn.py's single_run() does
    full = copy.deepcopy(cfg)
    cfg["TOTAL_TIMESTEPS"] = steps
    cfg["NUM_SEEDS"] = 1
    if case == "qmix" and cfg.get("TEST_DURING_TRAINING", True):
        # The full run's cadence of greedy tests (every int(NUM_UPDATES * TEST_INTERVAL) updates).
        per = lambda c: int(c["TOTAL_TIMESTEPS"]) // c["NUM_STEPS"] // c["NUM_ENVS"]  # noqa: E731
        every = int(per(full) * full["TEST_INTERVAL"])
        cfg["TEST_INTERVAL"] = (every + 0.5) / per(cfg)  # int(NUM_UPDATES * TEST_INTERVAL) == every
    cfg.update(changes)
    diff = {k: (full.get(k), v) for k, v in cfg.items() if k != "alg" and full.get(k) != v}
    return cfg, diff, full


def env_steps(cfg: dict) -> int:
    return (
        int(cfg["TOTAL_TIMESTEPS"])
        // cfg["NUM_STEPS"]
        // cfg["NUM_ENVS"]
        * cfg["NUM_STEPS"]
        * cfg["NUM_ENVS"]
    )


class JaxMARLRun:
    """JaxMARL's ``make_train`` for one case, compiled ahead of time; ``run(i)`` times one call."""

    def __init__(self, mod, case: str, cfg: dict):
        import jax

        self.cfg = cfg
        if case == "qmix":
            env, _ = mod.env_from_config(copy.deepcopy(cfg))  # the script's own env builder
            train = mod.make_train(copy.deepcopy(cfg), env)
        else:
            train = mod.make_train(copy.deepcopy(cfg))
        t0 = time.perf_counter()
        # One seed, one key: jit(train). (The scripts' main() vmap train over NUM_SEEDS keys; over one,
        # that ran as fast for QMIX and about 5% slower for IPPO here.)
        self.compiled = jax.jit(train).lower(jax.random.PRNGKey(cfg["SEED"])).compile()
        self.compile_s = time.perf_counter() - t0
        self.steps = env_steps(cfg)
        self.updates = int(cfg["TOTAL_TIMESTEPS"]) // cfg["NUM_STEPS"] // cfg["NUM_ENVS"]
        # QMIX learns on update k (1, 2, ...) once k * NUM_STEPS * NUM_ENVS > LEARNING_STARTS and the
        # buffer holds BUFFER_BATCH_SIZE rollouts per env (qmix_rnn.py's is_learn_time).
        per = cfg["NUM_STEPS"] * cfg["NUM_ENVS"]
        first = max(int(cfg.get("LEARNING_STARTS", 0)) // per + 1, int(cfg.get("BUFFER_BATCH_SIZE", 1)))
        self.learning_updates = max(self.updates - first + 1, 0) if case == "qmix" else self.updates
        if case == "qmix" and cfg.get("TEST_DURING_TRAINING", True):
            every = int(self.updates * cfg["TEST_INTERVAL"])
            self.tests = 1 + (self.updates // every if every else 0)  # one before training
        else:
            self.tests = 0

    def run(self, i: int = 0) -> float:
        """Seconds of one whole training run."""
        import jax

        key = jax.random.PRNGKey(self.cfg["SEED"] + i)
        t0 = time.perf_counter()
        jax.block_until_ready(self.compiled(key))
        return time.perf_counter() - t0


def credo_case(case: str) -> tuple[str, str, str, dict]:
    """(setting name, algo, env, settings) of credo's side, from the throughput benchmarks."""
    from ppo_throughput import CASES as PPO_CASES
    from train_throughput import SETTINGS

    if case == "qmix":
        return "jaxmarl", "qmix", ENV, dict(SETTINGS["jaxmarl"])
    name, algo, env, settings = next(c for c in PPO_CASES if c[0] == "jaxmarl-ippo")
    return name, algo, env, dict(settings)


def credo_config(case: str):
    """credo's config at the matched setting, built as ``train_throughput.measure`` builds it."""
    from credo.algos import PPOConfig, config_class

    name, algo, env, settings = credo_case(case)
    cls = config_class(algo)
    if cls is not PPOConfig:
        settings.setdefault("mixer", algo)
    return cls(algo=algo, env=env, seeds=1, **settings)


def credo_measure(case: str, seconds: float) -> dict:
    from train_throughput import measure

    name, algo, env, settings = credo_case(case)
    if case == "qmix":
        return measure(name, env, 1, seconds)
    return measure(name, env, 1, seconds, algo=algo, extra=settings)


def compare_settings(case: str, jm: dict) -> list[dict]:
    """Rows (what, JaxMARL, credo, same) of the settings that bear on the comparison."""
    import credo.envs as envs

    cfg = credo_config(case)
    limit = envs.make(cfg.env, **cfg.env_kwargs).spec.episode_limit
    code = "(in the script's code)"
    if case == "qmix":
        rows = [
            ("env", jm["ENV_NAME"], cfg.env, True),
            ("parallel envs", jm["NUM_ENVS"], cfg.n_envs),
            (
                "steps per env per update",
                f"{jm['NUM_STEPS']} (rollouts cross episode ends, the env auto-resets)",
                f"{limit} (whole episodes)",
                jm["NUM_STEPS"] == limit,
            ),
            (
                "replay buffer",
                f"{jm['BUFFER_SIZE']} rollouts of {jm['NUM_STEPS']} steps (flashbax)",
                f"{cfg.buffer_size} episodes",
                jm["BUFFER_SIZE"] == cfg.buffer_size,
            ),
            (
                "batch (sampled sequences per gradient step)",
                jm["BUFFER_BATCH_SIZE"],
                cfg.batch_size,
            ),
            ("gradient steps per update", jm["NUM_EPOCHS"], cfg.updates_per_iteration),
            ("GRU width", jm["HIDDEN_SIZE"], cfg.hidden_dim),
            ("mixer embedding", jm["MIXER_EMBEDDING_DIM"], cfg.mixing_embed_dim),
            ("hypernetwork hidden width", jm["MIXER_HYPERNET_HIDDEN_DIM"], cfg.hypernet_embed),
            (
                "target update",
                f"hard (TAU {jm['TAU']}) every {jm['TARGET_UPDATE_INTERVAL']} updates",
                f"{cfg.target_update} every {cfg.target_update_interval} {cfg.target_update_unit}",
                jm["TAU"] == 1.0
                and cfg.target_update == "hard"
                and cfg.target_update_unit == "updates"
                and cfg.target_update_interval == jm["TARGET_UPDATE_INTERVAL"],
            ),
            (
                "targets",
                "one-step double Q " + code,
                f"td_lambda {cfg.td_lambda}, double_q {cfg.double_q}",
                cfg.td_lambda == 0 and cfg.double_q,
            ),
            (
                "agent id in observations",
                "one-hot (CTRolloutManager)",
                cfg.obs_agent_id,
                bool(cfg.obs_agent_id),
            ),
            (
                "optimiser",
                f"RAdam {code}, lr {jm['LR']}" + (" decaying linearly" if jm.get("LR_LINEAR_DECAY") else ""),
                f"{cfg.optimizer}, lr {cfg.lr}",
                False,
            ),
            ("gradient clip (global norm)", jm["MAX_GRAD_NORM"], cfg.grad_clip),
            ("gamma", jm["GAMMA"], cfg.gamma),
            ("reward standardisation", "none", cfg.standardise_rewards, not cfg.standardise_rewards),
            (
                "epsilon decay",
                f"over {jm['EPS_DECAY']} of the updates",
                f"over {cfg.epsilon_anneal_steps} env steps",
                False,
            ),
            (
                "learning starts",
                f"after {jm['LEARNING_STARTS']} env steps",
                f"once {cfg.batch_size} episodes are stored",
                False,
            ),
            (
                "greedy tests during training",
                f"{jm['TEST_NUM_ENVS']} envs x {jm['TEST_NUM_STEPS']} steps, {int(jm['TEST_INTERVAL'] * 100)}% of the run apart (timed)",
                "not in the timed chunks (evaluation runs between chunks)",
                False,
            ),
        ]
    else:
        rows = [
            ("env", jm["ENV_NAME"], cfg.env, True),
            (
                "env steps per update",
                f"{jm['NUM_ENVS'] * jm['NUM_STEPS']} ({jm['NUM_ENVS']} envs x {jm['NUM_STEPS']} steps, across episode ends)",
                f"{cfg.n_envs * limit} ({cfg.n_envs} envs x {limit}-step episodes)",
                jm["NUM_ENVS"] * jm["NUM_STEPS"] == cfg.n_envs * limit,
            ),
            ("epochs", jm["UPDATE_EPOCHS"], cfg.epochs),
            ("minibatches", jm["NUM_MINIBATCHES"], cfg.minibatches),
            (
                "networks",
                f"64-64 MLP actor and critic, {jm['ACTIVATION']} {code}",
                f"{cfg.hidden_dim}-{cfg.hidden_dim} MLP actor and critic, relu, rnn {cfg.use_rnn}",
                False,
            ),
            ("agent id in observations", "none " + code, cfg.obs_agent_id, not cfg.obs_agent_id),
            (
                "lr",
                f"{jm['LR']}" + (" annealed linearly" if jm.get("ANNEAL_LR") else ""),
                f"{cfg.lr} constant",
                jm["LR"] == cfg.lr and not jm.get("ANNEAL_LR"),
            ),
            ("clip eps", jm["CLIP_EPS"], cfg.clip_eps),
            (
                "value loss clipped",
                f"yes, by CLIP_EPS {code}",
                cfg.clip_value_loss,
                bool(cfg.clip_value_loss),
            ),
            ("entropy coef", jm["ENT_COEF"], cfg.ent_coef),
            ("value coef", jm["VF_COEF"], cfg.vf_coef),
            ("max grad norm", jm["MAX_GRAD_NORM"], cfg.max_grad_norm),
            (
                "gamma / GAE lambda",
                f"{jm['GAMMA']} / {jm['GAE_LAMBDA']}",
                f"{cfg.gamma} / {cfg.gae_lambda}",
                (jm["GAMMA"], jm["GAE_LAMBDA"]) == (cfg.gamma, cfg.gae_lambda),
            ),
            (
                "advantage standardisation",
                "per minibatch " + code,
                "per batch" if cfg.standardise_advantages else "none",
                False,
            ),
            ("value normalisation", "none", cfg.value_norm, not cfg.value_norm),
            (
                "per-update logging",
                f"io_callback to wandb.log every update {code}",
                "none inside the chunk",
                False,
            ),
        ]
    # A row without a fourth item is "same" when the two values are equal.
    rows = [r if len(r) == 4 else (*r, r[1] == r[2]) for r in rows]
    return [dict(what=w, jaxmarl=str(a), credo=str(b), same=bool(s)) for w, a, b, s in rows]


def measure_pairs(root: Path, mod, case: str, pairs: int, steps: int, seconds: float) -> dict:
    cfg, changes, yaml_cfg = jaxmarl_config(root, case, steps)
    print(f"[{case}] compiling JaxMARL's make_train ({env_steps(cfg):,} env steps per run) ...", flush=True)
    jm = JaxMARLRun(mod, case, cfg)
    print(f"[{case}] JaxMARL compiled in {jm.compile_s:.1f}s", flush=True)
    rows = []
    for i in range(pairs):
        load0 = os.getloadavg()[0]
        c = credo_measure(case, seconds)
        t = jm.run(i)
        j_rate = jm.steps / t
        row = dict(
            pair=i + 1,
            credo_env_steps_per_s=c["env_steps_per_s"],
            credo_compile_s=c["compile_s"],
            jaxmarl_env_steps_per_s=j_rate,
            jaxmarl_seconds=t,
            ratio=c["env_steps_per_s"] / j_rate,
            load_average_1m=[load0, os.getloadavg()[0]],
        )
        rows.append(row)
        print(
            f"[{case}] pair {i + 1}: credo {row['credo_env_steps_per_s']:9,.0f}  JaxMARL {j_rate:9,.0f} env steps/s"
            f"  ratio {row['ratio']:.2f}x  (load {load0:.2f})",
            flush=True,
        )
    credo_med = statistics.median(r["credo_env_steps_per_s"] for r in rows)
    jm_med = statistics.median(r["jaxmarl_env_steps_per_s"] for r in rows)
    ratio_med = statistics.median(r["ratio"] for r in rows)
    return dict(
        case=case,
        credo_setting=credo_case(case)[0],
        jaxmarl_script=CASES[case]["script"],
        jaxmarl_config_changes={k: list(v) for k, v in changes.items()},
        jaxmarl_env_steps_per_run=jm.steps,
        jaxmarl_updates_per_run=jm.updates,
        jaxmarl_learning_updates_per_run=jm.learning_updates,
        jaxmarl_greedy_tests_per_run=jm.tests,
        jaxmarl_test_every_updates=int(jm.updates * cfg.get("TEST_INTERVAL", 0)),
        jaxmarl_compile_s=jm.compile_s,
        credo_seconds_per_measurement=seconds,
        pairs=rows,
        credo_median=credo_med,
        jaxmarl_median=jm_med,
        ratio_of_medians=credo_med / jm_med,
        median_ratio=ratio_med,
        target=TARGET,
        met=ratio_med >= TARGET,
        settings=compare_settings(case, yaml_cfg),
    )


def profile_qmix(root: Path, mod, seconds: float, rounds: int, steps: int) -> dict:
    """ms per iteration of 8 envs: credo's collect and update phases (phase_profile.py) and env
    rollout, against JaxMARL's make_train without tests, without learning, and its env rollout."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from phase_profile import phases, time_call

    import credo.envs as envs
    from credo.envs.rollout import make_random_rollout

    name, algo, env_key, settings = credo_case("qmix")
    print("[profile] credo phases (phase_profile.phases) ...", flush=True)
    fns, tr = phases(algo, env_key, settings)
    credo_env = envs.make(env_key)
    rollout = make_random_rollout(credo_env, tr.cfg.n_envs, credo_env.spec.episode_limit)
    keys = iter(jax.random.split(jax.random.key(3), 100_000))
    fns["env rollout"] = lambda: jax.block_until_ready(rollout(next(keys)))

    # JaxMARL: its env rollout alone, through the wrapper its QMIX uses (random actions, a reset
    # and NUM_STEPS steps of NUM_ENVS envs, as each of its updates does).
    cfg, _, _ = jaxmarl_config(root, "qmix", steps, TEST_DURING_TRAINING=False)
    jm_env, _ = mod.env_from_config(copy.deepcopy(cfg))
    wrapped = mod.CTRolloutManager(jm_env, batch_size=cfg["NUM_ENVS"])

    @jax.jit
    def jm_rollout(key):
        k_reset, k_run = jax.random.split(key)
        obs, state = wrapped.batch_reset(k_reset)

        def step(carry, k):
            state, checksum = carry
            k_a, k_s = jax.random.split(k)
            ks = jax.random.split(k_a, jm_env.num_agents)
            actions = {a: wrapped.batch_sample(ks[i], a) for i, a in enumerate(jm_env.agents)}
            obs, state, rew, dones, _ = wrapped.batch_step(k_s, state, actions)
            return (state, checksum + obs["__all__"].sum() + rew["__all__"].sum()), None

        (_, checksum), _ = jax.lax.scan(
            step, (state, jnp.float32(0)), jax.random.split(k_run, cfg["NUM_STEPS"])
        )
        return checksum

    jm_keys = iter(jax.random.split(jax.random.key(4), 100_000))
    jm_fns = {"env rollout": lambda: jax.block_until_ready(jm_rollout(next(jm_keys)))}
    print("[profile] compiling JaxMARL's make_train without tests, and without learning ...", flush=True)
    whole = JaxMARLRun(mod, "qmix", cfg)
    no_learn_cfg = dict(cfg, LEARNING_STARTS=int(cfg["TOTAL_TIMESTEPS"]) + 1)
    no_learn = JaxMARLRun(mod, "qmix", no_learn_cfg)
    credo_t = {k: [] for k in fns}
    jm_t = {"env rollout": [], "whole": [], "no learning": [], "update": []}
    for r in range(rounds):
        for k, fn in fns.items():
            credo_t[k].append(time_call(fn, seconds))
        jm_t["env rollout"].append(time_call(jm_fns["env rollout"], seconds))
        t_whole, t_none = whole.run(r), no_learn.run(r)
        jm_t["whole"].append(t_whole / whole.updates)
        jm_t["no learning"].append(t_none / no_learn.updates)
        jm_t["update"].append((t_whole - t_none) / whole.learning_updates)
    med = lambda xs: float(np.median(xs)) * 1e3  # noqa: E731
    c = {k: med(v) for k, v in credo_t.items()}
    j = {k: med(v) for k, v in jm_t.items()}
    rows = [
        dict(
            phase="collection",
            credo_ms=c["collect"],
            credo_what=f"collect: {tr.cfg.n_envs} episodes of {credo_env.spec.episode_limit} steps with the GRU policy (phase_profile)",
            jaxmarl_ms=j["no learning"],
            jaxmarl_what=f"make_train with LEARNING_STARTS > TOTAL_TIMESTEPS, no tests, per update: {cfg['NUM_ENVS']} envs x {cfg['NUM_STEPS']} steps with the GRU policy + buffer add + target/metric bookkeeping",
        ),
        dict(
            phase="update",
            credo_ms=c["update"],
            credo_what=f"update: one gradient step on {tr.cfg.batch_size} sampled episodes + target update (phase_profile)",
            jaxmarl_ms=j["update"],
            jaxmarl_what=f"make_train without tests minus make_train without learning, over the {whole.learning_updates} of {whole.updates} updates that learn (sample + one gradient step)",
        ),
        dict(
            phase="iteration",
            credo_ms=c["collect"] + tr.cfg.updates_per_iteration * c["update"],
            credo_what="collect + update",
            jaxmarl_ms=j["no learning"] + j["update"],
            jaxmarl_what=f"collection + update (make_train without tests, all {whole.updates} updates: {j['whole']:.2f} ms each, {whole.updates - whole.learning_updates} of them not learning)",
        ),
        dict(
            phase="env rollout alone",
            credo_ms=c["env rollout"],
            credo_what=f"random actions, {tr.cfg.n_envs} envs x {credo_env.spec.episode_limit} steps (make_random_rollout)",
            jaxmarl_ms=j["env rollout"],
            jaxmarl_what=f"random actions, reset + {cfg['NUM_ENVS']} envs x {cfg['NUM_STEPS']} steps (CTRolloutManager.batch_step)",
        ),
    ]
    for r in rows:
        r["credo_over_jaxmarl_time"] = (
            r["credo_ms"] / r["jaxmarl_ms"] if r["jaxmarl_ms"] > 0 else float("nan")
        )
    return dict(
        rounds=rounds,
        seconds_per_phase=seconds,
        jaxmarl_env_steps_per_run=whole.steps,
        jaxmarl_compile_s={"whole": whole.compile_s, "no learning": no_learn.compile_s},
        rows=rows,
    )


def write(doc: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "jaxmarl_side_by_side.json").write_text(json.dumps(doc, indent=2) + "\n")
    m = doc["machine"]
    jp = doc["jaxmarl_package"]
    lines = [
        f"# credo vs JaxMARL, side by side ({doc['date'][:10]}, {m['cpu']}, {m['cores']} cores as {m['jax_devices']} JAX devices, jax {m['jax']})",
        "",
        "How to run: JaxMARL is fetched separately and never copied into credo; the benchmark imports the "
        "checkout's scripts and calls their unmodified `make_train`:",
        "",
        "```",
        CLONE + " /path/to/JaxMARL",
        "make bench    # or: pip install -e '.[bench]' (distrax, flashbax, omegaconf, hydra-core)",
        "python benchmarks/jaxmarl_side_by_side.py --jaxmarl-dir /path/to/JaxMARL",
        "```",
        "",
        f"Produced by `{doc['command']}`. JaxMARL commit `{doc['jaxmarl_commit']}`; its scripts ran on jaxmarl "
        f"{jp['version']} ({jp['source']}, `{jp['path']}`), whose MPE env and baseline wrappers are "
        + (
            "identical to the checkout's"
            if jp["mpe_and_wrappers_identical_to_checkout"]
            else f"not the checkout's ({', '.join(jp['files_differing'])})"
        )
        + "; credo's `mpe:simple_spread` wraps the same package. "
        f"Modules: {', '.join(f'{k} {v}' for k, v in doc['imports']['modules'].items())}."
        + (
            f" Stubbed (not installed): {', '.join(f'{k} ({v})' for k, v in doc['imports']['stubbed'].items())}."
            if doc["imports"]["stubbed"]
            else " Nothing stubbed."
        ),
        "",
        "One seed each, compile excluded (reported separately), env steps per second of training. Each pair is a "
        "credo measurement (`train_throughput.measure`: the engine's jitted chunks for "
        f"{doc['seconds']:g} s; its trainer is built anew each pair, compiled cold in pair 1 and loaded from this run's "
        "compilation cache after) followed by one run of JaxMARL's `jax.jit(make_train(config))`, compiled once "
        "ahead of time (`block_until_ready`); "
        f"load average (1 min) at the start {doc['load_average_start'][0]:.2f}, at the end {doc['load_average_end'][0]:.2f}.",
        "",
        "| case | pair | credo env steps/s | JaxMARL env steps/s | credo / JaxMARL | load (1 min) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        for p in r["pairs"]:
            lines.append(
                f"| {r['case']} | {p['pair']} | {p['credo_env_steps_per_s']:,.0f} | {p['jaxmarl_env_steps_per_s']:,.0f} | {p['ratio']:.2f}x | {p['load_average_1m'][0]:.2f} |"
            )
    lines += [
        "",
        "| case | credo median | JaxMARL median | median ratio | target | met | JaxMARL run | compile (s) credo (pair 1) / JaxMARL |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for r in doc["results"]:
        comp = r["pairs"][0]["credo_compile_s"]  # cold; later pairs load it from the run's cache
        lines.append(
            f"| {r['case']} (credo `{r['credo_setting']}` vs `{r['jaxmarl_script']}`) | {r['credo_median']:,.0f} | {r['jaxmarl_median']:,.0f} | "
            f"{r['median_ratio']:.3f}x | {r['target']}x | {'yes' if r['met'] else 'no'} | "
            f"{r['jaxmarl_env_steps_per_run']:,} env steps, {r['jaxmarl_updates_per_run']} updates"
            + (
                f" ({r['jaxmarl_learning_updates_per_run']} learning), greedy tests: {r['jaxmarl_greedy_tests_per_run']}"
                if r["case"] == "qmix"
                else ""
            )
            + f" | {comp:.1f} / {r['jaxmarl_compile_s']:.1f} |"
        )
    for r in doc["results"]:
        ch = ", ".join(
            f"{k} {a} -> {b:.4g}" if isinstance(b, float) else f"{k} {a} -> {b}"
            for k, (a, b) in r["jaxmarl_config_changes"].items()
        )
        lines += [
            "",
            f"## {r['case']}: the matched settings against JaxMARL's YAML",
            "",
            f"JaxMARL's config as its YAML says, except: {ch}."
            + (
                " (TEST_INTERVAL: the full run's cadence, a greedy test of 512 envs every "
                f"{r['jaxmarl_test_every_updates']} updates, plus one before training; the YAML's 5% of a "
                "measurement-sized run would test 20 times per run.) JaxMARL's rate counts its updates "
                "before LEARNING_STARTS, which collect without learning; credo's timed chunks all learn."
                if r["case"] == "qmix"
                else ""
            ),
            "",
            "| setting | JaxMARL | credo | same |",
            "|---|---|---|---|",
        ]
        for s in r["settings"]:
            lines.append(
                f"| {s['what']} | {s['jaxmarl']} | {s['credo']} | {'yes' if s['same'] else '**no**'} |"
            )
    if doc.get("profile"):
        pr = doc["profile"]
        lines += [
            "",
            "## Profile: credo's QMIX against JaxMARL's, ms per iteration (8 envs)",
            "",
            f"Medians of {pr['rounds']} rounds. credo: `phase_profile.phases` at the `jaxmarl` setting, each phase "
            f"jitted alone, {pr['seconds_per_phase']:g} s per phase and round. JaxMARL: whole `make_train` runs of "
            f"{pr['jaxmarl_env_steps_per_run']:,} env steps with `TEST_DURING_TRAINING: False`, divided by their updates; "
            "its collection is the same run with learning switched off by config (`LEARNING_STARTS` past the budget), "
            "its update the difference. Env rollouts: random actions, no network.",
            "",
            "| phase | credo ms | JaxMARL ms | credo / JaxMARL time | credo: what | JaxMARL: what |",
            "|---|---:|---:|---:|---|---|",
        ]
        for r in pr["rows"]:
            lines.append(
                f"| {r['phase']} | {r['credo_ms']:.2f} | {r['jaxmarl_ms']:.2f} | {r['credo_over_jaxmarl_time']:.2f} | {r['credo_what']} | {r['jaxmarl_what']} |"
            )
    (RESULTS / "jaxmarl_side_by_side.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'jaxmarl_side_by_side.json'} and .md")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jaxmarl-dir", required=True, help=f"a JaxMARL checkout ({CLONE})")
    p.add_argument("--pairs", type=int, default=4, help="credo/JaxMARL measurement pairs per case")
    p.add_argument(
        "--steps",
        type=float,
        default=None,
        help="env steps of each JaxMARL run (default: QMIX 312,000, IPPO 524,288)",
    )
    p.add_argument("--seconds", type=float, default=6.0, help="timed seconds of each credo measurement")
    p.add_argument("--only", choices=sorted(CASES), help="one case")
    p.add_argument(
        "--jaxmarl-source",
        choices=["installed", "checkout"],
        default="installed",
        help="which jaxmarl package the scripts (and credo's MPE) import: the installed one (credo's "
        "jaxmarl extra, 0.2.0) or the checkout's own, put first on sys.path",
    )
    p.add_argument("--no-profile", action="store_true", help="skip the QMIX phase profile")
    p.add_argument("--profile-rounds", type=int, default=3)
    p.add_argument(
        "--profile-seconds", type=float, default=1.5, help="timed seconds per credo phase and round"
    )
    p.add_argument(
        "--profile-steps", type=float, default=PROFILE_STEPS, help="env steps of the profile's JaxMARL runs"
    )
    p.add_argument("--no-write", action="store_true", help="print only, write no results files")
    args = p.parse_args(argv)
    cases = [args.only] if args.only else list(CASES)
    root = check_checkout(args.jaxmarl_dir, cases)
    imports = prepare_imports(root, cases, args.jaxmarl_source)
    for name, why in imports["stubbed"].items():
        print(f"note: {name} is not installed; stubbed ({why})", flush=True)
    load_start = os.getloadavg()
    import tempfile

    import jax

    # measure() builds and compiles credo's trainer anew for each pair: a compilation cache of this run
    # alone makes pairs 2.. load it (pair 1 compiles cold, as does JaxMARL's one compile).
    cache = tempfile.TemporaryDirectory(prefix="credo-jaxmarl-sbs-")
    jax.config.update("jax_compilation_cache_dir", cache.name)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    mods = {c: load_script(root, c) for c in cases}
    if "wandb" not in imports["stubbed"] and "ippo" in cases:
        import wandb

        # ippo_ff_mpe.py logs every update through wandb.log; its main() calls wandb.init with
        # WANDB_MODE (disabled in the YAML), which makes wandb.log a no-op: as here.
        wandb.init(mode="disabled")
    jp = jaxmarl_package(root)
    print(
        f"JaxMARL commit {git_commit(root)}; jaxmarl {jp['version']} from {jp['source']} ({jp['path']})",
        flush=True,
    )
    results = []
    for case in cases:
        steps = int(args.steps) if args.steps else CASES[case]["default_steps"]
        r = measure_pairs(root, mods[case], case, args.pairs, steps, args.seconds)
        results.append(r)
        print(
            f"[{case}] medians: credo {r['credo_median']:,.0f}, JaxMARL {r['jaxmarl_median']:,.0f} env steps/s; "
            f"median ratio {r['median_ratio']:.3f}x (target {TARGET}x: {'met' if r['met'] else 'not met'})",
            flush=True,
        )
        for s in r["settings"]:
            if not s["same"]:
                print(f"[{case}]   differs: {s['what']}: JaxMARL {s['jaxmarl']}; credo {s['credo']}")
    profile = None
    if "qmix" in cases and not args.no_profile:
        profile = profile_qmix(
            root, mods["qmix"], args.profile_seconds, args.profile_rounds, int(args.profile_steps)
        )
        print("[profile] ms per iteration:  credo   JaxMARL")
        for r in profile["rows"]:
            print(f"[profile] {r['phase']:18s} {r['credo_ms']:7.2f} {r['jaxmarl_ms']:8.2f}")
    doc = dict(
        benchmark="jaxmarl_side_by_side",
        date=now(),
        command="python benchmarks/jaxmarl_side_by_side.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        machine=machine(),
        load_average_start=list(load_start),
        load_average_end=list(os.getloadavg()),
        jaxmarl_dir=str(root),
        jaxmarl_commit=git_commit(root),
        jaxmarl_package=jp,
        imports=imports,
        seconds=args.seconds,
        results=results,
        profile=profile,
    )
    if not args.no_write:
        write(doc)


if __name__ == "__main__":
    main()

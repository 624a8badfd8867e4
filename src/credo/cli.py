"""The ``credo`` command line: train, eval, report, list, rollout, demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEMO_ENVS = [
    "matrix:me-igm",
    "matrix:climbing",
    "lbf:Foraging-8x8-2p-3f-v3",
    "lbf:Foraging-2s-8x8-2p-2f-coop-v3",
    "lbf:Foraging-10x10-3p-3f-v3",
    "mpe:simple_spread",
    "smax:3m",
    "smax:smacv2_5_units",
]


def _envs():
    import credo.envs as envs

    return envs


def _algorithm_docs() -> dict[str, str]:
    """The registered algorithms' one-line docs, plugins' included (credo.algos.registry)."""
    from credo.algos import algorithms

    return {k: a.doc for k, a in algorithms().items()}


def __getattr__(name: str):
    if name == "ALGORITHMS":  # the name this module had for them, for code that imports it
        return _algorithm_docs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def config_root():
    """The package's YAML defaults: ``configs/algos``, ``configs/envs`` and ``configs/tuned``."""
    return Path(__file__).parent / "configs"


def config_files(algo: str, env_key: str) -> list:
    """The YAML layers of a run: the algorithm's, the env family's, then the pair's, later winning.

    Value learners read ``configs/envs/<family>.yaml``, policy-gradient ones
    ``configs/envs/ppo/<family>.yaml`` (budgets and batch sizes differ). Last comes
    ``configs/tuned/<family>/<algo>.yaml`` where it exists: settings a source tuned for that
    algorithm on that family (e.g. the EPyMARL benchmark paper's LBF tables), each file naming it.
    """
    from credo.api import config_files as files

    return files(algo, env_key)


def load_run_config(run_dir, overrides=()):
    """The config of an existing run directory (``credo.api.load_run_config``)."""
    from credo.api import load_run_config as load

    return load(run_dir, overrides)


def _print_summary(summary: dict, path) -> None:
    print(f"\n{summary['algo']} on {summary['env']}: {len(summary['seeds'])} seed(s), run in {path}")
    ci = summary["final_test_return_ci95"]
    print(f"  final test return per seed: {', '.join(f'{x:.3f}' for x in summary['final_test_return'])}")
    print(f"  IQM {summary['final_test_return_iqm']:.3f}  (95% CI {ci[0]:.3f} .. {ci[1]:.3f})")
    if "final_test_won" in summary:
        w = summary["final_test_won_ci95"]
        print(f"  test win rate IQM {summary['final_test_won_iqm']:.1%}  (95% CI {w[0]:.1%} .. {w[1]:.1%})")
    rate = summary["train_env_steps_per_s"]
    print(
        f"  training: {rate:,.0f} env steps/s over all seeds, compile {summary['compile_seconds']:.1f}s"
        if rate
        else ""
    )


def _print_ricol_summary(s: dict, path) -> None:
    ci = s["final_test_success_ci95"]
    print(f"\n{s['algo']} on {s['env']}: {len(s['seeds'])} seed(s), run in {path}")
    print(f"  final test success per seed: {', '.join(f'{x:.0%}' for x in s['final_test_success'])}")
    print(
        f"  IQM {s['final_test_success_iqm']:.0%} (95% CI {ci[0]:.0%} .. {ci[1]:.0%}) after {s['env_steps_done']} env steps"
    )
    if s["seconds_per_iteration"]:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in s["seconds_per_iteration_parts"].items())
        print(f"  {s['seconds_per_iteration']:.0f} s per iteration ({parts}); feedback {s['feedback']}")


def _check_resume_args(args, cfg) -> None:
    """``--resume`` continues the run as it is: ALGO/ENV must be its own; --seeds and --name cannot change."""
    for given, name in ((args.algo, "algo"), (args.env, "env")):
        if given is not None and given != getattr(cfg, name):
            raise ValueError(
                f"--resume {args.resume} continues a {cfg.algo} run on {cfg.env}; {name.upper()} "
                f"{given!r} differs. Leave ALGO and ENV out to resume, or start a new run without --resume."
            )
    if args.seeds is not None and args.seeds != getattr(cfg, "seeds", args.seeds):
        raise ValueError(
            f"--resume keeps the run's {cfg.seeds} seed(s); --seeds {args.seeds} would need a new run "
            "(seeds are trained together, in one state)."
        )
    if args.name is not None:
        raise ValueError("--name names a new run directory; with --resume the run directory is RUN_DIR.")
    if args.config is not None:
        raise ValueError("--config sets up a new run; with --resume the run's own config.yaml is used.")


def _check_new_run_dir(args) -> None:
    from credo.engine.rundir import check_name, check_out

    if args.name is not None:
        check_name(args.name)
    check_out(args.out)


def cmd_train(args) -> int:
    """``credo train``: a new run (ALGO ENV, or ``--config FILE``), or ``--resume RUN_DIR``; prints
    the summary. A thin layer over ``credo.api``."""
    if not args.resume:
        _check_new_run_dir(args)  # a bad --name or --out fails in a moment, before JAX starts
    from credo import api
    from credo.algos import get_algo

    if args.resume:
        _check_resume_args(args, api.load_run_config(args.resume))
        run = api.resume(args.resume, steps=args.steps, overrides=args.set, progress=not args.no_progress)
    else:
        algo, env = args.algo, args.env
        if args.config is not None and (algo is None or env is None):
            given = api._read_yaml(Path(args.config), "--config")
            algo, env = algo or given.get("algo"), env or given.get("env")
        llm_policy = bool(algo) and get_algo(algo).learner is None
        if llm_policy and not env:
            raise ValueError(
                f"credo train {algo} needs ENV: keydoor or babyai:<goto|pickup|pick_up_seq_go_to|open>."
            )
        if not algo or not env:
            raise ValueError(
                "credo train needs ALGO and ENV (or --config FILE naming them, or --resume RUN_DIR)."
            )
        if llm_policy and args.steps is not None:
            raise ValueError(
                f"{algo} counts iterations, not env steps: use --set iterations=N (and episodes_per_iteration=M)."
            )
        cfg = api.make_config(
            algo, env, config=args.config, steps=args.steps, seeds=args.seeds, overrides=args.set
        )
        run = api.train_config(cfg, out=args.out, name=args.name, progress=not args.no_progress)
    summary = run.summary
    if summary is not None:
        (_print_summary if "final_test_return" in summary else _print_ricol_summary)(summary, run.path)
    return 0


def cmd_ricl_keydoor(args) -> int:
    """RICL against Monte Carlo on the 1D Key-Door corridor (paper 003, Fig. 3.2 and A.8)."""
    import datetime as dt

    from credo.llm import make_llm
    from credo.ricl.keydoor import DemoTuning, KeyDoorSetup, run_experiment

    out = Path(args.out or Path("runs") / f"ricl-keydoor-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    cache = False if args.no_cache else (args.cache or True)
    demo = DemoTuning(args.demo_mix, args.demo_steps, args.demo_lr) if args.demo_steps else None
    if demo is not None and args.backend != "local":
        raise ValueError("--demo-steps fine-tunes the policy's weights: it needs --backend local.")
    policy = make_llm(
        args.backend,
        args.model,
        args.base_url,
        args.api_key_env,
        cache_dir=False if demo else cache,  # a tuned policy's answers are not the cached model's
        log_path=out / "llm_log.jsonl",
    )
    same_model = args.reflector_backend == args.backend and (args.reflector_model or args.model) == args.model
    if same_model and demo is None:
        reflector = policy  # one model for both roles, as in the paper's Key-Door experiment
    else:
        reflector = make_llm(
            args.reflector_backend,
            args.reflector_model,
            args.base_url,
            args.api_key_env,
            cache_dir=cache,
            log_path=out / "llm_log.jsonl",
        )
    setup = KeyDoorSetup(length=args.length, gamma=args.gamma, beta=args.beta)
    run_experiment(
        policy,
        reflector,
        out,
        setup,
        n_max=args.n_max,
        ricl_ns=tuple(args.ns),
        mc_ns=tuple(args.mc_ns),
        trials=args.trials,
        all_states=not args.start_states_only,
        prefill=args.prefill,
        max_tokens=args.max_tokens,
        seed=args.seed,
        demo=demo,
    )
    print(f"results: {out}/ricl_keydoor.md, error_vs_trajectories.png, critical_states.png")
    return 0


def cmd_eval(args) -> int:
    """``credo eval RUN_DIR``: evaluates a run's checkpoint or snapshot, prints returns per seed."""
    from credo import stats
    from credo.api import Run

    result = Run(Path(args.run_dir)).evaluate(episodes=args.episodes, snapshot=args.snapshot)
    cfg = load_run_config(args.run_dir)
    print(
        f"{cfg.algo} on {cfg.env}, {result['where']}, {result['episodes']} "
        f"{'greedy' if result['greedy'] else 'sampled'} episodes per seed"
    )
    won = result.get("test_won", [None] * len(result["seeds"]))
    for seed, r, w in zip(result["seeds"], result["test_return"], won):
        print(f"  seed {seed}: test return {r:.3f}" + (f", win rate {w:.1%}" if w is not None else ""))
    point, lo, hi = stats.stratified_bootstrap_ci(result["test_return"])
    print(f"  IQM {point:.3f} (95% CI {lo:.3f} .. {hi:.3f})")
    return 0


def cmd_list(args) -> int:
    """Prints the algorithms, then every env family and its featured envs with their sizes."""
    envs = _envs()
    from credo.envs.registry import EnvKeyError

    print("algorithms (credo train ALGO ENV):")
    for name, doc in _algorithm_docs().items():
        print(f"  {name:10s} {doc}")
    print()
    print(f"{'env':44s} {'agents':>6s} {'obs':>6s} {'state':>6s} {'actions':>7s} {'limit':>6s}")
    for prefix, family in sorted(envs.families().items()):
        print(f"\n# {prefix}: {family.doc}")
        for name in family.names():
            key = f"{prefix}:{name}"
            try:
                env = envs.make(key)
            except EnvKeyError as err:
                msg = str(err)
                print(f"{key:44s} ({msg if len(msg) < 90 else msg[:87] + '...'})")
                continue
            except Exception as err:  # noqa: BLE001 - listing must go on past one broken env
                print(f"{key:44s} (cannot build: {type(err).__name__}: {err})")
                continue
            s = env.spec
            print(
                f"{key:44s} {s.n_agents:6d} {s.obs_dim:6d} {s.state_dim:6d} {s.n_actions:7d} {s.episode_limit:6d}"
            )
            if hasattr(env, "close") and not env.is_jax:
                env.close()
    print("\nAny lbforaging id works as lbf:<id>, e.g. lbf:Foraging-2s-12x12-3p-2f-coop-v3.")
    return 0


def _report_line(r) -> str:
    won = f" won {r.won:5.1%}" if r.won is not None else ""
    return (
        f"{r.key:40s} {r.steps:8d} steps {r.episodes:6d} episodes  return {r.mean_return:8.3f}"
        f"  length {r.mean_length:6.1f}{won}  {r.steps_per_second:10,.0f} steps/s"
        f"  (compile {r.compile_seconds:.1f}s)"
    )


def cmd_rollout(args) -> int:
    """``credo rollout ENV``: random-policy episodes of an env, with steps per second."""
    envs = _envs()
    from credo.envs.rollout import random_rollout

    kwargs = dict(_parse_kv(kv) for kv in args.set)
    env = envs.make(args.env, **kwargs)
    print(env)
    print(_report_line(random_rollout(env, n_envs=args.envs, steps=args.steps, seed=args.seed)))
    return 0


def cmd_demo(args) -> int:
    """Random-policy rollouts of a few envs of every family: proves the install works."""
    envs = _envs()
    from credo.envs.registry import EnvKeyError
    from credo.envs.rollout import random_rollout

    print("credo demo: random available actions in 16 vectorised copies of each env.\n")
    for key in DEMO_ENVS:
        try:
            env = envs.make(key)
        except EnvKeyError as err:
            print(f"{key:40s} skipped: {err}")
            continue
        print(_report_line(random_rollout(env, n_envs=16, steps=args.steps)), flush=True)
    return 0


def cmd_report(args) -> int:
    """``credo report matrix RUN_DIR...``: matrix-game runs' greedy joint actions and payoffs against the optimum."""
    from credo.report import format_matrix, matrix_results

    if args.all_seeds:
        for path in args.run_dirs:
            results = matrix_results(path)
            hits = sum(r.optimal for r in results)
            print(f"{path}: greedy joint action optimal in {hits} of {len(results)} seeds")
            print("\n".join(format_matrix(results).splitlines()[-len(results) :]))
        return 0
    print(format_matrix([r for path in args.run_dirs for r in matrix_results(path, [args.seed])]))
    return 0


def cmd_graph(args) -> int:
    """``credo graph RUN_DIR``: the interaction graphs a dependence-graph run learned, summarised and plotted."""
    from credo.graph_report import learned_graphs, plot_timeline, summarise

    result = learned_graphs(
        args.run_dir, episodes=args.episodes, seed_index=args.seed, threshold=args.threshold
    )
    s = summarise(result)
    print(
        f"{result['config'].algo} on {result['config'].env}, seed index {args.seed}: {args.episodes} episodes, {s['steps']} steps"
    )
    print(
        f"  learned graph (c = {result['threshold']:.3g}): {s['learned_density']:.1%} of the off-diagonal edges on"
    )
    if "precision" in s:
        print(f"  oracle graph: {s['oracle_density']:.1%} of the edges on")
        print(
            f"  precision {s['precision']:.3f}, recall {s['recall']:.3f} (learned edges against the oracle's)"
        )
    else:
        print("  (this env has no oracle graph to compare with)")
    out = args.out or str(Path(args.run_dir) / "dependence_graph.png")
    print(f"  timeline of episode 0: {plot_timeline(result, out)}")
    return 0


def _qllm_env(args):
    envs = _envs()
    env = envs.make(args.env, **dict(_parse_kv(kv) for kv in getattr(args, "env_set", [])))
    return env


def cmd_qllm_check(args) -> int:
    """Runs the sandbox checks on a TFCAF file and prints each with pass/fail; non-zero exit on rejection."""
    from credo.qllm.artifact import load_tfcaf
    from credo.qllm.checks import check_tfcaf
    from credo.qllm.task import sample_states

    env = _qllm_env(args)
    tfcaf = load_tfcaf(args.path)
    gamma = args.gamma if args.gamma is not None else (tfcaf.gamma if tfcaf.gamma is not None else 1)
    s = env.spec
    print(
        f"checking {tfcaf.origin} for {args.env} ({s.n_agents} agents, state_dim {s.state_dim}), IGM gate gamma = {gamma}"
    )
    report = check_tfcaf(tfcaf.source, s.n_agents, s.state_dim, igm=bool(gamma), states=sample_states(env))
    print(report.format())
    print("accepted" if report.passed else f"rejected: {report.reason}")
    return 0 if report.passed else 1


def cmd_qllm_generate(args) -> int:
    """``credo qllm generate ENV``: QLLM's coder/evaluator loop writes and checks a TFCAF for ENV and
    saves it (JSON and code) for ``credo train qllm ENV --set tfcaf=FILE``."""
    import datetime as dt
    import time

    from credo.llm import make_llm
    from credo.qllm.artifact import save_artifact
    from credo.qllm.loop import run_qllm
    from credo.qllm.task import describe_env, sample_states

    env = _qllm_env(args)
    s = env.spec
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (
        Path(args.out)
        if args.out
        else Path("runs") / f"qllm-{args.env.replace(':', '-')}-{stamp}" / "tfcaf.json"
    )
    refine_dir = _refine_setup(args, out) if args.refine_rounds else None  # bad settings fail before the LLM
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.parent / "llm_log.jsonl"
    cache = False if args.no_cache else (args.cache or True)
    print(
        f"credo qllm generate {args.env}: {args.rounds} round(s) x {args.candidates} candidate(s), backend {args.backend}"
    )
    t0 = time.perf_counter()
    llm = make_llm(
        args.backend,
        args.model,
        args.base_url,
        args.api_key_env,
        args.timeout,
        args.retries_http,
        cache,
        log_path,
    )
    load_s = time.perf_counter() - t0
    print(f"  model {llm.model} ready in {load_s:.1f} s")
    task = describe_env(env)
    from credo.qllm.loop import constraint_for_backend
    from credo.qllm.refine import MeteredLLM

    constraint = constraint_for_backend(args.grammar, llm, env)
    print(f"  constrained decoding: {'on (TFCAF grammar)' if constraint else 'off'}")
    # with refinement, count characters and tokens for the selection's cost (without, nothing changes)
    metered = MeteredLLM(llm) if refine_dir is not None else llm
    result = run_qllm(
        metered,
        metered,
        task,
        s.n_agents,
        s.state_dim,
        candidates=args.candidates,
        rounds=args.rounds,
        retries=args.retries,
        gamma=args.gamma,
        states=sample_states(env),
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        log=lambda line: print("  " + line, flush=True),
        constraint=constraint,
    )
    refinement = None
    if refine_dir is not None and result.code is not None:
        refinement = _refine(args, env, task, result, metered, refine_dir, constraint)
    took = time.perf_counter() - t0
    doc = {
        "env": args.env,
        "n_agents": s.n_agents,
        "state_dim": s.state_dim,
        "backend": args.backend,
        "model": llm.model,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            k: getattr(args, k)
            for k in ("candidates", "rounds", "retries", "temperature", "max_tokens", "seed", "grammar")
        },
        "constrained": constraint is not None,
        "task": task,
        "seconds": round(took, 1),
        "model_load_seconds": round(load_s, 1),
        "llm_calls": llm.calls,
        "llm_cache_hits": llm.cache_hits,
        "llm_seconds": round(llm.seconds, 1),
        **result.to_dict(),
        "code": result.code,
    }
    if refinement is not None:
        doc["settings"].update(
            {
                k: getattr(args, k)
                for k in ("refine_rounds", "refine_steps", "refine_seeds", "refine_holdout_seeds")
            }
        )
        doc["refinement"] = refinement.to_dict()
        doc["code"] = refinement.kept_code
        doc["selection_cost"] = {
            **{f"llm_{k}": v for k, v in metered.counts().items()},
            "model_load_seconds": round(load_s, 1),
            "training_runs": refinement.cost["training_runs"],
            "training_env_steps": refinement.cost["training_env_steps"],
            "training_seconds": refinement.cost["training_seconds"],
            "seconds": round(took, 1),
            "note": "the whole command: every LLM call (coder-evaluator and refinement rounds) and every "
            "training; tokens are counted only where the backend has a tokenizer (the local one), else null",
        }
    if result.code is None:
        from credo.qllm.artifact import write_json_atomic

        write_json_atomic(out.with_name("failed.json"), doc)
        print(
            f"credo: {result.failure_report()}\n  the whole exchange is in {out.with_name('failed.json')}",
            file=sys.stderr,
        )
        return 1
    json_path, py_path = save_artifact(out, doc)
    print(
        f"  passed per round: {result.passed_per_round}; {took:.0f} s in all ({llm.calls} LLM calls, {llm.cache_hits} from the cache)"
    )
    if refinement is not None:
        c, cost = refinement.comparison(), doc["selection_cost"]
        print(
            f"  refinement: kept {refinement.kept or 'the loop pick (nothing finished training)'}; held-out "
            f"score of the loop's pick {c['loop_pick_heldout']}, best of the coder-evaluator rounds "
            f"{c['best_heldout_loop_rounds']}, best of the refinement rounds {c['best_heldout_refine_rounds']}"
        )
        print(
            f"  selection cost: LLM {cost['llm_seconds']:.0f} s ({cost['llm_calls']} calls), training "
            f"{cost['training_seconds']:.0f} s ({cost['training_runs']} runs, {cost['training_env_steps']:,} env steps)"
        )
    print(f"  TFCAF: {json_path} (code: {py_path})")
    print(f"  train it: credo train qllm {args.env} --set tfcaf={json_path}")
    return 0


def _refine_setup(args, out: Path) -> Path:
    """The refinement's directory (beside the artifact), after checking its settings: the QLLM config
    at the refinement budget must resolve, and the directory must not hold an earlier run's files."""
    from credo.api import make_config
    from credo.qllm.refine import Budget

    budget = Budget(args.refine_steps, args.refine_seeds, args.refine_holdout_seeds)
    env_kwargs = dict(_parse_kv(kv) for kv in args.env_set)
    make_config(
        "qllm",
        args.env,
        steps=budget.steps,
        seeds=budget.total_seeds,
        seed=budget.seed,
        test_interval=budget.test_interval(),
        **({"env_kwargs": env_kwargs} if env_kwargs else {}),
    )
    where = out.parent / f"{out.stem}-refine"
    if where.exists() and (not where.is_dir() or any(where.iterdir())):
        raise FileExistsError(f"{where} exists and is not empty (an earlier refinement); pick another --out.")
    return where


def _refine(args, env, task, result, metered, where: Path, constraint):
    """Runs the refinement stage of ``credo qllm generate --refine-rounds N``; returns the Refinement."""
    from credo.qllm.refine import Budget, engine_trainer, refine
    from credo.qllm.task import sample_states

    budget = Budget(args.refine_steps, args.refine_seeds, args.refine_holdout_seeds)
    env_kwargs = dict(_parse_kv(kv) for kv in args.env_set)
    print(
        f"  refinement: {args.refine_rounds} round(s); each candidate trains {budget.steps:,} env steps x "
        f"{budget.total_seeds} seeds ({budget.seeds} for the coder's summary, {budget.holdout_seeds} held out) in {where}"
    )
    s = env.spec
    return refine(
        metered,
        task,
        result,
        engine_trainer(args.env, result.gamma, budget, where, env_kwargs),
        n_agents=s.n_agents,
        state_dim=s.state_dim,
        rounds=args.refine_rounds,
        budget=budget,
        candidates=args.candidates,
        retries=args.retries,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        seed=args.seed,
        states=sample_states(env),
        constraint=constraint,
        log=lambda line: print("  " + line, flush=True),
    )


def cmd_qllm_train(args) -> int:
    """``credo qllm train ENV``: from an env to a trained QLLM run in one command. Generates a TFCAF as
    ``credo qllm generate`` does (refinement included, if asked) into ``OUT/tfcaf.json``, then trains
    QLLM with it into ``OUT/train``, the run that ``credo train qllm ENV --set tfcaf=OUT/tfcaf.json`` makes."""
    import datetime as dt

    from credo import api

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"qllm-train-{args.env.replace(':', '-')}-{stamp}"
    if (out / "train").exists():
        raise FileExistsError(f"{out / 'train'} exists (an earlier run); pick another --out.")
    artifact = out / "tfcaf.json"
    env_kwargs = dict(_parse_kv(kv) for kv in args.env_set)
    overrides = [
        *args.set,
        f"tfcaf={artifact}",
        *([f"env_kwargs={json.dumps(env_kwargs)}"] if env_kwargs else []),
    ]
    # the training settings resolve before minutes of generation are spent (the artifact is read at training)
    cfg = api.make_config("qllm", args.env, steps=args.steps, seeds=args.seeds, overrides=overrides)
    args.out = str(artifact)
    rc = cmd_qllm_generate(args)
    if rc != 0:
        return rc
    print(f"credo qllm train {args.env}: training QLLM with the generated TFCAF ({artifact})")
    run = api.train_config(cfg, out=out, name="train", progress=not args.no_progress)
    if run.summary is not None:
        _print_summary(run.summary, run.path)
    return 0


def _add_generate_args(p) -> None:
    """The options of ``credo qllm generate``, shared by ``credo qllm train``."""
    p.add_argument("env", help="env key, e.g. lbf:Foraging-8x8-2p-3f-v3")
    p.add_argument(
        "--backend",
        choices=["local", "openai"],
        default="local",
        help="local transformers model, or an OpenAI-compatible endpoint",
    )
    p.add_argument(
        "--model",
        help="local: 'embedded' (default), 'embedded-gemma3', a model directory or .gguf; openai: model name",
    )
    p.add_argument("--base-url", help="OpenAI-compatible endpoint (default $CREDO_LLM_BASE_URL, else OpenAI)")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per HTTP request")
    p.add_argument("--retries-http", type=int, default=3, help="HTTP retries with backoff")
    p.add_argument("--candidates", type=int, default=3, help="candidates per round (K)")
    p.add_argument("--rounds", type=int, default=3, help="coder-evaluator rounds")
    p.add_argument("--retries", type=int, default=3, help="regenerations of a rejected candidate")
    p.add_argument("--gamma", type=int, choices=[0, 1], help="IGM gate (default: asked of the LLM)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--max-tokens", type=int, default=400, help="tokens per candidate")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (part of the cache key)")
    p.add_argument(
        "--grammar",
        choices=["auto", "on", "off"],
        default="auto",
        help="decode under the TFCAF grammar (auto: local backend, or a server named by $CREDO_LLM_GRAMMAR_FIELD)",
    )
    p.add_argument(
        "--cache", help="response cache directory (default $CREDO_LLM_CACHE or ~/.cache/credo/llm)"
    )
    p.add_argument("--no-cache", action="store_true", help="always ask the LLM")
    p.add_argument(
        "--refine-rounds",
        metavar="N",
        type=_non_negative,
        default=0,
        help="after the rounds, train each passing candidate briefly, show the coder the learning curves for N "
        "more rounds, keep the best on held-out seeds (default 0: no training, the evaluator's pick)",
    )
    p.add_argument(
        "--refine-steps",
        metavar="S",
        type=_env_steps,
        default=20_000,
        help="env steps per candidate in refinement (default 20000; only with --refine-rounds)",
    )
    p.add_argument(
        "--refine-seeds",
        metavar="K",
        type=_count,
        default=2,
        help="seeds per candidate whose learning curves the coder sees (default 2)",
    )
    p.add_argument(
        "--refine-holdout-seeds",
        metavar="H",
        type=_count,
        default=2,
        help="further seeds per candidate, never shown, whose final test return chooses the kept one (default 2)",
    )
    p.add_argument(
        "--set", dest="env_set", action="append", default=[], metavar="KEY=VALUE", help="env keyword argument"
    )


def cmd_sweep(args) -> int:
    """``credo sweep SPEC``: every cell of a grid as a run, on a local Ray instance or a cluster."""
    from credo.plugins import import_plugins
    from credo.study.spec import load_spec, with_budget, with_plugins
    from credo.study.sweep import format_plan, plan, run_cell_inprocess, run_sweep

    spec = with_budget(load_spec(args.spec), args.steps, args.seeds)
    # Every cell imports the spec's plugins and --import's (its `credo train` gets --import); this
    # process too, to resolve the cells' configs.
    import_plugins(spec.plugins, why=f"listed under plugins in {args.spec}")
    spec = with_plugins(spec, args.imports)
    out = Path(args.out)
    if args.dry_run:
        print(f"sweep {spec.name} ({args.spec}): {len(spec.cells)} cells -> {out / spec.name}")
        print(format_plan(plan(spec, out)))
        return 0
    if args.index is not None:
        return run_cell_inprocess(spec, out / spec.name, args.index)
    if spec.search:
        from credo.study.search import run_search

        run_search(spec, out, address=args.address, max_concurrent=args.max_concurrent)
        return 0
    record = run_sweep(
        spec,
        out,
        address=args.address,
        max_concurrent=args.max_concurrent,
        progress=False if args.no_progress else None,
    )
    return 1 if any(c["status"] != "done" for c in record["cells"]) else 0


def _parse_kv(text: str):
    import yaml

    if "=" not in text:
        raise SystemExit(f"--set expects key=value, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), yaml.safe_load(v)


class _Parser(argparse.ArgumentParser):
    """Argument errors on one line, as credo's other errors: ``credo: error: argument --steps: ...``."""

    def error(self, message: str):
        self.exit(2, f"credo: error: {message} (see: {self.prog} --help)\n")


def _whole_number(text: str) -> int:
    """``text`` as a whole number: 2000000, 2_000_000 and 2e6 are fine, 2.5, nan and inf are not."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a whole number, got {text!r}") from None
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expects a whole number, got {text!r}")
    return int(number)


def _count(text: str) -> int:
    """An argparse type: a whole number, at least 1 (seeds, episodes, envs, steps)."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative(text: str) -> int:
    """An argparse type: a whole number, at least 0 (rounds that may be none)."""
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def _env_steps(text: str) -> int:
    """An argparse type: a training budget the engine's env-step counter can hold."""
    from credo.engine.limits import ENV_STEPS_WHY, MAX_ENV_STEPS

    value = _count(text)
    if value > MAX_ENV_STEPS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_ENV_STEPS:_}, got {text}: {ENV_STEPS_WHY}")
    return value


class _TrainHelp(argparse.Action):
    """``credo train --help``; with ALGO before it, also ALGO's config fields (type, default, meaning)."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        if getattr(namespace, "algo", None):
            from credo.algos import get_algo
            from credo.config import describe
            from credo.plugins import import_plugins, load_entry_points

            try:
                load_entry_points()
                import_plugins(getattr(namespace, "imports", []) or [])
                entry = get_algo(namespace.algo)
            except ValueError as err:
                parser.exit(2, f"credo: error: {err}\n")
            print(f"\n{namespace.algo}: {entry.doc}\n")
            print(describe(entry.config))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The ``credo`` argument parser with every subcommand (``credo --help`` lists them)."""
    p = _Parser(prog="credo", description="Credit assignment in reinforcement learning.")
    sub = p.add_subparsers(dest="command", required=True)
    plugins = argparse.ArgumentParser(add_help=False)
    plugins.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a plugin module first (its algorithms, mixers, env families); repeatable",
    )
    t = sub.add_parser(
        "train",
        help="train an algorithm on an env; writes a run directory",
        parents=[plugins],
        add_help=False,
        description="Trains ALGO on ENV. `credo train ALGO --help` lists ALGO's config fields.",
    )
    t.add_argument(
        "-h", "--help", action=_TrainHelp, nargs=0, help="show this help (with ALGO: its fields) and exit"
    )
    t.add_argument("algo", nargs="?", help="an algorithm (credo list shows them all)")
    t.add_argument("env", nargs="?", help="env key, e.g. lbf:Foraging-8x8-2p-3f-v3 (see credo list)")
    t.add_argument(
        "--config",
        metavar="FILE",
        help="a YAML file of config fields (algo and env may be in it); a run's config.yaml reruns that run; "
        "--steps, --seeds and --set win over it",
    )
    t.add_argument("--steps", type=_env_steps, help="env steps per seed, e.g. 2e6")
    t.add_argument("--seeds", type=_count, help="number of seeds, trained together")
    t.add_argument("--out", default="runs", help="parent directory of the run directory (default: runs)")
    t.add_argument("--name", help="run directory name (default: algo-env-time)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser(
        "eval",
        help="evaluation of a run's checkpoint or snapshot (greedy unless the run set test_greedy=false)",
        parents=[plugins],
    )
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=_count, help="episodes per seed (default: the run's test_episodes)")
    e.add_argument(
        "--snapshot",
        default="last",
        metavar="WHICH",
        help="parameters to evaluate: last (the training checkpoint, default), best (each seed's best "
        "evaluation), latest, or eval-N (snapshots in RUN_DIR/checkpoints/params)",
    )
    e.set_defaults(func=cmd_eval)
    sub.add_parser(
        "list",
        help="algorithms, and registered envs with their agent/obs/state/action sizes",
        parents=[plugins],
    ).set_defaults(func=cmd_list)
    d = sub.add_parser("demo", help="random-policy rollouts of a few envs of every family")
    d.add_argument("--steps", type=_count, default=200, help="steps per env copy")
    d.set_defaults(func=cmd_demo)
    rep = sub.add_parser("report", help="tables of trained runs (matrix: the ME-IGM paper's Table 2.5)")
    rep.add_argument("kind", choices=["matrix"], help="matrix: policies and Q_tot of a 2-agent matrix game")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs to show side by side")
    rep.add_argument("--seed", type=int, default=0, help="seed index within each run (default 0)")
    rep.add_argument("--all-seeds", action="store_true", help="one line per seed: greedy joint action")
    rep.set_defaults(func=cmd_report)
    g = sub.add_parser(
        "graph", help="the dependence graph an ippo-dg/mappo-dg run learned, against the oracle"
    )
    g.add_argument("run_dir")
    g.add_argument("--episodes", type=_count, default=20, help="episodes to roll out (default 20)")
    g.add_argument("--seed", type=int, default=0, help="seed index within the run (default 0)")
    g.add_argument("--threshold", type=float, help="entropy-ratio threshold c (default: the run's)")
    g.add_argument("--out", help="timeline plot path (default RUN_DIR/dependence_graph.png)")
    g.set_defaults(func=cmd_graph)
    q = sub.add_parser("qllm", help="LLM-written credit functions (TFCAFs): generate one, or check one")
    qsub = q.add_subparsers(dest="qllm_command", required=True)
    qg = qsub.add_parser("generate", help="coder-evaluator loop: writes a TFCAF artifact (.json and .py)")
    _add_generate_args(qg)
    qg.add_argument("--out", help="artifact path (default runs/qllm-ENV-TIME/tfcaf.json)")
    qg.set_defaults(func=cmd_qllm_generate)
    qt = qsub.add_parser(
        "train",
        help="env -> trained QLLM run in one command: generate a TFCAF (as `qllm generate`), then train it",
    )
    _add_generate_args(qt)
    qt.add_argument(
        "--out",
        help="directory for the TFCAF artifact and the training run (default runs/qllm-train-ENV-TIME)",
    )
    qt.add_argument("--steps", type=_env_steps, help="training env steps per seed (default: the config's)")
    qt.add_argument("--seeds", type=_count, help="training seeds, trained together (default: the config's)")
    qt.add_argument(
        "--train-set",
        dest="set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="training config override, as `credo train --set` (repeatable)",
    )
    qt.add_argument("--no-progress", action="store_true", help="no progress bar while training")
    qt.set_defaults(func=cmd_qllm_train)
    qc = qsub.add_parser("check", help="runs the sandbox checks on a TFCAF file; exit 1 on rejection")
    qc.add_argument("env", help="env key the function is for")
    qc.add_argument("path", help="a .py file defining tfcaf(agent_qs, state), or a .json artifact")
    qc.add_argument("--gamma", type=int, choices=[0, 1], help="IGM gate (default: the artifact's, else 1)")
    qc.add_argument(
        "--set", dest="env_set", action="append", default=[], metavar="KEY=VALUE", help="env keyword argument"
    )
    qc.set_defaults(func=cmd_qllm_check)
    rc = sub.add_parser("ricl", help="RICL: LLM in-context credit assignment experiments")
    rsub = rc.add_subparsers(dest="ricl_command", required=True)
    rk = rsub.add_parser(
        "keydoor", help="RICL vs Monte Carlo advantage estimates on the 1D Key-Door corridor"
    )
    rk.add_argument(
        "--backend", choices=["local", "openai"], default="local", help="the policy LLM's backend"
    )
    rk.add_argument(
        "--model",
        help="local: 'embedded' (default), 'embedded-gemma3', a model directory or .gguf; openai: model name",
    )
    rk.add_argument("--reflector-backend", choices=["local", "openai"], default="local")
    rk.add_argument("--reflector-model", help="default: the policy's model")
    rk.add_argument("--base-url", help="OpenAI-compatible endpoint (default $CREDO_LLM_BASE_URL)")
    rk.add_argument("--api-key-env", default="OPENAI_API_KEY")
    rk.add_argument("--n-max", type=int, default=5, help="reflections drawn per state")
    rk.add_argument("--ns", type=int, nargs="+", default=[1, 2, 3, 5], help="trajectory counts of RICL")
    rk.add_argument(
        "--mc-ns", type=int, nargs="+", default=[1, 3, 10, 30, 100, 300, 1000], help="of Monte Carlo"
    )
    rk.add_argument("--trials", type=int, default=8, help="trials per count (the paper: 8)")
    rk.add_argument("--length", type=int, default=10)
    rk.add_argument("--gamma", type=float, default=0.9)
    rk.add_argument("--beta", type=float, default=0.05, help="temperature of pi_gt = pi_0 exp(A / beta)")
    rk.add_argument(
        "--start-states-only",
        action="store_true",
        help="reflect at rho_0's states only (no critical-state plot of the key-holding half)",
    )
    rk.add_argument(
        "--prefill",
        action="store_true",
        help="start the reflector's reply with 'Verbal Feedback:' (small models)",
    )
    rk.add_argument("--max-tokens", type=int, default=128, help="tokens per reflection")
    rk.add_argument(
        "--demo-steps",
        type=_non_negative,
        default=0,
        help="first fine-tune the policy this many steps on the expert's actions, so pi_0 depends on the "
        "state (default 0: the model as loaded; the reflector stays the loaded model)",
    )
    rk.add_argument(
        "--demo-mix", type=float, default=0.5, help="expert weight of the demo-tuning target (default 0.5)"
    )
    rk.add_argument("--demo-lr", type=float, default=1e-5, help="Adam learning rate of demo tuning")
    rk.add_argument("--seed", type=int, default=0)
    rk.add_argument("--out", help="output directory (default runs/ricl-keydoor-TIME)")
    rk.add_argument("--cache", help="response cache directory")
    rk.add_argument("--no-cache", action="store_true")
    rk.set_defaults(func=cmd_ricl_keydoor)
    sw = sub.add_parser(
        "sweep",
        help="a study: a grid of runs from a YAML spec, on Ray (local or a cluster)",
        parents=[plugins],
    )
    sw.add_argument("spec", help="sweep spec (YAML; see docs/studies.md and benchmarks/specs/)")
    sw.add_argument("--out", default="runs", help="parent of the sweep's directory (default: runs)")
    sw.add_argument(
        "--address",
        help="Ray cluster to run on, e.g. ray://head:10001 or auto (default $RAY_ADDRESS, else local)",
    )
    sw.add_argument(
        "--max-concurrent", type=int, help="cells at a time (default: the cluster's CPUs per cell)"
    )
    sw.add_argument("--dry-run", action="store_true", help="print the cells and their status; run nothing")
    sw.add_argument("--index", type=int, metavar="I", help="run only cell I, in this process (Slurm arrays)")
    sw.add_argument("--no-progress", action="store_true", help="a line per event instead of a progress bar")
    sw.add_argument(
        "--steps",
        type=_env_steps,
        help="env steps per seed of every cell (a shorter pass; use another --out)",
    )
    sw.add_argument("--seeds", type=_count, help="seeds of every cell")
    sw.set_defaults(func=cmd_sweep)
    r = sub.add_parser("rollout", help="random-policy rollout report of one env")
    r.add_argument("env", help="env key, e.g. lbf:Foraging-8x8-2p-3f-v3")
    r.add_argument("--envs", type=_count, default=16, help="parallel env copies")
    r.add_argument("--steps", type=_count, default=500, help="steps per env copy")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env keyword argument")
    r.set_defaults(func=cmd_rollout)
    from credo.study.compare import add_parsers as add_study_parsers

    add_study_parsers(sub)  # credo compare, credo export marl-eval
    return p


def use_all_cpu_cores() -> None:
    """Exposes every CPU core as a JAX host device (before JAX starts).

    XLA runs the small matmuls of RL networks on one thread; the engine shards
    seeds over devices, so on a CPU this is what puts the other cores to work.
    No effect on accelerators or when ``XLA_FLAGS`` already sets a device count.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags and "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={os.cpu_count() or 1}".strip()
        )


def use_compilation_cache() -> None:
    """Keeps JAX's compiled programs in ``~/.cache/credo/jax`` (before JAX starts).

    A repeated run, a resumed one and every cell of a sweep with the same shapes compile the same
    programs: 10-80 s each on a CPU. ``JAX_COMPILATION_CACHE_DIR`` picks another directory;
    ``CREDO_COMPILATION_CACHE=0`` turns the cache off.
    """
    if os.environ.get("CREDO_COMPILATION_CACHE", "1") == "0" or "jax" in sys.modules:
        return
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(home / "credo" / "jax"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
    # A size limit also turns on the cache's file lock: concurrent runs (sweep cells) share it.
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 * 2**30))


def main(argv: list[str] | None = None) -> int:
    """The ``credo`` command: returns the exit status (0 done, 1 failed, 2 bad input, 130 interrupted).

    Bad input (a ValueError and its kin) is one line on stderr, not a traceback.
    """
    use_all_cpu_cores()
    use_compilation_cache()
    args = build_parser().parse_args(argv)
    # Not credo.envs (EnvKeyError is a ValueError): importing it starts JAX, 2-9 s that commands
    # such as compare, export and sweep --dry-run do not need.
    from credo.llm.base import LLMError

    try:
        if args.command in ("train", "eval", "list", "sweep"):
            from credo.plugins import import_plugins, load_entry_points

            load_entry_points()
            import_plugins(args.imports, why="--import")
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, LLMError) as err:
        print(f"credo: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine's, not the input's: a full disk, a lost mount
        print(f"credo: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

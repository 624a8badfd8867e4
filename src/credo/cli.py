"""The ``credo`` command line: ``credo list``, ``credo demo``, ``credo rollout ENV``."""

from __future__ import annotations

import argparse
import os
import sys

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


def cmd_list(args) -> int:
    """Prints every env family and its featured envs with their sizes."""
    envs = _envs()
    from credo.envs.registry import EnvKeyError

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


def _parse_kv(text: str):
    import yaml

    if "=" not in text:
        raise SystemExit(f"--set expects key=value, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), yaml.safe_load(v)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="credo", description="Credit assignment in reinforcement learning.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="registered envs with their agent/obs/state/action sizes").set_defaults(
        func=cmd_list
    )
    d = sub.add_parser("demo", help="random-policy rollouts of a few envs of every family")
    d.add_argument("--steps", type=int, default=200, help="steps per env copy")
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("rollout", help="random-policy rollout report of one env")
    r.add_argument("env", help="env key, e.g. lbf:Foraging-8x8-2p-3f-v3")
    r.add_argument("--envs", type=int, default=16, help="parallel env copies")
    r.add_argument("--steps", type=int, default=500, help="steps per env copy")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="env keyword argument")
    r.set_defaults(func=cmd_rollout)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", ""))
    args = build_parser().parse_args(argv)
    from credo.envs.registry import EnvKeyError

    try:
        return args.func(args)
    except (EnvKeyError, ValueError) as err:
        print(f"credo: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

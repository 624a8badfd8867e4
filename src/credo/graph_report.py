"""``credo graph RUN_DIR``: the dependence graph a trained ippo-dg / mappo-dg run has learned.

Rolls out the run's policy (its training policy: sampled actions) for a few
episodes, computes the learned graph of every step from the run's world model
(either form, ``wm_input``), and compares it with the env's oracle graph where
the env has one (LBF: agents within ``graph_distance`` of each other). Prints
edge precision and recall and draws one episode as a timeline: one row per
ordered pair j -> k, one column per step, learned beside oracle.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np


def learned_graphs(
    run_dir: str | Path, episodes: int = 20, seed_index: int = 0, threshold: float | None = None
):
    """Episodes of a trained run with their learned and oracle graphs.

    Returns a dict: ``learned`` [E, T, n, n] bool, ``oracle`` (or None), ``mask`` [E, T],
    ``threshold``, ``config``. ``threshold`` overrides the run's c.
    """
    from credo.algos.ppo import PPOConfig
    from credo.cli import load_run_config
    from credo.credit.dependence import graph_from_entropies
    from credo.engine.collect import make_collector
    from credo.engine.rundir import RunDir
    from credo.engine.train import Trainer

    cfg = load_run_config(run_dir)
    if not isinstance(cfg, PPOConfig) or not cfg.algo.endswith("-dg") or cfg.graph_source != "learned":
        raise ValueError(
            f"{run_dir} is a {cfg.algo} run"
            + (f" with graph_source={cfg.graph_source}" if isinstance(cfg, PPOConfig) else "")
            + "; credo graph needs an ippo-dg or mappo-dg run with a learned graph."
        )
    trainer = Trainer(cfg)
    if not trainer.is_jax:
        raise ValueError("credo graph rolls out JAX envs only; this run's env is stepped in Python.")
    if not 0 <= seed_index < len(trainer.seeds):
        raise ValueError(f"seed index {seed_index} is out of range: the run has {len(trainer.seeds)} seeds.")
    state, _ = trainer.load(RunDir(run_dir))
    params = jax.tree.map(lambda x: x[seed_index], state.learner.params)
    learner, env = trainer.learner, trainer.env
    has_oracle = hasattr(env, "interaction_graph")

    def record(env_state, next_env_state, ts):
        out = {"rewards": ts.rewards}
        if learner.agent_features:
            out["substate"] = env.agent_features(env_state)
            out["next_substate"] = env.agent_features(next_env_state)
        if has_oracle:
            out["graph"] = env.interaction_graph(env_state, cfg.graph_distance)
        return out

    collect = jax.jit(make_collector(env, learner, episodes, record=record))
    batch, _, extra = collect(params, jax.random.PRNGKey(10_007 + seed_index), 0.0)
    # The run's own world model form (wm_input: observation or substate).
    _, ((h_own, h_rev), _) = learner.world_model_loss(params["world_model"], batch, extra)
    c = cfg.graph_threshold if threshold is None else threshold
    mask = np.asarray(batch.filled)
    learned = np.asarray(graph_from_entropies(h_rev, h_own, c)) & mask[..., None, None]
    oracle = np.asarray(extra["graph"]) & mask[..., None, None] if has_oracle else None
    return {"learned": learned, "oracle": oracle, "mask": mask, "threshold": c, "config": cfg}


def summarise(result: dict) -> dict:
    """Edge densities and, with an oracle, precision and recall of the off-diagonal edges."""
    from credo.credit.dependence import precision_recall

    learned, oracle, mask = result["learned"], result["oracle"], result["mask"]
    n = learned.shape[-1]
    off = ~np.eye(n, dtype=bool)
    keep = mask[..., None, None] & off
    out = {
        "steps": int(mask.sum()),
        "learned_density": float(learned[keep].mean()) if keep.any() else float("nan"),
    }
    if oracle is not None:
        out["oracle_density"] = float(oracle[keep].mean()) if keep.any() else float("nan")
        out["precision"], out["recall"] = precision_recall(learned, oracle, mask)
    return out


def plot_timeline(result: dict, path: str | Path, episode: int = 0) -> Path:
    """One episode's graphs: rows are ordered pairs j -> k, columns are steps; learned beside oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned, oracle, mask = result["learned"][episode], result["oracle"], result["mask"][episode]
    t_len = max(int(mask.sum()), 1)
    n = learned.shape[-1]
    pairs = [(j, k) for j in range(n) for k in range(n) if j != k]
    panels = [(f"learned (c = {result['threshold']:.2g})", learned)]
    if oracle is not None:
        panels.append(("oracle", oracle[episode]))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(6, t_len * 0.15), 1 + 0.35 * len(pairs) * len(panels))
    )
    axes = np.atleast_1d(axes)
    for ax, (title, g) in zip(axes, panels):
        img = np.array([[g[t, j, k] for t in range(t_len)] for j, k in pairs], float)
        ax.imshow(img, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks(range(len(pairs)), [f"{j}->{k}" for j, k in pairs])
        ax.set_title(title, fontsize=10)
    axes[-1].set_xlabel("step")
    cfg = result["config"]
    fig.suptitle(f"{cfg.algo} on {cfg.env}: dependence graph of one episode", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

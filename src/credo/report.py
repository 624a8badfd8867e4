"""Reports on trained runs. ``matrix``: the layout of the ME-IGM paper's Table 2.5.

For a 2-agent one-step matrix game, each run shows the row and column players'
action probabilities (first column / first row) around the learned Q_tot of
every joint action. The probabilities are the policy that collects data at the
end of training: the soft policies of ME-IGM learners, epsilon-greedy (at the
run's final epsilon) for the others. Tables of several runs print side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass
class MatrixResult:
    """One seed of a run on a 2-agent matrix game, as ``credo report matrix`` shows it."""

    label: str  # "algo seed S"
    probs: np.ndarray  # [2, A] each agent's action probabilities
    q_tot: np.ndarray  # [A, A] learned Q_tot of every joint action
    greedy: tuple[int, int]  # each agent's argmax Q (the executed joint action)
    payoff: np.ndarray  # [A, A]

    @property
    def optimal(self) -> bool:
        """Whether the executed (greedy) joint action earns the game's best payoff."""
        return bool(self.payoff[self.greedy] == self.payoff.max())

    @property
    def p_optimal(self) -> float:
        """Probability the training policy plays an optimal joint action."""
        best = np.argwhere(self.payoff == self.payoff.max())
        return float(sum(self.probs[0, i] * self.probs[1, j] for i, j in best))


def _payoff(env) -> np.ndarray:
    while not hasattr(env, "payoff") and hasattr(env, "env"):
        env = env.env
    if not hasattr(env, "payoff"):
        raise ValueError("credo report matrix needs a run on a matrix game (matrix:...).")
    return np.asarray(env.payoff, np.float64)


def matrix_results(run_path, seeds: list[int] | None = None) -> list[MatrixResult]:
    """One ``MatrixResult`` per seed index of the run in ``run_path`` (its last checkpoint)."""
    from credo.api import load_run_config
    from credo.engine.rundir import RunDir
    from credo.engine.train import Trainer

    run_dir = RunDir(run_path)
    cfg = load_run_config(run_dir.path)
    trainer = Trainer(cfg)
    payoff = _payoff(trainer.env)
    spec, learner = trainer.spec, trainer.learner
    if spec.n_agents != 2 or spec.episode_limit != 1:
        raise ValueError(
            f"credo report matrix needs a 2-agent one-step matrix game; {cfg.env} has "
            f"{spec.n_agents} agents and episode limit {spec.episode_limit}."
        )
    state, _ = trainer.load(run_dir)
    _, ts = trainer.env.reset(jax.random.PRNGKey(0))
    a = spec.n_actions
    out = []
    for i in seeds if seeds is not None else range(len(trainer.seeds)):
        if not 0 <= i < len(trainer.seeds):
            raise ValueError(f"seed index {i} out of range: the run has {len(trainer.seeds)} seed(s).")
        params = jax.tree.map(lambda x, i=i: jnp.asarray(x[i]), state.learner.params)
        inputs = learner.agent_inputs(ts.obs, jnp.zeros((spec.n_agents,), jnp.int32))
        _, q = learner.q_values(params["agent"], learner.initial_hidden(()), inputs)  # [2, A]
        avail = ts.avail_actions
        if learner.explores_with_epsilon:
            eps = float(trainer.epsilon(jnp.asarray(state.env_steps[i])))
            greedy_onehot = jax.nn.one_hot(jnp.argmax(jnp.where(avail, q, -jnp.inf), -1), a)
            uniform = avail / avail.sum(-1, keepdims=True)
            probs = (1 - eps) * greedy_onehot + eps * uniform
        else:
            probs = jnp.exp(learner.log_policy(params, q, ts.state, avail))
        u1, u2 = jnp.meshgrid(jnp.arange(a), jnp.arange(a), indexing="ij")
        joint = jnp.stack([u1.reshape(-1), u2.reshape(-1)], -1)  # [A*A, 2]
        chosen = jnp.stack([q[0, joint[:, 0]], q[1, joint[:, 1]]], -1)
        max_qs = jnp.broadcast_to(jnp.where(avail, q, -jnp.inf).max(-1), chosen.shape)
        states = jnp.broadcast_to(ts.state, (a * a, ts.state.shape[-1]))
        q_tot = learner.mix(params.get("mixer"), chosen, states, max_qs, jax.nn.one_hot(joint, a))
        if q_tot.ndim == 2:  # independent learners: no Q_tot, show the sum
            q_tot = q_tot.sum(-1)
        greedy = tuple(int(x) for x in jnp.argmax(jnp.where(avail, q, -jnp.inf), -1))
        out.append(
            MatrixResult(
                label=f"{cfg.algo} seed {trainer.seeds[i]}",
                probs=np.asarray(probs, np.float64),
                q_tot=np.asarray(q_tot, np.float64).reshape(a, a),
                greedy=greedy,
                payoff=payoff,
            )
        )
    return out


ACTION_NAMES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _block(title: str, row_p, col_p, values, mark=None) -> list[str]:
    """Lines of one table: column probabilities on top, row probabilities on the left."""
    a = len(values)
    lines = [title, "       " + "".join(f"{p:>7.2f}" for p in col_p)]
    for i in range(a):
        cells = "".join(
            f"{values[i][j]:>6.1f}" + ("*" if mark is not None and (i, j) == mark else " ") for j in range(a)
        )
        lines.append(f"{row_p[i]:>5.2f} |{cells}")
    return lines


def format_matrix(results: list[MatrixResult]) -> str:
    """The payoff, then each result as the paper's Table 2.5, side by side (``*``: greedy joint action)."""
    payoff = results[0].payoff
    a = len(payoff)
    blocks = [_block("payoff", [np.nan] * a, [np.nan] * a, payoff)]
    blocks[0][1] = "       " + "".join(f"{ACTION_NAMES[j]:>7s}" for j in range(a))
    for i in range(a):
        blocks[0][2 + i] = f"{ACTION_NAMES[i]:>5s} |" + blocks[0][2 + i].split("|", 1)[1]
    for r in results:
        blocks.append(_block(r.label, r.probs[0], r.probs[1], r.q_tot, r.greedy))
    width = max(len(line) for b in blocks for line in b) + 3
    lines = ["".join(b[k].ljust(width) for b in blocks).rstrip() for k in range(len(blocks[0]))]
    lines.append("")
    lines.append("Rows: agent 1's action (probability on the left); columns: agent 2's (on top).")
    lines.append("Cells: learned Q_tot; * marks the greedy joint action (argmax Q_i of each agent).")
    for r in results:
        g = "(" + ", ".join(ACTION_NAMES[x] for x in r.greedy) + ")"
        lines.append(
            f"  {r.label}: greedy {g} -> payoff {r.payoff[r.greedy]:g}"
            f" ({'optimal' if r.optimal else 'not optimal'}); P(optimal joint action) = {r.p_optimal:.2f}"
        )
    return "\n".join(lines)

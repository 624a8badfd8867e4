"""RICL against Monte Carlo on the 1D Key-Door corridor (paper 003, Fig. 3.2 and appendix A.10).

The LLM's policy ``pi_0`` is read once per state (the corridor's observation is a
function of the state), which makes it a table, so the exact solver gives the
ground-truth advantage ``A`` and ``pi_gt ∝ pi_0 exp(A / beta)``.

* **Monte Carlo** with ``n`` trajectories: for every start state and action, ``n``
  rollouts of ``pi_0`` after that action estimate ``Q``; ``A_hat = Q_hat - V_hat``.
* **RICL** with ``n`` trajectories: from every start state, ``n`` rollouts of
  ``pi_0``; the reflector reads each one in hindsight and writes feedback; the
  policy asked again with that feedback is ``pi'_i``; eq. 3.3 averages them.

Error of a method: ``E_{s ~ rho_0} KL(pi_method(.|s) || pi_gt(.|s))``, with
``rho_0`` uniform over the positions without the key. RICL's reflections are the
expensive part (one LLM generation each), so ``n_max`` of them are drawn per
state once, and a trial with ``n`` trajectories takes ``n`` of them at random
(without replacement). The critical score of a state is
``KL(pi(.|s) || pi_0(.|s))`` for ``pi = pi_gt`` and ``pi = pi_RICL``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from credo.envs.text import keydoor as kd
from credo.ricl.advantage import improved_policy, kl, mc_advantage, ricl_advantage
from credo.ricl.prompts import Step, TextTask, keydoor_task
from credo.ricl.reflect import FeedbackStats, LetterPolicy, reflect_many


@dataclass
class KeyDoorSetup:
    """The experiment's corridor and estimator settings: corridor length, discount, beta, rollout horizon."""

    length: int = 10
    gamma: float = 0.9
    beta: float = 0.05  # temperature of the improvement pi_0 exp(A / beta) that RICL is measured against
    max_steps: int = 30  # rollout horizon


def policy_table(policy: LetterPolicy, length: int, feedback: str | None = None) -> np.ndarray:
    """``[n_states, 4]`` log pi_0 of the LLM at every state of the corridor (``feedback`` in its prompt)."""
    rows = [
        policy.log_probs(kd.describe(kd.state_of(i), length), feedback) for i in range(kd.n_states(length))
    ]
    return np.stack(rows)


def start_states(length: int) -> list[int]:
    """rho_0: every position without the key."""
    return [kd.state_index(p, False) for p in range(length)]


def rollout(
    setup: KeyDoorSetup, logp0: np.ndarray, state: int, rng, first_action: int | None = None
) -> tuple[list[tuple[int, int, float]], float]:
    """One episode of pi_0 from ``state`` (first action given or sampled): [(state, action, reward)], discounted return."""
    pos, key = kd.state_of(state)
    steps, ret = [], 0.0
    p0 = np.exp(logp0)
    for t in range(setup.max_steps):
        s = kd.state_index(pos, key)
        a = first_action if (t == 0 and first_action is not None) else int(rng.choice(4, p=p0[s]))
        pos, key, r, done = kd.transition(setup.length, pos, key, a)
        steps.append((s, a, r))
        ret += setup.gamma**t * r
        if done:
            break
    return steps, ret


def mc_returns(setup: KeyDoorSetup, logp0: np.ndarray, state: int, action: int, n: int, rng) -> np.ndarray:
    """``[n]`` discounted returns of ``n`` rollouts of pi_0 after ``action`` in ``state``, stepped together."""
    next_state, reward = kd.dynamics_table(setup.length)
    cum = np.cumsum(np.exp(logp0), -1)
    s = np.full(n, state)
    alive = np.ones(n, bool)
    ret = np.zeros(n)
    for t in range(setup.max_steps):
        a = np.full(n, action) if t == 0 else np.minimum((rng.random(n)[:, None] > cum[s]).sum(-1), 3)
        ret += alive * setup.gamma**t * reward[s, a]
        nxt = next_state[s, a]
        alive &= nxt >= 0
        s = np.where(nxt >= 0, nxt, 0)
        if not alive.any():
            break
    return ret


def mc_estimate(setup: KeyDoorSetup, logp0: np.ndarray, states: list[int], n: int, rng) -> np.ndarray:
    """``[len(states), 4]`` Monte Carlo advantages from ``n`` rollouts per state-action pair."""
    q = np.array([[mc_returns(setup, logp0, s, a, n, rng).mean() for a in range(4)] for s in states])
    return mc_advantage(q, logp0[states])


@dataclass
class Reflections:
    """The in-context updated policies of RICL: ``logp[k, i]`` for state ``states[i]`` and reflection ``k``."""

    states: list[int]
    logp: np.ndarray  # [n_max, len(states), 4]
    feedback: list[list[str | None]]  # [len(states)][n_max]
    replies: list[list[str]]
    stats: FeedbackStats = field(default_factory=FeedbackStats)
    seconds: float = 0.0


def brief(state: int, length: int) -> str:
    """A short state description for hindsight trajectories."""
    pos, key = kd.state_of(state)
    door, cell = length - 1 - pos, pos
    return (
        f"{door} step{'s' * (door != 1)} from the door, {cell} step{'s' * (cell != 1)} from the key cell, "
        f"{'holding' if key else 'without'} the key"
    )


def _steps_text(setup: KeyDoorSetup, steps: list[tuple[int, int, float]]) -> list[Step]:
    return [
        Step(kd.describe(kd.state_of(s), setup.length), a, r, brief(s, setup.length)) for s, a, r in steps
    ]


def draw_reflections(
    setup: KeyDoorSetup,
    policy: LetterPolicy,
    reflector,
    logp0: np.ndarray,
    states: list[int],
    n_max: int,
    rng,
    task: TextTask | None = None,
    max_tokens: int = 128,
    log=lambda s: None,
    prefill: bool = False,
) -> Reflections:
    """``n_max`` RICL updates per state: rollout of pi_0, reflection on step 0, the policy with the feedback.

    The rollouts and seeds are drawn first (in the order of the one-at-a-time loop this replaced), then
    every reflection is asked in one batched request and every re-query of the policy in another.
    """
    task = task or keydoor_task()
    start = time.perf_counter()
    items = []
    for s in states:
        for _ in range(n_max):
            steps = _steps_text(setup, rollout(setup, logp0, s, rng)[0])
            items.append((steps, 0, "", int(rng.integers(1 << 30))))
    stats = FeedbackStats()
    answers = reflect_many(reflector, task, items, stats, max_tokens=max_tokens, prefill=prefill)
    log(f"{len(items)} reflections in {time.perf_counter() - start:.0f} s ({stats.usable} usable)")
    obs = [kd.describe(kd.state_of(s), setup.length) for s in states for _ in range(n_max)]
    asked = [j for j, (fb, _) in enumerate(answers) if fb is not None]
    improved = dict(
        zip(asked, policy.log_probs_many([(obs[j], answers[j][0], "") for j in asked]), strict=True)
    )
    out = np.zeros((n_max, len(states), 4))
    for j, s in enumerate(s for s in states for _ in range(n_max)):
        out[j % n_max, j // n_max] = improved.get(j, logp0[s])
    fbs = [[answers[i * n_max + k][0] for k in range(n_max)] for i in range(len(states))]
    replies = [[answers[i * n_max + k][1] for k in range(n_max)] for i in range(len(states))]
    return Reflections(states, out, fbs, replies, stats, time.perf_counter() - start)


def error(logp0_states: np.ndarray, advantage: np.ndarray, gt_advantage: np.ndarray, beta: float) -> float:
    """``E_s KL(pi_method || pi_gt)`` over the given states."""
    return float(
        kl(
            improved_policy(logp0_states, advantage, beta), improved_policy(logp0_states, gt_advantage, beta)
        ).mean()
    )


def ground_truth(setup: KeyDoorSetup, logp0: np.ndarray) -> np.ndarray:
    """``[n_states, 4]`` exact advantages of pi_0."""
    return kd.solve(setup.length, np.exp(logp0), setup.gamma).A


def ricl_errors(
    setup: KeyDoorSetup, logp0, refl: Reflections, ns: list[int], trials: int, rng
) -> dict[int, list[float]]:
    """RICL's error (``error``) per number of trajectories: for each ``n`` in ``ns``, ``trials`` errors,
    each averaging ``n`` of the drawn reflections taken at random without replacement.
    """
    gt = ground_truth(setup, logp0)[refl.states]
    out = {}
    for n in ns:
        errs = []
        for _ in range(trials):
            pick = rng.choice(refl.logp.shape[0], size=n, replace=False)
            a = ricl_advantage(logp0[refl.states], refl.logp[pick], setup.beta)
            errs.append(error(logp0[refl.states], a, gt, setup.beta))
        out[n] = errs
    return out


def mc_errors(
    setup: KeyDoorSetup, logp0, states: list[int], ns: list[int], trials: int, rng
) -> dict[int, list[float]]:
    """Monte Carlo's error (``error``) over ``states`` per number of trajectories: for each ``n`` in
    ``ns``, ``trials`` errors of fresh estimates from ``n`` rollouts per state-action pair.
    """
    gt = ground_truth(setup, logp0)[states]
    return {
        n: [
            error(logp0[states], mc_estimate(setup, logp0, states, n, rng), gt, setup.beta)
            for _ in range(trials)
        ]
        for n in ns
    }


def critical_scores(setup: KeyDoorSetup, logp0: np.ndarray, refl: Reflections) -> dict[str, list[float]]:
    """``KL(pi || pi_0)`` per state of ``refl.states`` for the ground truth and RICL (all reflections)."""
    s = refl.states
    gt = improved_policy(logp0[s], ground_truth(setup, logp0)[s], setup.beta)
    ricl = improved_policy(logp0[s], ricl_advantage(logp0[s], refl.logp, setup.beta), setup.beta)
    return {"ground_truth": kl(gt, logp0[s]).tolist(), "ricl": kl(ricl, logp0[s]).tolist()}


def optimal_path(length: int) -> list[int]:
    """States along the solution: walk left to the key, pick it up, walk right to the door (x-axis of Fig. A.8)."""
    return [kd.state_index(p, False) for p in range(length - 1, -1, -1)] + [
        kd.state_index(p, True) for p in range(length)
    ]


def expert_actions(length: int) -> np.ndarray:
    """``[n_states]`` the solver's action at every state: left to the key, pick it up, right to the door, unlock."""
    out = np.empty(kd.n_states(length), np.int64)
    for s in range(kd.n_states(length)):
        pos, key = kd.state_of(s)
        if not key:
            out[s] = kd.PICK_UP if pos == kd.KEY_CELL else kd.MOVE_LEFT
        else:
            out[s] = kd.UNLOCK if pos == length - 1 else kd.MOVE_RIGHT
    return out


@dataclass(frozen=True)
class DemoTuning:
    """A brief fine-tune of the policy LLM on the expert's actions, so that pi_0 depends on the state.

    SmolLM2-135M's own pi_0 is the same at every state of the corridor (about 47% "move
    left", whatever the prompt says, hints included), so it rarely reaches the door, its
    value is near 0 and every start-state advantage is below 0.01: RICL and Monte Carlo
    then estimate a ground truth that is pi_0 itself. ``steps`` full-batch Adam steps
    (learning rate ``lr``) on the cross-entropy to ``(1 - mix) pi_0 + mix * expert`` at every
    state of the corridor move pi_0 part of the way toward the solver's policy.
    """

    mix: float = 0.5  # weight of the expert's one-hot action in the target
    steps: int = 10  # full-batch gradient steps
    lr: float = 1e-5  # Adam

    def __post_init__(self):
        if not 0.0 < self.mix <= 1.0:
            raise ValueError(f"demo tuning mix must be in (0, 1], got {self.mix}")
        if self.steps < 1 or self.lr <= 0:
            raise ValueError(f"demo tuning needs steps >= 1 and lr > 0, got steps={self.steps}, lr={self.lr}")


def demo_tune(policy_llm, length: int, tuning: DemoTuning, log=lambda s: None) -> dict:
    """Fine-tunes ``policy_llm`` (the local backend; its weights change in place) as ``tuning`` says.

    Returns the record: pi_0 before and after at every state, the loss at each step and the seconds.
    The LLM must have no response cache (its answers change with its weights).
    """
    import torch

    backend = policy_llm.backend
    if backend.name != "local" or policy_llm._cache:
        raise ValueError(
            "demo tuning fine-tunes the policy's weights: it needs the local backend with no response cache"
        )
    task = keydoor_task()
    policy = LetterPolicy(policy_llm, task)
    before = policy_table(policy, length)
    chats = [task.policy_messages(kd.describe(kd.state_of(s), length)) for s in range(kd.n_states(length))]
    letter_ids = backend.single_token_ids(task.policy_messages("x"), task.letters)
    target = (1.0 - tuning.mix) * np.exp(before)
    target[np.arange(len(chats)), expert_actions(length)] += tuning.mix
    q = torch.tensor(target, dtype=torch.float32)
    params = [p for p in backend.lm.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=tuning.lr)
    losses, start = [], time.perf_counter()
    backend.lm.train()
    for step in range(tuning.steps):
        logp = backend.next_token_logprobs(chats, letter_ids)
        loss = -(q * (logp - torch.logsumexp(logp, -1, keepdim=True))).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        log(f"demo tuning step {step + 1}/{tuning.steps}: cross-entropy {losses[-1]:.4f}")
    backend.lm.eval()
    del opt
    after = policy_table(policy, length)
    return {
        **tuning.__dict__,
        "losses": losses,
        "seconds": time.perf_counter() - start,
        "pi0_before": np.exp(before).tolist(),
        "pi0_after": np.exp(after).tolist(),
    }


def start_state_table(setup: KeyDoorSetup, logp0: np.ndarray) -> list[str]:
    """Markdown rows: pi_0, the exact value and the exact advantages at every start state (rho_0)."""
    sol = kd.solve(setup.length, np.exp(logp0), setup.gamma)
    rows = [
        "| start state (position) | pi_0 (left, right, pick up, unlock) | V | A (left, right, pick up, unlock) |",
        "|---:|---|---:|---|",
    ]
    for s in start_states(setup.length):
        pi = ", ".join(f"{x:.2f}" for x in np.exp(logp0[s]))
        adv = ", ".join(f"{x:+.4f}" for x in sol.A[s])
        rows.append(f"| {kd.state_of(s)[0]} | {pi} | {sol.V[s]:.4f} | {adv} |")
    return rows


def run_experiment(
    policy_llm,
    reflector_llm,
    out_dir,
    setup: KeyDoorSetup | None = None,
    n_max: int = 5,
    ricl_ns: tuple[int, ...] = (1, 2, 3, 5),
    mc_ns: tuple[int, ...] = (1, 3, 10, 30, 100, 300, 1000),
    trials: int = 8,
    all_states: bool = True,
    prefill: bool = False,
    max_tokens: int = 128,
    seed: int = 0,
    log=print,
    demo: DemoTuning | None = None,
) -> dict:
    """Fig. 3.2 (error against trajectories) and Fig. A.8 (critical states); writes JSON, Markdown and plots.

    ``demo``: fine-tune the policy on the expert's actions first (``demo_tune``), so that pi_0 depends
    on the state; the reflector must then be another LLM object (it stays the model as loaded).
    """
    import json
    from pathlib import Path

    setup = setup or KeyDoorSetup()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    task = keydoor_task()
    policy = LetterPolicy(policy_llm, task)
    tuned = None
    if demo is not None:
        if reflector_llm is policy_llm:
            raise ValueError("with demo tuning, give the reflector its own LLM: the policy's weights change")
        tuned = demo_tune(policy_llm, setup.length, demo, log)
    t0 = time.perf_counter()
    logp0 = policy_table(policy, setup.length)
    table_s = time.perf_counter() - t0
    rho0 = start_states(setup.length)
    states = optimal_path(setup.length) if all_states else rho0
    log(
        f"pi_0 read at {len(logp0)} states in {table_s:.1f} s; reflecting {n_max} times at {len(states)} states"
    )

    refl = draw_reflections(
        setup, policy, reflector_llm, logp0, states, n_max, rng, task, max_tokens, log, prefill
    )
    on_rho0 = [states.index(s) for s in rho0]
    sub = Reflections(
        rho0, refl.logp[:, on_rho0], [refl.feedback[i] for i in on_rho0], [refl.replies[i] for i in on_rho0]
    )
    ns = [n for n in ricl_ns if n <= n_max]
    ricl = ricl_errors(setup, logp0, sub, ns, trials, rng)
    mc = mc_errors(setup, logp0, rho0, list(mc_ns), trials, rng)
    base = error(logp0[rho0], np.zeros((len(rho0), 4)), ground_truth(setup, logp0)[rho0], setup.beta)
    crit = critical_scores(setup, logp0, refl)
    doc = {
        "experiment": "ricl_keydoor",
        "policy_model": policy_llm.model,
        "reflector_model": reflector_llm.model,
        "setup": setup.__dict__,
        "n_max": n_max,
        "trials": trials,
        "prefill": prefill,
        "reflector_max_tokens": max_tokens,
        "demo_tuning": tuned,
        "pi0": np.exp(logp0).tolist(),
        "start_state_value": kd.solve(setup.length, np.exp(logp0), setup.gamma).V[rho0].tolist(),
        "ground_truth_advantage": ground_truth(setup, logp0).tolist(),
        "error_no_update": base,
        "ricl_error": {str(n): v for n, v in ricl.items()},
        "mc_error": {str(n): v for n, v in mc.items()},
        "critical_states": [kd.state_of(s) for s in states],
        "critical_scores": crit,
        "feedback": refl.stats.to_dict(),
        "feedback_texts": refl.feedback,
        "reflector_replies": refl.replies,
        "seconds_policy_table": table_s,
        "seconds_reflections": refl.seconds,
        "seconds_per_reflection": refl.seconds / max(1, n_max * len(states)),
    }
    (out / "ricl_keydoor.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot_errors(doc, out / "error_vs_trajectories.png")
    _plot_critical(crit, states, out / "critical_states.png")
    lines = [
        f"RICL vs Monte Carlo on 1D Key-Door (length {setup.length}, gamma {setup.gamma}, beta {setup.beta}); "
        f"policy {policy_llm.model}, reflector {reflector_llm.model}",
        *(
            [
                f"policy pi_0: demo-tuned ({demo.steps} Adam steps at lr {demo.lr} toward "
                f"{1 - demo.mix:g} pi_0 + {demo.mix:g} expert at every state; cross-entropy "
                f"{tuned['losses'][0]:.3f} -> {tuned['losses'][-1]:.3f}, {tuned['seconds']:.0f} s)"
            ]
            if tuned
            else []
        ),
        f"error of pi_0 itself (no update): {base:.4f}",
        "",
        *start_state_table(setup, logp0),
        "",
        "| method | n | mean error | std |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| RICL | {n} | {np.mean(v):.4f} | {np.std(v):.4f} |" for n, v in ricl.items()]
    lines += [f"| Monte Carlo | {n} | {np.mean(v):.4f} | {np.std(v):.4f} |" for n, v in mc.items()]
    lines.append(
        f"feedback: {refl.stats.to_dict()} ({refl.seconds / max(1, n_max * len(states)):.1f} s per reflection)"
    )
    (out / "ricl_keydoor.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))
    return doc


def plot_errors(doc: dict, path) -> None:
    """Error against the number of trajectories (log axis, as the paper's Fig. 3.2), from the JSON record."""
    from credo.stats.plots import plot_learning_curves

    curves = {
        name: (np.array([float(n) for n in errs]), np.array(list(errs.values()), float).T)
        for name, errs in (("Monte Carlo", doc["mc_error"]), ("RICL", doc["ricl_error"]))
    }
    if "error_no_update" in doc:  # the estimate A = 0 (pi_0 itself): what an estimator must beat
        x = curves["Monte Carlo"][0]
        curves["no update (A = 0)"] = (x, np.full((1, len(x)), doc["error_no_update"]))
    plot_learning_curves(
        curves,
        path,
        xlabel="trajectories n",
        ylabel="E KL(pi_method || pi_gt)",
        title=f"1D Key-Door (length {doc['setup']['length']}), {doc['policy_model']}"
        + (", demo-tuned pi_0" if doc.get("demo_tuning") else ""),
        logx=True,
    )


def _plot_critical(crit: dict, states: list[int], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for name, v in crit.items():
        v = np.asarray(v)
        ax.plot(v / (v.max() or 1.0), marker="o", label=name.replace("_", " "))
    labels = [f"{p}{'K' if k else ''}" for p, k in (kd.state_of(s) for s in states)]
    ax.set_xticks(range(len(states)), labels, fontsize=7)
    ax.set_xlabel("state along the solution (position, K = holding the key)")
    ax.set_ylabel("critical score (normalised)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""ME-IGM (thesis file 003, chapter 2): maximum-entropy value decomposition that keeps IGM.

Any IGM mixer (QMIX -> ME-QMIX, QPLEX -> ME-QPLEX) learns Q_tot from local Q_i as
in value decomposition; what changes is how data is collected and what the
target is:

- Acting: agent i samples from ``pi_i = softmax(OPT_i(Q_i, s) / alpha)`` (eq. 2.10),
  not epsilon-greedy. The order-preserving transformation (OPT) keeps the order
  of Q_i, so the most likely local actions together are the greedy joint action
  of Q_tot; execution takes argmax Q_i and needs no state. ``opt_form``:
  ``paper`` is eq. 2.2 (``W2 ELU(W1 x + b1) + b2``, strictly positive weights from
  one-layer hypernetworks of the state, no identity term); ``skip`` is the
  authors' earlier code (``x +`` that, two-layer hypernetworks, slope >= 1).
  Both in ``credo.networks.policy_head``.
- Critic (eq. 2.8, A.1): TD(lambda) towards the soft return. The t+1 actions
  u' are sampled from the current soft policies; the t+1 value is
  ``Q_tot^-(s', u') - alpha log pi_jt(u' | s')``, and (the note under eq. A.4)
  ``-alpha log pi_jt`` is also added to the t+1 lambda-return that step t
  continues through. ``soft_target_entropy`` says of which action:
  ``sampled`` (default; the authors' code, whose ``build_td_lambda_targets``
  adds the one entropy of the sampled u' to both branches; eq. A.3's
  ``log pi_jt(u_t+1 | s_t+1)`` does not say which u_t+1) takes the sampled u'
  on both, a one-sample entropy estimate whose mean is at most log |U|;
  ``replayed`` (credo's earlier form) takes the replayed u_t+1 on the return
  branch, the soft return of the logged trajectory, whose term is unbounded
  when the replayed action is unlikely under the current, near-greedy policy.
  ``soft_td_targets`` computes both.
- OPT (eq. 2.9): ``0.5 (Q_tot - sum_i OPT_i(Q_i)[u_i])^2`` with Q_tot and Q_i held
  fixed, so the OPTs make sum_i OPT_i a local, decentralisable image of Q_tot.
- Temperature (eq. 2.11): log alpha follows ``log_alpha * (H(pi_jt) - H_target)``
  (SAC's rule), with H the entropy of the current joint policy at the batch's
  states (exact, summed over actions, rather than the paper's one-sample estimate
  at the replayed actions: same expectation on-policy, less variance).

The three losses touch disjoint parameters (agent+mixer, policy head, log alpha;
everything else is stop-gradient), so one gradient of their sum is the paper's
three separate updates; each group has its own optimizer.

Ablations (``policy_transform``): ``none`` is the paper's "+Entropy" (logits = Q_i,
no OPT loss); ``mlp`` is "OPT -> MLP" (an unconstrained MLP trained with the OPT loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import optax

from credo.algos.value import LearnerState, ValueConfig, ValueLearner
from credo.buffers.episode import EpisodeBatch
from credo.config import PositiveFloat, PositiveInt
from credo.credit.td import td_lambda_targets
from credo.envs.core import EnvSpec
from credo.networks.policy_head import make_policy_head


@dataclass(frozen=True)
class MaxEntConfig(ValueConfig):
    """Settings of ME-QMIX and ME-QPLEX: the value learner's, and the soft policies' below."""

    policy_transform: Literal["opt", "none", "mlp"] = (
        "opt"  # Q -> logits: OPT (ME-IGM), none (+Entropy), mlp (OPT->MLP)
    )
    opt_form: Literal["paper", "skip"] = (
        "paper"  # OPT: paper = eq. 2.2, W2 ELU(W1 x+b1)+b2, 1-layer hypernets; skip = x + that (authors' old code)
    )
    opt_layers: PositiveInt = (
        1  # stacked monotone blocks of the OPT (eq. 2.2: 1; more only with opt_form=skip)
    )
    opt_hidden: PositiveInt = 16  # monotone units per agent and block (d1; the authors' code: 16)
    opt_hypernet_embed: PositiveInt = (
        64  # hidden width of the OPT's hypernetworks (opt_form=skip; paper's have none)
    )
    soft_target_entropy: Literal["sampled", "replayed"] = (
        "sampled"  # -alpha log pi on the t+1 return: sampled action's (eq. A.1, authors'), replayed one's (old)
    )
    alpha: PositiveFloat = 0.03  # temperature of the soft policies (its start value when auto_alpha)
    auto_alpha: bool = True  # tune the temperature towards the target entropy (eq. 2.11)
    target_entropy_per_agent: float = 0.24  # target joint entropy / n_agents (nats; paper: 0.24, terran 0.32)
    alpha_lr: PositiveFloat = 0.3  # Adam learning rate of log(alpha)


_MASKED = -1e9  # logit of an unavailable action (finite: keeps 0 * logp free of NaN)


def masked_log_softmax(logits, avail):
    """log pi over the available actions; unavailable ones get probability 0."""
    return jax.nn.log_softmax(jnp.where(avail, logits, _MASKED), -1)


def entropy(logp):
    """Entropy of each distribution in ``logp [..., A]`` (0 * log 0 counted as 0)."""
    p = jnp.exp(logp)
    return -jnp.sum(jnp.where(p > 0, p * logp, 0.0), -1)


def _masked_mean(x, mask):
    m = mask.astype(jnp.float32)
    return jnp.sum(x * m) / jnp.maximum(m.sum(), 1.0)


def _take(x, idx):
    """x [..., A] at integer idx [...] -> [...]."""
    return jnp.take_along_axis(x, idx[..., None], -1)[..., 0]


def soft_td_targets(
    rewards,
    terminated,
    filled,
    target_tot,
    logp_sampled,
    logp_replayed,
    alpha,
    gamma: float,
    td_lambda: float,
    entropy_term: str = "sampled",
):
    """Soft TD(lambda) targets of ME-IGM (eq. 2.8, A.1): [B, T].

    rewards, terminated, filled: [B, T]; target_tot [B, T+1]: the target network's
    Q_tot at actions u' sampled from the current soft policies; logp_sampled
    [B, T+1]: their joint log pi_jt(u' | s); logp_replayed [B, T]: that of the
    replayed actions. The t+1 value is ``target_tot - alpha logp_sampled``; the t+1
    lambda-return that step t continues through gets ``-alpha log pi_jt`` of the
    sampled u' (``entropy_term="sampled"``, the authors' code: the same term on
    both branches) or of the replayed u_t+1 (``"replayed"``, credo's earlier
    form). One step (T = 1, or td_lambda = 0) makes no difference.
    """
    soft_values = target_tot - alpha * logp_sampled
    if entropy_term == "sampled":
        logp_next = logp_sampled[:, :-1]  # the last one is already in soft_values[:, T]
    elif entropy_term == "replayed":
        logp_next = logp_replayed
    else:
        raise ValueError(f"unknown soft_target_entropy {entropy_term!r}; choose sampled or replayed.")
    # bonus[:, t] enters the return of step t-1 (t = 1..T-1); 0 on padding and at T, where the
    # bootstrap soft_values[:, T] already carries it.
    bonus = -alpha * logp_next * filled
    bonus = jnp.concatenate([bonus, jnp.zeros_like(bonus[:, :1])], 1)
    return td_lambda_targets(rewards, terminated, filled, soft_values, gamma, td_lambda, bonus=bonus)


class MaxEntLearner(ValueLearner):
    """ME-IGM on top of the value learner: same agent network, mixer, buffer and engine."""

    explores_with_epsilon = False  # the soft policies explore

    def __init__(self, cfg: MaxEntConfig, spec: EnvSpec):
        super().__init__(cfg, spec)
        if self.mixer is None:
            raise ValueError(
                f"{cfg.algo} needs an IGM mixer (qmix, qplex or vdn); got mixer=null. "
                "Set mixer=qmix, or use algo iql for independent learners."
            )
        if cfg.policy_transform == "opt" and cfg.opt_form == "paper" and cfg.opt_layers != 1:
            # Stacked eq. 2.2 blocks compound their scale: in float32 the second block's ELU
            # saturates at -1 for most actions, which then tie (the argmax of the logits
            # stops matching argmax Q). The skip form's identity path keeps them apart.
            raise ValueError(
                f"opt_form=paper is eq. 2.2, one block; got opt_layers={cfg.opt_layers}. "
                "Stack blocks with opt_form=skip."
            )
        self.head = make_policy_head(
            cfg.policy_transform,
            spec.n_agents,
            spec.n_actions,
            hidden=cfg.opt_hidden,
            layers=cfg.opt_layers,
            form=cfg.opt_form,
            hypernet_embed=cfg.opt_hypernet_embed,
        )
        self.target_entropy = cfg.target_entropy_per_agent * spec.n_agents
        critic = self.optimizer  # clip + adam/rmsprop at cfg.lr, from ValueLearner
        policy = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.lr))
        temperature = optax.adam(cfg.alpha_lr) if cfg.auto_alpha else optax.set_to_zero()
        group = {"agent": "critic", "mixer": "critic", "policy": "policy", "log_alpha": "temperature"}
        self.optimizer = optax.multi_transform(
            {"critic": critic, "policy": policy, "temperature": temperature},
            lambda params: {k: jax.tree.map(lambda _, k=k: group[k], v) for k, v in params.items()},
        )

    def init(self, key: jax.Array) -> LearnerState:
        """Fresh parameters: the value learner's, plus the policy head's (``policy``, absent with
        ``policy_transform=none``) and ``log_alpha`` (from ``alpha``). Call once per seed outside vmap.
        """
        k_base, k_head = jax.random.split(key)
        base = super().init(k_base)
        params = dict(base.params)
        if self.head is not None:
            qs = jnp.zeros((1, self.spec.n_agents, self.spec.n_actions))
            params["policy"] = self.head.init(k_head, qs, jnp.zeros((1, self.spec.state_dim)))
        params["log_alpha"] = jnp.log(jnp.asarray(self.cfg.alpha, jnp.float32))
        return base._replace(params=params, target_params=params, opt_state=self.optimizer.init(params))

    # --- the soft policies ------------------------------------------------------------

    def logits(self, params, qs, state):
        """Policy logits [..., n, A] from local Q-values [..., n, A] and the state [..., S]."""
        if self.head is None:
            return qs  # +Entropy: softmax of Q itself
        return self.head.apply(params["policy"], qs, state)

    def log_policy(self, params, qs, state, avail):
        """log pi_i = log softmax(logits / alpha) over available actions: [..., n, A]."""
        alpha = jnp.exp(params["log_alpha"])
        return masked_log_softmax(self.logits(params, qs, state) / alpha, avail)

    def act(self, params, hidden, obs, state, avail, last_actions, key, epsilon, greedy: bool = False):
        """Samples from the soft policies (``epsilon`` unused); ``greedy``: argmax Q_i (execution)."""
        hidden, q = self.q_values(params["agent"], hidden, self.agent_inputs(obs, last_actions))
        if greedy:
            return hidden, jnp.argmax(jnp.where(avail, q, -jnp.inf), -1).astype(jnp.int32)
        state = jnp.broadcast_to(state, (*q.shape[:-2], state.shape[-1]))
        logp = self.log_policy(params, q, state, avail)
        return hidden, jax.random.categorical(key, logp).astype(jnp.int32)

    # --- learning -----------------------------------------------------------------

    def loss(self, params, target_params, batch: EpisodeBatch, rewards, key=None):
        """``(loss, metrics)``: the sum of ME-IGM's three losses on a batch (see the module docstring).

        The soft TD(lambda) loss of Q_tot (eq. 2.8, A.1; ``key`` samples the next actions of the soft
        target, so it is required), the OPT loss (eq. 2.9; zero without a policy head) and the
        temperature loss (eq. 2.11). They touch disjoint parameters, so one gradient of the sum is the
        three separate updates.
        """
        cfg, n_actions = self.cfg, self.spec.n_actions
        sg = jax.lax.stop_gradient
        alpha = sg(jnp.exp(params["log_alpha"]))
        onehot = lambda u: jax.nn.one_hot(u, n_actions)  # noqa: E731
        masked_max = lambda q: jnp.where(batch.avail, q, _MASKED).max(-1)  # noqa: E731

        qs = self.unroll(params["agent"], batch)  # [B, T+1, n, A]
        logits = self.logits(params, sg(qs), batch.state)  # gradient reaches the policy head only
        logp = masked_log_softmax(sg(logits) / alpha, batch.avail)  # [B, T+1, n, A]

        # Soft target (eq. A.1): next actions sampled from the current soft policies.
        sampled = jax.random.categorical(key, logp)  # [B, T+1, n]
        target_qs = sg(self.unroll(target_params["agent"], batch))
        target_tot = self.mix(
            target_params["mixer"],
            _take(target_qs, sampled),
            batch.state,
            masked_max(target_qs),
            onehot(sampled),
        )
        targets = soft_td_targets(
            rewards,
            batch.terminated,
            batch.filled,
            target_tot,
            _take(logp, sampled).sum(-1),  # log pi_jt of the sampled actions, [B, T+1]
            _take(logp[:, :-1], batch.actions).sum(-1),  # of the replayed ones, [B, T]
            alpha,
            cfg.gamma,
            cfg.td_lambda,
            cfg.soft_target_entropy,
        )

        q_tot = self.mix(
            params["mixer"],
            _take(qs[:, :-1], batch.actions),
            batch.state[:, :-1],
            masked_max(sg(qs))[:, :-1],
            onehot(batch.actions),
        )
        err = q_tot - sg(targets)
        td_loss = _masked_mean(err**2, batch.filled)

        # OPT loss (eq. 2.9): sum_i OPT_i(Q_i)[u_i] towards Q_tot, both held fixed.
        if self.head is not None:
            opt_sum = _take(logits[:, :-1], batch.actions).sum(-1)
            opt_loss = 0.5 * _masked_mean((sg(q_tot) - opt_sum) ** 2, batch.filled)
        else:
            opt_loss = jnp.zeros(())

        # Temperature (eq. 2.11): alpha rises when the joint entropy is below target.
        joint_entropy = entropy(logp[:, :-1]).sum(-1)  # [B, T]
        h = _masked_mean(joint_entropy, batch.filled)
        alpha_loss = params["log_alpha"] * sg(h - self.target_entropy)

        metrics = {
            "loss": td_loss,
            "td_error_abs": _masked_mean(jnp.abs(err), batch.filled),
            "q_taken_mean": _masked_mean(q_tot, batch.filled),
            "target_mean": _masked_mean(targets, batch.filled),
            "opt_loss": opt_loss,
            "entropy": h,
            "alpha": alpha,
        }
        return td_loss + opt_loss + alpha_loss, metrics

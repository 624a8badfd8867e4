"""Value decomposition for cooperative CTDE: IQL, VDN, QMIX, QPLEX differ only by mixer.

A recurrent agent network (shared across agents, agent id in the input) gives
each agent's Q-values; a mixer combines the chosen ones into Q_tot, trained on
TD(lambda) targets from a target network (pymarl2's QMIX learner; EPyMARL's
with ``td_lambda = 0``). Everything here is a pure function of arrays: the
engine jits, scans and vmaps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from credo.algos.common import RunConfig, update_moments
from credo.buffers.episode import EpisodeBatch
from credo.config import NonNegativeInt, PositiveFloat, PositiveInt, Range, UnitInterval
from credo.credit.td import td_lambda_targets
from credo.envs.core import EnvSpec
from credo.mixers import make_mixer
from credo.networks.agent import RecurrentAgent, init_agents, step_agents, unroll_agents


@dataclass(frozen=True)
class ValueConfig(RunConfig):
    """Settings of a value-based run.

    Defaults are EPyMARL's ``qmix.yaml`` except where a field's comment names another source
    (pymarl2, a paper) or says "credo's": the GRU agent and TD(lambda) 0.6 are pymarl2's. Per-family and per-algorithm settings from the papers live in
    ``configs/envs/`` and ``configs/tuned/`` (what ``credo train ALGO ENV`` layers on top).
    """

    algo: str = "qmix"  # learner: iql, vdn, qmix, qplex, qllm, me-qmix or me-qplex
    # acting
    epsilon_start: UnitInterval = 1.0  # exploration at the start (EPyMARL)
    epsilon_finish: UnitInterval = 0.05  # exploration after annealing (EPyMARL)
    epsilon_anneal_steps: NonNegativeInt = 50_000  # env steps over which epsilon falls linearly (EPyMARL)
    # agent network
    hidden_dim: PositiveInt = 64  # width of the agent network (EPyMARL, pymarl2)
    use_rnn: bool = True  # GRU agent, else feed-forward (pymarl2's GRU; EPyMARL qmix.yaml: false)
    share_params: bool = True  # one network for all agents (EPyMARL)
    obs_agent_id: bool = True  # append the agent's one-hot id to its observation (EPyMARL)
    obs_last_action: bool = False  # append the agent's previous action, one-hot (EPyMARL; pymarl2: true)
    # mixer
    mixer: str | None = "qmix"  # vdn, qmix, qplex, tfcaf (QLLM) or null (independent learners)
    mixing_embed_dim: PositiveInt = 32  # QMIX mixing layer width
    hypernet_layers: PositiveInt = 2  # depth of QMIX/QPLEX weight hypernetworks
    hypernet_embed: PositiveInt = 64  # width of their hidden layer
    mixer_kwargs: dict = field(default_factory=dict)  # further mixer settings, e.g. QPLEX num_kernel
    tfcaf: str | None = None  # QLLM: TFCAF file (.json from `credo qllm generate`, or a hand-written .py)
    tfcaf_gamma: Annotated[int, Range(0, 1)] | None = (
        None  # QLLM: IGM gate, 1 = Q_tot must be monotone in every Q_i; null = the file's (else 1)
    )
    # learning
    buffer_size: Annotated[int, Range(ge="batch_size", why="batches are sampled from it")] = (
        5000  # replay capacity in episodes (EPyMARL)
    )
    batch_size: PositiveInt = 32  # episodes per gradient step (EPyMARL)
    updates_per_iteration: PositiveInt = 1  # gradient steps per collected batch of n_envs episodes (EPyMARL)
    optimizer: Literal["adam", "rmsprop"] = "adam"  # EPyMARL: adam; original pymarl: rmsprop
    lr: PositiveFloat = 5e-4  # learning rate (EPyMARL)
    gamma: UnitInterval = 0.99  # discount (EPyMARL)
    td_lambda: UnitInterval = 0.6  # lambda of TD(lambda) targets, 0 = one-step (pymarl2's 0.6; EPyMARL: 0)
    double_q: bool = True  # pick target actions with the online network (EPyMARL)
    target_update: Literal["hard", "soft"] = "hard"  # copy every interval, or Polyak-average every update
    target_update_interval: PositiveInt = (
        200  # hard target updates every this many target_update_unit (EPyMARL)
    )
    target_update_unit: Literal["episodes", "updates"] = (
        "updates"  # what the interval counts: gradient steps (EPyMARL's train() calls) or episodes (pymarl2)
    )
    tau: Annotated[float, Range(gt=0, le=1)] = 0.01  # soft target update rate
    grad_clip: PositiveFloat = 10.0  # global gradient norm clip (EPyMARL)
    standardise_rewards: bool = True  # rewards minus their running mean, over their running std (EPyMARL)


class LearnerState(NamedTuple):
    """A value learner's state of one seed.

    Online and target parameters, the optimiser state, the running moments of the rewards
    (``standardise_rewards``), when the target was last copied (in ``target_update_unit``) and the
    number of updates so far.
    """

    params: dict  # {"agent": ..., "mixer": ...}
    target_params: dict
    opt_state: Any
    reward_stats: jax.Array  # [3]: count, mean, M2 of rewards seen (for standardisation)
    last_target_episode: jax.Array  # [] int32: when the target was last copied, in target_update_unit
    updates: jax.Array  # [] int32


class ValueLearner:
    """Pure functions of a value-based learner for one env spec."""

    explores_with_epsilon = True  # acting follows the trainer's epsilon schedule

    def __init__(self, cfg: ValueConfig, spec: EnvSpec):
        self.cfg, self.spec = cfg, spec
        n, a = spec.n_agents, spec.n_actions
        self.in_dim = spec.obs_dim + (n if cfg.obs_agent_id else 0) + (a if cfg.obs_last_action else 0)
        self.agent = RecurrentAgent(n_actions=a, hidden=cfg.hidden_dim, use_rnn=cfg.use_rnn)
        self.mixer = make_mixer(
            cfg.mixer,
            n,
            spec.state_dim,
            a,
            **({"embed_dim": cfg.mixing_embed_dim} if cfg.mixer == "qmix" else {}),
            **(
                {"hypernet_layers": cfg.hypernet_layers, "hypernet_embed": cfg.hypernet_embed}
                if cfg.mixer in ("qmix", "qplex")
                else {}
            ),
            **({"path": cfg.tfcaf, "gamma": cfg.tfcaf_gamma} if cfg.mixer == "tfcaf" else {}),
            **cfg.mixer_kwargs,
        )
        opt = optax.adam(cfg.lr) if cfg.optimizer == "adam" else optax.rmsprop(cfg.lr, decay=0.99, eps=1e-5)
        self.optimizer = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)

    # --- parameters -------------------------------------------------------------

    def init(self, key: jax.Array) -> LearnerState:
        """Fresh parameters. Call once per seed outside vmap (keeps init out of batched XLA paths)."""
        n, cfg = self.spec.n_agents, self.cfg
        k_agent, k_mixer = jax.random.split(key)
        params = {"agent": init_agents(self.agent, k_agent, n, self.in_dim, cfg.share_params)}
        if self.mixer is not None:
            qs = jnp.zeros((1, n))
            params["mixer"] = self.mixer.init(
                k_mixer,
                qs,
                jnp.zeros((1, self.spec.state_dim)),
                max_qs=qs,
                actions_onehot=jnp.zeros((1, n, self.spec.n_actions)),
            )
        return LearnerState(
            params=params,
            target_params=params,
            opt_state=self.optimizer.init(params),
            reward_stats=jnp.array([1e-4, 0.0, 0.0], jnp.float32),
            last_target_episode=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32),
        )

    def param_count(self, params: dict) -> dict:
        """Parameter counts by network (``agent``, and ``mixer`` when there is one), for the summary."""
        return {k: int(sum(x.size for x in jax.tree.leaves(v))) for k, v in params.items()}

    # --- acting -------------------------------------------------------------------

    def initial_hidden(self, batch_shape: tuple[int, ...]) -> jax.Array:
        """Zero recurrent states ``[*batch_shape, n_agents, hidden_dim]``: the state at episode starts."""
        return jnp.zeros((*batch_shape, self.spec.n_agents, self.cfg.hidden_dim), jnp.float32)

    def agent_inputs(self, obs, last_actions):
        """obs [..., n, obs_dim], last_actions [..., n] -> [..., n, in_dim]."""
        n, parts = self.spec.n_agents, [obs]
        if self.cfg.obs_agent_id:
            parts.append(jnp.broadcast_to(jnp.eye(n), (*obs.shape[:-1], n)))
        if self.cfg.obs_last_action:
            parts.append(jax.nn.one_hot(last_actions, self.spec.n_actions))
        return jnp.concatenate(parts, -1)

    def q_values(self, agent_params, hidden, inputs):
        """One step of every agent: hidden [..., n, h], inputs [..., n, in] -> (hidden', q [..., n, A])."""
        return step_agents(self.agent, agent_params, hidden, inputs, self.cfg.share_params)

    def act(self, params, hidden, obs, state, avail, last_actions, key, epsilon, greedy: bool = False):
        """Epsilon-greedy over available actions: (hidden', actions [..., n] int32).

        ``state`` is unused here (maximum-entropy learners need it); ``greedy``
        (static) is execution: the argmax of each agent's Q.
        """
        hidden, q = self.q_values(params["agent"], hidden, self.agent_inputs(obs, last_actions))
        return hidden, epsilon_greedy(key, q, avail, 0.0 if greedy else epsilon)

    # --- learning -----------------------------------------------------------------

    def unroll(self, agent_params, batch: EpisodeBatch):
        """Q-values of every step of a batch of episodes: [B, T+1, n, A]."""
        last = jnp.concatenate([jnp.zeros_like(batch.actions[:, :1]), batch.actions], 1)  # [B, T+1, n]
        inputs = jnp.moveaxis(self.agent_inputs(batch.obs, last), 1, 0)  # [T+1, B, n, in]
        h0 = self.initial_hidden(batch.obs.shape[:1])  # [B, n, hidden]
        qs = unroll_agents(self.agent, agent_params, h0, inputs, self.cfg.share_params)
        return jnp.moveaxis(qs, 0, 1)

    def mix(self, mixer_params, qs, state, max_qs, actions_onehot):
        """Q_tot ``[...]`` from the agents' values ``qs [..., n]`` by the mixer; without a mixer (iql),
        ``qs`` itself: each agent learns its own value.

        ``max_qs`` (each agent's greedy value) and ``actions_onehot`` are the context QPLEX needs; the
        other mixers ignore them.
        """
        if self.mixer is None:
            return qs  # independent learners: one value per agent
        return self.mixer.apply(mixer_params, qs, state, max_qs=max_qs, actions_onehot=actions_onehot)

    def loss(self, params, target_params, batch: EpisodeBatch, rewards, key=None):
        """``(loss, metrics)``: the masked mean squared TD error of Q_tot on a batch of episodes.

        The target is the TD(lambda) return (``td_lambda_targets``) of ``rewards`` [B, T] (standardised
        by ``update`` if configured) over the target network's mixed values of the greedy next actions;
        with ``double_q`` the online network picks those actions (unavailable actions are masked).
        ``key`` is unused here (``MaxEntLearner`` samples its targets).
        """
        cfg, big = self.cfg, -1e9
        qs = self.unroll(params["agent"], batch)  # [B, T+1, n, A]
        chosen = jnp.take_along_axis(qs[:, :-1], batch.actions[..., None], -1)[..., 0]  # [B, T, n]
        qs_avail = jnp.where(batch.avail, jax.lax.stop_gradient(qs), big)
        target_qs = jax.lax.stop_gradient(self.unroll(target_params["agent"], batch))
        target_avail = jnp.where(batch.avail, target_qs, big)
        greedy = jnp.argmax(qs_avail if cfg.double_q else target_avail, -1)  # [B, T+1, n]
        target_chosen = jnp.take_along_axis(target_qs, greedy[..., None], -1)[..., 0]  # [B, T+1, n]

        onehot = jax.nn.one_hot(batch.actions, self.spec.n_actions)
        q_tot = self.mix(params.get("mixer"), chosen, batch.state[:, :-1], qs_avail[:, :-1].max(-1), onehot)
        target_tot = self.mix(
            target_params.get("mixer"),
            target_chosen,
            batch.state,
            target_avail.max(-1),
            jax.nn.one_hot(greedy, self.spec.n_actions),
        )
        targets = td_lambda_targets(
            rewards, batch.terminated, batch.filled, target_tot, cfg.gamma, cfg.td_lambda
        )
        mask = batch.filled.reshape(batch.filled.shape + (1,) * (q_tot.ndim - 2)).astype(jnp.float32)
        mask = jnp.broadcast_to(mask, q_tot.shape)
        err = (q_tot - jax.lax.stop_gradient(targets)) * mask
        loss = jnp.sum(err**2) / jnp.maximum(mask.sum(), 1.0)
        metrics = {
            "loss": loss,
            "td_error_abs": jnp.sum(jnp.abs(err)) / jnp.maximum(mask.sum(), 1.0),
            "q_taken_mean": jnp.sum(q_tot * mask) / jnp.maximum(mask.sum(), 1.0),
            "target_mean": jnp.sum(targets * mask) / jnp.maximum(mask.sum(), 1.0),
        }
        return loss, metrics

    def update(
        self, state: LearnerState, batch: EpisodeBatch, episodes_seen, key
    ) -> tuple[LearnerState, dict]:
        """One gradient step on a batch of episodes, then the target update if due.

        ``key`` feeds learners whose targets are sampled (maximum entropy).
        """
        cfg = self.cfg
        rewards, stats = batch.reward, state.reward_stats
        if cfg.standardise_rewards:
            stats = update_moments(stats, batch.reward, batch.filled)
            rewards = (rewards - stats[1]) / jnp.sqrt(stats[2] / stats[0] + 1e-8)
        grads, metrics = jax.grad(self.loss, has_aux=True)(
            state.params, state.target_params, batch, rewards, key
        )
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))

        if cfg.target_update == "soft":
            target = optax.incremental_update(params, state.target_params, cfg.tau)
            last = state.last_target_episode
        else:
            # EPyMARL counts gradient steps, pymarl2 episodes: with n_envs parallel episodes per update
            # pymarl2's 200 is one copy every 200 / n_envs updates, hence the explicit unit.
            now = episodes_seen if cfg.target_update_unit == "episodes" else state.updates + 1
            due = now - state.last_target_episode >= cfg.target_update_interval
            target = jax.tree.map(lambda p, t: jnp.where(due, p, t), params, state.target_params)
            last = jnp.where(due, now, state.last_target_episode).astype(jnp.int32)
        new = LearnerState(params, target, opt_state, stats, last, state.updates + 1)
        return new, metrics


def epsilon_greedy(key, q, avail, epsilon):
    """Greedy available action, or with probability epsilon a uniform available one."""
    k_pick, k_rand = jax.random.split(key)
    greedy = jnp.argmax(jnp.where(avail, q, -jnp.inf), -1)
    uniform = jax.random.categorical(k_rand, jnp.where(avail, 0.0, -jnp.inf))
    explore = jax.random.uniform(k_pick, greedy.shape) < epsilon
    return jnp.where(explore, uniform, greedy).astype(jnp.int32)

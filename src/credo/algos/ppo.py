"""Policy-gradient credit assignment: IPPO and MAPPO with global, local or dependence-graph credit.

One learner, four algorithms:

* ``ippo``: per-agent critics on local observations.
* ``mappo``: a centralised critic on the global state (with the agent's id, so that
  it gives each agent its own value).
* ``ippo-dg`` / ``mappo-dg``: the same critics trained on local rewards, and
  advantages that sum other agents' local TD errors only along the interaction
  paths of a dependence graph (paper 004; ``credo.credit.dependence``).

``reward_mode`` picks what the plain algorithms optimise: ``global`` gives every
agent the team reward, ``local`` each agent its own reward from the env.

Data come as the value learners' do: ``n_envs`` whole episodes per iteration
(EPyMARL's MAPPO runner, which the dependence-graph paper built on), so recurrent
networks start every episode from a zero state and a truncated episode bootstraps
from the value of its final observation. Old log-probabilities and values are
recomputed in one batched pass after collection. Then ``epochs`` passes of
clipped PPO over ``minibatches`` splits of the episodes.

Fidelity options, each with credo's default kept and the dependence-graph
authors' choice available (the per-field comments say whose value is whose):
``wm_input`` (the learned graph's world model reads observations, as the paper's,
or substates, credo's earlier form; ``credo.credit.world_model``),
``standardise_advantages`` and ``value_norm`` (both off in the authors' LBF
scripts), and ``grad_clip_scheme`` (one clip over actor and critic together, or
separate actor and critic clips as the authors' scripts). Whether evaluation is
greedy is ``RunConfig.test_greedy`` (the authors evaluate the stochastic policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from credo.algos.common import EnvCount, RunConfig, update_moments
from credo.buffers.episode import EpisodeBatch
from credo.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, UnitInterval
from credo.credit.dependence import (
    dependence_advantage,
    fixed_graph,
    graph_from_entropies,
    random_graph,
)
from credo.credit.gae import gae, td_errors
from credo.credit.world_model import (
    ObservationWorldModel,
    ReverseWorldModel,
    observation_world_model_outputs,
    world_model_outputs,
)
from credo.envs.core import EnvSpec
from credo.networks.agent import RecurrentAgent, init_agents, step_agents, unroll_agents

PPO_ALGOS = ("ippo", "mappo", "ippo-dg", "mappo-dg")


@dataclass(frozen=True)
class PPOConfig(RunConfig):
    """Settings of an IPPO/MAPPO run; defaults follow the dependence-graph paper's code (EPyMARL's MAPPO)."""

    algo: str = "mappo"  # learner: ippo, mappo, ippo-dg or mappo-dg
    n_envs: EnvCount = 10  # parallel envs per seed: one update per n_envs whole episodes
    reward_mode: Literal["global", "local"] = "global"  # team reward to every agent, or each agent's own
    # networks
    hidden_dim: PositiveInt = 128  # width of actor and critic
    use_rnn: bool = (
        False  # GRU actor and critic (else two ReLU layers: 9x faster here; LBF maps are fully observed)
    )
    share_params: bool = True  # one actor and one critic for all agents
    obs_agent_id: bool = True  # append the agent's one-hot id to actor and critic inputs
    obs_last_action: bool = False  # append the agent's previous action to the actor's input
    # PPO
    lr: PositiveFloat = 5e-4  # Adam learning rate of actor and critic
    epochs: PositiveInt = 4  # passes over each batch of episodes
    minibatches: PositiveInt = 1  # splits of the episodes per pass
    clip_eps: PositiveFloat = 0.2  # PPO ratio clip
    ent_coef: NonNegativeFloat = 0.001  # entropy bonus
    vf_coef: NonNegativeFloat = 0.5  # weight of the value loss
    clip_value_loss: bool = False  # clip the value change as the policy ratio (MAPPO's option)
    max_grad_norm: PositiveFloat = 10.0  # grad_clip_scheme=joint: clip of the global norm of actor and critic gradients together; also clips the world model's
    grad_clip_scheme: Literal["joint", "separate"] = (
        "joint"  # joint: one clip (max_grad_norm) over actor and critic, credo's default; separate: actor_grad_clip and critic_grad_clip each on its own gradient, the authors' LBF scripts
    )
    actor_grad_clip: PositiveFloat = 10.0  # grad_clip_scheme=separate: norm clip of the actor's gradient (the authors' value: not found; 10 = max_grad_norm)
    critic_grad_clip: PositiveFloat = 10.0  # grad_clip_scheme=separate: norm clip of the critic's gradient (the authors' value: not found; 10 = max_grad_norm)
    gamma: UnitInterval = 0.99  # discount
    gae_lambda: UnitInterval = 0.95  # lambda of GAE
    value_norm: bool = True  # critics predict returns normalised by running moments (MAPPO's ValueNorm): credo's default; the authors' LBF scripts: False
    standardise_advantages: bool = (
        True  # zero mean, unit std advantages per batch: credo's default; the authors' LBF scripts: False
    )
    # dependence graphs (ippo-dg, mappo-dg)
    graph_source: Literal["learned", "oracle", "full", "identity", "random"] = (
        "learned"  # learned by reverse world models; oracle from the env; full = global, identity = local credit
    )
    graph_threshold: NonNegativeFloat = 0.9  # c: edge j->k when H(A_j | z_j, z_k, z_k') / H(A_j | z_j) < c
    graph_p: UnitInterval = 0.3  # edge probability of the random (Erdos-Renyi) control graph
    graph_distance: NonNegativeInt = 2  # oracle graphs: agents within this grid distance interact (LBF)
    meeting_lambda: UnitInterval = (
        0.95  # averaging over meeting times: unreached agents weigh 1 - this (1 = hard truncation)
    )
    graph_horizon: PositiveInt = 100  # steps a path is propagated from each step
    wm_input: Literal["observation", "substate"] = (
        "substate"  # what the reverse model reads of the other agent: observation = the paper's (observation encoder trained by an inverse model, heads on detached latents); substate = credo's earlier form (the env's agent_features and local reward, encoders trained jointly), credo's default
    )
    wm_latent: PositiveInt = 64  # latent size of the world model's encoder
    wm_hidden: tuple[PositiveInt, ...] = (
        256,
        128,
        128,
    )  # layers of the action predictors (and of the observation form's inverse model)
    wm_lr: PositiveFloat = 5e-4  # Adam learning rate of the world model
    wm_epochs: PositiveInt = 1  # passes of the world model over each batch


class PPOState(NamedTuple):
    """A PPO learner's state of one seed.

    The parameters (see ``params``), the optimiser state of the actor and critic, that of the world
    model (``()`` without a learned graph), the running moments of the value targets (``value_norm``, MAPPO's ValueNorm) and the
    number of updates so far.
    """

    params: dict  # {"actor": ..., "critic": ..., "world_model": ... (DG with a learned graph)}
    opt_state: Any
    wm_opt_state: Any
    value_stats: jax.Array  # [3]: count, mean, M2 of value targets (ValueNorm)
    updates: jax.Array  # [] int32


class PPOLearner:
    """Pure functions of IPPO / MAPPO (with dependence-graph credit) for one env spec."""

    explores_with_epsilon = False  # acting samples from the policy
    on_policy = True

    def __init__(self, cfg: PPOConfig, spec: EnvSpec, env=None):
        """``env`` (optional) lets a learned graph use the env's ``agent_features`` as substates."""
        if cfg.algo not in PPO_ALGOS:
            raise ValueError(f"PPOLearner runs {', '.join(PPO_ALGOS)}, not {cfg.algo!r}.")
        if cfg.n_envs % cfg.minibatches:
            raise ValueError(
                f"minibatches ({cfg.minibatches}) must divide n_envs ({cfg.n_envs}): "
                "minibatches are splits of the batch's episodes."
            )
        self.cfg, self.spec = cfg, spec
        self.dg = cfg.algo.endswith("-dg")
        self.central = cfg.algo.startswith("mappo")
        # Dependence-graph credit sums other agents' *local* TD errors.
        self.local_rewards = self.dg or cfg.reward_mode == "local"
        n, a = spec.n_agents, spec.n_actions
        ids = n if cfg.obs_agent_id else 0
        self.actor_in = spec.obs_dim + ids + (a if cfg.obs_last_action else 0)
        self.critic_in = (spec.state_dim if self.central else spec.obs_dim) + ids
        self.actor = RecurrentAgent(n_actions=a, hidden=cfg.hidden_dim, use_rnn=cfg.use_rnn)
        self.critic = RecurrentAgent(n_actions=1, hidden=cfg.hidden_dim, use_rnn=cfg.use_rnn)
        for name, allowed in (
            ("wm_input", ("observation", "substate")),
            ("grad_clip_scheme", ("joint", "separate")),
        ):
            if getattr(cfg, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(cfg, name)!r}.")
        self.learned_graph = self.dg and cfg.graph_source == "learned"
        # The paper's world model reads observations; credo's substate form reads each
        # agent's own substate where the env defines one.
        self.observation_wm = self.learned_graph and cfg.wm_input == "observation"
        self.agent_features = (
            self.learned_graph
            and not self.observation_wm
            and getattr(env, "is_jax", False)
            and hasattr(env, "agent_features")
        )
        self.substate_dim = spec.obs_dim
        if self.agent_features:
            state, _ = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
            self.substate_dim = int(jax.eval_shape(env.agent_features, state).shape[-1])
        if self.learned_graph:
            wm_cls = ObservationWorldModel if self.observation_wm else ReverseWorldModel
            self.world_model = wm_cls(a, latent=cfg.wm_latent, hidden=tuple(cfg.wm_hidden))
            self.wm_optimizer = optax.chain(
                optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.wm_lr)
            )
        # Gradient clipping before Adam: one clip over {"actor", "critic"} or one per network
        # (both stateless, so the optimiser state has the same structure either way).
        if cfg.grad_clip_scheme == "joint":
            self.grad_clip = optax.clip_by_global_norm(cfg.max_grad_norm)
        else:
            self.grad_clip = clip_each({"actor": cfg.actor_grad_clip, "critic": cfg.critic_grad_clip})
        self.optimizer = optax.chain(self.grad_clip, optax.adam(cfg.lr))

    # --- parameters -------------------------------------------------------------

    def init(self, key: jax.Array) -> PPOState:
        """Fresh parameters. Call once per seed outside vmap."""
        cfg, n = self.cfg, self.spec.n_agents
        k_actor, k_critic, k_wm = jax.random.split(key, 3)
        params = {
            "actor": init_agents(self.actor, k_actor, n, self.actor_in, cfg.share_params),
            "critic": init_agents(self.critic, k_critic, n, self.critic_in, cfg.share_params),
        }
        wm_opt = ()
        if self.learned_graph:
            obs = jnp.zeros((1, n, self.spec.obs_dim))
            sub = jnp.zeros((1, n, self.substate_dim))
            if self.observation_wm:
                wm = {"world_model": self.world_model.init(k_wm, obs, obs)}
            else:
                wm = {"world_model": self.world_model.init(k_wm, obs, sub, sub, jnp.zeros((1, n)))}
            wm_opt = self.wm_optimizer.init(wm)
            params.update(wm)
        ac = {k: params[k] for k in ("actor", "critic")}
        return PPOState(
            params=params,
            opt_state=self.optimizer.init(ac),
            wm_opt_state=wm_opt,
            value_stats=jnp.array([1e-4, 0.0, 0.0], jnp.float32),
            updates=jnp.zeros((), jnp.int32),
        )

    def param_count(self, params: dict) -> dict:
        """Parameter counts by network (``actor``, ``critic``; ``world_model`` with a learned graph)."""
        return {k: int(sum(x.size for x in jax.tree.leaves(v))) for k, v in params.items()}

    def recorder(self, env):
        """What the collector keeps of every step: each agent's reward, the oracle graph if used,
        and each agent's substate before and after the step for a learned graph (if the env has them)."""
        oracle = self.dg and self.cfg.graph_source == "oracle"
        if oracle and not hasattr(env, "interaction_graph"):
            raise ValueError(
                f"graph_source=oracle needs an env that knows which agents interact; {env.key or env!r} "
                "does not (LBF does). Use graph_source=learned, full, identity or random."
            )
        distance = self.cfg.graph_distance

        def record(env_state, next_env_state, ts):
            out = {"rewards": ts.rewards}
            if oracle:
                out["graph"] = env.interaction_graph(env_state, distance)
            if self.agent_features:
                out["substate"] = env.agent_features(env_state)
                out["next_substate"] = env.agent_features(next_env_state)
            return out

        return record

    # --- acting -------------------------------------------------------------------

    def initial_hidden(self, batch_shape: tuple[int, ...]) -> jax.Array:
        """Zero recurrent states ``[*batch_shape, n_agents, hidden_dim]``: the state at episode starts."""
        return jnp.zeros((*batch_shape, self.spec.n_agents, self.cfg.hidden_dim), jnp.float32)

    def _with_id(self, x):
        """x [..., n, d] -> [..., n, d + n] with each agent's one-hot id (if configured)."""
        if not self.cfg.obs_agent_id:
            return x
        n = self.spec.n_agents
        return jnp.concatenate([x, jnp.broadcast_to(jnp.eye(n), (*x.shape[:-1], n))], -1)

    def actor_inputs(self, obs, last_actions):
        """obs [..., n, obs_dim], last_actions [..., n] -> [..., n, actor_in]: the observation with the
        agent's one-hot id (``obs_agent_id``) and its one-hot previous action (``obs_last_action``)."""
        x = self._with_id(obs)
        if self.cfg.obs_last_action:
            x = jnp.concatenate([x, jax.nn.one_hot(last_actions, self.spec.n_actions)], -1)
        return x

    def critic_inputs(self, obs, state):
        """obs [..., n, obs_dim], state [..., S] -> [..., n, critic_in]."""
        if self.central:
            n = self.spec.n_agents
            x = jnp.broadcast_to(state[..., None, :], (*state.shape[:-1], n, state.shape[-1]))
        else:
            x = obs
        return self._with_id(x)

    def act(self, params, hidden, obs, state, avail, last_actions, key, epsilon, greedy: bool = False):
        """Samples from each agent's policy over its available actions (argmax if ``greedy``)."""
        hidden, logits = step_agents(
            self.actor, params["actor"], hidden, self.actor_inputs(obs, last_actions), self.cfg.share_params
        )
        logits = jnp.where(avail, logits, -1e9)
        actions = jnp.argmax(logits, -1) if greedy else jax.random.categorical(key, logits)
        return hidden, actions.astype(jnp.int32)

    # --- sequences ------------------------------------------------------------------

    def _unroll(self, module, params, inputs):
        """inputs [B, T+1, n, d] -> outputs [B, T+1, n, o], from a zero state at every episode start."""
        h0 = self.initial_hidden(inputs.shape[:1])
        out = unroll_agents(module, params, h0, jnp.moveaxis(inputs, 1, 0), self.cfg.share_params)
        return jnp.moveaxis(out, 0, 1)

    def log_probs(self, actor_params, batch: EpisodeBatch):
        """(log pi(a_t) [B, T, n], entropy [B, T, n]) of the batch's actions."""
        last = jnp.concatenate([jnp.zeros_like(batch.actions[:, :1]), batch.actions], 1)
        logits = self._unroll(self.actor, actor_params, self.actor_inputs(batch.obs, last))[:, :-1]
        avail = batch.avail[:, :-1]
        logp_all = jax.nn.log_softmax(jnp.where(avail, logits, -1e9), -1)
        logp = jnp.take_along_axis(logp_all, batch.actions[..., None], -1)[..., 0]
        ent = -jnp.sum(jnp.where(avail, jnp.exp(logp_all) * logp_all, 0.0), -1)
        return logp, ent

    def values(self, critic_params, batch: EpisodeBatch):
        """Critic outputs (normalised if ``value_norm``) for every state: [B, T+1, n]."""
        return self._unroll(self.critic, critic_params, self.critic_inputs(batch.obs, batch.state))[..., 0]

    # --- credit -----------------------------------------------------------------------

    def agent_rewards(self, batch: EpisodeBatch, local_rewards):
        """[B, T, n]: the team reward for every agent, or each agent's own reward."""
        if self.local_rewards:
            return local_rewards
        return jnp.broadcast_to(batch.reward[..., None], local_rewards.shape)

    def graphs(self, batch: EpisodeBatch, extra: dict, key):
        """Per-step dependence graphs [B, T, n, n] from the configured source.

        ``extra`` holds the oracle ``graph`` recorded by the collector, or the world
        model's ``entropies`` on this batch for a learned graph.
        """
        cfg = self.cfg
        b, t, n = batch.actions.shape
        if cfg.graph_source == "learned":
            h_own, h_rev = extra["entropies"]
            return graph_from_entropies(h_rev, h_own, cfg.graph_threshold)
        if cfg.graph_source == "oracle":
            return extra["graph"]
        if cfg.graph_source == "random":
            return random_graph(key, (b, t), n, cfg.graph_p)
        return fixed_graph(cfg.graph_source, (b, t), n)

    def advantages(self, batch: EpisodeBatch, extra: dict, values, key):
        """(advantages [B, T, n], value targets [B, T, n], graphs or None) with ``values`` [B, T+1, n] unnormalised."""
        cfg = self.cfg
        rewards = self.agent_rewards(batch, extra["rewards"])
        adv, returns = gae(rewards, values, batch.terminated, batch.filled, cfg.gamma, cfg.gae_lambda)
        if not self.dg:
            return adv, returns, None
        graphs = self.graphs(batch, extra, key)
        deltas = td_errors(rewards, values, batch.terminated, batch.filled, cfg.gamma)
        adv = dependence_advantage(
            deltas, graphs, batch.filled, cfg.gamma, cfg.gae_lambda, cfg.graph_horizon, cfg.meeting_lambda
        )
        return adv, returns, graphs

    # --- learning -----------------------------------------------------------------

    def _denormalise(self, stats, v):
        if not self.cfg.value_norm:
            return v
        return v * jnp.sqrt(stats[2] / stats[0] + 1e-8) + stats[1]

    def _normalise(self, stats, v):
        if not self.cfg.value_norm:
            return v
        return (v - stats[1]) / jnp.sqrt(stats[2] / stats[0] + 1e-8)

    def ppo_loss(self, ac_params, mb: dict):
        """``(loss, metrics)`` of the actor and critic on minibatch ``mb``, a slice of ``prepare``'s data.

        The clipped surrogate objective of PPO (Schulman et al. 2017) plus ``vf_coef`` times the squared
        value error (clipped around the old values too if ``clip_value_loss``, as MAPPO's code does)
        minus ``ent_coef`` times the policy entropy; each is a mean over the filled steps and agents.
        Values and targets are in the normalised scale when ``value_norm`` is on.
        """
        cfg = self.cfg
        batch = mb["batch"]
        m = jnp.broadcast_to(batch.filled[..., None], mb["adv"].shape).astype(jnp.float32)
        steps = jnp.maximum(m.sum(), 1.0)
        logp, ent = self.log_probs(ac_params["actor"], batch)
        ratio = jnp.exp(logp - mb["logp_old"])
        adv = mb["adv"]
        surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv)
        policy_loss = -jnp.sum(surrogate * m) / steps
        entropy = jnp.sum(ent * m) / steps
        v = self.values(ac_params["critic"], batch)[:, :-1]
        v_err = (v - mb["targets"]) ** 2
        if cfg.clip_value_loss:
            v_clipped = mb["v_old"] + jnp.clip(v - mb["v_old"], -cfg.clip_eps, cfg.clip_eps)
            v_err = jnp.maximum(v_err, (v_clipped - mb["targets"]) ** 2)
        value_loss = 0.5 * jnp.sum(v_err * m) / steps
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
        clip_frac = jnp.sum((jnp.abs(ratio - 1) > cfg.clip_eps) * m) / steps
        approx_kl = jnp.sum(((ratio - 1) - (logp - mb["logp_old"])) * m) / steps
        return loss, {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "clip_frac": clip_frac,
            "approx_kl": approx_kl,
        }

    def prepare(self, state: PPOState, batch: EpisodeBatch, extra: dict, key):
        """What the PPO epochs need from a fresh batch, before any actor or critic step.

        Returns (data, value_stats, (world-model params, optimiser state), graphs or None,
        metrics); ``data`` holds the batch, the advantages PPO uses (standardised if
        ``standardise_advantages``), the value targets (normalised by the updated
        ``value_stats`` if ``value_norm``), old log-probabilities and old values.
        """
        cfg = self.cfg
        params = state.params
        logp_old, _ = self.log_probs(params["actor"], batch)
        v_norm_old = self.values(params["critic"], batch)
        values = self._denormalise(state.value_stats, v_norm_old)
        wm = (params.get("world_model"), state.wm_opt_state)
        metrics = {}
        if self.learned_graph:
            # One pass gives this batch's entropies (from models that have not seen it) and the
            # world model's first gradient step.
            wm_params, wm_opt_state, entropies, wm_metrics = self._train_world_model(
                params["world_model"], state.wm_opt_state, batch, extra
            )
            wm = (wm_params, wm_opt_state)
            extra = dict(extra, entropies=entropies)
            metrics.update(wm_metrics)
        adv, returns, graphs = self.advantages(batch, extra, values, key)
        m = jnp.broadcast_to(batch.filled[..., None], adv.shape)
        metrics["adv_abs"] = jnp.sum(jnp.abs(adv) * m) / jnp.maximum(m.sum(), 1)
        if cfg.standardise_advantages:
            count = jnp.maximum(m.sum(), 1.0)
            mean = jnp.sum(adv * m) / count
            std = jnp.sqrt(jnp.sum(((adv - mean) * m) ** 2) / count)
            adv = (adv - mean) / (std + 1e-8) * m
        value_stats = update_moments(state.value_stats, returns, m) if cfg.value_norm else state.value_stats
        targets = self._normalise(value_stats, returns)
        v_old = self._normalise(value_stats, values[:, :-1])
        data = {"batch": batch, "adv": adv, "targets": targets, "logp_old": logp_old, "v_old": v_old}
        return data, value_stats, wm, graphs, metrics

    def update(self, state: PPOState, batch: EpisodeBatch, extra: dict, key) -> tuple[PPOState, dict]:
        """One iteration of learning from a fresh batch of episodes.

        ``extra`` holds ``rewards`` [B, T, n] (each agent's own reward) and, with an
        oracle graph, ``graph`` [B, T, n, n] recorded by the collector.
        """
        cfg = self.cfg
        k_graph, k_perm = jax.random.split(key)
        params = state.params
        data, value_stats, (wm_params, wm_opt_state), graphs, metrics = self.prepare(
            state, batch, extra, k_graph
        )
        n_mb = cfg.minibatches
        size = batch.actions.shape[0] // n_mb

        def epoch(carry, k):
            ac, opt_state = carry
            perm = jax.random.permutation(k, batch.actions.shape[0])
            shuffled = jax.tree.map(lambda x: x[perm].reshape(n_mb, size, *x.shape[1:]), data)

            def minibatch(carry, mb):
                ac, opt_state = carry
                grads, info = jax.grad(self.ppo_loss, has_aux=True)(ac, mb)
                upd, opt_state = self.optimizer.update(grads, opt_state, ac)
                info["grad_norm"] = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grads)))
                return (optax.apply_updates(ac, upd), opt_state), info

            return jax.lax.scan(minibatch, (ac, opt_state), shuffled)

        ac = {k: params[k] for k in ("actor", "critic")}
        (ac, opt_state), info = jax.lax.scan(
            epoch, (ac, state.opt_state), jax.random.split(k_perm, cfg.epochs)
        )
        metrics.update(jax.tree.map(jnp.mean, info))
        new_params = dict(params, **ac)
        if self.learned_graph:
            new_params["world_model"] = wm_params
        if graphs is not None:
            n = graphs.shape[-1]
            off = (1.0 - jnp.eye(n)) * batch.filled[..., None, None]
            metrics["graph_density"] = jnp.sum(graphs * off) / jnp.maximum(off.sum(), 1.0)
        new = PPOState(new_params, opt_state, wm_opt_state, value_stats, state.updates + 1)
        return new, metrics

    def world_model_loss(self, wm_params, batch: EpisodeBatch, extra: dict):
        """(loss, ((h_own [B, T, n], h_reverse [B, T, n, n]), loss parts)) of the world model on a batch.

        The observation form reads ``batch.obs``; the substate form reads ``extra``'s
        ``substate`` / ``next_substate`` (observations where the env has none) and ``rewards``.
        """
        if self.observation_wm:
            return observation_world_model_outputs(
                self.world_model, wm_params, batch.obs, batch.actions, batch.avail, batch.filled
            )
        if "substate" in extra:
            sub, sub_next = extra["substate"], extra["next_substate"]
        else:  # no agent_features in this env: observations stand in for substates
            sub, sub_next = batch.obs[:, :-1], batch.obs[:, 1:]
        return world_model_outputs(
            self.world_model,
            wm_params,
            batch.obs,
            sub,
            sub_next,
            extra["rewards"],
            batch.actions,
            batch.avail,
            batch.filled,
        )

    def _train_world_model(self, wm_params, opt_state, batch: EpisodeBatch, extra: dict):
        """``wm_epochs`` gradient steps of the world model (encoders, action predictors and, in
        the observation form, the inverse model) on the batch.

        Returns the new parameters and optimiser state, the predictive entropies of the
        batch under the parameters *before* these steps (the graphs of this batch come
        from models that have not fitted its own actions), and the mean loss.
        """

        def loss_fn(p):
            return self.world_model_loss(p["world_model"], batch, extra)

        def step(carry, _):
            p, opt_state = carry
            (loss, (entropies, parts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
            upd, opt_state = self.wm_optimizer.update(grads, opt_state, p)
            return (optax.apply_updates(p, upd), opt_state), (loss, entropies, parts)

        carry = ({"world_model": wm_params}, opt_state)
        carry, (loss0, entropies, parts0) = step(carry, None)
        (p, opt_state), (losses, _, parts) = jax.lax.scan(step, carry, None, length=self.cfg.wm_epochs - 1)
        epochs = self.cfg.wm_epochs
        metrics = {"wm_loss": (loss0 + losses.sum()) / epochs}
        if "inverse" in parts0:  # the observation form: the encoder's own loss
            metrics["wm_inverse_loss"] = (parts0["inverse"] + parts["inverse"].sum()) / epochs
        return p["world_model"], opt_state, entropies, metrics


def clip_each(max_norms: dict) -> optax.GradientTransformation:
    """Clips each top-level entry of the gradient (``"actor"``, ``"critic"``) by its own global norm.

    Entries without a bound pass unchanged. Stateless, like ``optax.clip_by_global_norm``.
    """
    clips = {k: optax.clip_by_global_norm(v) for k, v in max_norms.items()}

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        out = {k: clips[k].update(u, optax.EmptyState())[0] if k in clips else u for k, u in updates.items()}
        return out, state

    return optax.GradientTransformation(init_fn, update_fn)

"""RICOL (paper 003, section 3.5) and its LLM baselines, RWR and Reflexion, on the text envs.

One iteration of ``ricol``:

1. **collect** ``episodes_per_iteration`` episodes with the LLM policy ``pi_k``
   (a distribution over action letters, sampled);
2. **RICL**: for every step, the reflector reads the rest of the episode and
   writes feedback; ``pi'(.|s_t)`` is the policy asked again with that feedback
   (unusable feedback: ``pi' = pi_k``, counted);
3. **improve**: fine-tune the policy's weights (all of them, or LoRA adapters)
   to minimise ``KL(target || pi_theta)`` over the batch's states, with the
   trust-region target of eq. 3.5,
   ``target ∝ exp((1 - alpha) log pi_k + alpha log pi')``.

``rwr`` skips the reflections and maximises ``sum_t R(tau) log pi_theta(a_t|s_t)``
(the episode's return as the weight of every step). ``reflexion`` does not
train: after each episode the reflector writes one lesson about the whole
episode, and the last ``memory`` lessons go into the policy's prompt.

``feedback=oracle`` replaces the reflector by the paper's hand-crafted feedback
of controlled accuracy (Fig. 3.6): "In the previous attempt, I chose action X.
This time, I will maintain/change the selected action.", right with probability
``feedback_accuracy`` against the expert's action (the exact solver on Key-Door,
minigrid's BabyAI bot on BabyAI).

Runs write the usual run directory: ``config.yaml``, ``metadata.json``, ``metrics/seed_i.jsonl``
(one row per iteration), ``checkpoints/seed_i/`` (the fine-tuned weights or
adapters, Adam's moments and the trainer state, replaced atomically: a resumed
run takes the same steps as an unbroken one), ``llm/`` (the reflector's
cache and log), ``learning_curve.png`` and ``summary.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np

from credo.config import NonNegativeInt, PositiveFloat, PositiveInt, Range, UnitInterval
from credo.engine.limits import MAX_SEED
from credo.llm.base import LLM
from credo.ricl.advantage import trust_region_target
from credo.ricl.prompts import Step, TextTask, task_for
from credo.ricl.reflect import PREFILL, FeedbackStats, LetterPolicy, parse_feedback, reflect_many

RICOL_ALGOS = ("ricol", "rwr", "reflexion")


@dataclass(frozen=True)
class RICOLConfig:
    """Settings of a RICOL / RWR / Reflexion run with an LLM policy on a text env."""

    algo: str = "ricol"  # ricol, rwr or reflexion
    env: str = "babyai:goto"  # keydoor or babyai:<goto|pickup|pick_up_seq_go_to|open>
    model: str = (
        "embedded"  # the policy LLM (local): embedded (SmolLM2-135M), embedded-gemma3, a dir or .gguf
    )
    reflector_backend: str = "local"  # local (a frozen copy of `reflector_model`) or openai
    reflector_model: str | None = None  # null: the policy's model
    reflector_base_url: str | None = None  # OpenAI-compatible endpoint of the reflector
    reflector_dtype: str = "bfloat16"  # local reflector's weights: bfloat16 (it only generates; 2.5x faster on this CPU) or float32
    feedback: str = "llm"  # llm (the reflector) or oracle (hand-crafted, of feedback_accuracy)
    feedback_accuracy: UnitInterval = (
        1.0  # oracle feedback: probability that its maintain/change label is right
    )
    iterations: PositiveInt = 4  # collect -> RICL -> improve rounds
    episodes_per_iteration: PositiveInt = 4  # episodes collected per iteration
    alpha: UnitInterval = 0.5  # trust region of eq. 3.5: 0 keeps pi_k, 1 moves to pi'
    lr: PositiveFloat = 1e-6  # Adam's step with finetune=full; 1e-5 overshoots near-policy targets (benchmarks/results/ricol_lr_probe.md)
    lora_lr: PositiveFloat = 3e-4  # Adam's step with finetune=lora: adapters start at zero and need ~300x lr's (benchmarks/results/ricol_lora_probe.md)
    epochs: PositiveInt = 2  # passes over an iteration's states
    batch_size: PositiveInt = 8  # states per gradient step
    finetune: str = "lora"  # lora (peft adapters, the default: lowers the KL to the target as much as full at lora_lr, ~30% less step time, no 2 GB of gradients and Adam moments; benchmarks/results/ricol_lora_probe.md) or full (every weight)
    lora_r: PositiveInt = 8  # LoRA rank
    reflector_max_tokens: PositiveInt = 128  # tokens per reflection
    reflector_prefill: bool = False  # start the reflector's reply with "Verbal Feedback:" (for small models)
    hindsight_steps: NonNegativeInt | None = (
        None  # steps after t the reflector sees (null: the rest of the episode)
    )
    memory: PositiveInt = 3  # reflexion: lessons kept in the prompt
    test_episodes: PositiveInt = 8  # evaluation episodes after every iteration (sampled actions)
    max_steps: PositiveInt | None = (
        None  # episode limit (null: the task's: 16 goto/pickup, 32 others, 3 x length keydoor)
    )
    length: Annotated[int, Range(2, 1000)] | None = (
        None  # keydoor: corridor length (null: 10, the thesis's); SmolLM2 succeeds only at 2-4 (text_task_ladder.md)
    )
    seeds: PositiveInt = 1  # runs, one after another
    seed: Annotated[int, Range(0, MAX_SEED)] = 0  # seed of the first run

    def __post_init__(self):
        if self.length is not None and self.env != "keydoor":
            raise ValueError(f"length is the Key-Door corridor's; env {self.env!r} has none (leave it null).")


# --- the env, seen as text ------------------------------------------------------------------


class TextEpisodeEnv:
    """Key-Door or BabyAI behind one interface: text observation, mission, expert action."""

    def __init__(self, name: str, max_steps: int | None = None, length: int | None = None):
        from credo.envs.text import make_text_env

        self.name = name
        kwargs = {"max_steps": max_steps} if max_steps else {}
        self.env = make_text_env(name, **kwargs, **({"length": length} if length else {}))
        self.keydoor = name == "keydoor"
        self._bot, self._last_action = None, None

    def reset(self, seed: int) -> tuple[str, str]:
        """Starts the episode of ``seed``; returns (observation text, mission). BabyAI's goal line is left
        out of the text, since the mission goes into the system prompt.
        """
        obs, _ = self.env.reset(seed=seed)
        self._bot, self._last_action = None, None  # the expert plans each episode afresh
        return self._text(obs), obs.get("mission", "")

    def step(self, action: int) -> tuple[str, float, bool, bool]:
        """Takes action index ``action``; returns (next observation text, reward, episode over, success)."""
        self._last_action = action
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._text(obs), float(reward), bool(terminated or truncated), bool(info.get("success"))

    def _text(self, obs: dict) -> str:
        text = obs["text"]
        if not self.keydoor and text.startswith("Your goal:"):  # the mission is in the system prompt
            text = text.split("\n", 1)[1] if "\n" in text else ""
        return text

    def brief(self, obs: str) -> str:
        """The observation in one short line, for hindsight trajectories."""
        if self.keydoor:
            from credo.envs.text import keydoor as kd
            from credo.ricl.keydoor import brief

            return brief(kd.state_index(*self.env.unwrapped.state), self.env.unwrapped.length)
        return "; ".join(line for line in obs.splitlines() if line.strip())

    def expert_action(self) -> int | None:
        """The expert's action here, or None where minigrid's BabyAI bot gives up."""
        if self.keydoor:
            from credo.envs.text import keydoor as kd

            pos, key = self.env.unwrapped.state
            if not key:
                return kd.PICK_UP if pos == kd.KEY_CELL else kd.MOVE_LEFT
            return kd.UNLOCK if pos == self.env.unwrapped.length - 1 else kd.MOVE_RIGHT
        from minigrid.utils.baby_ai_bot import BabyAIBot

        if self._bot is None:
            self._bot = BabyAIBot(self.env.unwrapped)
        # the bot adjusts its plan to the action the agent really took, which may not be its own
        if self._bot is False:
            return None
        try:
            return int(self._bot.replan(self._last_action))
        except Exception:  # e.g. DisappearedBoxError once the agent has opened a box: its plan is
            self._bot = False  # broken, so no labels for the rest of the episode
            return None


@dataclass
class Episode:
    """One collected episode: its steps, the policy ``pi_k`` at each step, the expert's actions if asked for."""

    steps: list[Step]
    logp: np.ndarray  # [T, A] pi_k at each step
    mission: str
    success: bool
    expert: list[int | None]

    @property
    def ret(self) -> float:
        """The episode's return: the sum of its rewards, undiscounted."""
        return float(sum(s.reward for s in self.steps))


def run_episode(
    env: TextEpisodeEnv, policy: LetterPolicy, rng, seed: int, memory: str | None = None, expert: bool = False
) -> Episode:
    """Plays one episode of ``env`` from ``seed``, sampling each action from ``policy`` with ``rng``.

    ``memory``: Reflexion's lessons, put in the policy's prompt; ``expert``: record the expert's
    action at every step (for oracle feedback and ``test_expert_prob``), else None per step.
    """
    obs, mission = env.reset(seed)
    steps, logps, experts, done, success = [], [], [], False, False
    while not done:
        logp = policy.log_probs(obs, feedback=memory, mission=mission)
        brief = env.brief(obs)
        a = int(rng.choice(len(logp), p=np.exp(logp)))
        experts.append(env.expert_action() if expert else None)
        nxt, r, done, success = env.step(a)
        steps.append(Step(obs, a, r, brief))
        logps.append(logp)
        obs = nxt
    return Episode(steps, np.stack(logps), mission, success, experts)


def exact_success(env: TextEpisodeEnv, policy: LetterPolicy, memory: str | None = None) -> float:
    """Key-Door: the exact success rate of ``policy`` (with Reflexion's ``memory`` in its prompt) within
    the env's episode limit from a uniform start: its table at every state, then
    ``keydoor.success_within``. No sampling noise, for 2 x length forward passes."""
    from credo.envs.text import keydoor as kd
    from credo.ricl.keydoor import policy_table

    length = env.env.unwrapped.length
    return kd.success_within(
        length, np.exp(policy_table(policy, length, memory)), env.env.unwrapped.max_steps
    )


def oracle_feedback(task: TextTask, action: int, expert: int, accuracy: float, rng) -> str:
    """The paper's hand-crafted feedback (Fig. 3.6): keep or change the action, right with ``accuracy``."""
    right = action == expert
    if rng.random() > accuracy:
        right = not right
    verb = "maintain" if right else "change"
    return f"In the previous attempt, I chose action {task.letters[action]}. This time, I will {verb} the selected action."


# --- the trainer ------------------------------------------------------------------------------


class RICOLTrainer:
    """Runs ``ricol``, ``rwr`` or ``reflexion`` into ``run_dir`` (see the module docstring).

    Seeds run one after another; each checkpoints after every iteration and resumes from its last
    checkpoint. ``log`` receives one line per iteration. Raises ValueError for an algorithm other
    than those three or an out-of-range setting.
    """

    def __init__(self, cfg: RICOLConfig, run_dir: Path, log=print):
        if cfg.algo not in RICOL_ALGOS:
            raise ValueError(f"RICOLTrainer runs {', '.join(RICOL_ALGOS)}, not {cfg.algo!r}")
        if cfg.finetune not in ("full", "lora"):
            raise ValueError(f"finetune must be full or lora, got {cfg.finetune!r}")
        if cfg.reflector_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"reflector_dtype must be float32 or bfloat16, got {cfg.reflector_dtype!r}")
        if cfg.feedback not in ("llm", "oracle"):
            raise ValueError(f"feedback must be llm or oracle, got {cfg.feedback!r}")
        if not 0.0 <= cfg.alpha <= 1.0 or not 0.0 <= cfg.feedback_accuracy <= 1.0:
            raise ValueError("alpha and feedback_accuracy must lie in [0, 1]")
        self.cfg, self.run_dir, self.log = cfg, Path(run_dir), log
        self.task = task_for(cfg.env)
        self.reflector = None

    # --- models ---

    def _policy(self, seed_index: int):
        """The trainable policy LLM (no response cache: its weights change), from the checkpoint if any."""
        from credo.llm.local import LocalBackend

        weights = self._saved(seed_index) / "weights"
        lora = self.cfg.finetune == "lora" and self.cfg.algo != "reflexion"
        backend = LocalBackend(self.cfg.model)
        if not lora and (weights / "model.safetensors").exists():
            from safetensors.torch import load_model

            load_model(backend.lm, weights / "model.safetensors")
        if lora:
            from peft import LoraConfig, PeftModel, get_peft_model

            if (weights / "adapter_config.json").exists():
                backend.lm = PeftModel.from_pretrained(backend.lm, weights, is_trainable=True)
            else:
                r = self.cfg.lora_r
                backend.lm = get_peft_model(
                    backend.lm, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"])
                )
        return backend

    def _reflector(self) -> LLM:
        if self.reflector is None:
            from credo.llm import make_llm

            cfg = self.cfg
            model = cfg.reflector_model or (cfg.model if cfg.reflector_backend == "local" else None)
            llm_dir = self.run_dir / "llm"
            logs = dict(cache_dir=llm_dir / "cache", log_path=llm_dir / "reflector_log.jsonl")
            if cfg.reflector_backend == "local":
                from credo.llm.local import LocalBackend

                self.reflector = LLM(LocalBackend(model, dtype=cfg.reflector_dtype), **logs)
            else:
                self.reflector = make_llm(
                    cfg.reflector_backend, model, base_url=cfg.reflector_base_url, **logs
                )
        return self.reflector

    # --- checkpoints ---

    def _ckpt(self, i: int) -> Path:
        return self.run_dir / "checkpoints" / f"seed_{i}"

    def _saved(self, i: int) -> Path:
        """The checkpoint to resume from: the current one, or the previous one if a swap was cut short."""
        final = self._ckpt(i)
        old = final.with_name(final.name + ".old")
        return old if not final.exists() and old.exists() else final

    def _save(self, i: int, backend, opt, state: dict) -> None:
        """Weights (or adapters), Adam's moments and trainer state into a fresh directory, then renamed."""
        final = self._ckpt(i)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "weights").mkdir(parents=True)
        if self.cfg.algo == "reflexion":
            pass  # nothing trained: the lessons are in the state
        elif self.cfg.finetune == "lora":
            backend.lm.save_pretrained(tmp / "weights")  # the adapters only
        else:
            from safetensors.torch import save_model  # handles the tied embedding and output weights

            save_model(backend.lm, str(tmp / "weights" / "model.safetensors"))
        if self.cfg.algo != "reflexion":  # so that a resumed run takes the steps an unbroken one would
            import torch

            torch.save(opt.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state))
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def _load_state(self, i: int) -> dict | None:
        path = self._saved(i) / "state.json"
        return json.loads(path.read_text()) if path.exists() else None

    # --- one seed ---

    def run_seed(self, i: int) -> dict:
        """Trains seed index ``i`` to ``iterations``, from its checkpoint if there is one; returns the trainer
        state it saved last (iteration, env steps, Reflexion's lessons, the RNG state).

        Appends one metrics row per iteration (plus the evaluation before the first) to
        ``metrics/seed_<i>.jsonl``, dropping rows the checkpoint does not cover.
        """
        import torch

        cfg = self.cfg
        seed = cfg.seed + i
        state = self._load_state(i) or {"iteration": 0, "env_steps": 0, "memory": [], "rng": None}
        torch.manual_seed(seed * 7919 + state["iteration"])
        rng = np.random.default_rng(seed)
        if state["rng"] is not None:
            rng.bit_generator.state = state["rng"]
        backend = self._policy(i)
        llm = LLM(backend)  # no cache: the weights change
        policy = LetterPolicy(llm, self.task)
        env = TextEpisodeEnv(cfg.env, cfg.max_steps, cfg.length)
        letter_ids = backend.single_token_ids(self.task.policy_messages("x"), self.task.letters)
        if letter_ids is None:
            raise ValueError(
                f"the action letters {self.task.letters} are not single tokens for {backend.model}"
            )
        lr = cfg.lora_lr if cfg.finetune == "lora" else cfg.lr
        opt = torch.optim.Adam([p for p in backend.lm.parameters() if p.requires_grad], lr=lr)
        if (self._saved(i) / "optimizer.pt").exists():  # Adam's moments (1 GB for 135M weights)
            opt.load_state_dict(torch.load(self._saved(i) / "optimizer.pt"))
        metrics_path = self.run_dir / "metrics" / f"seed_{i}.jsonl"
        if metrics_path.exists():  # keep the rows of the iterations the checkpoint holds (all, or none)
            rows = [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
            keep = [r for r in rows if state["iteration"] > 0 and r["iteration"] <= state["iteration"]]
            metrics_path.write_text("".join(json.dumps(r) + "\n" for r in keep))
        if state["iteration"] == 0:
            self._append(metrics_path, self._evaluate(env, policy, rng, seed, state, iteration=0))
        while state["iteration"] < cfg.iterations:
            k = state["iteration"]
            row = self._iteration(k, env, policy, backend, letter_ids, opt, rng, seed, state)
            state["iteration"] += 1
            row.update(self._evaluate(env, policy, rng, seed, state, iteration=k + 1))
            state["rng"] = rng.bit_generator.state
            self._append(metrics_path, row)
            self._save(i, backend, opt, state)
            self.log(
                f"seed {i} iteration {k + 1}/{cfg.iterations}: {row['env_steps']} env steps, train success "
                f"{row['train_success']:.0%}, test success {row['test_success']:.0%}"
                + (
                    f", KL to target {row['kl_before']:.4f} -> {row['kl_after']:.4f}"
                    if "kl_before" in row
                    else ""
                )
                + f" ({row['seconds']:.0f} s)"
            )
        return state

    def _append(self, path: Path, row: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def _evaluate(self, env, policy, rng, seed, state, iteration) -> dict:
        t0 = time.perf_counter()
        _forget_prefix(policy)  # as a resumed run would start it
        memory = " ".join(state["memory"]) or None
        eps = [
            run_episode(env, policy, rng, seed=10**6 + seed * 10**4 + j, memory=memory, expert=True)
            for j in range(self.cfg.test_episodes)
        ]
        # The policy's probability of the expert's action, over the test steps: a signal of learning
        # long before the success rate moves off zero (the expert does not act, it only labels).
        expert_p = [float(np.exp(e.logp[t, a])) for e in eps for t, a in enumerate(e.expert) if a is not None]
        return {
            "iteration": iteration,
            "env_steps": state["env_steps"],
            "test_success": float(np.mean([e.success for e in eps])),
            "test_return": float(np.mean([e.ret for e in eps])),
            # per episode, as the engine's evaluation rows (won: the episode's success, 0/1)
            "test_episode_returns": [float(f"{e.ret:.6g}") for e in eps],
            "test_episode_won": [int(bool(e.success)) for e in eps],
            "test_expert_prob": float(np.mean(expert_p)) if expert_p else None,
            **({"test_exact_success": exact_success(env, policy, memory)} if env.keydoor else {}),
            "seconds_eval": time.perf_counter() - t0,
        }

    def _iteration(self, k, env, policy, backend, letter_ids, opt, rng, seed, state) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        _forget_prefix(policy)  # as a resumed run would start it
        memory = " ".join(state["memory"]) or None
        oracle = cfg.feedback == "oracle"
        episodes = [
            run_episode(env, policy, rng, seed=seed * 10**5 + k * 100 + j, memory=memory, expert=oracle)
            for j in range(cfg.episodes_per_iteration)
        ]
        state["env_steps"] += sum(len(e.steps) for e in episodes)
        t_collect = time.perf_counter() - t0
        stats = FeedbackStats()
        row = {
            "train_success": float(np.mean([e.success for e in episodes])),
            "train_return": float(np.mean([e.ret for e in episodes])),
            "seconds_collect": t_collect,
        }
        t1 = time.perf_counter()
        if cfg.algo == "reflexion":
            for e in episodes:
                lesson = self._lesson(e, stats, seed=int(rng.integers(1 << 30)))
                if lesson:
                    state["memory"] = (state["memory"] + [lesson])[-cfg.memory :]
            row.update(seconds_reflect=time.perf_counter() - t1, seconds_update=0.0, feedback=stats.to_dict())
            row["seconds"] = time.perf_counter() - t0
            return row
        chats, targets, weights, logp_k = [], [], [], []
        feedback, asks = [], []  # per state: the feedback (or None); the reflections to ask for
        for e in episodes:
            for t, step in enumerate(e.steps):
                chats.append(self.task.policy_messages(step.obs, feedback=memory, mission=e.mission))
                logp_k.append(e.logp[t])
                if cfg.algo == "rwr":
                    targets.append(np.eye(len(self.task.letters))[step.action])
                    weights.append(e.ret)
                    continue
                weights.append(1.0)
                if oracle and e.expert[t] is None:
                    feedback.append(None)  # the bot gave up here: no feedback, pi' = pi_k
                    stats.add("no expert")
                elif oracle:
                    feedback.append(
                        oracle_feedback(self.task, step.action, e.expert[t], cfg.feedback_accuracy, rng)
                    )
                    stats.add("ok")
                else:  # the seeds are drawn in step order, as when the reflections were asked one by one
                    asks.append((len(feedback), (e.steps, t, e.mission, int(rng.integers(1 << 30)))))
                    feedback.append(None)
        if asks:  # every reflection of the iteration in one batched request
            replies = reflect_many(
                self._reflector(),
                self.task,
                [item for _, item in asks],
                stats,
                max_tokens=cfg.reflector_max_tokens,
                prefill=cfg.reflector_prefill,
                horizon=cfg.hindsight_steps,
            )
            for (j, _), (fb, _) in zip(asks, replies, strict=True):
                feedback[j] = fb
        t_requery = time.perf_counter()
        if cfg.algo != "rwr":
            # pi'(.|s_t): the policy asked again with the feedback, every state in batched forward passes
            states = [(e, t, step) for e in episodes for t, step in enumerate(e.steps)]
            usable = [j for j, fb in enumerate(feedback) if fb is not None]
            primes = policy.log_probs_many(
                [(states[j][2].obs, feedback[j], states[j][0].mission) for j in usable]
            )
            logp_prime = dict(zip(usable, primes, strict=True))
            for j, (e, t, _) in enumerate(states):
                target = trust_region_target(e.logp[t], logp_prime.get(j, e.logp[t]), cfg.alpha)
                targets.append(np.exp(target))
        t_requery = time.perf_counter() - t_requery
        t_reflect = time.perf_counter() - t1
        t2 = time.perf_counter()
        kl_before, kl_after = self._improve(
            backend, letter_ids, opt, chats, np.array(targets), np.array(weights), rng, np.array(logp_k)
        )
        row.update(
            seconds_reflect=t_reflect,
            seconds_requery=t_requery,  # the part of seconds_reflect that asked the policy again
            seconds_update=time.perf_counter() - t2,
            feedback=stats.to_dict(),
            kl_before=kl_before,
            kl_after=kl_after,
            states=len(chats),
        )
        row["seconds"] = time.perf_counter() - t0
        return row

    def _lesson(self, e: Episode, stats: FeedbackStats, seed: int) -> str | None:
        from credo.llm.base import Sampling

        lines = [
            f"step {t}: {s.brief or s.obs} -> {self.task.describe_action(s.action)}, reward {s.reward:g}"
            for t, s in enumerate(e.steps)
        ]
        messages = [
            {
                "role": "system",
                "content": self.task.system.format(mission=e.mission, actions=self.task.action_list()),
            },
            {
                "role": "user",
                "content": "Here is an attempt at the task:\n"
                + "\n".join(lines)
                + f"\nIt {'succeeded' if e.success else 'failed'}. "
                "Reflect on it and give one lesson for the next attempt, in the format:\nFeedback: [your lesson]",
            },
        ]
        if self.cfg.reflector_prefill:
            messages.append({"role": "assistant", "content": PREFILL})
        reply = self._reflector().generate(
            messages, Sampling(n=1, temperature=0.7, max_tokens=self.cfg.reflector_max_tokens, seed=seed)
        )[0]
        lesson, status = parse_feedback(f"{PREFILL} {reply}" if self.cfg.reflector_prefill else reply)
        stats.add(status)
        return lesson

    def _improve(
        self, backend, letter_ids, opt, chats, targets, weights, rng, logp_k=None
    ) -> tuple[float, float]:
        """Minimises ``sum_t w_t KL(target_t || pi_theta(.|s_t))`` (RICOL) or the weighted NLL (RWR, one-hot targets).

        Returns the mean KL(target || pi) over the batch before and after. ``logp_k``: ``[states, A]``
        log-probabilities of the current weights at the states, as recorded while collecting; the KL
        before is computed from them instead of by a forward pass over every state again.
        """
        import torch

        cfg = self.cfg
        if weights.sum() <= 0:  # RWR with no reward in the batch: nothing to imitate
            return float("nan"), float("nan")
        w = torch.tensor(weights / weights.mean(), dtype=torch.float32)
        q = torch.tensor(targets, dtype=torch.float32)

        def batch_logp(idx):
            logp = backend.next_token_logprobs([chats[j] for j in idx], letter_ids)
            return logp - torch.logsumexp(logp, -1, keepdim=True)  # over the letters

        def mean_kl(logp=None):
            if logp is None:
                with torch.no_grad():
                    logp = torch.cat(
                        [
                            batch_logp(range(s, min(s + cfg.batch_size, len(chats))))
                            for s in range(0, len(chats), cfg.batch_size)
                        ]
                    )
            lq = torch.log(q.clamp_min(1e-12))
            return float((q * (lq - logp)).sum(-1).mul(w).mean())

        before = mean_kl(None if logp_k is None else torch.tensor(logp_k, dtype=torch.float32))
        if before < 1e-8:  # every target is pi_k (no usable feedback): nothing to learn, and Adam would
            return before, before  # turn the zero gradients into full-size steps of noise
        backend.lm.train()
        for _ in range(cfg.epochs):
            order = rng.permutation(len(chats))
            for s in range(0, len(order), cfg.batch_size):
                idx = order[s : s + cfg.batch_size]
                logp = batch_logp(idx)
                loss = (
                    -(q[idx] * logp).sum(-1).mul(w[idx]).mean()
                )  # cross-entropy = KL + the target's entropy
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(backend.lm.parameters(), 1.0)
                opt.step()
        backend.lm.eval()
        return before, mean_kl()

    # --- the whole run ---

    def run(self) -> dict:
        """Records the run's metadata, trains every seed, then writes the summary (``finish``); returns it."""
        from credo.engine import metadata

        # No JAX devices (JAX on a GPU would take the memory torch needs); torch's versions instead.
        metadata.record(self.run_dir, jax_devices=False, libraries=("torch", "transformers", "peft", "numpy"))
        for i in range(self.cfg.seeds):
            self.run_seed(i)
        return self.finish()

    def finish(self) -> dict:
        """Writes ``summary.json`` (final test success rates and their IQM and 95% CI, time per iteration,
        feedback counts) and ``learning_curve.png`` from the seeds' metrics; returns the summary.
        """
        from credo import stats

        cfg = self.cfg
        rows = [
            [json.loads(x) for x in (self.run_dir / "metrics" / f"seed_{i}.jsonl").read_text().splitlines()]
            for i in range(cfg.seeds)
        ]
        final = [r[-1]["test_success"] for r in rows]
        agg = stats.aggregate_summary(final)
        its = [x for r in rows for x in r if "seconds" in x]
        summary = {
            "algo": cfg.algo,
            "env": cfg.env,
            "seeds": list(range(cfg.seed, cfg.seed + cfg.seeds)),
            "iterations": cfg.iterations,
            "final_test_success": final,
            "final_test_success_iqm": agg["iqm"],
            "final_test_success_ci95": agg["iqm_ci95"],
            # older runs' metrics lack it
            "test_expert_prob": [[x.get("test_expert_prob") for x in r if "test_success" in x] for r in rows],
            "env_steps_done": [r[-1]["env_steps"] for r in rows],
            "seconds_per_iteration": float(np.mean([x["seconds"] for x in its])) if its else None,
            "seconds_per_iteration_parts": {
                part: float(np.mean([x.get(f"seconds_{part}", 0.0) for x in its]))
                for part in ("collect", "reflect", "update")
            }
            if its
            else None,
            "feedback": _sum_counts([x.get("feedback", {}) for x in its]),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        n = min(len(r) for r in rows)
        steps = np.array([[r[j]["env_steps"] for r in rows] for j in range(n)], float).mean(1)
        succ = np.array([[r[j]["test_success"] for j in range(n)] for r in rows], float)
        stats.plot_learning_curves(
            {cfg.algo: (steps, succ)},
            self.run_dir / "learning_curve.png",
            ylabel="test success rate",
            title=f"{cfg.algo} on {cfg.env}",
        )
        return summary


def _forget_prefix(policy) -> None:
    """Drops the policy backend's kept prompt prefix (see ``LocalBackend.forget_prefix``), if it keeps one."""
    forget = getattr(getattr(getattr(policy, "llm", None), "backend", None), "forget_prefix", None)
    if forget is not None:
        forget()


def _sum_counts(dicts: list[dict]) -> dict:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out

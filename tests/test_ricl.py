"""RICL and RICOL: the advantage algebra, the trust-region target, feedback parsing, the Key-Door pipeline, RICOL's loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credo.envs.text import keydoor as kd
from credo.llm.base import LLM, Backend
from credo.ricl.advantage import (
    entropy,
    improved_policy,
    kl,
    log_partition,
    mc_advantage,
    ricl_advantage,
    trust_region_target,
)
from credo.ricl.prompts import FEEDBACK_INTRO, keydoor_task
from credo.ricl.reflect import FeedbackStats, LetterPolicy, parse_feedback


def _random_logp(rng, shape):
    x = rng.normal(size=shape) * 1.5
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("soft", [True, False])
def test_ricl_advantage_recovers_a_known_advantage(soft):
    """pi' = pi_0 exp(A / beta) / Z with A of the right mean under pi_0: eq. 3.3 gives A back exactly."""
    rng = np.random.default_rng(0)
    beta = 0.3
    logp0 = _random_logp(rng, (5, 4))
    a = rng.normal(size=(5, 4))
    p0 = np.exp(logp0)
    a -= (p0 * a).sum(-1, keepdims=True)  # mean zero under pi_0
    if soft:
        a -= beta * entropy(logp0)[:, None]  # E_pi0[A] = -beta H(pi_0) (eq. A.21)
    logp1 = improved_policy(logp0, a, beta)
    np.testing.assert_allclose(ricl_advantage(logp0, logp1[None], beta, soft=soft), a, atol=1e-10)
    # and the mean over n updated policies is the mean of their advantages
    a2 = a + rng.normal(size=(5, 4)) * 0.1
    a2 -= (p0 * a2).sum(-1, keepdims=True) + (beta * entropy(logp0)[:, None] if soft else 0)
    both = np.stack([logp1, improved_policy(logp0, a2, beta)])
    np.testing.assert_allclose(ricl_advantage(logp0, both, beta, soft=soft), (a + a2) / 2, atol=1e-10)


def test_log_partition_and_no_update():
    rng = np.random.default_rng(1)
    logp0 = _random_logp(rng, (3, 6))
    np.testing.assert_allclose(log_partition(logp0, logp0, soft=False), 0.0, atol=1e-12)
    np.testing.assert_allclose(log_partition(logp0, logp0, soft=True), -entropy(logp0), atol=1e-12)
    np.testing.assert_allclose(ricl_advantage(logp0, logp0[None], 1.0, soft=False), 0.0, atol=1e-12)


def test_improved_policy_is_independent_of_the_advantage_constant():
    rng = np.random.default_rng(2)
    logp0, a = _random_logp(rng, (4, 5)), rng.normal(size=(4, 5))
    np.testing.assert_allclose(
        improved_policy(logp0, a, 0.2), improved_policy(logp0, a + 3.0, 0.2), atol=1e-12
    )


def test_trust_region_target_interpolates_between_the_two_policies():
    rng = np.random.default_rng(3)
    logk, logp = _random_logp(rng, (4, 6)), _random_logp(rng, (4, 6))
    np.testing.assert_allclose(trust_region_target(logk, logp, 0.0), logk, atol=1e-12)
    np.testing.assert_allclose(trust_region_target(logk, logp, 1.0), logp, atol=1e-12)
    mid = trust_region_target(logk, logp, 0.5)
    np.testing.assert_allclose(np.exp(mid).sum(-1), 1.0, atol=1e-12)
    # the target moves monotonically away from pi_k as alpha grows
    d = [kl(trust_region_target(logk, logp, a), logk).mean() for a in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(x < y for x, y in zip(d, d[1:]))


def test_mc_advantage_has_mean_zero_under_pi0():
    rng = np.random.default_rng(4)
    logp0, q = _random_logp(rng, (3, 4)), rng.normal(size=(3, 4))
    a = mc_advantage(q, logp0)
    np.testing.assert_allclose((np.exp(logp0) * a).sum(-1), 0.0, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_parse_feedback_never_raises(text):
    fb, status = parse_feedback(text)
    assert status in ("ok", "empty", "no feedback line", "too long", "not English")
    assert (fb is None) == (status != "ok")


@pytest.mark.parametrize(
    "reply, status",
    [
        ("analysis...\nVerbal Feedback: Move left to the key first.", "ok"),
        ("Conclusion: no.\nFeedback: pick up the key when you stand on it", "ok"),
        ("I think the agent should move left.", "no feedback line"),
        ("Verbal Feedback:   ", "empty"),
        ("", "empty"),
        ("Feedback: " + "go left " * 200, "too long"),
        ("Feedback: 向左移动去拿钥匙，然后向右走开门。", "not English"),
    ],
)
def test_bad_feedback_falls_back_and_is_counted(reply, status):
    fb, got = parse_feedback(reply)
    assert got == status
    stats = FeedbackStats()
    stats.add(got)
    assert stats.total == 1 and stats.usable == (status == "ok")


# --- the Key-Door pipeline with scripted LLMs ----------------------------------------------


class GroundTruthLLM(Backend):
    """A policy that is pi_0 without feedback and pi_gt with any feedback; a reflector that always answers."""

    name, model = "scripted", "gt"

    def __init__(self, logp0, logp_gt, length):
        self.logp0, self.logp_gt, self.length = logp0, logp_gt, length
        self.reflections = 0

    def _state(self, text):
        for i in range(kd.n_states(self.length)):
            if kd.describe(kd.state_of(i), self.length) in text:
                return i
        raise AssertionError(text)

    def _logprobs(self, messages, continuations):
        text = messages[-1]["content"]
        table = self.logp_gt if FEEDBACK_INTRO in text else self.logp0
        return list(table[self._state(text)])

    def _generate(self, messages, sampling):
        self.reflections += 1
        return ["Verbal Feedback: do what the ground truth says."] * sampling.n


def _scripted_setup():
    from credo.ricl.keydoor import KeyDoorSetup, ground_truth

    setup = KeyDoorSetup(length=4, gamma=0.9, beta=0.1, max_steps=12)
    rng = np.random.default_rng(0)
    logp0 = _random_logp(rng, (kd.n_states(4), 4))
    gt = ground_truth(setup, logp0)
    return setup, logp0, improved_policy(logp0, gt, setup.beta)


def test_ricl_with_a_perfect_in_context_update_has_zero_error_and_monte_carlo_converges():
    from credo.ricl.keydoor import draw_reflections, mc_errors, policy_table, ricl_errors, start_states

    setup, logp0, logp_gt = _scripted_setup()
    backend = GroundTruthLLM(logp0, logp_gt, setup.length)
    policy = LetterPolicy(LLM(backend), keydoor_task())
    np.testing.assert_allclose(policy_table(policy, setup.length), logp0, atol=1e-9)
    rng = np.random.default_rng(1)
    states = start_states(setup.length)
    refl = draw_reflections(setup, policy, LLM(backend), logp0, states, 2, rng)
    assert refl.stats.usable == 2 * len(states) and backend.reflections == 2 * len(states)
    errs = ricl_errors(setup, logp0, refl, [1, 2], 3, rng)
    assert max(max(v) for v in errs.values()) < 1e-9
    mc = mc_errors(setup, logp0, states, [1, 300], 2, rng)
    assert np.mean(mc[300]) < 0.2 * np.mean(mc[1])


def test_keydoor_experiment_writes_its_results(tmp_path):
    from credo.ricl.keydoor import run_experiment

    setup, logp0, logp_gt = _scripted_setup()
    llm = LLM(GroundTruthLLM(logp0, logp_gt, setup.length))
    doc = run_experiment(
        llm, llm, tmp_path, setup, n_max=2, ricl_ns=(1, 2), mc_ns=(1, 10), trials=2, log=lambda s: None
    )
    assert (tmp_path / "error_vs_trajectories.png").exists() and (tmp_path / "critical_states.png").exists()
    saved = json.loads((tmp_path / "ricl_keydoor.json").read_text())
    assert saved["ricl_error"]["2"] == doc["ricl_error"]["2"] and max(saved["ricl_error"]["1"]) < 1e-9
    gt, ricl = np.array(doc["critical_scores"]["ground_truth"]), np.array(doc["critical_scores"]["ricl"])
    np.testing.assert_allclose(
        ricl, gt, atol=1e-9
    )  # a perfect update finds the ground truth's critical states
    assert len(gt) == 2 * setup.length


# --- RICOL's loop on a tiny randomly initialised model ------------------------------------------


def _tiny_llama(tmp_path_factory, name: str, seed: int, **config) -> str:
    """A 2-layer Llama with SmolLM2's tokenizer and chat template, saved under a fresh directory."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from credo.llm.local import embedded_gguf

    gguf = embedded_gguf()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        **config,
    )
    path = tmp_path_factory.mktemp(name)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny randomly initialised model: RICOL's loop in seconds."""
    return _tiny_llama(tmp_path_factory, "tiny", seed=0)


@pytest.fixture(scope="module")
def sharp_model(tmp_path_factory):
    """``tiny_model`` with weights 25x larger: peaked next-token distributions that depend on the
    prompt, so that greedy decoding writes different replies to different prompts.
    """
    return _tiny_llama(tmp_path_factory, "sharp", seed=1, initializer_range=0.5)


def _ricol(tmp_path, model, **kw):
    from credo.ricl.ricol import RICOLConfig, RICOLTrainer

    base = dict(
        env="keydoor",
        model=model,
        feedback="oracle",
        iterations=1,
        episodes_per_iteration=2,
        max_steps=6,
        test_episodes=1,
        lr=3e-3,
        epochs=4,
        batch_size=4,
        finetune="full",  # the tests that check the weights; LoRA (the default) is tested explicitly
    )
    cfg = RICOLConfig(**{**base, **kw})
    return RICOLTrainer(cfg, tmp_path, log=lambda s: None)


def _rows(path):
    return [json.loads(x) for x in (path / "metrics" / "seed_0.jsonl").read_text().splitlines()]


def test_the_improvement_step_lowers_the_kl_to_its_targets(tmp_path, tiny_model):
    import torch

    from credo.llm.local import LocalBackend

    t = _ricol(tmp_path, tiny_model, epochs=25)
    backend = LocalBackend(tiny_model)
    task = t.task
    chats = [task.policy_messages(kd.describe(kd.state_of(i), 4)) for i in range(8)]
    ids = backend.single_token_ids(chats[0], task.letters)
    rng = np.random.default_rng(0)
    targets = np.exp(_random_logp(rng, (8, 4)) * 2)
    targets /= targets.sum(-1, keepdims=True)
    opt = torch.optim.Adam(backend.lm.parameters(), lr=1e-2)
    before, after = t._improve(backend, ids, opt, chats, targets, np.ones(8), rng)
    assert after < 0.5 * before
    same = t._improve(backend, ids, opt, chats, np.exp(t_logp(backend, chats, ids)), np.ones(8), rng)
    assert same[0] == same[1] < 1e-8  # targets equal to the policy: no step at all


def t_logp(backend, chats, ids):
    import torch

    with torch.no_grad():
        lp = backend.next_token_logprobs(chats, ids)
        return (lp - torch.logsumexp(lp, -1, keepdim=True)).double().numpy()


def test_one_ricol_iteration_runs_end_to_end_and_checkpoints(tmp_path, tiny_model):
    summary = _ricol(tmp_path, tiny_model, alpha=1.0).run()
    rows = _rows(tmp_path)
    it = rows[-1]
    assert it["states"] == it["env_steps"] == 12 and np.isfinite(it["kl_before"])
    assert it["feedback"] == {"ok": 12}
    assert (tmp_path / "checkpoints" / "seed_0" / "weights" / "model.safetensors").exists()
    assert summary["env_steps_done"] == [12] and (tmp_path / "learning_curve.png").exists()
    assert [0 < p <= 1 for p in summary["test_expert_prob"][0]] == [True, True]  # iterations 0 and 1


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_ricol_resumes_from_its_checkpoint_with_the_trained_weights(tmp_path, tiny_model, finetune):
    import torch

    t = _ricol(tmp_path, tiny_model, iterations=1, finetune=finetune, lora_r=2)
    t.run()
    trained = t._policy(0).lm.state_dict()
    fresh = _ricol(tmp_path / "other", tiny_model, finetune=finetune, lora_r=2)._policy(0).lm.state_dict()
    assert any(not torch.equal(trained[k], fresh[k]) for k in trained)
    t2 = _ricol(tmp_path, tiny_model, iterations=2, finetune=finetune, lora_r=2)  # resume: one more iteration
    t2.run()
    rows = _rows(tmp_path)
    assert [r["iteration"] for r in rows] == [0, 1, 2] and rows[-1]["env_steps"] == 24
    # the same two iterations unbroken: the same weights (Adam's moments are in the checkpoint)
    unbroken = _ricol(tmp_path / "unbroken", tiny_model, iterations=2, finetune=finetune, lora_r=2)
    unbroken.run()
    resumed, straight = t2._policy(0).lm.state_dict(), unbroken._policy(0).lm.state_dict()
    assert all(torch.equal(resumed[k], straight[k]) for k in resumed)
    assert [r["kl_after"] for r in rows[1:]] == [r["kl_after"] for r in _rows(tmp_path / "unbroken")[1:]]


def test_rwr_and_reflexion_run(tmp_path, tiny_model):
    class Lessons(Backend):
        name, model = "scripted", "lessons"

        def _generate(self, messages, sampling):
            return ["Feedback: walk left first, then take the key."]

    t = _ricol(tmp_path / "rwr", tiny_model, algo="rwr")
    t.run()
    assert "kl_before" in _rows(tmp_path / "rwr")[-1]
    r = _ricol(tmp_path / "rx", tiny_model, algo="reflexion", feedback="llm")
    r.reflector = LLM(Lessons())
    state = r.run_seed(0)
    assert state["memory"] == ["walk left first, then take the key."] * 2


@pytest.mark.slow
def test_one_ricol_iteration_with_the_embedded_model(tmp_path):
    t = _ricol(
        tmp_path,
        "embedded",
        feedback="llm",
        reflector_prefill=True,
        lr=1e-6,  # the benchmark's step (benchmarks/results/ricol_lr_probe.md); alpha 0.5
        epochs=1,
        alpha=0.5,
        episodes_per_iteration=1,
        max_steps=4,
        reflector_max_tokens=32,
    )
    t.run()
    it = _rows(tmp_path)[-1]
    assert sum(it["feedback"].values()) == 4
    if it["feedback"].get("ok"):
        assert it["kl_after"] < it["kl_before"]


def test_cli_trains_and_resumes_ricol(tmp_path, tiny_model, capsys):
    from credo.cli import main

    args = ["train", "ricol", "keydoor", "--out", str(tmp_path), "--name", "r", "--seeds", "1"]
    sets = [
        "model=" + tiny_model,
        "feedback=oracle",
        "iterations=1",
        "episodes_per_iteration=1",
        "max_steps=3",
        "test_episodes=1",
    ]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    out = capsys.readouterr().out
    assert "ricol on keydoor: 1 seed(s)" in out and "final test success per seed" in out
    assert main(["train", "ricol", "keydoor", "--steps", "100", "--out", str(tmp_path), "--name", "x"]) == 2
    assert "iterations" in capsys.readouterr().err
    (tmp_path / "r" / "summary.json").unlink()
    assert (
        main(["train", "--resume", str(tmp_path / "r")]) == 0
    )  # every iteration done: only the summary again
    assert (tmp_path / "r" / "summary.json").exists()


def test_reflector_prompt_shows_the_hindsight_and_can_cap_it():
    from credo.ricl.prompts import Step

    task = keydoor_task()
    steps = [Step(f"obs {k}", k % 4, float(k == 4), brief=f"b{k}") for k in range(5)]
    text = task.reflector_messages(steps, 1)[1]["content"]
    assert "obs 1" in text and "step 3: b4 | action: A (move left) | reward: 1" in text and "b0" not in text
    assert "Total reward from step t on: 1" in text
    capped = task.reflector_messages(steps, 1, horizon=2)[1]["content"]
    assert "b3" in capped and "b4" not in capped and "... 1 more steps" in capped
    assert "Total reward from step t on: 1" in capped


def test_vectorised_monte_carlo_returns_match_the_step_by_step_rollout():
    from credo.ricl.keydoor import KeyDoorSetup, mc_returns, rollout

    setup = KeyDoorSetup(length=4, gamma=0.9, max_steps=12)
    rng = np.random.default_rng(0)
    logp0 = _random_logp(rng, (8, 4))
    fast = mc_returns(setup, logp0, kd.state_index(1, False), 0, 20000, rng).mean()
    slow = np.mean([rollout(setup, logp0, kd.state_index(1, False), rng, 0)[1] for _ in range(5000)])
    exact = kd.solve(4, np.exp(logp0), 0.9)  # the horizon of 12 cuts a little off the infinite-horizon value
    assert abs(fast - slow) < 0.02 and fast <= exact.Q[kd.state_index(1, False), 0] + 0.01


def test_ricol_with_lora_adapters_trains_only_them_and_resumes(tmp_path, tiny_model):
    t = _ricol(tmp_path, tiny_model, finetune="lora", lora_r=2)
    t.run()
    weights = tmp_path / "checkpoints" / "seed_0" / "weights"
    assert (weights / "adapter_config.json").exists() and not (weights / "model.safetensors").exists()
    lm = t._policy(0).lm  # the base model with the saved adapters, ready to train on
    trainable = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)


def test_expert_labels_stop_where_the_babyai_bot_gives_up():
    """minigrid's bot raises once a box is opened (goto seed 14 under uniform actions, step 5)."""
    from credo.ricl.ricol import TextEpisodeEnv, run_episode

    class Uniform:
        def log_probs(self, obs, feedback=None, mission=None):
            return np.log(np.full(6, 1 / 6))

    env = TextEpisodeEnv("babyai:goto")
    e = run_episode(env, Uniform(), np.random.default_rng(14), seed=14, expert=True)
    gave_up = e.expert.index(None)
    assert gave_up > 0 and all(a is not None for a in e.expert[:gave_up])
    assert all(a is None for a in e.expert[gave_up:])  # a broken plan labels nothing after
    env.reset(0)  # a new episode plans afresh
    assert env.expert_action() is not None


# --- batched reflections, batched log-probabilities, shared prefixes (issue 21) -------------------


def _plain_logprobs(backend, chat, ids):
    """The reference: one chat alone, no padding, no cache."""
    import torch

    with torch.no_grad():
        p = torch.tensor([backend.prompt_ids(chat)])
        return torch.log_softmax(backend.lm(input_ids=p).logits[0, -1].float(), -1)[ids].numpy()


def _keydoor_chats(task, n=8):
    """Policy chats of several lengths that share the system prompt (two missions: two prefixes)."""
    return [
        task.policy_messages(
            kd.describe(kd.state_of(i), 4) + " and a long corridor" * (i % 3), mission=f"m{i % 2}"
        )
        for i in range(n)
    ]


def test_prefix_groups_share_only_real_prefixes():
    from credo.llm.local import prefix_groups

    a = list(range(40))
    groups = prefix_groups([a + [1, 2], a + [3], [7] * 30, a[:20] + [9] * 5, [7] * 31])
    assert groups == [(20, [0, 1, 3]), (29, [2, 4])]
    assert prefix_groups([a, a]) == [(39, [0, 1])]  # every prompt keeps a token of its own
    assert prefix_groups([a]) == [(0, [0])]


def test_batched_log_probs_equal_one_chat_at_a_time(tiny_model):
    """Padding and the shared prefix change nothing: each chat's log-probs as if it ran alone."""
    import torch

    from credo.llm.local import LocalBackend

    backend = LocalBackend(tiny_model)
    task = keydoor_task()
    chats = _keydoor_chats(task)
    ids = backend.single_token_ids(chats[0], task.letters)
    assert len({len(backend.prompt_ids(c)) for c in chats}) > 1  # padding is exercised
    ref = np.array([_plain_logprobs(backend, c, ids) for c in chats])
    with torch.no_grad():
        got = backend.next_token_logprobs(chats, ids).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # with grad on (the fine-tuning's path): same values, and the gradient through the shared prefix
    # is the sum of the chats' own gradients
    lp = backend.next_token_logprobs(chats, ids)
    np.testing.assert_allclose(lp.detach().numpy(), ref, atol=1e-5)
    params = [p for p in backend.lm.parameters()]
    batched = torch.autograd.grad(lp[:, 0].sum(), params)
    alone = [torch.zeros_like(p) for p in params]
    for c in chats:
        for acc, g in zip(alone, torch.autograd.grad(backend.next_token_logprobs([c], ids)[0, 0], params)):
            acc += g
    for b, a in zip(batched, alone):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    # the LLM-level batch equals the one-at-a-time calls
    llm = LLM(backend)
    many = llm.logprobs_many([(c, task.letters) for c in chats])
    np.testing.assert_allclose(many, [llm.logprobs(c, task.letters) for c in chats], atol=1e-5)


def test_the_kept_prefix_is_reused_and_dropped_when_the_weights_change(tiny_model):
    import torch

    from credo.llm.local import MIN_SHARED, LocalBackend

    backend = LocalBackend(tiny_model)
    task = keydoor_task()
    chats = [task.policy_messages(kd.describe(kd.state_of(i), 4), mission="m") for i in range(4)]
    ids = backend.single_token_ids(chats[0], task.letters)
    llm = LLM(backend)
    for c in chats:  # from the second chat on, the system prompt comes from the kept cache
        np.testing.assert_allclose(llm.logprobs(c, task.letters), _plain_logprobs(backend, c, ids), atol=1e-5)
    assert backend._kept_prefix is not None and len(backend._kept_prefix[1]) >= MIN_SHARED
    opt = torch.optim.Adam(backend.lm.parameters(), lr=0.05)
    loss = backend.next_token_logprobs(chats[:2], ids)[:, 0].sum()
    loss.backward()
    opt.step()  # new weights: a cache of the old ones would give the old log-probs
    np.testing.assert_allclose(
        llm.logprobs(chats[3], task.letters), _plain_logprobs(backend, chats[3], ids), atol=1e-5
    )


def test_batched_reflections_equal_one_at_a_time_under_greedy_decoding(sharp_model):
    from credo.llm.base import Sampling
    from credo.llm.local import LocalBackend
    from credo.ricl.prompts import Step

    backend = LocalBackend(sharp_model)
    backend.generate_rows = 3  # several chunks
    task = keydoor_task()
    steps = [Step(kd.describe(kd.state_of(k), 4), k % 4, 0.0) for k in range(6)]
    chats = [task.reflector_messages(steps, t, horizon=2) for t in range(5)]
    chats.append([{"role": "user", "content": "Something else entirely."}])  # a prompt in a group alone
    chats = [[*c, {"role": "assistant", "content": "Verbal Feedback:"}] for c in chats]
    greedy = Sampling(n=1, temperature=0, max_tokens=12)
    alone = [backend._generate(c, greedy) for c in chats]
    batched = backend._generate_many([(c, greedy) for c in chats])
    assert batched == alone and len({r[0] for r in alone}) > 1
    # through the LLM: each request is cached on its own, and cache hits are not asked again
    llm = LLM(backend)
    assert llm.generate_many([(c, greedy) for c in chats]) == alone
    sampled = [(c, Sampling(n=2, temperature=0.7, max_tokens=5, seed=3)) for c in chats[:3]]
    replies = llm.generate_many(sampled)
    assert [len(r) for r in replies] == [2, 2, 2]


def test_reflect_many_counts_each_reply_and_survives_a_failed_batch():
    from credo.llm.base import LLMError
    from credo.ricl.prompts import Step
    from credo.ricl.reflect import reflect_many

    class Flaky(Backend):
        name, model = "scripted", "flaky"

        def __init__(self):
            self.batches = 0

        def _generate_many(self, requests):
            self.batches += 1
            raise LLMError("the batch failed")

        def _generate(self, messages, sampling):
            if "step 1" in messages[1]["content"] and "step 2" not in messages[1]["content"]:
                raise LLMError("this one failed")
            return [" go left."]

    task = keydoor_task()
    steps = [Step(f"obs {k}", 0, 0.0) for k in range(4)]
    stats = FeedbackStats()
    backend = Flaky()
    out = reflect_many(
        LLM(backend), task, [(steps, t, "", t) for t in range(4)], stats, prefill=True, horizon=3
    )
    assert backend.batches == 1 and [fb for fb, _ in out] == ["go left."] * 2 + [None, "go left."]
    assert stats.to_dict() == {"ok": 3, "LLM error": 1}


def test_a_bfloat16_reflector_is_cached_apart_and_generates(tiny_model, tmp_path):
    import torch

    from credo.llm.base import LLMError, Sampling
    from credo.llm.local import LocalBackend

    half = LocalBackend(tiny_model, dtype="bfloat16")
    assert half.lm.dtype == torch.bfloat16 and half.model.endswith("(bfloat16)")
    assert half.model != LocalBackend(tiny_model).model  # the response cache keys differ
    chat = [{"role": "user", "content": "Hello"}]
    assert len(LLM(half).generate_many([(chat, Sampling(max_tokens=3))] * 2)) == 2
    with pytest.raises(LLMError, match="dtype"):
        LocalBackend(tiny_model, dtype="float16")
    with pytest.raises(ValueError, match="reflector_dtype"):
        _ricol(tmp_path, tiny_model, reflector_dtype="int8")

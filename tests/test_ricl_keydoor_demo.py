"""The Key-Door study's demo-tuned policy: the expert's actions, the fine-tune and its guards."""

import numpy as np
import pytest
from test_ricl import GroundTruthLLM, _ricol, _rows, _scripted_setup, tiny_model  # noqa: F401  (a fixture)

from credo.envs.text import keydoor as kd
from credo.llm.base import LLM
from credo.ricl.keydoor import DemoTuning, demo_tune, expert_actions, start_state_table, start_states


@pytest.mark.parametrize("length", [2, 3, 5])
def test_the_expert_solves_the_corridor_from_every_start_in_the_fewest_steps(length):
    expert = np.eye(4)[expert_actions(length)]
    V = kd.solve(length, expert, 0.9).V
    for s in start_states(length):
        position = kd.state_of(s)[0]
        # position lefts, a pick-up, length - 1 rights and the unlock: the reward comes at step position + length + 1
        assert V[s] == pytest.approx(0.9 ** (position + length))


def test_demo_tuning_moves_the_policy_toward_the_expert(tiny_model):  # noqa: F811
    from credo.llm.local import LocalBackend

    llm = LLM(LocalBackend(tiny_model))
    rec = demo_tune(llm, 3, DemoTuning(mix=1.0, steps=15, lr=1e-2))
    expert = expert_actions(3)
    rows = np.arange(len(expert))
    before, after = np.array(rec["pi0_before"]), np.array(rec["pi0_after"])
    assert rec["losses"][-1] < rec["losses"][0]
    assert after[rows, expert].mean() > before[rows, expert].mean() + 0.1


def test_demo_tuning_refuses_what_it_cannot_tune(tmp_path):
    from credo.ricl.keydoor import run_experiment

    setup, logp0, logp_gt = _scripted_setup()
    llm = LLM(GroundTruthLLM(logp0, logp_gt, setup.length))
    with pytest.raises(ValueError, match="local backend"):
        demo_tune(llm, setup.length, DemoTuning())
    with pytest.raises(ValueError, match="its own LLM"):
        run_experiment(
            llm, llm, tmp_path, setup, n_max=1, ricl_ns=(1,), mc_ns=(1,), trials=1, demo=DemoTuning()
        )
    for bad in ({"mix": 0.0}, {"mix": 1.5}, {"steps": 0}, {"lr": 0.0}):
        with pytest.raises(ValueError, match="demo tuning"):
            DemoTuning(**bad)


def test_the_start_state_table_has_the_exact_values_and_advantages():
    setup, logp0, _ = _scripted_setup()
    rows = start_state_table(setup, logp0)
    sol = kd.solve(setup.length, np.exp(logp0), setup.gamma)
    assert len(rows) == 2 + setup.length
    last = rows[-1].split("|")
    assert float(last[3]) == pytest.approx(sol.V[kd.state_index(setup.length - 1, False)], abs=1e-4)


def test_exact_success_matches_sampled_episodes_and_the_expert_always_succeeds():
    rng = np.random.default_rng(0)
    length, horizon = 3, 9
    policy = rng.dirichlet(np.ones(4), size=kd.n_states(length))
    env = kd.KeyDoorEnv(length, max_steps=horizon)
    wins = 0
    for episode in range(4000):
        env.reset(seed=episode)
        done = success = False
        while not done:
            state = kd.state_index(env._position, env._has_key)
            _, _, terminated, truncated, info = env.step(int(rng.choice(4, p=policy[state])))
            done, success = terminated or truncated, info["success"]
        wins += success
    exact = kd.success_within(length, policy, horizon)
    assert abs(wins / 4000 - exact) < 4 * np.sqrt(exact * (1 - exact) / 4000)
    expert = np.eye(4)[expert_actions(length)]
    assert kd.success_within(length, expert, 2 * length) == pytest.approx(1.0)  # at most p + length + 1 steps
    assert kd.success_within(length, expert, length) == 0.0


def test_ricol_on_a_short_corridor_records_the_exact_success_of_its_policy(tmp_path, tiny_model):  # noqa: F811
    from credo.llm.local import LocalBackend
    from credo.ricl.keydoor import policy_table
    from credo.ricl.prompts import keydoor_task
    from credo.ricl.reflect import LetterPolicy

    t = _ricol(tmp_path, tiny_model, length=3, max_steps=12, iterations=1)
    t.run()
    first = _rows(tmp_path)[0]  # before any training: the model as loaded
    table = np.exp(policy_table(LetterPolicy(LLM(LocalBackend(tiny_model)), keydoor_task()), 3))
    assert first["test_exact_success"] == pytest.approx(kd.success_within(3, table, 12), abs=1e-6)
    assert 0.0 < first["test_exact_success"] < 1.0

"""Text envs for LLM policies: the 1D Key-Door corridor (and its exact solver) and BabyAI in text."""

import subprocess
import sys

import numpy as np
import pytest

from credo.envs.text import TEXT_ENVS, make_text_env
from credo.envs.text.keydoor import (
    ACTIONS,
    KeyDoorEnv,
    describe,
    ground_truth_improved_policy,
    kl,
    n_states,
    solve,
    state_index,
    transition,
)

L, R, PICK, UNLOCK = range(4)

# The length-3 corridor written out by hand: (position, has_key) -> the next state for
# move left, move right, pick up, unlock (None: the terminal state). Only unlocking
# at (2, True) pays, 1.
HAND_TABLE = {
    (0, False): [(0, False), (1, False), (0, True), (0, False)],
    (1, False): [(0, False), (2, False), (1, False), (1, False)],
    (2, False): [(1, False), (2, False), (2, False), (2, False)],
    (0, True): [(0, True), (1, True), (0, True), (0, True)],
    (1, True): [(0, True), (2, True), (1, True), (1, True)],
    (2, True): [(1, True), (2, True), (2, True), None],
}


def hand_reward(state, action):
    return 1.0 if state == (2, True) and action == UNLOCK else 0.0


def iterate_values(policy, gamma, beta=0.0, sweeps=2000):
    """Soft policy evaluation by fixed-point iteration over HAND_TABLE (independent of ``solve``)."""
    values = {s: 0.0 for s in HAND_TABLE}
    for _ in range(sweeps):
        new = {}
        for s, nexts in HAND_TABLE.items():
            pi = policy[state_index(*s)]
            total = 0.0
            for a, nxt in enumerate(nexts):
                total += pi[a] * (hand_reward(s, a) + gamma * (0.0 if nxt is None else values[nxt]))
            new[s] = total - beta * sum(p * np.log(p) for p in pi if p > 0)
        values = new
    return values


def optimal_policy(length):
    policy = np.zeros((n_states(length), 4))
    for p in range(length):
        policy[state_index(p, False), PICK if p == 0 else L] = 1.0
        policy[state_index(p, True), UNLOCK if p == length - 1 else R] = 1.0
    return policy


# --- Key-Door solver -----------------------------------------------------------------------------


def test_solver_optimal_policy_matches_hand_values():
    sol = solve(3, optimal_policy(3), gamma=0.9)
    # Steps to the reward from each state under the optimal policy: V = 0.9 ** (steps - 1).
    expected_v = {
        (2, True): 1.0,
        (1, True): 0.9,
        (0, True): 0.81,
        (0, False): 0.729,
        (1, False): 0.6561,
        (2, False): 0.59049,
    }
    for s, v in expected_v.items():
        assert sol.V[state_index(*s)] == pytest.approx(v)
    at_key, at_door = state_index(0, False), state_index(2, True)
    np.testing.assert_allclose(sol.Q[at_key], [0.6561, 0.59049, 0.729, 0.6561])
    np.testing.assert_allclose(sol.A[at_key], [-0.0729, -0.13851, 0.0, -0.0729], atol=1e-12)
    np.testing.assert_allclose(sol.Q[at_door], [0.81, 0.9, 0.9, 1.0])
    np.testing.assert_allclose(sol.A[at_door], [-0.19, -0.1, -0.1, 0.0], atol=1e-12)
    np.testing.assert_allclose(sol.R, [0, 0, 0, 0, 0, 1])


def test_solver_uniform_policy_matches_independent_iteration():
    policy = np.full((6, 4), 0.25)
    sol = solve(3, policy, gamma=0.9)
    values = iterate_values(policy, 0.9)
    for s, v in values.items():
        assert sol.V[state_index(*s)] == pytest.approx(v, abs=1e-10)
    # Anchors: the three key-holding equations of HAND_TABLE, solved by hand, give
    # V(1,1) = 0.570732 V(2,1) and V(2,1) = 0.25 / (0.55 - 0.225 * 0.570732).
    assert sol.V[state_index(2, True)] == pytest.approx(0.592999, abs=1e-6)
    assert sol.V[state_index(1, True)] == pytest.approx(0.338444, abs=1e-6)
    # Q(s, a) = r + gamma V(s') from the hand table, at the door with the key and at the key cell.
    door = state_index(2, True)
    np.testing.assert_allclose(
        sol.Q[door], [0.9 * values[(1, True)], 0.9 * values[(2, True)], 0.9 * values[(2, True)], 1.0]
    )
    key = state_index(0, False)
    np.testing.assert_allclose(sol.A[key, PICK], 0.9 * values[(0, True)] - values[(0, False)])
    # Under the policy, unlocking leaves the chain: the door-with-key row sums to 3/4.
    np.testing.assert_allclose(sol.P.sum(axis=1), [1, 1, 1, 1, 1, 0.75])


@pytest.mark.parametrize("beta", [0.0, 0.3])
def test_expected_advantage_is_minus_beta_entropy(beta):
    rng = np.random.default_rng(0)
    policy = rng.dirichlet(np.ones(4), size=6)
    sol = solve(3, policy, gamma=0.9, beta=beta)
    entropy = -(policy * np.log(policy)).sum(axis=1)
    np.testing.assert_allclose((policy * sol.A).sum(axis=1), -beta * entropy, atol=1e-12)
    values = iterate_values(policy, 0.9, beta)
    for s, v in values.items():
        assert sol.V[state_index(*s)] == pytest.approx(v, abs=1e-10)


def test_solver_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        solve(3, np.full((7, 4), 0.25), 0.9)
    with pytest.raises(ValueError, match="probability"):
        solve(3, np.full((6, 4), 0.3), 0.9)
    always_left = np.zeros((6, 4))
    always_left[:, L] = 1.0
    with pytest.raises(ValueError, match="gamma < 1"):
        solve(3, always_left, 1.0)


def test_improved_policy_and_kl():
    pi0 = np.array([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
    A = np.array([[np.log(3.0), 0.0, 5.0, 5.0], [1000.0, 1000.0, 0.0, 0.0]])
    pi = ground_truth_improved_policy(pi0, A, beta=1.0)
    np.testing.assert_allclose(pi, [[0.75, 0.25, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(kl(pi0, pi0), [0.0, 0.0])
    np.testing.assert_allclose(kl(pi[0], pi0[0]), 0.75 * np.log(1.5) + 0.25 * np.log(0.5))
    assert np.isinf(kl(pi0[1], pi[1]))  # pi0 puts mass where pi has none


# --- Key-Door env --------------------------------------------------------------------------------


def test_env_dynamics_equal_transition():
    env = KeyDoorEnv(length=5, max_steps=40)
    rng = np.random.default_rng(1)
    for episode in range(20):
        obs, _ = env.reset(seed=episode)
        assert not obs["state"][1] and obs["symbolic"][obs["state"][0]] == 1.0
        done = False
        while not done:
            action = int(rng.integers(4))
            expected = transition(5, *env.state, action)
            obs, reward, terminated, truncated, info = env.step(action)
            assert (int(obs["state"][0]), bool(obs["state"][1])) == expected[:2]
            assert (reward, terminated, info["success"]) == (expected[2], expected[3], expected[3])
            assert obs["symbolic"][-1] == float(expected[1])
            assert env.observation_space.contains(obs)
            done = terminated or truncated


def test_env_unlocking_ends_with_reward_one_and_max_steps_truncates():
    env = KeyDoorEnv(length=10)
    assert env.max_steps == 30
    env.reset(options={"position": 9})
    path = [L] * 9 + [PICK] + [R] * 9 + [UNLOCK]
    rewards = []
    for action in path:
        _, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
    assert rewards == [0.0] * 19 + [1.0] and terminated and not truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(L)

    env = KeyDoorEnv(length=4, max_steps=5)
    env.reset(options={"position": 3, "has_key": True})
    ends = [env.step(L)[2:4] for _ in range(5)]
    assert ends == [(False, False)] * 4 + [(False, True)]


def test_keydoor_describe_sentences():
    assert describe((4, False), 8) == (
        "Your goal is to open the locked door. You can choose to: move left, move right, pick up the key, "
        "or unlock the door. You see the locked door 3 steps away on your right. You don't have the key. "
        "You see a key 4 steps away on your left. After reviewing the rules of the environment, your goal "
        "and objects around you, what do you do next to achieve the goal?"
    )
    middle = lambda text: text.split("unlock the door. ")[1].split(" After reviewing")[0]
    assert middle(describe((0, False), 10)) == (
        "You see the locked door 9 steps away on your right. You don't have the key. "
        "You see a key on the ground around you."
    )
    assert middle(describe((9, True), 10)) == "You are in front of the locked door. You have the key."
    assert (
        middle(describe((8, True), 10))
        == "You see the locked door 1 step away on your right. You have the key."
    )
    assert ACTIONS == ("move left", "move right", "pick up the key", "unlock the door")


# --- BabyAI --------------------------------------------------------------------------------------

minigrid = pytest.importorskip("minigrid")
from minigrid.core.actions import Actions  # noqa: E402
from minigrid.core.grid import Grid  # noqa: E402
from minigrid.core.world_object import Ball, Box, Door, Key  # noqa: E402

from credo.envs.text import babyai  # noqa: E402


def empty_view():
    image = np.zeros((7, 7, 3), dtype=np.uint8)
    image[..., 0] = 1  # empty
    return image


def test_babyai_paper_example_view():
    image = empty_view()
    image[3, 3] = (2, 5, 0)  # wall, 3 cells ahead
    image[4, 6] = (2, 5, 0)  # wall, right next to the agent
    image[5, 6] = (2, 5, 0)  # behind the nearest one: not reported
    image[0, 6] = (0, 0, 0)  # unseen
    assert babyai.describe({"image": image}) == "a wall 3 steps forward\na wall 1 step right"


def room_with(level, objects, agent_pos, agent_dir, carrying=None):
    """An 8x8 walled room with ``objects`` placed by hand; returns minigrid's observation."""
    level.grid = Grid(8, 8)
    level.grid.wall_rect(0, 0, 8, 8)
    for (x, y), obj in objects.items():
        level.grid.set(x, y, obj)
    level.agent_pos, level.agent_dir, level.carrying = agent_pos, agent_dir, carrying
    return level.gen_obs()


def test_babyai_sentences_facing_up_while_carrying():
    env = babyai.BabyAITextEnv("goto")
    env.reset(seed=0)
    # Agent at (4, 6) facing up (-y): the top wall is 6 cells ahead, the right wall 3 cells
    # to its right; the left wall (x = 0) is 4 cells away, outside the 7-cell-wide view.
    obs = room_with(env.unwrapped, {(3, 4): Key("red"), (6, 5): Door("blue")}, (4, 6), 3, Ball("green"))
    assert babyai.view_sentences(obs["image"]) == [
        "You carry a green ball.",
        "a wall 6 steps forward",
        "a wall 3 steps right",
        "a red key 1 step left and 2 steps forward",
        "a closed blue door 2 steps right and 1 step forward",
    ]


def test_babyai_sentences_facing_right():
    env = babyai.BabyAITextEnv("goto")
    env.reset(seed=0)
    # Agent at (1, 3) facing right (+x): left is -y, so the top wall is 3 steps left; the
    # box 2 cells ahead hides the right wall from the forward-wall sentence.
    objects = {(3, 3): Box("purple"), (2, 1): Door("grey", is_open=True), (3, 5): Key("yellow")}
    obs = room_with(env.unwrapped, objects, (1, 3), 0)
    assert babyai.view_sentences(obs["image"]) == [
        "a wall 3 steps left",
        "an open grey door 2 steps left and 1 step forward",
        "a purple box 2 steps forward",
        "a yellow key 2 steps right and 2 steps forward",
    ]
    locked = room_with(env.unwrapped, {(2, 3): Door("red", is_locked=True)}, (1, 3), 0)
    assert babyai.view_sentences(locked["image"])[-1] == "a locked red door 1 step forward"


def test_babyai_letters_map_to_minigrid_actions():
    assert [letter for letter, _ in babyai.ACTIONS] == list("ABCDEF")
    expected = [Actions.left, Actions.right, Actions.forward, Actions.pickup, Actions.drop, Actions.toggle]
    assert [babyai.action_index(letter) for letter in "ABCDEF"] == [int(a) for a in expected]
    env = babyai.BabyAITextEnv("goto")
    env.reset(seed=0)
    level = env.unwrapped
    room_with(level, {}, (4, 4), 3)
    env.step("A")
    assert level.agent_dir == 2  # turned left: from up to left
    env.step("B")
    env.step("C")
    assert level.agent_dir == 3 and tuple(level.agent_pos) == (4, 3)
    with pytest.raises(ValueError, match="letters"):
        env.step("G")


@pytest.mark.parametrize("task", list(babyai.TASKS))
def test_babyai_episode_limit_and_random_rollout(task):
    env = make_text_env(f"babyai:{task}")
    limit = babyai.TASKS[task]
    assert env.max_steps == limit
    obs, _ = env.reset(seed=3)
    assert obs["text"].startswith(f"Your goal: {obs['mission']}\n")
    # Dropping with empty hands changes nothing, so with no object in front of the agent
    # (which a go-to could count as reached) the episode runs to the limit.
    front = env.unwrapped.grid.get(*env.unwrapped.front_pos)
    assert front is None or front.type == "wall"
    ends = [env.step("E")[2:4] for _ in range(limit)]
    assert ends == [(False, False)] * (limit - 1) + [(False, True)]

    rng = np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed=seed)
        steps, done = 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step("ABCDEF"[rng.integers(6)])
            steps, done = steps + 1, terminated or truncated
            assert env.observation_space.contains(obs)
            assert info["success"] == (reward > 0) and 0.0 <= reward <= 1.0
            assert steps <= limit
        assert truncated == (steps == limit and not terminated)


def test_babyai_goto_success_reward():
    env = babyai.BabyAITextEnv("goto")
    env.reset(seed=5)
    level = env.unwrapped
    target = tuple(level.instrs.desc.obj_poss[0])
    for direction, (dx, dy) in enumerate([(1, 0), (0, 1), (-1, 0), (0, -1)]):
        cell = (target[0] - dx, target[1] - dy)
        if level.grid.get(*cell) is None:
            level.agent_pos, level.agent_dir = cell, direction  # next to the target, facing it
            break
    _, reward, terminated, truncated, info = env.step("E")
    assert terminated and not truncated and info["success"]
    assert reward == pytest.approx(1 - 0.9 * 1 / 16)


def test_babyai_missions_follow_mixed_train_local():
    kinds = {"goto": "go to ", "pickup": "pick up ", "open": "open the "}
    for task in babyai.TASKS:
        env = babyai.BabyAITextEnv(task)
        for seed in range(15):
            obs, _ = env.reset(seed=seed)
            mission = obs["mission"]
            assert not any(phrase in mission for phrase in babyai.HELD_OUT), mission
            if task == "pick_up_seq_go_to":
                assert ", then go to " in mission or " after you pick up " in mission, mission
            else:
                assert mission.startswith(kinds[task]), mission
            if task == "open":
                doors = [o for o in env.unwrapped.grid.grid if o is not None and o.type == "door"]
                keys = [o for o in env.unwrapped.grid.grid if o is not None and o.type == "key"]
                assert len(doors) == 1 and doors[0].is_locked
                assert doors[0].color in {k.color for k in keys}


def test_babyai_symbolic_mission_code_ignores_surface_order():
    from minigrid.envs.babyai.core.verifier import AfterInstr, BeforeInstr, GoToInstr, ObjDesc, PickupInstr

    def pick():
        return PickupInstr(ObjDesc("ball", "red"))

    def go():
        return GoToInstr(ObjDesc("key", "blue"))

    before = babyai._mission_code("pick_up_seq_go_to", BeforeInstr(pick(), go()))
    after = babyai._mission_code("pick_up_seq_go_to", AfterInstr(go(), pick()))
    np.testing.assert_array_equal(before, after)
    assert before.sum() == 5  # kind + (type, colour) of two targets
    env = babyai.BabyAITextEnv("open")
    obs, _ = env.reset(seed=0)
    assert obs["symbolic"].shape == (babyai.SYMBOLIC_SIZE,) and obs["symbolic"].dtype == np.float32


# --- make_text_env -------------------------------------------------------------------------------


def test_make_text_env_names_and_errors():
    assert isinstance(make_text_env("keydoor", length=4), KeyDoorEnv)
    with pytest.raises(ValueError, match="Did you mean 'babyai:goto'") as err:
        make_text_env("babyai:gotoo")
    assert all(name in str(err.value) for name in TEXT_ENVS)
    with pytest.raises(ValueError, match="Did you mean 'keydoor'"):
        make_text_env("key-door")
    with pytest.raises(ValueError, match="unknown BabyAI task"):
        babyai.BabyAITextEnv("putnext")


def test_missing_minigrid_gives_install_hint(monkeypatch):
    for name in [m for m in sys.modules if m == "minigrid" or m.startswith("minigrid.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "credo.envs.text.babyai")
    with pytest.raises(ModuleNotFoundError, match="pip install minigrid"):
        make_text_env("babyai:open")


def test_importing_text_envs_does_not_import_minigrid():
    code = "import sys, credo.envs.text; assert 'minigrid' not in sys.modules, 'minigrid imported'"
    subprocess.run([sys.executable, "-c", code], check=True)

"""What the coder LLM is told about an env: agents, actions, reward, and the meaning of every state slot.

``describe_env(env)`` returns the task text. An env can supply its own by
defining ``describe_for_llm() -> str`` (what a user adding an env would do);
otherwise the text is built here from the env's family and settings, with a
generic fallback that gives only the sizes. ``sample_states`` draws real global
states from random play, on which the sandbox also tests a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _matrix(env) -> str:
    payoff = np.asarray(env.payoff)
    letters = "ABCDEFGHIJ"[: payoff.shape[0]]
    rows = "\n".join(f"  {letters[i]}: {' '.join(f'{v:7.2f}' for v in row)}" for i, row in enumerate(payoff))
    kind = "a one-step game" if env.episode_limit == 1 else f"a game repeated for {env.episode_limit} steps"
    return (
        f"A cooperative matrix game for {env.n_agents} agents: {kind}. Each agent picks one of "
        f"{env.n_actions} actions ({', '.join(letters)}) at once; the team reward is the payoff of the joint action, "
        f"rows = agent 0's action, columns = agent 1's action:\n{rows}\n"
        f"The global state has {env.state_dim} numbers: [1, t / episode_limit], the same for every joint action, "
        "so it carries no information about the agents. The best joint action may not be the one each agent "
        "would pick on its own."
    )


def _lbf(env) -> str:
    n, f = env.n_agents, env.n_food
    coop = (
        " Every food needs all agents together (force_coop): its level is the sum of all agent levels."
        if env.force_coop
        else ""
    )
    wta = " Winner-take-all: the highest-level loader takes the whole food." if env.winner_take_all else ""
    return (
        f"Level-Based Foraging on a {env.rows}x{env.cols} grid: {n} agents collect {f} food items. Agents and foods "
        "have levels. Each agent moves (none, north, south, west, east) or loads an adjacent food; a food is "
        "collected when the agents loading it in the same step have levels summing to at least the food's level, "
        f"and its reward goes to those agents in proportion to their levels.{coop}{wta} The team reward is the sum "
        "of the agents' rewards, normalised so that all foods together give 1. Episodes end when every food is "
        f"collected or after {env.episode_limit} steps. Each agent sees {'the whole grid' if env.sight >= max(env.rows, env.cols) else f'{env.sight} cells around it'}.\n"
        f"The global state has {env.state_dim} numbers: for each agent i = 0..{n - 1} in order, (row, column, level) "
        f"at state[3*i], state[3*i+1], state[3*i+2]; then for each food j = 0..{f - 1}, (row, column, level) at "
        f"state[{3 * n}+3*j] .. state[{3 * n}+3*j+2]. Rows and columns are grid coordinates 0..{env.rows - 1}; an eaten "
        "food reads (-1, -1, 0). Agents near food they can load, and agents whose levels are needed together, "
        "matter most for the reward."
    )


def _mpe(env) -> str:
    n = env.n_agents
    return (
        f"MPE simple spread: {n} agents and {n} landmarks in a 2-D plane. Each agent accelerates with one of 5 "
        "actions (none, left, right, down, up). The team reward at every step is minus the sum, over landmarks, of "
        "the distance from each landmark to its nearest agent, minus 1 for every collision between agents, so the "
        "agents should cover all landmarks without colliding. Episodes last "
        f"{env.episode_limit} steps.\n"
        f"The global state has {env.state_dim} numbers: the {n} agents' observations one after another, "
        f"{env.obs_dim} numbers each. Agent i's observation starts at state[{env.obs_dim}*i] and holds its velocity "
        f"(2), its position (2), the positions of the {n} landmarks relative to it (2 each), the positions of the "
        f"other {n - 1} agents relative to it (2 each), and communication slots (zeros)."
    )


def _smax(env) -> str:
    n, m = env.n_agents, env.n_enemies
    return (
        f"SMAX {env.map_name}: a StarCraft-like battle of {n} allied units (the agents) against {m} enemy units "
        "controlled by a heuristic. Each agent moves in 4 directions, stops, or attacks one enemy in range. The "
        "team reward is the enemy health removed this step as a fraction of the enemies' total, plus 1 for winning "
        "(every enemy dead).\n"
        f"The global state starts with 10 numbers for each of the {n + m} units (allies 0..{n - 1} first, then the "
        "enemies): health fraction, x, y, weapon cooldown, and a one-hot unit type (6), scaled to about [0, 1]; "
        "then each unit's team and unit type. Allies with low health or near many enemies matter most."
    )


def _generic(env) -> str:
    s = env.spec
    return (
        f"A cooperative multi-agent task ({getattr(env, 'key', '') or type(env).__name__}) with {s.n_agents} agents, "
        f"each choosing one of {s.n_actions} actions per step, and a shared team reward; episodes last at most "
        f"{s.episode_limit} steps. The global state is a vector of {s.state_dim} numbers (no description of its "
        "slots is available)."
    )


def describe_env(env) -> str:
    """The task description of ``env`` for the coder and evaluator prompts."""
    if hasattr(env, "describe_for_llm"):
        return env.describe_for_llm()
    family = (getattr(env, "key", "") or "").split(":", 1)[0]
    build = {"matrix": _matrix, "lbf": _lbf, "mpe": _mpe, "smax": _smax}.get(family, _generic)
    if family == "mpe" and getattr(env, "scenario", "") != "simple_spread":
        build = _generic
    return build(env)


def sample_states(env, n: int = 256, seed: int = 0) -> np.ndarray | None:
    """``[n, state_dim]`` global states from random available actions (None for host envs)."""
    if not getattr(env, "is_jax", False):
        return None
    import jax
    import jax.numpy as jnp

    from credo.envs.wrappers import VecAutoReset

    n_envs = 16
    steps = max(1, -(-n // n_envs))
    vec = VecAutoReset(env, n_envs)

    def run(key):
        state, ts = vec.reset(key)

        def body(carry, key):
            state, ts = carry
            k_act, k_step = jax.random.split(key)
            actions = jax.random.categorical(k_act, jnp.where(ts.avail_actions, 0.0, -jnp.inf)).astype(
                jnp.int32
            )
            state, ts = vec.step(k_step, state, actions)
            return (state, ts), ts.state

        _, states = jax.lax.scan(body, (state, ts), jax.random.split(key, steps))
        return states.reshape(-1, states.shape[-1])

    return np.asarray(jax.jit(run)(jax.random.key(seed)))[:n]


# --- the named view of the state ------------------------------------------------------------


@dataclass(frozen=True)
class StateField:
    """One named slice of the global state: ``name = code`` inside ``tfcaf``.

    ``kind``: ``agents`` (``[B, n_agents]``, one column per agent, in agent order),
    ``items`` (``[B, m]``, one column per other entity: foods, landmarks, enemies),
    or ``row`` (``[B, 1]``).
    """

    name: str
    code: str
    kind: str
    meaning: str


def _strided(first: int, stop: int, step: int) -> str:
    return f"state[:, {first}:{stop}:{step}]"


def _view_lbf(env) -> list[StateField]:
    n, f = env.n_agents, env.n_food
    a_end, f_end = 3 * n, 3 * n + 3 * f
    near = (
        "jnp.min(jnp.abs(agent_row[:, :, None] - food_row[:, None, :]) "
        "+ jnp.abs(agent_col[:, :, None] - food_col[:, None, :]), axis=2)"
    )
    return [
        StateField("agent_row", _strided(0, a_end, 3), "agents", "grid row of each agent"),
        StateField("agent_col", _strided(1, a_end, 3), "agents", "grid column of each agent"),
        StateField("agent_level", _strided(2, a_end, 3), "agents", "level of each agent"),
        StateField("food_row", _strided(a_end, f_end, 3), "items", "grid row of each food (-1 once eaten)"),
        StateField(
            "food_col", _strided(a_end + 1, f_end, 3), "items", "grid column of each food (-1 once eaten)"
        ),
        StateField("food_level", _strided(a_end + 2, f_end, 3), "items", "level of each food (0 once eaten)"),
        StateField("food_dist", near, "agents", "grid distance from each agent to its nearest food"),
    ]


def _view_mpe(env) -> list[StateField]:
    n, d = env.n_agents, env.obs_dim
    end = n * d

    def nearest(first: int, count: int) -> str:
        sq = f"{_strided(first, end, d).replace(str(first) + ':', '{0}:', 1)} ** 2"
        dx = sq.format(f"{first} + 2 * k")
        dy = sq.format(f"{first + 1} + 2 * k")
        return f"jnp.sqrt(jnp.min(jnp.stack([{dx} + {dy} for k in range({count})], axis=2), axis=2) + 1e-6)"

    return [
        StateField("agent_vel_x", _strided(0, end, d), "agents", "x velocity of each agent"),
        StateField("agent_vel_y", _strided(1, end, d), "agents", "y velocity of each agent"),
        StateField("agent_x", _strided(2, end, d), "agents", "x position of each agent"),
        StateField("agent_y", _strided(3, end, d), "agents", "y position of each agent"),
        StateField(
            "landmark_dist", nearest(4, n), "agents", "distance from each agent to its nearest landmark"
        ),
        StateField(
            "agent_dist",
            nearest(4 + 2 * n, n - 1),
            "agents",
            "distance from each agent to its nearest other agent",
        ),
    ]


def _view_smax(env) -> list[StateField]:
    n, m = env.n_agents, env.n_enemies
    a_end, e_end = 10 * n, 10 * (n + m)
    return [
        StateField("ally_health", _strided(0, a_end, 10), "agents", "health fraction of each ally (agent)"),
        StateField("ally_x", _strided(1, a_end, 10), "agents", "x position of each ally"),
        StateField("ally_y", _strided(2, a_end, 10), "agents", "y position of each ally"),
        StateField("enemy_health", _strided(a_end, e_end, 10), "items", "health fraction of each enemy"),
        StateField("enemy_x", _strided(a_end + 1, e_end, 10), "items", "x position of each enemy"),
        StateField("enemy_y", _strided(a_end + 2, e_end, 10), "items", "y position of each enemy"),
    ]


def _view_matrix(env) -> list[StateField]:
    return [
        StateField("t", "state[:, 1:2]", "row", "time step / episode limit (the same for every joint action)")
    ]


def _view_generic(env) -> list[StateField]:
    return [
        StateField("state_mean", "jnp.mean(state, axis=1, keepdims=True)", "row", "mean of the state vector"),
        StateField("state_max", "jnp.max(state, axis=1, keepdims=True)", "row", "largest state entry"),
    ]


def state_view(env) -> list[StateField]:
    """The env's global state as named slices usable in code (``name = code`` lines in ``tfcaf``).

    An env of your own can supply them with ``state_view_for_llm() -> list[StateField]``.
    """
    if hasattr(env, "state_view_for_llm"):
        return list(env.state_view_for_llm())
    family = (getattr(env, "key", "") or "").split(":", 1)[0]
    build = {"matrix": _view_matrix, "lbf": _view_lbf, "mpe": _view_mpe, "smax": _view_smax}.get(
        family, _view_generic
    )
    if family == "mpe" and getattr(env, "scenario", "") != "simple_spread":
        build = _view_generic
    return build(env)


def view_lines(fields: list[StateField]) -> str:
    """The view as the first lines of ``tfcaf``'s body, each with its shape and meaning as a comment."""
    shape = {"agents": "[B, n_agents]", "items": "[B, m]", "row": "[B, 1]"}
    return "".join(f"    {f.name} = {f.code}  # {shape[f.kind]} {f.meaning}\n" for f in fields)


# --- worked examples for the constrained coder prompt (each for another env than the target) -------


@dataclass(frozen=True)
class Example:
    """A worked TFCAF for the constrained coder prompt: the env family, a one-line task description, the
    state fields it reads and the function body after the state view.
    """

    family: str
    task: str
    fields: tuple[StateField, ...]
    body: str


def _example_fields(build, used: tuple[str, ...], **env) -> tuple[StateField, ...]:
    from types import SimpleNamespace

    return tuple(f for f in build(SimpleNamespace(**env)) if f.name in used)


EXAMPLES = (
    Example(
        "lbf",
        "Level-Based Foraging, 2 agents, 3 foods: agents with high levels that stand near food earn the reward.",
        _example_fields(
            _view_lbf,
            ("agent_row", "agent_col", "agent_level", "food_row", "food_col", "food_dist"),
            n_agents=2,
            n_food=3,
        ),
        "    score = agent_level - 0.5 * food_dist\n    w = 2.0 * jax.nn.softmax(score, axis=1)\n"
        "    return jnp.sum(w * agent_qs, axis=1)\n",
    ),
    Example(
        "mpe",
        "MPE simple spread, 3 agents: the team is rewarded for covering the landmarks; agents near one matter.",
        _example_fields(_view_mpe, ("landmark_dist",), n_agents=3, obs_dim=18),
        "    score = -landmark_dist\n    w = 1.0 + jax.nn.sigmoid(score)\n"
        "    b = -jnp.mean(landmark_dist, axis=1, keepdims=True)\n"
        "    return jnp.sum(w * agent_qs, axis=1) + 0.1 * b[:, 0]\n",
    ),
    Example(
        "smax",
        "SMAX 3m, 3 allies against 3 enemies: healthy allies deal the damage.",
        _example_fields(_view_smax, ("ally_health", "enemy_health"), n_agents=3, n_enemies=3),
        "    score = 3.0 * ally_health - jnp.mean(enemy_health, axis=1, keepdims=True)\n"
        "    w = jax.nn.softmax(score, axis=1)\n"
        "    return jnp.sum(w * agent_qs, axis=1) + 0.5 * jnp.max(agent_qs, axis=1)\n",
    ),
)


def example_code(ex: Example) -> str:
    """The example as a whole function: the ``def tfcaf`` line, the state view of its fields, its body."""
    return "def tfcaf(agent_qs, state):\n" + view_lines(list(ex.fields)) + ex.body


def examples_for(env, k: int = 2) -> list[Example]:
    """``k`` worked examples for envs of other families than ``env`` (never the target's own answer)."""
    family = (getattr(env, "key", "") or "").split(":", 1)[0]
    return [ex for ex in EXAMPLES if ex.family != family][:k]

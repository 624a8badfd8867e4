"""What the coder LLM is told about an env: agents, actions, reward, and the meaning of every state slot.

``describe_env(env)`` returns the task text. An env can supply its own by
defining ``describe_for_llm() -> str`` (what a user adding an env would do);
otherwise the text is built here from the env's family and settings, with a
generic fallback that gives only the sizes. ``sample_states`` draws real global
states from random play, on which the sandbox also tests a candidate.
"""

from __future__ import annotations

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

def tfcaf(agent_qs, state):
    agent_row = state[:, 0:6:3]  # [B, n_agents] grid row of each agent
    agent_col = state[:, 1:6:3]  # [B, n_agents] grid column of each agent
    agent_level = state[:, 2:6:3]  # [B, n_agents] level of each agent
    food_row = state[:, 6:15:3]  # [B, m] grid row of each food (-1 once eaten)
    food_col = state[:, 7:15:3]  # [B, m] grid column of each food (-1 once eaten)
    food_level = state[:, 8:15:3]  # [B, m] level of each food (0 once eaten)
    food_dist = jnp.min(jnp.abs(agent_row[:, :, None] - food_row[:, None, :]) + jnp.abs(agent_col[:, :, None] - food_col[:, None, :]), axis=2)  # [B, n_agents] grid distance from each agent to its nearest food
    score = 2.0 * food_dist * agent_row
    w = jax.nn.softmax(score, axis=1)
    return jnp.sum(w * agent_qs, axis=1) + 0.5 * jnp.max(agent_qs, axis=1)

# ruff: noqa: F821, F841 - jnp and jax are provided by the sandbox; the named state fields are written whether used or not
# GENERATED TFCAF (not hand-written), kept verbatim: benchmarks/qllm_generation.py, 2026-12-02, the final pick
# of credo qllm generate under the TFCAF grammar (benchmarks/results/qllm_generation.md); passes credo qllm check.
# fmt: off
# TFCAF for mpe:simple_spread written by SmolLM2-135M-Instruct (embedded GGUF) (local); gamma = 1
def tfcaf(agent_qs, state):
    agent_vel_x = state[:, 0:54:18]  # [B, n_agents] x velocity of each agent
    agent_vel_y = state[:, 1:54:18]  # [B, n_agents] y velocity of each agent
    agent_x = state[:, 2:54:18]  # [B, n_agents] x position of each agent
    agent_y = state[:, 3:54:18]  # [B, n_agents] y position of each agent
    landmark_dist = jnp.sqrt(jnp.min(jnp.stack([state[:, 4 + 2 * k:54:18] ** 2 + state[:, 5 + 2 * k:54:18] ** 2 for k in range(3)], axis=2), axis=2) + 1e-6)  # [B, n_agents] distance from each agent to its nearest landmark
    agent_dist = jnp.sqrt(jnp.min(jnp.stack([state[:, 10 + 2 * k:54:18] ** 2 + state[:, 11 + 2 * k:54:18] ** 2 for k in range(2)], axis=2), axis=2) + 1e-6)  # [B, n_agents] distance from each agent to its nearest other agent
    score = agent_dist - 1.0 * agent_vel_x
    w = jax.nn.softmax(score, axis=1)
    return jnp.sum(w * agent_qs, axis=1) + 0.5 * jnp.max(agent_qs, axis=1)

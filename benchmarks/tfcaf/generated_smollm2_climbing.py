# ruff: noqa: F821, F841 - jnp and jax are provided by the sandbox; the named state fields are written whether used or not
# GENERATED TFCAF (not hand-written), kept verbatim: benchmarks/qllm_generation.py, 2026-12-02, the final pick
# of credo qllm generate under the TFCAF grammar (benchmarks/results/qllm_generation.md); passes credo qllm check.
# fmt: off
# TFCAF for matrix:climbing written by SmolLM2-135M-Instruct (embedded GGUF) (local); gamma = 1
def tfcaf(agent_qs, state):
    t = state[:, 1:2]  # [B, 1] time step / episode limit (the same for every joint action)
    score = 0.5 * jnp.ones_like(agent_qs) + t
    w = 1.0 + jax.nn.sigmoid(score)
    b = t * jnp.tanh(t)
    return jnp.sum(w * agent_qs, axis=1) + 0.1 * b[:, 0]

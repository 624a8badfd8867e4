"""credo: credit assignment in reinforcement learning, on one fast JAX engine."""

__version__ = "0.1.0"

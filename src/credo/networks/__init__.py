"""Neural network pieces shared by learners: agent torsos, heads, hypernetworks."""

from credo.networks.agent import RecurrentAgent, TorchDense

__all__ = ["RecurrentAgent", "TorchDense"]

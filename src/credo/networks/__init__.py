"""Neural network pieces shared by learners: agent torsos, heads, hypernetworks."""

from credo.networks.agent import RecurrentAgent, torch_uniform

__all__ = ["RecurrentAgent", "torch_uniform"]

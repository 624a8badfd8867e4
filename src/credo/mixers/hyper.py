"""Small state-conditioned MLPs (hypernetworks) shared by the mixers."""

import flax.linen as nn

from credo.networks.agent import TorchDense


class HyperMLP(nn.Module):
    """``layers`` Dense layers (ReLU between) from the state to ``out`` numbers."""

    out: int
    layers: int = 2
    embed: int = 64

    @nn.compact
    def __call__(self, x):
        for i in range(self.layers - 1):
            x = nn.relu(TorchDense(self.embed, name=f"hidden{i}")(x))
        return TorchDense(self.out, name="out")(x)

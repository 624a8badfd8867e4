"""Small state-conditioned MLPs (hypernetworks) shared by the mixers."""

import flax.linen as nn

from credo.networks.agent import dense


class HyperMLP(nn.Module):
    """``layers`` Dense layers (ReLU between) from the state to ``out`` numbers."""

    out: int
    layers: int = 2
    embed: int = 64

    @nn.compact
    def __call__(self, x):
        for i in range(self.layers - 1):
            x = nn.relu(dense(self.embed, x.shape[-1], name=f"hidden{i}")(x))
        return dense(self.out, x.shape[-1], name="out")(x)

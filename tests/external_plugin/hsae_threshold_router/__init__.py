"""A third-party router: latents fire where the pre-activation exceeds a fixed threshold."""

import attrs
import torch

from hsae import hookimpl
from hsae.model import Codes, Router


class ThresholdRouter(Router):
    """Fire where the pre-activation exceeds ``threshold``."""

    name = "threshold"

    @attrs.frozen
    class Config:
        threshold: float = 0.1

    def forward(self, pre: torch.Tensor) -> Codes:
        return Codes.from_dense(pre * (pre > self.config.threshold))


@hookimpl
def hsae_register(registry):
    registry.add(ThresholdRouter)

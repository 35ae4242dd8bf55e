"""BatchTopK router (Bussmann et al. 2024): top ``k * batch`` pre-activations across the batch.

At inference it fires latents above a threshold learned as a running average of the
smallest selected activation during training, so a sample's codes do not depend on its
batch.
"""

from __future__ import annotations

import attrs
import torch

from hsae.model import Router


class BatchTopKRouter(Router):
    """Keep the ``k * batch_size`` largest pre-activations of the whole batch."""

    name = "batchtopk"
    sparse = True

    @attrs.frozen
    class Config:
        """``k`` latents per sample on average; ``threshold_momentum`` of the inference threshold."""

        k: int = 32
        threshold_momentum: float = 0.999

    def __init__(self, config: Config, *, d_sae: int) -> None:
        super().__init__(config, d_sae=d_sae)
        if not 0 < config.k <= d_sae:
            raise ValueError(f"k must be in [1, d_sae={d_sae}], got {config.k}")
        self.register_buffer("threshold", torch.tensor(-1.0))

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = torch.relu(pre)
        if not self.training and self.threshold >= 0:
            rows, cols = torch.nonzero(pre > self.threshold, as_tuple=True)
            return rows, cols
        flat = pre.reshape(-1).topk(self.config.k * pre.shape[0], sorted=False)
        keep = flat.values > 0
        index = flat.indices[keep]
        if self.training and bool(keep.any()):
            smallest = flat.values[keep].min()
            m = self.config.threshold_momentum
            self.threshold.copy_(smallest if self.threshold < 0 else m * self.threshold + (1 - m) * smallest)
        return index // pre.shape[1], index % pre.shape[1]

    def activate(self, values: torch.Tensor) -> torch.Tensor:
        return torch.relu(values)

    def saelens_fields(self) -> dict:
        return {"architecture": "batchtopk", "k": self.config.k}

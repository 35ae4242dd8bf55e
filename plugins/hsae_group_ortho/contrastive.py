"""The contrastive SAE baseline's term: code-level InfoNCE between two noisy views of each input.

Exact definition, for a batch ``x`` (its first ``max_samples`` rows, ``B`` of them):

1. Views: ``x1 = x + noise * s * e1`` and ``x2 = x + noise * s * e2`` with ``e1, e2 ~ N(0, I)``
   independent and ``s = ||x_b|| / sqrt(d_in)`` the per-sample RMS, so ``noise`` is relative
   to each input's scale. The noise comes from torch's global RNG, which checkpoints save.
2. Codes: ``z1 = model(x1).codes``, ``z2 = model(x2).codes`` as dense ``(B, d_sae)`` matrices
   (after the router, with gradient).
3. Similarity: cosine, ``S[a, b] = cos(z1_a, z2_b) / temperature`` (an all-zero code has
   cosine 0 with everything).
4. Loss: symmetric InfoNCE, ``(CE(S, diag) + CE(S^T, diag)) / 2`` averaged over the batch:
   each view must pick its own partner among the ``B`` codes of the other view.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from hsae.config.bounds import NonNegativeFloat
from hsae.loss import Loss, LossConfig, StepContext


@attrs.frozen
class ContrastiveConfig(LossConfig):
    """``noise`` (relative Gaussian), ``temperature``, and the ``max_samples`` rows used per step."""

    coefficient: NonNegativeFloat = 0.01
    noise: float = 0.1
    temperature: float = 0.1
    max_samples: int = 512


class ContrastiveLoss(Loss):
    """Symmetric InfoNCE between the codes of two noisy views of the same inputs."""

    name = "code-infonce"
    Config = ContrastiveConfig

    def __init__(self, config: ContrastiveConfig) -> None:
        super().__init__(config)
        if config.noise < 0 or config.temperature <= 0 or config.max_samples < 2:
            raise ValueError("need noise >= 0, temperature > 0 and max_samples >= 2")

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independently noised copies of ``x``."""
        scale = self.config.noise * x.norm(dim=1, keepdim=True) / x.shape[1] ** 0.5
        return x + scale * torch.randn_like(x), x + scale * torch.randn_like(x)

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        x = batch.x[: self.config.max_samples]
        x1, x2 = self.views(x)
        z1 = F.normalize(model(x1).codes.dense().float(), dim=1)
        z2 = F.normalize(model(x2).codes.dense().float(), dim=1)
        return info_nce(z1, z2, self.config.temperature)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of unit rows ``z1``, ``z2`` (row ``b`` of each is a positive pair)."""
    logits = z1 @ z2.T / temperature
    target = torch.arange(z1.shape[0], device=z1.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

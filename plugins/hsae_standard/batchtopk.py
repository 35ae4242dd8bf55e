"""BatchTopK router (Bussmann et al. 2024): top ``k * batch`` pre-activations across the batch.

At inference it fires latents above a threshold learned as a running average of the
smallest selected activation during training, so a sample's codes do not depend on its
batch. The average's momentum warms up, ``min(threshold_momentum, (1 + n) / (10 + n))``
after ``n`` updates (as TensorFlow's ``ExponentialMovingAverage(num_updates=...)``): the
smallest selected activation grows fast early in training, and a plain 0.999 average,
which weighs all early steps alike, lags it (at 160 steps the thresholded L0 was ~7 for
k = 25; with the warm-up ~25).
"""

from __future__ import annotations

import attrs
import torch

from hsae.model import Router, saelens_incompatible
from hsae_standard.block_topk import flat_topk

_WARM = 1 << 40  # an update count past any momentum warm-up


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
        # Updates of the threshold so far (checkpointed, so a resumed run continues exactly; not saved for SAELens).
        self.register_buffer("threshold_updates", torch.tensor(0, dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        # States written before the momentum warm-up (and SAELens files) have no update count: a
        # learned threshold counts as warmed up, an unset one as fresh.
        key = prefix + "threshold_updates"
        if key not in state_dict and prefix + "threshold" in state_dict:
            learned = bool(state_dict[prefix + "threshold"].reshape(-1)[0] >= 0)
            state_dict[key] = torch.tensor(_WARM if learned else 0, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def momentum(self) -> float:
        """The running threshold's momentum for the next update: warms up to ``threshold_momentum``."""
        n = int(self.threshold_updates)
        return min(self.config.threshold_momentum, (1 + n) / (10 + n))

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = torch.relu(pre)
        if not self.training and self.threshold >= 0:
            rows, cols = torch.nonzero(pre > self.threshold, as_tuple=True)
            return rows, cols
        values, index = flat_topk(pre.reshape(-1), self.config.k * pre.shape[0])
        keep = values > 0
        index = index[keep]
        if self.training and bool(keep.any()):
            smallest = values[keep].min()
            m = self.momentum()
            self.threshold.copy_(smallest if self.threshold < 0 else m * self.threshold + (1 - m) * smallest)
            self.threshold_updates.add_(1)
        # Sorted, so rows come grouped by sample (what the sparse encoder and decoder want).
        index = index.sort().values
        return index // pre.shape[1], index % pre.shape[1]

    def activate(self, values: torch.Tensor) -> torch.Tensor:
        return torch.relu(values)

    def saelens_fields(self) -> dict:
        """SAELens saves a trained BatchTopK SAE as a JumpReLU SAE with the threshold of every latent
        set to the learned one; so does hsae. Before any threshold is learned, there is no such form."""
        if self.threshold < 0:
            return saelens_incompatible("sae-batchtopk", "no inference threshold learned yet (untrained BatchTopK)")
        return {"architecture": "jumprelu", "k": self.config.k}

    def to_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The scalar ``threshold`` becomes SAELens JumpReLU's per-latent ``threshold``, ``(d_sae,)``."""
        tensors = {k: v for k, v in tensors.items() if k != "threshold_updates"}
        return {**tensors, "threshold": tensors["threshold"].expand(self.d_sae).clone()}

    def from_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A saved per-latent ``threshold`` back to the scalar one (all its entries are equal)."""
        threshold = tensors["threshold"]
        if threshold.dim() == 0:  # written before hsae saved SAELens' JumpReLU form
            return tensors
        if not bool((threshold == threshold[0]).all()):
            raise ValueError("a BatchTopK SAE has one threshold for all latents; the saved ones differ")
        return {**tensors, "threshold": threshold[0].clone()}

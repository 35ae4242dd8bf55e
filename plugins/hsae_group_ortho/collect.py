"""What this plugin's metrics keep from the shared eval pass, and what they derive from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from hsae.errors import UserError
from hsae_group_ortho.groups import index_assignment, latent_groups

if TYPE_CHECKING:
    from hsae.data import Batch, GroundTruth
    from hsae.metric import EvalContext
    from hsae.model import SAE, SAEOutput


class CodeRecord:
    """Dense codes, inputs and (optionally) true-feature labels of every eval sample, on CPU."""

    def __init__(self, labels: bool = False) -> None:
        self.with_labels = labels
        self.reset()

    def reset(self) -> None:
        self._codes: list[torch.Tensor] = []
        self._x: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def update(self, batch: "Batch", out: "SAEOutput") -> None:
        self._codes.append(out.codes.dense().detach().float().cpu())
        self._x.append(batch.x.detach().float().cpu())
        if self.with_labels:
            if batch.labels is None:
                raise UserError("this metric needs labelled batches (true feature activations), such as hierarchical-synthetic's")
            self._labels.append(batch.labels.detach().cpu() != 0)

    @property
    def empty(self) -> bool:
        return not self._codes

    def codes(self) -> torch.Tensor:
        """``(N, d_sae)``."""
        return torch.cat(self._codes)

    def x(self) -> torch.Tensor:
        """``(N, d_in)``."""
        return torch.cat(self._x)

    def labels(self) -> torch.Tensor:
        """``(N, n_features)`` bool: which true features are active."""
        return torch.cat(self._labels)


def alive_latents(codes: torch.Tensor) -> torch.Tensor:
    """Indices of latents that fired on at least one sample."""
    return torch.nonzero((codes != 0).any(0)).flatten()


def latent_profiles(codes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(d_sae, d_in)``: each latent's code-weighted mean input (zero for latents that never fired)."""
    mass = codes.sum(0)
    return (codes.T @ x) / mass.clamp_min(1e-12)[:, None]


def grouping(model: "SAE", fallback_groups: int) -> tuple[np.ndarray, str]:
    """The model's latent groups, or for an ungrouped model a static index partition; and which it is."""
    groups = latent_groups(model)
    if groups is not None:
        return groups.cpu().numpy(), "model"
    return index_assignment(model.d_sae, min(fallback_groups, model.d_sae)).numpy(), "index"


def ground_truth(ctx: "EvalContext", metric: str) -> "GroundTruth":
    gt = ctx.data.ground_truth()
    if gt is None:
        raise UserError(f"metric {metric!r} needs a data source with ground-truth features, such as hierarchical-synthetic")
    return gt


def feature_roots(parent: np.ndarray) -> np.ndarray:
    """Root (top-level ancestor) of every true feature: the id of its subtree."""
    root = np.arange(parent.size)
    while True:
        up = parent[root]
        step = up >= 0
        if not step.any():
            return root
        root = np.where(step, up, root)


def feature_names(gt: "GroundTruth") -> list[str]:
    return list(gt.names) if gt.names else [f"f{i}" for i in range(gt.n_features)]

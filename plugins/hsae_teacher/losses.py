"""Causal orthogonality: child write directions orthogonal to their parent's under a metric.

For every child latent ``l`` of parent ``q`` (``model.latent_parent()``), with write
directions ``u_q`` and ``u_l`` (``model.decoder_directions()``), the loss is the mean of
``cos_M(u_q, u_l)^2`` where ``<a, b>_M = a^T M b`` and ``M`` is phase 1's causal metric
(``Cov^{-1}``: input-space vectors map to the causal space by ``Cov^{-1/2}``). Park et al.'s
hierarchical orthogonality says parent vectors and child deltas are causally orthogonal;
teacher stage A holds the children to that while the parents stay frozen.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import torch

from hsae.io import load_tensors
from hsae.loss import Loss, LossConfig


@attrs.frozen
class CausalOrthoConfig(LossConfig):
    """``metric_file``: a teacher file holding ``causal_metric``; unset means the Euclidean metric."""

    metric_file: Path | None = None


class CausalOrthoLoss(Loss):
    """Mean squared causal cosine between each child's write direction and its parent's."""

    name = "causal-ortho"
    Config = CausalOrthoConfig
    requires = frozenset({"latent_parent"})  # model.latent_parent(): a hierarchical model

    def __init__(self, config: CausalOrthoConfig) -> None:
        super().__init__(config)
        metric = load_tensors(config.metric_file)["causal_metric"] if config.metric_file else torch.zeros(0, 0)
        self.register_buffer("metric", metric, persistent=False)

    def forward(self, batch, out, model, ctx) -> torch.Tensor:
        parent = model.latent_parent().to(out.x_hat.device)
        children = torch.nonzero(parent >= 0).flatten()
        directions = model.decoder_directions()
        u_child, u_parent = directions[children], directions[parent[children]]
        m_child = u_child @ self.metric if self.metric.numel() else u_child
        m_parent = u_parent @ self.metric if self.metric.numel() else u_parent
        inner = (m_child * u_parent).sum(-1)
        norms = ((m_child * u_child).sum(-1) * (m_parent * u_parent).sum(-1)).clamp_min(1e-12)
        return (inner.pow(2) / norms).mean()

"""JumpReLU router (Rajamanoharan et al. 2024) with a straight-through threshold, and its L0 loss.

``z * H(z - theta)`` with a learned per-latent ``theta``. The step function's gradient
with respect to ``theta`` uses a rectangle kernel of width ``bandwidth``.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from hsae.loss import Loss, StepContext
from hsae.model import Codes, Router


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, theta, bandwidth):  # noqa: ANN001
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        z, theta = ctx.saved_tensors
        grad_z = (z > theta).to(z.dtype) * grad
        grad_theta = -(theta / ctx.bandwidth) * _rectangle((z - theta) / ctx.bandwidth) * grad
        return grad_z, grad_theta.sum(0), None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, theta, bandwidth):  # noqa: ANN001
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        z, theta = ctx.saved_tensors
        grad_theta = -(1.0 / ctx.bandwidth) * _rectangle((z - theta) / ctx.bandwidth) * grad
        return None, grad_theta.sum(0), None


class JumpReLURouter(Router):
    """Fire where the ReLU'd pre-activation exceeds a learned per-latent threshold."""

    name = "jumprelu"
    provides = frozenset({"straight_through_l0"})  # l0(pre): the L0 with a straight-through gradient

    @attrs.frozen
    class Config:
        """``initial_threshold`` of every latent; ``bandwidth`` of the straight-through kernel."""

        # SAELens's defaults. Thresholds are learned as log(theta), and Adam moves a parameter by
        # about lr per step whatever the l0 coefficient, so after N steps theta is at most
        # initial_threshold * exp(N * lr): the initial value bounds how sparse a short run can
        # get. On the SAELens synthetic model (benchmarks/quality_per_minute.py, 1M samples, lr
        # 3e-3) L0 was ~990 of 1024 with the former 0.001 / 0.001, ~380 with 0.01 / 0.05, and
        # 21 with initial_threshold 0.1 (l0 coefficient 0.1).
        initial_threshold: float = 0.01
        bandwidth: float = 0.05

    def __init__(self, config: Config, *, d_sae: int) -> None:
        super().__init__(config, d_sae=d_sae)
        if config.initial_threshold <= 0 or config.bandwidth <= 0:
            raise ValueError("initial_threshold and bandwidth must be positive")
        self.log_threshold = nn.Parameter(torch.full((d_sae,), math.log(config.initial_threshold)))

    @property
    def threshold(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def forward(self, pre: torch.Tensor) -> Codes:
        return Codes.from_dense(_JumpReLU.apply(torch.relu(pre), self.threshold, self.config.bandwidth))

    def l0(self, pre: torch.Tensor) -> torch.Tensor:
        """Per-sample L0 with a straight-through gradient to the thresholds, ``(B,)``."""
        return _Step.apply(torch.relu(pre), self.threshold, self.config.bandwidth).sum(-1)

    def saelens_fields(self) -> dict:
        return {"architecture": "jumprelu"}

    def to_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """SAELens' JumpReLU stores ``threshold`` itself: ``log_threshold`` is saved exponentiated."""
        tensors = dict(tensors)
        tensors["threshold"] = tensors.pop("log_threshold").exp()
        return tensors

    def from_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A saved ``threshold`` back to the trained ``log_threshold``."""
        if "threshold" not in tensors:  # written before hsae saved SAELens' form
            return tensors
        tensors = dict(tensors)
        tensors["log_threshold"] = tensors.pop("threshold").log()
        return tensors


class L0Loss(Loss):
    """Mean L0 through the router's straight-through estimator (JumpReLU's sparsity term)."""

    name = "l0"
    requires = frozenset({"straight_through_l0"})  # model.router.l0(pre) and out.pre

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        return model.router.l0(out.pre).mean()

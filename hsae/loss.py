"""Loss: one named term of the training objective, with a coefficient and a warmup.

A recipe lists terms under ``[losses.<name>]``; the trainer sums
``coefficient * ramp(step) * term``. Losses are modules, so state they keep (EMA
centroids, caches) lives in buffers and is checkpointed with the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import attrs
import torch
from torch import nn

from hsae.registry import Component

if TYPE_CHECKING:
    from hsae.data import Batch, DataSource
    from hsae.model import SAE, SAEOutput


@attrs.frozen
class LossConfig:
    """Keys every loss accepts: its weight and a linear warmup of that weight."""

    coefficient: float = 1.0
    warmup_steps: int = 0


@attrs.define
class StepContext:
    """What a loss may know about training progress."""

    step: int
    total_steps: int
    dead_mask: torch.Tensor | None = None  # (d_sae,) bool: latents that have not fired lately


class Loss(nn.Module, Component):
    """One term of the objective; returns the *unweighted* scalar."""

    kind: ClassVar[str] = "loss"
    Config = LossConfig

    def __init__(self, config: LossConfig) -> None:
        super().__init__()
        self.config = config

    def setup(self, model: "SAE", data: "DataSource") -> None:
        """Called once before training (and before a checkpoint is restored): size buffers from the model."""

    def weight(self, step: int) -> float:
        """``coefficient``, ramped linearly from 0 over ``warmup_steps``."""
        c = self.config
        if c.warmup_steps <= 0:
            return c.coefficient
        return c.coefficient * min(1.0, (step + 1) / c.warmup_steps)

    def forward(self, batch: "Batch", out: "SAEOutput", model: "SAE", ctx: StepContext) -> torch.Tensor:
        raise NotImplementedError

"""Metric: named scalars (and optional artifacts) from an evaluation pass.

The evaluator calls ``start`` on every metric, runs the model once over the eval batches
calling ``update``, then ``compute``. Metrics that need more than the shared pass (steering, probes)
use the model and the data source in ``compute``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import torch

from hsae.registry import Component

if TYPE_CHECKING:
    from hsae.data import Batch, DataSource
    from hsae.model import SAE, SAEOutput


@attrs.define
class EvalContext:
    """What ``compute`` may use besides the accumulated state."""

    data: "DataSource"
    device: torch.device
    out_dir: Path | None = None  # where artifacts (plots, pages) go; None: write nothing
    step: int = 0
    batch_size: int = 1024
    n_batches: int = 8


class Metric(Component):
    """Accumulates over eval batches and reports ``{name: float}``."""

    kind: ClassVar[str] = "metric"
    needs_labels: ClassVar[bool] = False  # ask the data source for ground-truth labels
    requires: ClassVar[frozenset[str]] = frozenset()  # capabilities the model must provide (``SAE.provides``)

    def __init__(self, config: Any) -> None:
        self.config = config

    def reset(self) -> None:
        """Clear accumulated state before a pass."""

    def start(self, ctx: EvalContext) -> None:
        """Called before a pass; metrics that need the data source (ground truth) override it."""
        self.reset()

    def update(self, batch: "Batch", out: "SAEOutput", model: "SAE") -> None:
        """Accumulate one batch."""

    def compute(self, model: "SAE", ctx: EvalContext) -> dict[str, float]:
        raise NotImplementedError

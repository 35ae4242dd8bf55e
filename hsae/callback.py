"""Callback: stateful work between optimizer steps (group reassignment, resampling...).

Callbacks are modules: tensors they must keep across a resume go in buffers, and any
non-tensor state goes through ``extra_state`` (JSON-able), so checkpoints stay exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from hsae.registry import Component

if TYPE_CHECKING:
    from hsae.data import Batch, DataSource
    from hsae.loss import StepContext
    from hsae.model import SAE, SAEOutput


class Callback(nn.Module, Component):
    """Runs after each optimizer step."""

    kind: ClassVar[str] = "callback"
    requires: ClassVar[frozenset[str]] = frozenset()  # capabilities the model must provide (``SAE.provides``)

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def setup(self, model: "SAE", data: "DataSource") -> None:
        """Called once when the run is assembled, ``hsae validate`` included (so keep it cheap),
        before training and before a checkpoint is restored: size buffers from the model.

        A ValueError, UserError or RecipeError raised here is reported at this callback's table.
        """

    def on_step_end(self, batch: "Batch", out: "SAEOutput", model: "SAE", ctx: "StepContext") -> None:
        """Called after the optimizer step and decoder renormalization."""

    def extra_state(self) -> dict[str, Any]:
        """JSON-able state beyond buffers."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

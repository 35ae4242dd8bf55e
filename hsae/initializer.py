"""Initializer: sets model parameters before training (e.g. decoder rows from a teacher)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from hsae.registry import Component

if TYPE_CHECKING:
    from hsae.data import DataSource
    from hsae.model import SAE


class Initializer(Component):
    """Mutates a freshly built model in place."""

    kind: ClassVar[str] = "initializer"

    def __init__(self, config: Any) -> None:
        self.config = config

    def apply(self, model: "SAE", data: "DataSource") -> None:
        raise NotImplementedError

"""DataSource: where activation batches come from.

A data source is *stateless in the step*: ``batches(start_step=s)`` yields exactly what an
uninterrupted stream would yield from step ``s`` on. That is what makes ``--resume`` exact
and lets each distributed rank read its own shard without coordination.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import attrs
import torch

from hsae.registry import Component


@attrs.define
class Batch:
    """One batch of activations, optionally with ground-truth labels.

    ``labels`` is source specific; for synthetic data it is the (B, n_features) matrix of
    true feature activations. ``meta`` carries anything else (token ids, concept ids...).
    """

    x: torch.Tensor
    labels: torch.Tensor | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        move = lambda t: t.to(device, non_blocking=non_blocking) if isinstance(t, torch.Tensor) else t  # noqa: E731
        return Batch(move(self.x), move(self.labels), {k: move(v) for k, v in self.meta.items()})

    def __len__(self) -> int:
        return self.x.shape[0]


@attrs.define
class GroundTruth:
    """What a synthetic source knows about its own features, for ground-truth metrics.

    ``directions`` is (n_features, d_in). ``parent[i]`` is the index of feature i's nearest
    read-out ancestor or -1; ``level[i]`` its depth among read-out features (roots are 0).
    ``tree`` is the source's tree description (JSON-able), ``names`` optional feature names.
    """

    directions: torch.Tensor
    parent: torch.Tensor
    level: torch.Tensor
    tree: Any = None
    names: list[str] | None = None

    @property
    def n_features(self) -> int:
        return self.directions.shape[0]


@attrs.frozen
class Shard:
    """Which part of each global batch this process reads."""

    rank: int = 0
    world_size: int = 1


class DataSource(Component):
    """Yields activation batches; may expose labels and ground truth to metrics."""

    kind: ClassVar[str] = "data"

    def __init__(self, config: Any, *, seed: int = 0) -> None:
        self.config = config
        self.seed = seed

    @property
    def d_in(self) -> int:
        """Width of each activation vector."""
        raise NotImplementedError

    def batches(
        self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
        with_labels: bool = False,
    ) -> Iterator[Batch]:
        """Batches of ``batch_size`` rows (this shard's share) from step ``start_step`` on.

        ``split="train"`` streams forever; ``split="eval"`` yields held-out data and may end.
        """
        raise NotImplementedError

    def ground_truth(self) -> GroundTruth | None:
        """True features, if the source knows them."""
        return None

    def describe(self) -> dict[str, Any]:
        """Provenance written into ``cfg.json`` (dataset path, model, hook...)."""
        return {"type": self.name}

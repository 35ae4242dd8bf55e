"""A data-source wrapper that rescales every activation vector to unit L2 norm.

H-SAE is trained on L2-normalized, uncentered inputs (Muchane et al. 2025); its
thresholds (1/sqrt(d)) assume them. Labels and ground truth pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import torch

from hsae.config.spec import DataSpec
from hsae.data import Batch, DataSource, GroundTruth, Shard


class UnitNormSource(DataSource):
    """Another data source's batches, each row scaled to unit L2 norm."""

    name = "unit-norm"

    @attrs.frozen
    class Config:
        """``source``: the wrapped data source table."""

        source: DataSpec = DataSpec("tensor-file")

    def __init__(self, config: Config, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.source = config.source.build(seed=seed)

    @classmethod
    def example_config(cls, workdir):
        from hsae.plugins import get_registry

        inner = get_registry().get("data", "tensor-file")
        return cls.Config(source=DataSpec("tensor-file", inner.example_config(workdir)))

    @property
    def d_in(self) -> int:
        return self.source.d_in

    def batches(self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
                with_labels: bool = False) -> Iterator[Batch]:
        for batch in self.source.batches(batch_size, start_step=start_step, shard=shard, split=split,
                                         with_labels=with_labels):
            norms = batch.x.norm(dim=1, keepdim=True)
            batch.x = batch.x / torch.where(norms > 0, norms, torch.ones_like(norms))
            yield batch

    def ground_truth(self) -> GroundTruth | None:
        return self.source.ground_truth()

    def describe(self) -> dict:
        return {**self.source.describe(), "normalize_activations": "unit-norm"}

"""Data: labelled clustered activations in the slot SAE's label layout, for tests and demos without an LM."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import attrs
import numpy as np
import torch

from hsae.config.bounds import NonNegativeFloat, NonNegativeInt, PositiveInt
from hsae.data import Batch, DataSource, Shard


class SlotClusters(DataSource):
    """Labelled clusters: one center per rule plus a per-value offset and noise; labels in the slot-SAE layout.

    A row of rule ``r`` and value ``v`` (both uniform) is ``center_r + offset_{r,v} + noise``.
    Labels: ``n_rules`` rule columns, then ``n_rules * values_per_rule`` value columns
    (value ids ``r * values_per_rule + v``), so every rule has its own values.
    """

    name = "slot-clusters"

    @attrs.frozen
    class Config:
        """d_in: width of each activation vector
        n_rules: rules (attributes), one cluster each
        values_per_rule: distinct answer values per rule (0: no value columns in the labels)
        rule_scale: norm of each rule's center (random directions)
        value_scale: norm of each value's offset from its rule's center (0: values cannot be read from x)
        noise: standard deviation of the isotropic noise, per coordinate
        """

        d_in: PositiveInt = 32
        n_rules: PositiveInt = 6
        values_per_rule: NonNegativeInt = 4
        rule_scale: NonNegativeFloat = 3.0
        value_scale: NonNegativeFloat = 1.0
        noise: NonNegativeFloat = 0.3

    def __init__(self, config: Config, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        c = config
        g = torch.Generator().manual_seed(seed)
        centers = torch.randn(c.n_rules, c.d_in, generator=g)
        self.centers = c.rule_scale * centers / centers.norm(dim=1, keepdim=True)
        offsets = torch.randn(c.n_rules, max(c.values_per_rule, 1), c.d_in, generator=g)
        self.offsets = c.value_scale * offsets / offsets.norm(dim=-1, keepdim=True)

    @property
    def d_in(self) -> int:
        return self.config.d_in

    @property
    def n_values(self) -> int:
        return self.config.n_rules * self.config.values_per_rule

    def batches(self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
                with_labels: bool = False) -> Iterator[Batch]:
        """Endless batches, each drawn from ``(seed, split, step, rank)`` alone."""
        c = self.config
        per_rule = max(c.values_per_rule, 1)
        for step in itertools.count(start_step):
            state = np.random.SeedSequence([abs(self.seed), split == "eval", step, shard.rank]).generate_state(1)[0]
            g = torch.Generator().manual_seed(int(state))
            rule = torch.randint(c.n_rules, (batch_size,), generator=g)
            value = torch.randint(per_rule, (batch_size,), generator=g)
            x = self.centers[rule] + self.offsets[rule, value] + c.noise * torch.randn(batch_size, c.d_in, generator=g)
            labels = None
            if with_labels:
                labels = torch.zeros(batch_size, c.n_rules + self.n_values)
                labels[torch.arange(batch_size), rule] = 1.0
                if c.values_per_rule:
                    labels[torch.arange(batch_size), c.n_rules + rule * per_rule + value] = 1.0
            yield Batch(x, labels, {"step": step})

    def describe(self) -> dict:
        return {"type": self.name, **attrs.asdict(self.config)}

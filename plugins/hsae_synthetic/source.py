"""The ``hierarchical-synthetic`` data source: endless batches from a synthetic world.

Batches are stateless in the step: batch ``s`` of split ``split`` on rank ``r`` is drawn
from a generator seeded by ``(seed, world_seed, split, s, r)`` alone, so a stream restarted
at step ``s`` yields exactly what an uninterrupted stream yields from ``s`` on. The world
(tree and feature directions) depends only on ``world_seed`` (default: the source's seed),
so every rank sees the same features. The eval split does not depend on the run's seed,
so runs on the same world are evaluated on the same held-out data.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import numpy as np
import torch

from hsae.data import Batch, DataSource, GroundTruth, Shard
from hsae.errors import Problem, RecipeError, UserError
from hsae_synthetic.generator import as_tree
from hsae_synthetic.hierarchy import HierarchyConfig
from hsae_synthetic.params import BUILTIN_TREES, check_value, resolve_tree_path
from hsae_synthetic.world import SAMPLES, SyntheticWorld, numpy_rng

_SPLITS = {"train": 0, "eval": 1}
EVAL_STREAM = 0xE7A1  # stands in for the run seed in eval streams


class HierarchicalSyntheticSource(DataSource):
    """Synthetic activations whose sparse features form a tree (a JSON tree or a generated forest)."""

    name: ClassVar[str] = "hierarchical-synthetic"

    @attrs.frozen
    class Config:
        """``tree_file`` (seed-format JSON) or ``hierarchy`` (generated forest), plus the data map."""

        tree_file: Path | None = None  # a recipe's relative path is resolved against its folder
        hierarchy: HierarchyConfig | None = None
        d_model: int = 512
        orthogonal_features: bool = True
        feature_correlation: float = 0.05
        feature_scale_variation: float = 0.05
        noise_level: float = 0.0
        binary_features: bool = True
        world_seed: int | None = None  # tree generation and directions; None: the run's seed

    def __init__(self, config: Config, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self._check(config)
        self.world_seed = config.world_seed if config.world_seed is not None else seed
        if config.tree_file is not None:
            try:
                tree = as_tree(resolve_tree_path(config.tree_file))
            except UserError as exc:  # located at the tree_file line, not the [data] header
                raise RecipeError([Problem(str(exc), path="tree_file")]) from None
        else:
            tree = as_tree(config.hierarchy)
        self.world = SyntheticWorld(
            tree, d_model=config.d_model, orthogonal_features=config.orthogonal_features,
            feature_correlation=config.feature_correlation, feature_scale_variation=config.feature_scale_variation,
            noise_level=config.noise_level, binary_features=config.binary_features, seed=self.world_seed,
        )

    @staticmethod
    def _check(config: Config) -> None:
        problems = []
        if (config.tree_file is None) == (config.hierarchy is None):
            problems.append(Problem("set exactly one of tree_file (a JSON tree) and hierarchy (a generated forest)"))
        if config.hierarchy is not None:
            problems += config.hierarchy.problems("hierarchy")
        for key in ("d_model", "feature_correlation", "feature_scale_variation", "noise_level"):
            problem = check_value(key, getattr(config, key), key)
            if problem:
                problems.append(problem)
        if problems:
            raise RecipeError(problems)

    @classmethod
    def example_config(cls, workdir: Path) -> Config:
        """The seed's A/B/C tree in 16 dimensions (for the component contract test)."""
        return cls.Config(tree_file=BUILTIN_TREES / "tree.json", d_model=16)

    @property
    def d_in(self) -> int:
        return self.world.d_model

    @property
    def n_features(self) -> int:
        return self.world.n_features

    def batch_rng(self, step: int, split: str = "train", rank: int = 0) -> np.random.Generator:
        """The random generator of one batch: a function of (seeds, split, step, rank) only."""
        split_id = _SPLITS.get(split, zlib.crc32(split.encode()))
        run = self.seed if split == "train" else EVAL_STREAM
        return numpy_rng(run, self.world_seed, SAMPLES, split_id, step, rank)

    def batches(
        self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
        with_labels: bool = False,
    ) -> Iterator[Batch]:
        """Endless batches of ``batch_size`` rows for this shard (train and eval alike).

        ``labels`` is the dense (B, n_features) true activation matrix when ``with_labels``.
        """
        for step in itertools.count(start_step):
            sample = self.world.sample(batch_size, self.batch_rng(step, split, shard.rank))
            labels = sample.activations.dense() if with_labels else None
            yield Batch(sample.x, labels, {"step": step})

    def ground_truth(self) -> GroundTruth:
        tree = self.world.tree
        return GroundTruth(
            directions=self.world.directions,
            parent=torch.from_numpy(tree.feature_parent),
            level=torch.from_numpy(tree.feature_level),
            tree=tree.json,
            names=list(tree.names),
        )

    def describe(self) -> dict[str, Any]:
        c = self.config
        out: dict[str, Any] = {"type": self.name, "n_features": self.n_features, "d_model": self.d_in,
                               "expected_l0": self.world.tree.expected_l0(), "world_seed": self.world_seed}
        if c.tree_file is not None:
            out["tree_file"] = str(resolve_tree_path(c.tree_file))
        else:
            out["hierarchy"] = c.hierarchy.to_dict()
        out.update({k: getattr(c, k) for k in ("orthogonal_features", "feature_correlation", "feature_scale_variation",
                                              "noise_level", "binary_features")})
        return out

"""The ``saelens-synthetic`` data source: SAELens's ``SyntheticModel``, served to hsae.

The model (feature directions, bias, hierarchy, firing probabilities) is built by SAELens
(``sae_lens.synthetic``, imported only when the source is built) from the same keys a
SAELens ``SyntheticModelConfig`` takes, so an hsae run and a SAELens run can train on the
identical model. Two samplers draw from it:

* ``sampler = "hsae"`` (default): hsae's level-by-level sampler on the same forest. The
  forest is rebuilt with :func:`hsae_synthetic.hierarchy.build_forest`, which follows
  SAELens's construction; the source checks that its structure and firing probabilities
  equal the SAELens model's and refuses otherwise. SAELens's exclusive rule is converted
  exactly into the tree format's categorical choice, so the distribution is the same
  (binary magnitudes, no correlation, children not scaled by their parent: the settings
  this source accepts). ``x = sum_i a_i f_i + bias`` uses SAELens's vectors and bias.
* ``sampler = "saelens"``: SAELens's own ``SyntheticModel.sample_with_features``, with the
  global torch RNG seeded per batch (and restored afterwards).

Either way batch ``s`` depends only on ``(seed, split, s, rank)``, so ``--resume`` is exact.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from hsae.data import Batch, DataSource, GroundTruth, Shard
from hsae.errors import UserError
from hsae_synthetic.generator import as_tree
from hsae_synthetic.hierarchy import HierarchyConfig, build_forest, forest_to_tree
from hsae_synthetic.sampler import SparseActivations, TreeSampler
from hsae_synthetic.world import SAMPLES, derive_seed, numpy_rng

_SPLITS = {"train": 0, "eval": 1}
_EVAL_STREAM = 0xE7A1  # stands in for the run seed in eval streams


@attrs.frozen
class SAELensModelConfig:
    """The keys of SAELens's ``SyntheticModelConfig`` this source supports (defaults: CPU-scale SynthSAEBench).

    n_features: ground-truth features
    d_model: hidden dimension (SAELens ``hidden_dim``)
    n_roots: hierarchy roots (``total_root_nodes``)
    branching_factor: children per parent
    depth: hierarchy depth (``max_depth``)
    mutually_exclusive_portion: fraction of parents whose children are exclusive
    zipf_exponent: Zipf exponent of the firing probabilities
    max_prob: largest firing probability
    min_prob: smallest firing probability
    bias: norm of the model's bias vector (SAELens's default 1.0; 0: none)
    model_seed: SAELens's ``seed``: directions, bias and structure
    """

    n_features: int = 4096
    d_model: int = 256
    n_roots: int = 64
    branching_factor: int = 4
    depth: int = 2
    mutually_exclusive_portion: float = 1.0
    zipf_exponent: float = 0.5
    max_prob: float = 0.4
    min_prob: float = 5e-4
    bias: float = 1.0
    model_seed: int = 42

    def build(self) -> Any:
        """The SAELens ``SyntheticModel`` (needs ``pip install sae-lens``)."""
        try:
            from sae_lens.synthetic import (HierarchyConfig as SLHierarchy, SyntheticModel, SyntheticModelConfig,
                                            ZipfianFiringProbabilityConfig)
        except ImportError as exc:
            raise UserError(f"data source saelens-synthetic needs sae-lens (pip install sae-lens): {exc}") from None
        cfg = SyntheticModelConfig(
            num_features=self.n_features, hidden_dim=self.d_model,
            firing_probability=ZipfianFiringProbabilityConfig(exponent=self.zipf_exponent, max_prob=self.max_prob,
                                                              min_prob=self.min_prob),
            hierarchy=SLHierarchy(total_root_nodes=self.n_roots, branching_factor=self.branching_factor,
                                  max_depth=self.depth, mutually_exclusive_portion=self.mutually_exclusive_portion,
                                  compensate_probabilities=True),
            bias=self.bias if self.bias > 0 else False, seed=self.model_seed,
        )
        return SyntheticModel(cfg)

    def hsae_hierarchy(self) -> HierarchyConfig:
        """The same forest in hsae's terms."""
        return HierarchyConfig(
            n_features=self.n_features, n_roots=self.n_roots, branching_factor=self.branching_factor, depth=self.depth,
            mutually_exclusive_portion=self.mutually_exclusive_portion, zipf_exponent=self.zipf_exponent,
            max_prob=self.max_prob, min_prob=self.min_prob, compensate_probabilities=True,
        )


def saelens_structure(model: Any) -> tuple[np.ndarray, frozenset[int]]:
    """``parent`` (-1 for roots and independent features) and the exclusive parents of a SAELens model."""
    parent = np.full(model.cfg.num_features, -1, dtype=np.int64)
    exclusive: set[int] = set()
    stack = [(node, -1) for node in (model.hierarchy.roots if model.hierarchy is not None else [])]
    while stack:
        node, up = stack.pop()
        if node.feature_index is not None:
            parent[node.feature_index] = up
            if node.mutually_exclusive_children:
                exclusive.add(node.feature_index)
        stack.extend((child, node.feature_index if node.feature_index is not None else up) for child in node.children)
    return parent, frozenset(exclusive)


class SAELensSyntheticSource(DataSource):
    """Batches from SAELens's ``SyntheticModel`` (built by SAELens), sampled by hsae or by SAELens."""

    name: ClassVar[str] = "saelens-synthetic"

    @attrs.frozen
    class Config:
        """``model``: the SAELens model's keys; ``sampler``: hsae (fast, same distribution) or saelens."""

        model: SAELensModelConfig = SAELensModelConfig()
        sampler: Literal["hsae", "saelens"] = "hsae"

    def __init__(self, config: Config, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self.model = config.model.build()
        self.directions = self.model.feature_dict.feature_vectors.detach().clone()
        self.bias = self.model.feature_dict.bias.detach().clone()
        forest = build_forest(config.model.hsae_hierarchy())
        parent, exclusive = saelens_structure(self.model)
        same = (np.array_equal(parent, forest.parent) and exclusive == forest.exclusive
                and np.allclose(self.model.activation_generator.firing_probabilities.numpy(), forest.fire_prob, atol=1e-5))
        if config.sampler == "hsae" and not same:
            raise UserError("saelens-synthetic: hsae's forest differs from the SAELens model's; use sampler = \"saelens\"")
        self.parent = torch.from_numpy(parent)
        level = np.zeros_like(parent)
        for k in range(parent.size):  # parents precede children (breadth-first numbering)
            level[k] = level[parent[k]] + 1 if parent[k] >= 0 else 0
        self.level = torch.from_numpy(level)
        self.sampler = self.tree_to_model = None
        if config.sampler == "hsae":
            tree = as_tree(forest_to_tree(forest))
            index = {name: k for k, name in enumerate(forest.names)}
            # The tree numbers features breadth first (roots, independent features, children); SAELens does not.
            self.tree_to_model = torch.tensor([index[name] for name in tree.names], dtype=torch.long)
            self.sampler = TreeSampler(tree)

    @property
    def d_in(self) -> int:
        return self.directions.shape[1]

    @property
    def n_features(self) -> int:
        return self.directions.shape[0]

    def _stream_seed(self, step: int, split: str, rank: int) -> tuple[int, ...]:
        split_id = _SPLITS.get(split, zlib.crc32(split.encode()))
        return (self.seed if split == "train" else _EVAL_STREAM, self.config.model.model_seed, SAMPLES, split_id, step, rank)

    def sample(self, n: int, step: int, split: str = "train", rank: int = 0) -> tuple[torch.Tensor, SparseActivations | torch.Tensor]:
        """``x`` (n, d_model) and the true activations (hsae: sparse; saelens: dense) of one batch."""
        parts = self._stream_seed(step, split, rank)
        if self.sampler is not None:
            acts = self.sampler.sample(n, numpy_rng(*parts))
            acts = SparseActivations(acts.rows, self.tree_to_model.index_select(0, acts.cols), acts.values, n, self.n_features)
            x = F.embedding_bag(acts.cols, self.directions, acts.offsets()[:-1], mode="sum") + self.bias
            return x, acts
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(*parts))
            return self.model.sample_with_features(n)

    def batches(
        self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
        with_labels: bool = False,
    ) -> Iterator[Batch]:
        """Endless batches; ``labels`` is the dense (B, n_features) true activation matrix when ``with_labels``."""
        for step in itertools.count(start_step):
            x, acts = self.sample(batch_size, step, split, shard.rank)
            labels = None
            if with_labels:
                labels = acts.dense() if isinstance(acts, SparseActivations) else acts
            yield Batch(x, labels, {"step": step})

    def ground_truth(self) -> GroundTruth:
        return GroundTruth(directions=self.directions, parent=self.parent, level=self.level)

    def describe(self) -> dict[str, Any]:
        return {"type": self.name, "sampler": self.config.sampler, **attrs.asdict(self.config.model)}

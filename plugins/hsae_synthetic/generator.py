"""``HierarchicalDataGenerator``: the seed's library API over a :class:`SyntheticWorld`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from hsae.errors import UserError
from hsae_synthetic.hierarchy import HierarchyConfig, generate_hierarchy
from hsae_synthetic.params import GeneratorParams, load_params, resolve_tree_path
from hsae_synthetic.sampler import SparseActivations
from hsae_synthetic.tree import Tree
from hsae_synthetic.world import SAMPLES, SyntheticBatch, SyntheticWorld, numpy_rng

TreeSpec = Union[dict, str, Path, Tree, HierarchyConfig]


def as_tree(spec: TreeSpec, base_dir: str | Path | None = None) -> Tree:
    """A :class:`Tree` from a tree dict, a tree file path, a :class:`HierarchyConfig` or a Tree."""
    if isinstance(spec, Tree):
        return spec
    if isinstance(spec, HierarchyConfig):
        return Tree(generate_hierarchy(spec), file="<hierarchy>")
    if isinstance(spec, dict):
        return Tree(spec, file="<tree_config>")
    if isinstance(spec, (str, Path)):
        return Tree.load(resolve_tree_path(spec, base_dir))
    raise TypeError(f"tree_config must be a dict, a path, a Tree or a HierarchyConfig, not {type(spec).__name__}")


class HierarchicalDataGenerator:
    """Synthetic data whose sparse features form a tree: ``x = sum_i a_i f_i + eps``.

    ``tree_config`` is a tree in the seed's JSON format (a dict), the path of such a file,
    or a :class:`HierarchyConfig` (a generated SynthSAEBench-like forest).
    ``binary_features`` is the magnitude of features whose node does not set ``is_binary``:
    1 when active (true) or uniform(0, 1] (false). ``random_seed`` fixes the directions and
    the sample stream; ``None`` draws a fresh seed.
    """

    def __init__(
        self,
        tree_config: TreeSpec,
        d_model: int = 512,
        orthogonal_features: bool = True,
        feature_correlation: float = 0.05,
        feature_scale_variation: float = 0.05,
        noise_level: float = 0.0,
        random_seed: int | None = None,
        *,
        binary_features: bool = True,
    ) -> None:
        if tree_config is None:
            raise UserError("tree_config is required: a tree dict, a tree JSON file, or a HierarchyConfig")
        self.tree = as_tree(tree_config)
        self.random_seed = random_seed
        seed = random_seed if random_seed is not None else int(np.random.SeedSequence().entropy % 2**63)
        self.world = SyntheticWorld(
            self.tree, d_model=d_model, orthogonal_features=orthogonal_features, feature_correlation=feature_correlation,
            feature_scale_variation=feature_scale_variation, noise_level=noise_level, binary_features=binary_features,
            seed=seed,
        )
        self._rng = numpy_rng(seed, SAMPLES)
        self.params = GeneratorParams(
            tree_config_file=str(tree_config) if isinstance(tree_config, (str, Path)) else None,
            tree_config=tree_config if isinstance(tree_config, dict) else None,
            hierarchy=tree_config if isinstance(tree_config, HierarchyConfig) else None,
            d_model=d_model, orthogonal_features=orthogonal_features, feature_correlation=feature_correlation,
            feature_scale_variation=feature_scale_variation, noise_level=noise_level, random_seed=random_seed,
            binary_features=binary_features,
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, params_json: str | Path) -> "HierarchicalDataGenerator":
        """From a parameter file; its ``tree_config_file`` is relative to the file."""
        return cls.from_params(load_params(params_json))

    @classmethod
    def from_params(cls, params: GeneratorParams) -> "HierarchicalDataGenerator":
        """From validated :class:`GeneratorParams`."""
        tree = params.tree_config_file or params.tree_config or params.hierarchy
        if tree is None:
            raise UserError("no tree given: set tree_config_file, tree_config or hierarchy")
        return cls(
            tree, d_model=params.d_model, orthogonal_features=params.orthogonal_features,
            feature_correlation=params.feature_correlation, feature_scale_variation=params.feature_scale_variation,
            noise_level=params.noise_level, random_seed=params.random_seed, binary_features=params.binary_features,
        )

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        return self.tree.n_features

    @property
    def d_model(self) -> int:
        return self.world.d_model

    @property
    def feature_directions(self) -> torch.Tensor:
        """``(n_features, d_model)``: row ``i`` is ``f_i``."""
        return self.world.directions

    true_feats = feature_directions  # the seed's name

    @property
    def feature_names(self) -> list[str]:
        return self.tree.names

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, rng: np.random.Generator | None = None) -> SyntheticBatch:
        """``n`` samples with sparse (COO) activations; without ``rng``, from (and advancing)
        the generator's own seeded stream."""
        return self.world.sample(n, rng if rng is not None else self._rng)

    def generate_batch(self, n: int, return_activations: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``data`` (n, d_model), or ``(data, activations)`` with dense (n, n_features) activations."""
        batch = self.sample(n)
        return (batch.x, batch.activations.dense()) if return_activations else batch.x

    def generate_sparse(self, n: int) -> tuple[torch.Tensor, SparseActivations]:
        """``data`` and the activations in COO form (no dense ``n x n_features`` matrix)."""
        batch = self.sample(n)
        return batch.x, batch.activations

    # ------------------------------------------------------------------ statistics
    def get_ground_truth_l0(self) -> float:
        """Analytic expected number of active features per sample."""
        return self.tree.expected_l0()

    def get_feature_frequencies(self) -> torch.Tensor:
        """Analytic P(feature active), ``(n_features,)``."""
        return torch.from_numpy(self.tree.feature_frequencies())

    def get_expected_activation_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Analytic per-feature mean and std of the activation value."""
        mean, std = self.tree.expected_activation_moments(self.world.binary_features)
        return torch.from_numpy(mean), torch.from_numpy(std)

    def get_feature_statistics(self, n_samples: int = 10000) -> dict[str, Any]:
        """Empirical per-feature frequency, mean, std and mean L0 from ``n_samples`` fresh
        samples, next to their analytic values (JSON-able)."""
        return self.statistics_report(self.world.empirical_statistics(n_samples, self._rng), n_samples)

    def statistics_report(self, empirical: dict[str, Any], n_samples: int) -> dict[str, Any]:
        """JSON-able report of empirical statistics (from :class:`ActivationStats`) and analytic ones."""
        mean, std = self.tree.expected_activation_moments(self.world.binary_features)
        return {
            "n_samples": n_samples,
            "n_features": self.n_features,
            "d_model": self.d_model,
            "expected_l0": self.get_ground_truth_l0(),
            "empirical_l0": empirical["l0"],
            "feature_names": list(self.tree.names),
            "expected_frequencies": self.tree.feature_frequencies().tolist(),
            "feature_frequencies": empirical["frequency"].tolist(),
            "expected_means": mean.tolist(),
            "feature_means": empirical["mean"].tolist(),
            "expected_stds": std.tolist(),
            "feature_stds": empirical["std"].tolist(),
        }

    # ------------------------------------------------------------------ the tree
    def tree_summary(self, max_nodes: int = 200) -> str:
        """A readable printout of the tree."""
        return self.tree.format(max_nodes)

    def print_tree(self, max_nodes: int = 200) -> None:
        print(self.tree_summary(max_nodes))

    def get_tree_config(self) -> dict[str, Any]:
        """The tree in the seed's JSON format."""
        return self.tree.json

    def __repr__(self) -> str:
        return (f"HierarchicalDataGenerator(n_features={self.n_features}, d_model={self.d_model}, "
                f"expected_l0={self.get_ground_truth_l0():.4g})")

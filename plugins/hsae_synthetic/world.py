"""A synthetic world: a tree, its feature directions, and the map from activations to data.

``x = sum_i a_i f_i + eps`` is computed as a sparse-dense product (``embedding_bag`` over
the active features of each row), so a batch costs ``O(nnz * d_model)``, never
``O(batch * n_features * d_model)``.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from hsae.errors import UserError
from hsae_synthetic.directions import make_directions
from hsae_synthetic.sampler import SparseActivations, TreeSampler
from hsae_synthetic.tree import Tree


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integer parts (stable across runs and platforms)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def torch_generator(*parts: int) -> torch.Generator:
    """A CPU torch generator seeded from :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def numpy_rng(*parts: int) -> np.random.Generator:
    """A numpy generator (PCG64) seeded from :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(*parts))


# Purposes mixed into seeds so the directions and the sample streams are independent.
DIRECTIONS, SAMPLES = 0xD1, 0x5A


@attrs.frozen
class SyntheticBatch:
    """Data ``x`` (B, d_model) and the true feature activations that made it (sparse)."""

    x: torch.Tensor
    activations: SparseActivations


class SyntheticWorld:
    """Tree + directions + noise; samples batches given a numpy random generator."""

    def __init__(
        self,
        tree: Tree,
        *,
        d_model: int = 512,
        orthogonal_features: bool = True,
        feature_correlation: float = 0.05,
        feature_scale_variation: float = 0.05,
        noise_level: float = 0.0,
        binary_features: bool = True,
        seed: int = 0,
    ) -> None:
        if d_model < 1:
            raise UserError(f"d_model must be at least 1, got {d_model}")
        if noise_level < 0:
            raise UserError(f"noise_level must be >= 0, got {noise_level}")
        self.tree = tree
        self.d_model = d_model
        self.noise_level = float(noise_level)
        self.binary_features = binary_features
        self.seed = seed
        self.sampler = TreeSampler(tree, binary_default=binary_features)
        self.directions = make_directions(
            tree.n_features, d_model, orthogonal=orthogonal_features, correlation=feature_correlation,
            scale_variation=feature_scale_variation, generator=torch_generator(seed, DIRECTIONS),
        )

    @property
    def n_features(self) -> int:
        return self.tree.n_features

    def decode(self, acts: SparseActivations) -> torch.Tensor:
        """``sum_i a_i f_i`` per row, as a sparse-dense product: ``(n_rows, d_model)``."""
        offsets = acts.offsets()[:-1]
        weights = None if self.sampler.all_binary else acts.values  # binary: all ones, a faster kernel
        return F.embedding_bag(acts.cols, self.directions, offsets, mode="sum", per_sample_weights=weights)

    def sample(self, n: int, rng: np.random.Generator) -> SyntheticBatch:
        """``n`` samples: activations from the tree, ``x`` from the directions plus noise."""
        acts = self.sampler.sample(n, rng)
        x = self.decode(acts)
        if self.noise_level > 0:
            x += self.noise_level * torch.from_numpy(rng.standard_normal(tuple(x.shape), dtype=np.float32))
        return SyntheticBatch(x, acts)

    def empirical_statistics(self, n_samples: int, rng: np.random.Generator, batch_size: int = 65536) -> dict[str, Any]:
        """Per-feature frequency, mean and std of activations, and mean L0, from fresh samples."""
        stats = ActivationStats(self.n_features)
        done = 0
        while done < n_samples:
            n = min(batch_size, n_samples - done)
            stats.update(self.sampler.sample(n, rng))
            done += n
        return stats.result()


class ActivationStats:
    """Streaming per-feature frequency, mean and std (and mean L0) of sparse activations."""

    def __init__(self, n_features: int) -> None:
        self.n_rows = 0
        self.count = np.zeros(n_features)
        self.total = np.zeros(n_features)
        self.total_sq = np.zeros(n_features)

    def update(self, acts: SparseActivations) -> None:
        cols, vals = acts.cols.numpy(), acts.values.double().numpy()
        n = self.count.size
        self.count += np.bincount(cols, minlength=n)
        self.total += np.bincount(cols, weights=vals, minlength=n)
        self.total_sq += np.bincount(cols, weights=vals**2, minlength=n)
        self.n_rows += acts.n_rows

    def result(self) -> dict[str, Any]:
        """``l0`` (mean active features per row), ``frequency``, ``mean``, ``std`` (sample std)."""
        n = max(self.n_rows, 1)
        mean = self.total / n
        var = np.maximum(self.total_sq / n - mean**2, 0.0) * n / max(n - 1, 1)
        return {"l0": float(self.count.sum() / n), "frequency": self.count / n, "mean": mean, "std": np.sqrt(var)}

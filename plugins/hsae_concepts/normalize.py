"""Feature normalization for the classifier datasets: fit, apply, invert, and the stored keys.

``standardize``: ``(x - mean) / std``; ``minmax``: ``(x - min) / (max - min)``; ``none``.
A constant column divides by 1 instead of 0. Parameters are fitted on the rows given to
:func:`fit` (all rows, or the training split only) and stored as the seed documents them:
``norm_method`` always, ``norm_mean`` / ``norm_std`` or ``norm_min`` / ``norm_max``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs
import numpy as np

from hsae_concepts.choices import NORMALIZATIONS

Method = Literal["standardize", "minmax", "none"]


@attrs.frozen
class Normalization:
    """Fitted parameters per column: mean and std (standardize) or min and max (minmax)."""

    method: Method
    first: np.ndarray | None = None  # mean (standardize) or min (minmax)
    second: np.ndarray | None = None  # std (standardize) or max (minmax)

    def _shift_scale(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        if self.method == "standardize":
            return self.first, _nonzero(self.second)
        if self.method == "minmax":
            return self.first, _nonzero(self.second - self.first)
        return 0.0, 1.0

    def apply(self, x: np.ndarray) -> np.ndarray:
        shift, scale = self._shift_scale()
        return ((x - shift) / scale).astype(np.float32)

    def invert(self, z: np.ndarray) -> np.ndarray:
        shift, scale = self._shift_scale()
        return (z * scale + shift).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        """The ``norm_*`` keys of a dataset file (plain arrays: no pickle needed)."""
        out = {"norm_method": np.array(self.method)}
        if self.method == "standardize":
            out.update(norm_mean=self.first, norm_std=self.second)
        elif self.method == "minmax":
            out.update(norm_min=self.first, norm_max=self.second)
        return out

    @classmethod
    def from_arrays(cls, data: Mapping[str, np.ndarray]) -> "Normalization":
        """Read back what :meth:`arrays` wrote (from ``np.load(..., allow_pickle=False)``)."""
        method = str(data["norm_method"])
        if method == "standardize":
            return cls(method, data["norm_mean"], data["norm_std"])
        if method == "minmax":
            return cls(method, data["norm_min"], data["norm_max"])
        return cls("none")


def fit(x: np.ndarray, method: Method) -> Normalization:
    """Parameters of ``method`` fitted on the rows of ``x``."""
    if method == "standardize":
        return Normalization(method, x.mean(0).astype(np.float32), x.std(0).astype(np.float32))
    if method == "minmax":
        return Normalization(method, x.min(0).astype(np.float32), x.max(0).astype(np.float32))
    if method == "none":
        return Normalization("none")
    raise ValueError(f"unknown normalization {method!r}; choose from {', '.join(NORMALIZATIONS)}")


def _nonzero(scale: np.ndarray) -> np.ndarray:
    return np.where(scale > 0, scale, 1.0).astype(np.float32)

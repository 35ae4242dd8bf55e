"""Feature directions: orthogonal or random unit vectors, shared-component correlation, norm jitter.

For ``n`` features in ``d`` dimensions:

1. **Base directions** ``u_i``: with ``orthogonal=True``, orthonormal rows from the QR
   decomposition of a Gaussian ``(d, n)`` matrix (requires ``n <= d``, otherwise a
   :class:`~hsae.errors.UserError`); with ``orthogonal=False``, independent uniformly
   random unit vectors.
2. **Correlation** ``c = feature_correlation`` in [0, 1): every direction gets a common
   component ``s`` (a unit vector orthogonal to all ``u_i`` when ``n < d`` and the base is
   orthogonal, else random): ``f_i = (sqrt(1 - c) u_i + sqrt(c) s) / ||...||``.
   ``c`` is the **mean pairwise cosine** between distinct directions: exactly ``c`` for
   every pair in the orthogonal case with ``n < d``, and ``c`` in expectation otherwise
   (random base directions add zero-mean noise of order ``1/sqrt(d)``).
3. **Scale variation** ``v`` in [0, 1): each direction's norm is drawn uniformly from
   ``[1 - v, 1 + v]`` (standard deviation ``v / sqrt(3)``).
"""

from __future__ import annotations

import math

import torch

from hsae.errors import UserError


def make_directions(
    n_features: int,
    d_model: int,
    *,
    orthogonal: bool = True,
    correlation: float = 0.0,
    scale_variation: float = 0.0,
    generator: torch.Generator,
) -> torch.Tensor:
    """``(n_features, d_model)`` float32 feature directions (see the module docstring)."""
    if not 0.0 <= correlation < 1.0:
        raise UserError(f"feature_correlation must be in [0, 1), got {correlation}")
    if not 0.0 <= scale_variation < 1.0:
        raise UserError(f"feature_scale_variation must be in [0, 1), got {scale_variation}")
    if orthogonal and n_features > d_model:
        raise UserError(
            f"orthogonal_features needs n_features <= d_model, but the tree has {n_features} features "
            f"and d_model is {d_model}; set orthogonal_features to false (random unit directions) "
            "or raise d_model"
        )
    shared_is_orthogonal = orthogonal and correlation > 0 and n_features < d_model
    if orthogonal:
        cols = n_features + (1 if shared_is_orthogonal else 0)
        gauss = torch.randn(d_model, cols, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(gauss)
        q = q * torch.sign(torch.diagonal(r))  # Haar-distributed, not biased by QR's sign choice
        base = q.T.contiguous()  # (cols, d): orthonormal rows
        shared = base[n_features] if shared_is_orthogonal else None
        base = base[:n_features]
    else:
        base = torch.nn.functional.normalize(torch.randn(n_features, d_model, generator=generator, dtype=torch.float64), dim=1)
        shared = None
    if correlation > 0:
        if shared is None:
            shared = torch.nn.functional.normalize(torch.randn(d_model, generator=generator, dtype=torch.float64), dim=0)
        base = math.sqrt(1 - correlation) * base + math.sqrt(correlation) * shared
        base = torch.nn.functional.normalize(base, dim=1)
    if scale_variation > 0:
        norms = 1 + scale_variation * (2 * torch.rand(n_features, generator=generator, dtype=torch.float64) - 1)
        base = base * norms[:, None]
    return base.float()


def mean_pairwise_cosine(directions: torch.Tensor) -> float:
    """Mean cosine over all pairs of distinct rows (what ``feature_correlation`` sets)."""
    unit = torch.nn.functional.normalize(directions.double(), dim=1)
    n = unit.shape[0]
    total = unit.sum(0)
    return float(((total @ total) - n) / (n * (n - 1)))

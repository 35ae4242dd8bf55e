"""Feature directions: orthogonality, the meaning of feature_correlation, norm jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsae.errors import UserError
from hsae_synthetic.directions import make_directions, mean_pairwise_cosine


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_orthogonal_directions_are_orthonormal_to_1e_5():
    d = make_directions(200, 256, orthogonal=True, generator=gen())
    gram = d.double() @ d.double().T
    assert torch.allclose(gram, torch.eye(200, dtype=torch.float64), atol=1e-5)
    square = make_directions(64, 64, orthogonal=True, generator=gen(1)).double()
    assert torch.allclose(square @ square.T, torch.eye(64, dtype=torch.float64), atol=1e-5)


def test_orthogonal_with_scale_variation_stays_orthogonal_with_jittered_norms():
    d = make_directions(100, 128, orthogonal=True, scale_variation=0.2, generator=gen()).double()
    norms = d.norm(dim=1)
    unit = d / norms[:, None]
    assert torch.allclose(unit @ unit.T, torch.eye(100, dtype=torch.float64), atol=1e-5)
    assert norms.min() >= 0.8 - 1e-6 and norms.max() <= 1.2 + 1e-6
    assert norms.std() == pytest.approx(0.2 / np.sqrt(3), rel=0.25)


def test_too_many_orthogonal_features_is_a_clear_error():
    with pytest.raises(UserError, match="needs n_features <= d_model, but the tree has 16384 features and d_model is 768"):
        make_directions(16384, 768, orthogonal=True, generator=gen())


def test_random_directions_are_unit_and_nearly_uncorrelated():
    d = make_directions(2000, 768, orthogonal=False, generator=gen())
    assert torch.allclose(d.norm(dim=1), torch.ones(2000), atol=1e-5)
    assert abs(mean_pairwise_cosine(d)) < 0.01
    cos = (d @ d.T).fill_diagonal_(0)
    assert cos.abs().max() < 0.25  # ~ 5.5 / sqrt(768)


@pytest.mark.parametrize("c", [0.05, 0.1, 0.3])
def test_feature_correlation_is_the_pairwise_cosine(c):
    # Orthogonal base with n < d: every pair has cosine exactly c.
    d = make_directions(50, 64, orthogonal=True, correlation=c, generator=gen()).double()
    unit = d / d.norm(dim=1, keepdim=True)
    off = (unit @ unit.T)[~torch.eye(50, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, c), atol=1e-6)
    # Random base (or n >= d): c is the mean pairwise cosine.
    r = make_directions(3000, 256, orthogonal=False, correlation=c, generator=gen(1))
    assert mean_pairwise_cosine(r) == pytest.approx(c, abs=0.01)
    sq = make_directions(128, 128, orthogonal=True, correlation=c, generator=gen(2))
    assert mean_pairwise_cosine(sq) == pytest.approx(c, abs=0.02)


def test_out_of_range_parameters_are_errors():
    with pytest.raises(UserError, match="feature_correlation must be in"):
        make_directions(4, 8, correlation=1.0, generator=gen())
    with pytest.raises(UserError, match="feature_scale_variation must be in"):
        make_directions(4, 8, scale_variation=-0.1, generator=gen())


def test_same_seed_same_directions():
    a = make_directions(30, 40, correlation=0.1, scale_variation=0.1, generator=gen(5))
    b = make_directions(30, 40, correlation=0.1, scale_variation=0.1, generator=gen(5))
    c = make_directions(30, 40, correlation=0.1, scale_variation=0.1, generator=gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)

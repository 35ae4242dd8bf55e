"""Seed 001's concept metrics on hand-built codes: firing rule, unmatched concepts, steering leakage."""

from __future__ import annotations

import attrs
import pytest
import torch

from hsae.data import Batch, GroundTruth
from hsae.metric import EvalContext
from hsae.model import Codes, SAEOutput
from hsae_teacher.concept_metrics import LeakageMetric, PurityMetric, SteeringLeakageMetric, firing_matrix


@attrs.define
class _Data:
    truth: GroundTruth

    def ground_truth(self) -> GroundTruth:
        return self.truth


@attrs.define
class _Model:
    directions: torch.Tensor  # (d_sae, d)

    def decoder_directions(self) -> torch.Tensor:
        return self.directions


def _truth(parent: list[int], directions: torch.Tensor | None = None) -> GroundTruth:
    n = len(parent)
    directions = torch.eye(n) if directions is None else directions
    level = torch.tensor([0 if p < 0 else 1 for p in parent])
    return GroundTruth(directions=directions, parent=torch.tensor(parent), level=level)


def _score(metric, truth: GroundTruth, labels: torch.Tensor, codes: torch.Tensor, model=None) -> dict[str, float]:
    """Run one metric over one batch of dense ``codes`` (B, d_sae) with ``labels`` (B, C)."""
    ctx = EvalContext(data=_Data(truth), device=torch.device("cpu"))
    metric.start(ctx)
    sparse_rows, sparse_cols = torch.nonzero(codes != 0, as_tuple=True)
    out = SAEOutput(x_hat=torch.zeros(len(codes), 1),
                    codes=Codes.from_sparse(sparse_rows, sparse_cols, codes[sparse_rows, sparse_cols], *codes.shape))
    metric.update(Batch(torch.zeros(len(codes), 1), labels.float()), out, model)
    return metric.compute(model, ctx)


def _one_hot_samples(n_concepts: int, repeats: int) -> torch.Tensor:
    """``repeats`` samples of each concept alone (one-hot labels)."""
    return torch.eye(n_concepts).repeat(repeats, 1)


# -- 6: what counts as firing ------------------------------------------------------------------


def test_a_latent_fires_only_when_its_value_is_positive():
    codes = Codes.from_sparse(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 2, 1, 2]),
                              torch.tensor([0.5, -0.2, 0.0, 1e-3]), 2, 3)
    assert firing_matrix(codes).tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert firing_matrix(codes, "any-selected").tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    dense = Codes.from_dense(torch.tensor([[0.5, -0.2, 0.0]]))
    assert firing_matrix(dense).tolist() == [[1.0, 0.0, 0.0]]


def test_a_child_kept_at_a_negative_value_does_not_count_as_firing():
    truth = _truth([-1, 0])  # concept 1 is a child of concept 0; latent i is concept i's
    parent_only = torch.tensor([[1.0, 0.0]]).repeat(10, 1)
    with_child = torch.tensor([[1.0, 1.0]]).repeat(10, 1)
    labels = torch.cat([parent_only, with_child])
    codes = labels.clone()
    codes[:10, 1] = -0.05  # the H-SAE keeps its top child even below zero
    purity = _score(PurityMetric(PurityMetric.Config()), truth, labels, codes)
    assert purity["purity_pp"] == pytest.approx(100.0)
    assert purity["purity_pp_any_selected"] == pytest.approx(75.0)  # child latent: 10 hits / 20 selections


def test_leakage_counts_only_positive_firings():
    truth = _truth([-1, -1])
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(10, 1)
    codes = labels.clone()
    codes[labels[:, 1] > 0, 0] = -0.1  # latent 0 selected on the other parent's samples, below zero
    leakage = _score(LeakageMetric(LeakageMetric.Config()), truth, labels, codes)
    assert leakage["leakage"] == pytest.approx(0.0)
    assert leakage["leakage_any_selected"] > 0.0


# -- 5: unmatched concepts ----------------------------------------------------------------------


def test_unmatched_concepts_are_left_out_of_purity_and_leakage():
    truth = _truth([-1, -1, 1, 0])  # 4 concepts, only 3 latents: concept 3 has no latent
    labels = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]]).repeat(10, 1)
    codes = labels[:, :3].clone()  # latents 0-2 detect concepts 0-2 perfectly
    purity = _score(PurityMetric(PurityMetric.Config()), truth, labels, codes)
    assert purity["purity_pp"] == pytest.approx(100.0)
    assert purity["unmatched_concepts"] == 1
    leakage = _score(LeakageMetric(LeakageMetric.Config()), truth, labels, codes)
    assert leakage["leakage"] == pytest.approx(0.0)
    assert leakage["unmatched_concepts"] == 1


# -- 3: steering leakage -------------------------------------------------------------------------


def _steering(directions: torch.Tensor, decoder: torch.Tensor) -> dict[str, float]:
    """Steering leakage of a model whose latent i fires exactly on root concept i."""
    n = directions.shape[0]
    labels = _one_hot_samples(n, 5)
    metric = SteeringLeakageMetric(SteeringLeakageMetric.Config())
    return _score(metric, _truth([-1] * n, directions), labels, labels.clone(), _Model(decoder))


def test_a_concept_with_no_on_target_shift_cannot_dominate_steering_leakage():
    directions = torch.eye(4)
    decoder = torch.eye(4)
    decoder[3] = torch.nn.functional.normalize(torch.tensor([1.0, 0.0, 0.0, 1e-6]), dim=0)  # steers concept 0
    out = _steering(directions, decoder)
    assert out["steering_leakage"] == pytest.approx(1 / 3, rel=1e-4)  # 4 off-target over 12 on-target
    assert out["steering_leakage_true_direction_floor"] == pytest.approx(0.0, abs=1e-9)


def test_steering_along_the_true_directions_scores_the_reported_floor():
    g = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    out = _steering(directions, directions)  # 6 features in 4 dimensions: no exact read-out
    assert out["steering_leakage_true_direction_floor"] > 0.1
    assert out["steering_leakage"] == pytest.approx(out["steering_leakage_true_direction_floor"])

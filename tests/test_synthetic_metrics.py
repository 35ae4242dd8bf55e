"""Ground-truth metrics: a perfect SAE scores perfectly, a random one does not, absorption is caught."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch

from hsae.data import DataSource
from hsae.errors import UserError
from hsae.metric import EvalContext
from hsae.model import SAE, Codes, SAEOutput
from hsae_synthetic.metrics import METRICS, match
from hsae_synthetic.source import HierarchicalSyntheticSource as Source

TREE = str(Path(__file__).resolve().parents[1] / "recipes" / "trees" / "tree.json")
# P gates two independent children; Q is a lone feature.
TWO_CHILDREN = {"active_prob": 1, "is_read_out": False, "children": [
    {"id": "P", "active_prob": 0.5, "children": [{"id": "C1", "active_prob": 0.3}, {"id": "C2", "active_prob": 0.3}]},
    {"id": "Q", "active_prob": 0.2},
]}


class ProjectionSAE(SAE):
    """Encodes by projecting on ``decoder`` rows (exact when they are the orthonormal true
    directions); ``silence`` maps a latent to the latents whose firing switches it off."""

    def __init__(self, decoder: torch.Tensor, *, silence: dict[int, list[int]] | None = None, scale: float = 1.0,
                 sparse: bool = False) -> None:
        super().__init__(None, d_in=decoder.shape[1])
        self.decoder, self.d_sae, self.silence, self.scale, self.sparse = decoder, decoder.shape[0], silence or {}, scale, sparse

    def forward(self, x: torch.Tensor) -> SAEOutput:
        codes = x @ self.decoder.T
        codes = torch.where(codes > 1e-3, codes, torch.zeros_like(codes))
        for latent, by in self.silence.items():
            codes[:, latent] = torch.where((codes[:, by] > 0).any(1), 0.0, codes[:, latent])
        x_hat = self.scale * codes @ self.decoder
        if self.sparse:
            rows, cols = torch.nonzero(codes, as_tuple=True)
            return SAEOutput(x_hat, Codes.from_sparse(rows, cols, codes[rows, cols], codes.shape[0], self.d_sae))
        return SAEOutput(x_hat, Codes.from_dense(codes))

    def decoder_directions(self) -> torch.Tensor:
        return self.decoder


def evaluate(model: SAE, source: DataSource, names=None, batches: int = 8, batch_size: int = 2048, **configs):
    metrics = {m.name: m(m.Config(**configs.get(m.name, {}))) for m in METRICS if names is None or m.name in names}
    for metric in metrics.values():
        metric.reset()
    with_labels = any(m.needs_labels for m in metrics.values())
    for batch in itertools.islice(source.batches(batch_size, split="eval", with_labels=with_labels), batches):
        out = model(batch.x)
        for metric in metrics.values():
            metric.update(batch, out, model)
    ctx = EvalContext(data=source, device=torch.device("cpu"))
    return {name: metric.compute(model, ctx) for name, metric in metrics.items()}


@pytest.fixture(scope="module")
def abc():
    return Source(Source.Config(tree_file=TREE, d_model=64, feature_correlation=0.0, feature_scale_variation=0.0), seed=0)


@pytest.mark.parametrize("sparse", [False, True])
def test_perfect_sae_scores_perfectly(abc, sparse):
    model = ProjectionSAE(abc.ground_truth().directions, sparse=sparse)
    r = evaluate(model, abc)
    gt = r["ground-truth"]
    assert gt["mcc"] == pytest.approx(1.0, abs=1e-5) and gt["uniqueness"] == 1.0
    assert gt["mcc_level_0"] == pytest.approx(1.0, abs=1e-5) and gt["mcc_level_2"] == pytest.approx(1.0, abs=1e-5)
    assert gt["precision"] == 1.0 and gt["recall"] == 1.0 and gt["f1"] == 1.0
    assert gt["l0"] == gt["true_l0"] and gt["l0_ratio"] == 1.0 and gt["dead_latents"] == 0
    assert gt["shrinkage"] == pytest.approx(1.0, abs=1e-5)
    assert gt["absorbed_edge_fraction"] == 0.0 and gt["edges_evaluated"] >= 10
    # The separately registered metrics agree with the all-in-one one.
    for name in ("mcc", "feature-f1", "l0-vs-true", "shrinkage", "absorption"):
        for key, value in r[name].items():
            assert value == pytest.approx(gt[key]), (name, key)


def test_random_sae_scores_low(abc):
    g = torch.Generator().manual_seed(0)
    model = ProjectionSAE(torch.nn.functional.normalize(torch.randn(15, 64, generator=g), dim=1))
    gt = evaluate(model, abc, names=["ground-truth"])["ground-truth"]
    assert gt["mcc"] < 0.45 and gt["f1"] < 0.5
    assert gt["l0_ratio"] > 1.5  # random projections fire far more often than the sparse truth


def test_shrinkage_is_the_norm_ratio(abc):
    model = ProjectionSAE(abc.ground_truth().directions, scale=0.8)
    assert evaluate(model, abc, names=["shrinkage"])["shrinkage"]["shrinkage"] == pytest.approx(0.8, abs=1e-5)


def test_absorption_is_detected_edge_by_edge(tmp_path):
    path = tmp_path / "two.json"
    path.write_text(json.dumps(TWO_CHILDREN))
    src = Source(Source.Config(tree_file=str(path), d_model=16, feature_correlation=0.0, feature_scale_variation=0.0), seed=1)
    gt = src.ground_truth()
    assert gt.names == ["P", "Q", "C1", "C2"]
    absorbed_by_c1 = ProjectionSAE(gt.directions, silence={0: [2]})
    r = evaluate(absorbed_by_c1, src, names=["absorption"])["absorption"]
    assert r["edges_matched"] == 2 and r["edges_evaluated"] == 2
    assert r["absorbed_edge_fraction"] == 0.5  # P -> C1 absorbed; P -> C2 not
    both = evaluate(ProjectionSAE(gt.directions, silence={0: [2, 3]}), src, names=["absorption"])["absorption"]
    assert both["absorbed_edge_fraction"] == 1.0 and both["parent_fire_rate_given_child"] == 0.0
    assert both["parent_fire_rate_without_child"] == pytest.approx(0.7, abs=0.03)  # P alone: the other child is off
    strict = evaluate(ProjectionSAE(gt.directions, silence={0: [2, 3]}), src, names=["absorption"],
                      absorption={"threshold": 0.9})["absorption"]
    assert strict["edges_evaluated"] == 0 and math.isnan(strict["absorbed_edge_fraction"])


def test_narrow_sae_matches_a_subset(abc):
    directions = abc.ground_truth().directions
    model = ProjectionSAE(directions[:6])  # the 3 roots and 3 of their children
    gt = evaluate(model, abc, names=["ground-truth"])["ground-truth"]
    assert gt["mcc"] == pytest.approx(1.0, abs=1e-5) and gt["uniqueness"] == 1.0 and gt["f1"] == 1.0
    assert "mcc_level_2" not in gt and gt["l0"] < gt["true_l0"]


def test_matching_is_hungarian_and_cached():
    truth = torch.eye(3, 8)
    decoder = torch.stack([truth[1] + 0.1 * truth[0], truth[0], truth[2]])
    m = match(decoder, truth)
    assert sorted(zip(m.latent.tolist(), m.feature.tolist())) == [(0, 1), (1, 0), (2, 2)]
    assert m.best_feature.tolist() == [1, 0, 2]
    assert match(decoder.clone(), truth) is m


def test_a_source_without_ground_truth_is_a_clear_error():
    class Plain(DataSource):
        name = "plain"

    model = ProjectionSAE(torch.eye(3, 8))
    metric = next(m for m in METRICS if m.name == "mcc")()
    with pytest.raises(UserError, match="needs a data source with ground-truth features"):
        metric.compute(model, EvalContext(data=Plain(None), device=torch.device("cpu")))

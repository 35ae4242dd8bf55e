"""The group-orthogonal SAE plugin (seed 002): losses, pattern cache, reassignment, metrics."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hsae.config.spec import RouterSpec
from hsae.data import Batch
from hsae.loss import StepContext
from hsae.metric import EvalContext
from hsae.model import Codes, SAEOutput
from hsae_group_ortho.contrastive import info_nce
from hsae_group_ortho.groups import GroupState
from hsae_group_ortho.hierarchy import GroupHierarchyMetric
from hsae_group_ortho.losses import GroupOrthoLoss, GroupSparsityLoss
from hsae_group_ortho.model import GroupOrthoSAE
from hsae_group_ortho.patterns import PatternCache, PatternCacheCallback, batch_patterns
from hsae_group_ortho.probing import SparseProbingMetric
from hsae_group_ortho.reassign import GroupReassignCallback, plan_moves
from hsae_group_ortho.separation import separation
from hsae_standard.topk import TopKRouter

CTX = StepContext(step=0, total_steps=1)


def grouped_model(d_in: int = 4, d_sae: int = 4, n_groups: int = 2, active_groups: int | None = None) -> GroupOrthoSAE:
    router = RouterSpec("topk", TopKRouter.Config(k=3))
    config = GroupOrthoSAE.Config(d_sae=d_sae, n_groups=n_groups, active_groups=active_groups or n_groups, router=router)
    return GroupOrthoSAE(config, d_in=d_in)


def set_directions(model: GroupOrthoSAE, rows: list[list[float]]) -> None:
    with torch.no_grad():
        model.decoder.W_dec.copy_(torch.tensor(rows))


# --------------------------------------------------------------------------- losses
def test_ortho_loss_is_zero_for_orthogonal_groups_and_positive_otherwise():
    model = grouped_model()  # latents 0, 1 in group 0; latents 2, 3 in group 1
    loss = GroupOrthoLoss(GroupOrthoLoss.Config())
    # Within a group directions may overlap; across groups they are orthogonal.
    set_directions(model, [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 2, 3]])
    assert loss(None, None, model, CTX).item() == 0.0
    set_directions(model, [[1, 0, 0, 0], [1, 1, 0, 0], [0.5, 0, 1, 0], [0, 0, 2, 3]])
    positive = loss(None, None, model, CTX).item()
    cos = 0.5 / math.sqrt(1.25)  # latent 2 against latent 0 (and against latent 1: cos / sqrt(2))
    assert positive == pytest.approx((cos**2 + cos**2 / 2) * 2 / 8)  # 8 ordered cross-group pairs
    assert loss.config.coefficient == 0.01


def test_group_sparsity_prefers_activity_in_few_groups():
    model = grouped_model()
    loss = GroupSparsityLoss(GroupSparsityLoss.Config())

    def value(codes: list[float]) -> float:
        out = SAEOutput(torch.zeros(1, 4), Codes.from_dense(torch.tensor([codes])))
        return loss(None, out, model, CTX).item()

    assert value([1, 1, 0, 0]) == pytest.approx(math.sqrt(2), rel=1e-6)  # one group
    assert value([1, 0, 1, 0]) == pytest.approx(2.0, rel=1e-6)  # two groups, same code mass
    assert value([0, 0, 0, 0]) == 0.0


def test_encoder_group_mask_keeps_only_the_best_groups():
    model = grouped_model(d_in=8, d_sae=8, n_groups=4, active_groups=1)
    x = torch.randn(16, 8)
    out = model(x)
    groups = model.groups.assignment[out.codes.cols]
    for row in range(16):
        assert groups[out.codes.rows == row].unique().numel() <= 1


def test_infonce_definition():
    z = torch.eye(4)
    tau = 0.5
    expected = math.log(math.exp(1 / tau) + 3) - 1 / tau  # each view picks its partner among 4
    assert info_nce(z, z, tau).item() == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- pattern cache
def test_pattern_cache_never_exceeds_its_bound_and_evicts_the_least_frequent():
    cache = PatternCache(capacity=3)
    cache.add({"a": 5, "b": 1, "c": 3}, step=0)
    cache.add({"d": 2}, step=1)  # full: b (count 1) goes
    assert set(cache.entries) == {"a", "c", "d"} and cache.evicted == 1
    cache.add({"e": 2}, step=2)  # d and e tie at 2: d, seen less recently, goes
    assert set(cache.entries) == {"a", "c", "e"}
    rng = np.random.default_rng(0)
    for step in range(3, 200):
        cache.add({f"p{int(k)}": 1 for k in rng.integers(0, 50, 7)} | {"a": 1}, step)
        assert len(cache) <= 3
    assert "a" in cache.entries and cache.top(1) == [("a", 5 + 197)]


def test_pattern_cache_callback_counts_patterns_per_group_and_round_trips():
    assert [dict(c) for c in batch_patterns(np.array([0, 0, 0, 1, 1]), np.array([5, 1, 9, 1, 5]),
                                            np.array([0, 0, 1, 1, 0, 0, 1, 0, 0, 1]), 2)] == [{"1,5": 2}, {"9": 1}]
    model = grouped_model(d_in=8, d_sae=8, n_groups=2)
    callback = PatternCacheCallback(PatternCacheCallback.Config(capacity=2))
    for step in range(5):
        codes = Codes.from_dense(torch.rand(32, 8) * (torch.rand(32, 8) < 0.4))
        callback.on_step_end(None, SAEOutput(torch.zeros(32, 8), codes), model, StepContext(step, 5))
        assert all(len(cache) <= 2 for cache in callback.caches)
    restored = PatternCacheCallback(PatternCacheCallback.Config(capacity=2))
    restored.load_extra_state(callback.extra_state())
    assert restored.extra_state() == callback.extra_state()


# --------------------------------------------------------------------------- reassignment
def test_plan_moves_respects_the_cap_and_group_size_bounds():
    assignment = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    momentum = torch.zeros(9, 3)
    momentum[3:, 0] = torch.linspace(1, 0.5, 6)  # everyone outside group 0 wants to join it
    latents, targets = plan_moves(momentum, assignment, threshold=0.1, max_moves=10, min_size=2, max_size=5)
    moved = assignment.clone()
    moved[latents] = targets
    sizes = torch.bincount(moved, minlength=3)
    assert sizes.tolist() == [5, 2, 2] and latents.tolist() == [3, 6]  # largest momenta first, bounds hold
    latents, _ = plan_moves(momentum, assignment, threshold=0.1, max_moves=1, min_size=0, max_size=9)
    assert latents.tolist() == [3]


def _reassigner(momentum: float, threshold: float = 0.25, **kw) -> tuple[GroupReassignCallback, GroupState]:
    """Four groups with centroids at 0, 90, 180 and 270 degrees; latent i sits at its group's centroid."""
    state = GroupState(d_sae=8, d_in=2, n_groups=4)
    state.centroids.copy_(torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]]))
    state.centroid_mass.fill_(1.0)
    callback = GroupReassignCallback(GroupReassignCallback.Config(momentum=momentum, threshold=threshold, **kw))
    callback.profiles = state.centroids[state.assignment].clone()
    callback.mass = torch.ones(8)
    callback.momentum = torch.zeros(8, 4)
    return callback, state


def _at(degrees: float) -> torch.Tensor:
    return torch.tensor([math.cos(math.radians(degrees)), math.sin(math.radians(degrees))])


def test_momentum_migration_is_damped():
    # Latent 0 (group 0) drifts to 60 degrees: group 1 is nearer by sin 60 - cos 60 = 0.366.
    calls_until_move = {}
    for beta in (0.0, 0.9):
        callback, state = _reassigner(beta)
        callback.profiles[0] = _at(60)
        for call in range(1, 30):
            if callback.reassign(state):
                calls_until_move[beta] = call
                break
        assert state.assignment[0] == 1 and callback.momentum[0].abs().sum() == 0  # restarts after the move
    pref = math.sin(math.radians(60)) - math.cos(math.radians(60))
    assert calls_until_move[0.0] == 1  # undamped: the first signal moves it
    assert calls_until_move[0.9] == math.ceil(math.log(1 - 0.25 / pref) / math.log(0.9))  # 11 calls

    # A preference that flips between two groups never builds up enough momentum.
    callback, state = _reassigner(0.9)
    for call in range(60):
        callback.profiles[0] = _at(60 if call % 2 else -60)
        assert callback.reassign(state) == 0
    assert state.assignment[0] == 0


def test_reassignment_respects_group_size_bounds_and_the_cap():
    callback, state = _reassigner(0.0, threshold=0.01, max_moves=1, min_size=1, max_size=3)
    callback.profiles[:] = _at(10)  # every latent is nearest group 0
    history = []
    for _ in range(10):
        history.append(callback.reassign(state))
        sizes = state.sizes()
        assert sizes.min() >= 1 and sizes.max() <= 3
    assert max(history) == 1 and state.sizes().tolist()[0] == 3  # one move per call until group 0 is full
    assert int(callback.moves) == sum(history)


def test_group_losses_need_a_grouped_model():
    from hsae_standard.sae import StandardSAE

    from hsae.engine.requirements import requirement_problems

    model = StandardSAE(StandardSAE.Config(d_sae=8, router=RouterSpec("topk", TopKRouter.Config(k=2))), d_in=4)
    (problem,) = requirement_problems(model, {"losses.ortho": GroupOrthoLoss(GroupOrthoLoss.Config())})
    assert problem.path == "losses.ortho" and "needs a model that provides 'latent_groups'" in problem.message
    assert 'type = "group-ortho-sae"' in problem.message


# --------------------------------------------------------------------------- metrics
def test_sparse_probing_finds_a_planted_latent():
    g = torch.Generator().manual_seed(0)
    labels = torch.rand(2000, 3, generator=g) < 0.3
    codes = torch.rand(2000, 16, generator=g) * (torch.rand(2000, 16, generator=g) < 0.2)
    codes[:, 7] = labels[:, 1].float()  # latent 7 is exactly concept 1
    metric = SparseProbingMetric(SparseProbingMetric.Config(ks=(1, 2)))
    metric.start(None)
    metric.update(Batch(torch.randn(2000, 4, generator=g), labels.float()), SAEOutput(torch.zeros(1), Codes.from_dense(codes)), None)
    ctx = EvalContext(data=SimpleNamespace(ground_truth=lambda: None), device=torch.device("cpu"))
    result = metric.compute(None, ctx)
    assert result["n_tasks"] == 3
    assert result["sae_top_1_test_accuracy"] > 0.6  # concept 1 perfectly, the others near chance
    details = [metric.task(p, codes.numpy(), np.zeros((2000, 1)), labels.numpy(), 1000) for p in range(3)]
    assert details[1]["sae_top_1_test_accuracy"] == 1.0 and details[0]["sae_top_1_test_accuracy"] < 0.7


def test_group_hierarchy_ari_is_one_for_groups_that_are_the_true_subtrees():
    from hsae.config.spec import DataSpec
    from hsae_synthetic.source import HierarchicalSyntheticSource

    source = DataSpec("hierarchical-synthetic", HierarchicalSyntheticSource.example_config(None)).build(seed=0)
    gt = source.ground_truth()  # 15 features under 3 roots
    model = grouped_model(d_in=source.d_in, d_sae=gt.n_features, n_groups=3)
    set_directions(model, gt.directions.tolist())
    roots = torch.tensor([0, 1, 2, 0, 0, 0, 1, 1, 2, 2, 2, 1, 1, 1, 1])
    batch = next(source.batches(4096, with_labels=True))
    ctx = EvalContext(data=source, device=torch.device("cpu"))

    def ari(assignment: torch.Tensor) -> dict[str, float]:
        model.groups.assignment.copy_(assignment)
        metric = GroupHierarchyMetric(GroupHierarchyMetric.Config())
        metric.start(ctx)
        metric.update(batch, SAEOutput(batch.x, Codes.from_dense(batch.labels)), model)  # latent i fires with feature i
        return metric.compute(model, ctx)

    perfect = ari(roots)
    assert perfect["ari"] == pytest.approx(1.0) and perfect["scored_fraction"] == 1.0
    assert ari(torch.arange(15) % 3)["ari"] < 0.5


def test_feature_separation_across_and_within_groups():
    directions = torch.tensor([[1.0, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0, 0.6, 0.8]])
    out = separation(directions, torch.tensor([0, 0, 1, 1]))
    assert out["within_group_max_cos"] == pytest.approx(0.8)
    assert out["cross_group_max_cos"] == pytest.approx((0 + 0.36 + 0 + 0.36) / 4)
    assert out["max_cos"] == pytest.approx(0.8)

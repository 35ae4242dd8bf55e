"""The ``saelens-synthetic`` source: hsae's sampler draws from SAELens's own model, exactly.

The benchmark ``benchmarks/quality_per_minute.py`` trains hsae on this source and SAELens
on the model's own ``sample``; both are only comparable if the distributions agree.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sae_lens")

from hsae_synthetic.saelens_source import SAELensModelConfig, SAELensSyntheticSource  # noqa: E402


@pytest.fixture(scope="module")
def source() -> SAELensSyntheticSource:
    model = SAELensModelConfig(n_features=1024, d_model=64, n_roots=16, branching_factor=4, depth=2)
    return SAELensSyntheticSource(SAELensSyntheticSource.Config(model=model), seed=3)


def test_hsae_sampler_matches_saelens_sampling_of_the_same_model(source):
    x, acts = source.sample(32768, step=0)
    ours = acts.dense() > 0
    torch.manual_seed(0)
    their_x, their_acts = source.model.sample_with_features(8192)
    theirs = their_acts > 0
    assert abs(ours.sum(1).float().mean() - theirs.sum(1).float().mean()) < 0.3
    # Per-feature frequencies of the frequent features (roots, children, independent ones).
    freq_ours, freq_theirs = ours.float().mean(0), theirs.float().mean(0)
    frequent = freq_theirs > 0.02
    assert frequent.sum() > 40
    assert (freq_ours[frequent] - freq_theirs[frequent]).abs().max() < 0.03
    # A child fires only with its parent; exclusive siblings never fire together.
    child = int((source.parent >= 0).nonzero()[0])
    assert not (ours[:, child] & ~ours[:, int(source.parent[child])]).any()
    siblings = (source.parent == source.parent[child]).nonzero().squeeze(1)
    assert int(ours[:, siblings].sum(1).max()) <= 1
    # x = activations @ directions + bias, with SAELens's vectors and bias.
    assert torch.allclose(x, source.model.feature_dict(acts.dense()), atol=1e-4)
    assert torch.allclose(x.mean(0), their_x.mean(0), atol=0.1)


def test_batches_are_stateless_in_the_step_and_ground_truth_is_the_model(source):
    stream = source.batches(64, start_step=0, with_labels=True)
    batches = [next(stream) for _ in range(3)]
    again = next(source.batches(64, start_step=2, with_labels=True))
    assert torch.equal(again.x, batches[2].x) and torch.equal(again.labels, batches[2].labels)
    assert torch.equal(source.ground_truth().directions, source.model.feature_dict.feature_vectors.detach())
    assert not torch.equal(next(source.batches(64, split="eval")).x, batches[0].x)

"""The seed's library API: HierarchicalDataGenerator, from_config, create_custom_tree_config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hsae.errors import RecipeError, UserError
from hsae_synthetic import HierarchicalDataGenerator, HierarchyConfig, Tree, create_custom_tree_config, load_params

TREES = Path(__file__).resolve().parents[1] / "recipes" / "trees"


def test_generate_batch_is_sum_of_active_directions():
    gen = HierarchicalDataGenerator(str(TREES / "tree.json"), d_model=64, random_seed=0)
    data, acts = gen.generate_batch(3000, return_activations=True)
    assert data.shape == (3000, 64) and acts.shape == (3000, 15)
    assert torch.allclose(data, acts @ gen.feature_directions, atol=1e-5)
    assert gen.generate_batch(10).shape == (10, 64)
    assert torch.equal(gen.true_feats, gen.feature_directions)


def test_noise_is_gaussian_with_the_given_std():
    gen = HierarchicalDataGenerator(str(TREES / "tree.json"), d_model=128, noise_level=0.05, random_seed=1)
    x, acts = gen.generate_sparse(4000)
    residual = x - acts.dense() @ gen.feature_directions
    assert residual.std().item() == pytest.approx(0.05, rel=0.02)
    assert abs(residual.mean().item()) < 0.001


def test_same_seed_same_data_and_directions():
    a = HierarchicalDataGenerator(str(TREES / "tree.json"), random_seed=7)
    b = HierarchicalDataGenerator(str(TREES / "tree.json"), random_seed=7)
    c = HierarchicalDataGenerator(str(TREES / "tree.json"), random_seed=8)
    assert torch.equal(a.feature_directions, b.feature_directions)
    assert torch.equal(a.generate_batch(500), b.generate_batch(500))
    assert not torch.equal(a.feature_directions, c.feature_directions)
    unseeded = HierarchicalDataGenerator(str(TREES / "tree.json"))
    assert not torch.equal(unseeded.feature_directions, a.feature_directions)


def test_from_config_resolves_the_tree_relative_to_the_params_file(tmp_path, monkeypatch):
    shutil.copy(TREES / "simple_params.json", tmp_path / "simple_params.json")
    shutil.copy(TREES / "simple_hierarchy.json", tmp_path / "simple_hierarchy.json")
    monkeypatch.chdir(tmp_path.parent)  # not the params file's folder
    gen = HierarchicalDataGenerator.from_config(tmp_path / "simple_params.json")
    assert gen.n_features == 3 and gen.d_model == 256
    assert gen.get_ground_truth_l0() == pytest.approx(0.48)
    unit = gen.feature_directions / gen.feature_directions.norm(dim=1, keepdim=True)
    assert torch.allclose(unit @ unit.T, torch.eye(3), atol=1e-5)  # feature_correlation 0


def test_params_file_problems_are_all_reported(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"tree_config_file": "t.json", "d_model": "big", "noise": 0.1, "feature_correlation": 1.5,
                                "hierarchy": {"n_roots": 0}}))
    with pytest.raises(RecipeError) as info:
        load_params(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}: $.d_model: expected an integer, got \"big\"",
        f"{path}: $.noise: unknown key; did you mean 'noise_level'?",
        f"{path}: $.feature_correlation: 1.5 is not in [0, 1)",
        f"{path}: $.hierarchy.n_roots: must be at least 1, got 0",
        f"{path}: $: give only one of tree_config_file, hierarchy",
    ]


def test_statistics_analytic_and_empirical_agree():
    gen = HierarchicalDataGenerator(str(TREES / "tree.json"), d_model=32, random_seed=2, binary_features=False)
    n = 100_000
    stats = gen.get_feature_statistics(n)
    freq = np.array(stats["feature_frequencies"])
    expected = gen.get_feature_frequencies().numpy()
    assert np.all(np.abs(freq - expected) <= 4 * np.sqrt(expected * (1 - expected) / n))
    mean, std = gen.get_expected_activation_stats()
    np.testing.assert_allclose(stats["feature_means"], mean.numpy(), atol=4 * std.max().item() / np.sqrt(n))
    np.testing.assert_allclose(stats["feature_stds"], std.numpy(), rtol=0.05)
    assert stats["expected_l0"] == pytest.approx(0.618)
    assert abs(stats["empirical_l0"] - 0.618) < 0.02
    assert stats["feature_names"][:3] == ["A", "B", "C"]


def test_tree_printout_and_config():
    gen = HierarchicalDataGenerator(str(TREES / "exclusive_groups.json"), d_model=16, random_seed=0)
    assert gen.tree_summary().splitlines()[1] == "root (gate) p=1 P(active)=1"
    assert gen.get_tree_config()["children"][0]["mutually_exclusive_children"] is True
    assert "expected_l0=0.6" in repr(gen)


def test_generated_hierarchy_needs_random_directions():
    small = HierarchyConfig(n_features=300, n_roots=10, branching_factor=3, depth=2, max_prob=0.3, min_prob=0.01)
    gen = HierarchicalDataGenerator(small, d_model=64, orthogonal_features=False, random_seed=0)
    assert gen.n_features == 300
    with pytest.raises(UserError, match="orthogonal_features needs n_features <= d_model"):
        HierarchicalDataGenerator(small, d_model=64)


def test_create_custom_tree_config_follows_the_seed_rules():
    tree = create_custom_tree_config(n_levels=3, branching_factor=2, root_prob=0.1, decay_factor=0.7,
                                     mutually_exclusive_prob=0.3, seed=0)
    assert tree == create_custom_tree_config(3, 2, 0.1, 0.7, 0.3, seed=0)
    assert tree["active_prob"] == 1.0 and tree["is_read_out"] is False and tree["children"]
    parsed = Tree(tree)
    levels = parsed.depth[parsed.feature_node]
    for node, level in zip(parsed.feature_node, levels):
        assert parsed.prob[node] == pytest.approx(0.1 * 0.7 ** (level - 1))
    assert levels.max() <= 3 and parsed.child_count.max() <= 8
    # Exclusive groups stay valid even when the probabilities would sum above 1.
    big = create_custom_tree_config(n_levels=2, branching_factor=8, root_prob=0.9, decay_factor=1.0,
                                    mutually_exclusive_prob=1.0, seed=1)
    Tree(big)


def test_seed_python_example_runs(tmp_path, monkeypatch):
    """The seed's "Custom Tree Generation" snippet, with hsae_synthetic in place of data_generator."""
    monkeypatch.chdir(tmp_path)
    tree = create_custom_tree_config(n_levels=3, branching_factor=2, root_prob=0.1, decay_factor=0.7,
                                     mutually_exclusive_prob=0.3)
    with open("custom_tree.json", "w") as f:
        json.dump(tree, f, indent=2)
    params = {"tree_config_file": "custom_tree.json", "d_model": 256, "feature_correlation": 0.05, "noise_level": 0.01,
              "orthogonal_features": True, "feature_scale_variation": 0.05, "random_seed": 42}
    with open("custom_params.json", "w") as f:
        json.dump(params, f, indent=2)
    generator = HierarchicalDataGenerator.from_config("custom_params.json")
    data, activations = generator.generate_batch(1000, return_activations=True)
    assert data.shape == (1000, 256) and activations.shape == (1000, Tree(tree).n_features)

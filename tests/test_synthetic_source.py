"""The ``hierarchical-synthetic`` data source: plugin registration, exact resume, shards, ground truth."""

from __future__ import annotations

import itertools
from pathlib import Path

import attrs
import pytest
import torch

import hsae_synthetic
from hsae.data import Shard
from hsae.errors import RecipeError
from hsae.plugins import PluginManager
from hsae_synthetic import HierarchyConfig, Tree
from hsae_synthetic.source import HierarchicalSyntheticSource as Source

TREES = Path(__file__).resolve().parents[1] / "recipes" / "trees"
TREE = str(TREES / "tree.json")


def take(it, n):
    return list(itertools.islice(it, n))


def test_plugin_registers_source_metrics_and_command():
    manager = PluginManager()
    manager.register(hsae_synthetic)
    registry = manager.registry
    assert registry.get("data", "hierarchical-synthetic") is Source
    assert set(registry.names("metric")) >= {"mcc", "feature-f1", "l0-vs-true", "shrinkage", "absorption", "ground-truth"}
    import argparse

    parser = argparse.ArgumentParser()
    manager.pm.hook.hsae_add_commands(subparsers=parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", "--config", "p.json"])
    assert args.handler.__name__ == "run_generate" and args.config == "p.json"


def test_every_config_key_has_a_default():
    cfg = Source.Config()
    assert attrs.has(Source.Config) and cfg.tree_file is None and cfg.hierarchy is None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.d_model = 3  # type: ignore[misc]


def test_resume_at_step_s_yields_the_uninterrupted_stream():
    src = Source(Source.Config(tree_file=TREE, d_model=32, noise_level=0.01), seed=5)
    full = take(src.batches(256, with_labels=True), 6)
    resumed = take(Source(src.config, seed=5).batches(256, start_step=3, with_labels=True), 3)
    for a, b in zip(full[3:], resumed):
        assert torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels)
    assert [b.meta["step"] for b in resumed] == [3, 4, 5]
    assert not torch.equal(full[0].x, full[1].x)


def test_shards_splits_and_seeds():
    cfg = Source.Config(tree_file=TREE, d_model=32, world_seed=11)
    a, b = Source(cfg, seed=0), Source(cfg, seed=1)
    assert torch.equal(a.ground_truth().directions, b.ground_truth().directions)  # same world
    r0 = next(a.batches(512, shard=Shard(0, 2)))
    r1 = next(a.batches(512, shard=Shard(1, 2)))
    assert not torch.equal(r0.x, r1.x)  # each rank reads its own data
    assert not torch.equal(next(a.batches(512)).x, next(b.batches(512)).x)  # runs differ in training data
    ev_a, ev_b = next(a.batches(512, split="eval")), next(b.batches(512, split="eval"))
    assert torch.equal(ev_a.x, ev_b.x)  # and share held-out data
    assert not torch.equal(ev_a.x, next(a.batches(512)).x)
    assert len(take(a.batches(8, split="eval"), 50)) == 50
    assert not torch.equal(Source(Source.Config(tree_file=TREE, d_model=32), seed=0).ground_truth().directions,
                           Source(Source.Config(tree_file=TREE, d_model=32), seed=1).ground_truth().directions)


def test_labels_are_the_true_activations_and_ground_truth_matches_the_tree():
    src = Source(Source.Config(tree_file=TREE, d_model=48), seed=0)
    gt = src.ground_truth()
    batch = next(src.batches(2048, with_labels=True))
    assert batch.labels.shape == (2048, 15) and src.d_in == 48
    assert torch.allclose(batch.x, batch.labels @ gt.directions, atol=1e-5)
    assert next(src.batches(4)).labels is None
    tree = Tree.load(TREE)
    assert gt.directions.shape == (15, 48) and gt.names == tree.names
    assert gt.parent.tolist() == tree.feature_parent.tolist() and gt.level.tolist() == tree.feature_level.tolist()
    assert gt.tree["children"][1]["id"] == "B"
    assert src.describe()["expected_l0"] == pytest.approx(0.618)


def test_generated_hierarchy_source():
    cfg = Source.Config(hierarchy=HierarchyConfig(n_features=500, n_roots=20, branching_factor=3, depth=2),
                        d_model=64, orthogonal_features=False, feature_correlation=0.0, feature_scale_variation=0.0)
    src = Source(cfg, seed=0)
    batch = next(src.batches(1024, with_labels=True))
    assert batch.labels.shape == (1024, 500)
    assert torch.allclose(batch.x, batch.labels @ src.ground_truth().directions, atol=1e-4)
    assert src.ground_truth().level.max().item() == 2


def test_config_problems_are_reported_together():
    with pytest.raises(RecipeError) as info:
        Source(Source.Config(tree_file=TREE, hierarchy=HierarchyConfig(n_roots=0), noise_level=-1, feature_correlation=1.0))
    assert [str(p) for p in info.value.problems] == [
        "set exactly one of tree_file (a JSON tree) and hierarchy (a generated forest)",
        "hierarchy.n_roots: must be at least 1, got 0",
        "feature_correlation: 1.0 is not in [0, 1)",
        "noise_level: -1 must be >= 0",
    ]
    with pytest.raises(RecipeError, match="set exactly one of"):
        Source(Source.Config())


def test_config_round_trips_through_the_recipe_converter(tmp_path):
    from hsae.config.converter import make_converter

    (tmp_path / "trees").mkdir()
    (tmp_path / "trees" / "mine.json").write_text((TREES / "simple_hierarchy.json").read_text())
    conv = make_converter(tmp_path)  # a recipe in tmp_path
    cfg = conv.structure({"tree_file": "trees/mine.json", "d_model": 8}, Source.Config)
    assert cfg.tree_file == tmp_path / "trees" / "mine.json"
    assert Source(cfg).world.n_features == 3
    nested = conv.structure({"hierarchy": {"n_features": 40, "n_roots": 4, "branching_factor": 3}}, Source.Config)
    assert nested.hierarchy == HierarchyConfig(n_features=40, n_roots=4, branching_factor=3)
    assert conv.structure(conv.unstructure(nested), Source.Config) == nested


def test_missing_tree_file_points_at_its_line(tmp_path, cli):
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\ntype = "hierarchical-synthetic"\nd_model = 16\ntree_file = "nope.json"\n\n'
                      '[model]\ntype = "sae"\nd_sae = 32\n')
    code, _, err = cli("validate", recipe)
    assert code == 2 and f"r.toml:4: data.tree_file: {tmp_path / 'nope.json'}: no such tree file" in err

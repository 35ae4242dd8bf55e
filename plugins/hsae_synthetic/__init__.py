"""Hierarchical synthetic data (seed 000): trees of sparse features, a fast sampler, ground truth.

Library API (the seed's names)::

    from hsae_synthetic import HierarchicalDataGenerator, create_custom_tree_config
    gen = HierarchicalDataGenerator.from_config("recipes/trees/simple_params.json")
    data, activations = gen.generate_batch(1000, return_activations=True)

Plugin contributions: the data source ``hierarchical-synthetic``, the metrics ``mcc``,
``feature-f1``, ``l0-vs-true``, ``shrinkage``, ``absorption`` and ``ground-truth`` (all of
them from one pass), and the command ``hsae generate``.
"""

from __future__ import annotations

from hsae.hookspecs import hookimpl
from hsae_synthetic.directions import make_directions, mean_pairwise_cosine
from hsae_synthetic.generator import HierarchicalDataGenerator, as_tree
from hsae_synthetic.hierarchy import HierarchyConfig, create_custom_tree_config, generate_hierarchy
from hsae_synthetic.output import load_generated
from hsae_synthetic.params import GeneratorParams, load_params
from hsae_synthetic.sampler import SparseActivations, TreeSampler
from hsae_synthetic.tree import Tree, validate_tree
from hsae_synthetic.world import SyntheticBatch, SyntheticWorld

__all__ = [
    "GeneratorParams", "HierarchicalDataGenerator", "HierarchyConfig", "SparseActivations", "SyntheticBatch",
    "SyntheticWorld", "Tree", "TreeSampler", "as_tree", "create_custom_tree_config", "generate_hierarchy",
    "load_generated", "load_params", "make_directions", "mean_pairwise_cosine", "validate_tree",
]


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001 - hsae.registry.Registry
    from hsae_synthetic.metrics import METRICS
    from hsae_synthetic.source import HierarchicalSyntheticSource

    registry.add(HierarchicalSyntheticSource)
    for metric in METRICS:
        registry.add(metric)


@hookimpl
def hsae_add_commands(subparsers) -> None:  # noqa: ANN001 - argparse subparsers
    from hsae_synthetic.cli import add_generate_parser

    add_generate_parser(subparsers)

"""Hierarchical synthetic data: trees of sparse features, a fast sampler, ground truth.

Library API (the seed's names)::

    from hsae_synthetic import HierarchicalDataGenerator, create_custom_tree_config
    gen = HierarchicalDataGenerator.from_config("recipes/trees/simple_params.json")
    data, activations = gen.generate_batch(1000, return_activations=True)

Plugin contributions: the data sources ``hierarchical-synthetic`` and ``saelens-synthetic``
(SAELens's ``SyntheticModel``, needs sae-lens), the metrics ``mcc``,
``feature-f1``, ``l0-vs-true``, ``shrinkage``, ``absorption`` and ``ground-truth`` (all of
them from one pass), and the command ``hsae generate``.
"""

from __future__ import annotations

import importlib
from typing import Any

from hsae.hookspecs import hookimpl

# The library API is imported on first use, so that loading the plugin (``hsae --help``)
# does not import torch: name -> module that defines it.
_API = {
    "make_directions": "directions", "mean_pairwise_cosine": "directions",
    "HierarchicalDataGenerator": "generator", "as_tree": "generator",
    "HierarchyConfig": "hierarchy", "create_custom_tree_config": "hierarchy", "generate_hierarchy": "hierarchy",
    "load_generated": "output",
    "GeneratorParams": "params", "load_params": "params",
    "SparseActivations": "sampler", "TreeSampler": "sampler",
    "Tree": "tree", "validate_tree": "tree",
    "SyntheticBatch": "world", "SyntheticWorld": "world",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001 - hsae.registry.Registry
    from hsae_synthetic.metrics import METRICS
    from hsae_synthetic.saelens_source import SAELensSyntheticSource
    from hsae_synthetic.source import HierarchicalSyntheticSource

    registry.add(HierarchicalSyntheticSource)
    registry.add(SAELensSyntheticSource)
    for metric in METRICS:
        registry.add(metric)


@hookimpl
def hsae_add_commands(subparsers) -> None:  # noqa: ANN001 - argparse subparsers
    from hsae_synthetic.cli import add_generate_parser

    add_generate_parser(subparsers)

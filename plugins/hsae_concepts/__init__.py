"""Concept features and classifier datasets (seed 004): labelled sentences to a trained probe.

Plugin contributions: the pipeline ``concept-features`` (s0 sentences, per-layer SAEs trained
by hsae, s1 feature files, s2 ranked features, s4 datasets, s5 classifiers) and the commands
``hsae generate-datasets`` (s4, with the seed's flags) and ``hsae concepts`` (``features``,
``rank``, ``classify``, ``layer-sweep``, ``demo-data``).
"""

from __future__ import annotations

from hsae.hookspecs import hookimpl


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001 - hsae.registry.Registry
    from hsae_concepts.pipeline import ConceptFeaturesPipeline

    registry.add(ConceptFeaturesPipeline)


@hookimpl
def hsae_add_commands(subparsers) -> None:  # noqa: ANN001 - argparse subparsers
    from hsae_concepts.cli import add_commands

    add_commands(subparsers)

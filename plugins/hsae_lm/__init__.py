"""Real language models: activation capture, WordNet concepts, causal geometry, LM training.

Plugin contributions: the data source ``lm-activations``, the metrics ``lm-splice``
(CE loss score and KL with the SAE spliced into a causal LM) and ``lm-concepts`` (purity and
leakage on concept-labelled prompts), the pipelines ``teacher-lm``
(phase 1: causal geometry from a model's unembedding and WordNet token sets) and
``lm-train`` (a small GPT-2 trained here), and the command ``hsae data``
(``hsae data wordnet``, ``hsae data concepts``).
"""

from __future__ import annotations

from hsae.hookspecs import hookimpl


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001 - hsae.registry.Registry
    from hsae_lm.source import LMActivationsSource
    from hsae_lm.splice_metric import LMSpliceMetric
    from hsae_lm.concept_metric import LMConceptMetric
    from hsae_lm.lm_pipeline import LMTrainPipeline
    from hsae_lm.teacher_pipeline import TeacherLMPipeline

    registry.add(LMActivationsSource)
    registry.add(TeacherLMPipeline)
    registry.add(LMTrainPipeline)
    registry.add(LMSpliceMetric)
    registry.add(LMConceptMetric)


@hookimpl
def hsae_add_commands(subparsers) -> None:  # noqa: ANN001 - argparse subparsers
    from hsae_lm.cli import add_data_parser

    add_data_parser(subparsers)

"""Biography QA data (seed 003, Physics of Language Models 3.1's bioS).

Plugin contributions: the command ``hsae data bios``, which writes synthetic persons with six
attributes (birth date, birth city, university, major, employer, work city), their
biographies and QA pairs in the seed's formats (``train_kg.json``, ``test_kg.json``,
``qa_*.jsonl``). Components (``hsae_register``): the ``bio-slots`` pipeline (seed 003 end to
end, :mod:`hsae_bios.pipeline`) and, from :mod:`hsae_bios.slots`, the ``slot-sae`` model, its
losses and metrics, the ``slot-temperature`` callback, the ``slot-mean-init`` initializer and
the ``slot-clusters`` data source.
"""

from __future__ import annotations

from hsae.hookspecs import hookimpl


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001 - hsae.registry.Registry
    from hsae_bios.pipeline import BioSlotsPipeline
    from hsae_bios.slots import callbacks, init, losses, metrics, model, synthetic

    for component in (
        BioSlotsPipeline,
        model.SlotSAE,
        losses.SlotReconstructionLoss, losses.SlotEntropyLoss, losses.SlotAlignmentLoss,
        losses.SlotIndependenceLoss, losses.SlotValueLoss,
        metrics.SlotAssignmentMetric, metrics.SlotExplainedVarianceMetric, metrics.SlotValueAccuracyMetric,
        callbacks.SlotTemperature, init.SlotMeanInit,
        synthetic.SlotClusters,
    ):
        registry.add(component)


# tryfirst: hsae calls add_commands in get_hookimpls() order, where tryfirst impls come last,
# so ``hsae_lm`` has already created ``hsae data`` when this hook adds ``bios`` under it.
@hookimpl(tryfirst=True)
def hsae_add_commands(subparsers) -> None:  # noqa: ANN001 - argparse subparsers
    from hsae_bios.cli import add_bios_parser

    add_bios_parser(subparsers)

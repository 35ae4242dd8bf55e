"""Recipe schema of the ``group-ortho-comparison`` pipeline: shared data, metrics and training; one table per arm."""

from __future__ import annotations

import attrs

from hsae.config.spec import CallbackSpec, DataSpec, LossSpec, MetricSpec, ModelSpec
from hsae.engine.schema import EvalConfig, TrainConfig, check_training


def _default_losses() -> dict[str, LossSpec]:
    return {"mse": LossSpec("mse")}


@attrs.frozen
class Arm:
    """One model of the comparison: its ``model``, ``losses`` and ``callbacks`` tables.

    Data, metrics, ``[train]`` and ``[eval]`` are shared by every arm, so the arms of one
    seed see the same batches in the same order and are scored on the same eval samples.
    """

    model: ModelSpec
    losses: dict[str, LossSpec] = attrs.field(factory=_default_losses)
    callbacks: dict[str, CallbackSpec] = attrs.field(factory=dict)
    description: str = ""


@attrs.frozen
class ComparisonRecipe:
    """Several SAEs (``arms``) trained on one data source and compared in ``report.md``.

    ``seeds``: each seed retrains every arm (and draws its own synthetic world); empty
    means ``train.seed`` only.
    """

    data: DataSpec
    arms: dict[str, Arm]
    metrics: dict[str, MetricSpec] = attrs.field(factory=dict)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    seeds: tuple[int, ...] = ()
    name: str = ""
    description: str = ""

    def check(self) -> list[tuple[str, str]]:
        problems = check_training(self.train, (), {})
        return problems if self.arms else [*problems, ("arms", "needs at least one arm")]

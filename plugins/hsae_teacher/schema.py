"""Recipe schema of the ``teacher`` pipeline (seed 001, phases 1-4)."""

from __future__ import annotations

from typing import Literal

import attrs

from hsae.config.spec import DataSpec, LossSpec, MetricSpec, ModelSpec
from hsae.engine.schema import EvalConfig, Stage, TrainConfig, check_training
from hsae.tuning import TuningConfig, tuning_problems


@attrs.frozen
class ExtractConfig:
    """Phase 1: how the teacher vectors are estimated from labelled samples.

    ``metric``: the inner product (``data-covariance`` whitens by the data's covariance,
    the synthetic stand-in for the unembedding's). ``n_samples`` labelled samples are
    drawn from the data source's ``teacher`` split (never the training or eval stream).
    """

    metric: Literal["euclidean", "data-covariance"] = "data-covariance"
    n_samples: int = 40_000
    batch_size: int = 4096
    min_samples: int = 20
    max_samples_per_concept: int | None = 4000
    holdout_fraction: float = 0.3


@attrs.frozen
class Arm:
    """One model of the comparison: how it is initialized and trained.

    ``init``: ``random`` (Muchane et al.'s init) or ``teacher`` (phase-1 vectors).
    ``metric``: the teacher's metric for this arm (default: ``[extract].metric``).
    ``stages``: train with the recipe's ``[[stages]]`` (teacher arms) or in one stage.
    ``set``: recipe overrides for this arm only, e.g. ``["model.parent_router.k=1"]``.
    """

    init: Literal["random", "teacher"] = "random"
    metric: Literal["euclidean", "data-covariance"] | None = None
    stages: bool = False
    set: tuple[str, ...] = ()


@attrs.frozen
class Targets:
    """Seed 001's success criteria for teacher vs baseline."""

    purity_gain_pp: float = 10.0
    leakage_reduction: float = 0.20
    steering_leakage_reduction: float = 0.20
    reconstruction_tolerance: float = 0.02  # teacher's 1-EV at most this much above the baseline's


def _default_arms() -> dict[str, Arm]:
    return {"baseline": Arm(init="random"), "teacher": Arm(init="teacher", stages=True)}


@attrs.frozen
class TeacherRecipe:
    """Data, one H-SAE architecture, shared training, and the arms compared in the report.

    ``arms.baseline`` is trained in phase 2, ``arms.teacher`` in phase 3, every other arm
    (the ablations) in phase 4 before the evaluation. ``teacher_losses`` are added to arms
    that train with stages (stage A switches them on).
    """

    data: DataSpec
    model: ModelSpec
    losses: dict[str, LossSpec]
    metrics: dict[str, MetricSpec]
    teacher_losses: dict[str, LossSpec] = attrs.field(factory=dict)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    stages: tuple[Stage, ...] = ()
    extract: ExtractConfig = ExtractConfig()
    arms: dict[str, Arm] = attrs.field(factory=_default_arms)
    targets: Targets = Targets()
    tuning: TuningConfig = TuningConfig()
    seeds: tuple[int, ...] = ()  # empty: train.seed only; each seed draws its own synthetic world
    name: str = ""
    description: str = ""

    def check(self) -> list[tuple[str, str]]:
        problems = check_training(self.train, self.stages, {**self.losses, **self.teacher_losses})
        for required in ("baseline", "teacher"):
            if required not in self.arms:
                problems.append((f"arms.{required}", "is required (phases 2 and 3 train it)"))
        clash = sorted(set(self.losses) & set(self.teacher_losses))
        if clash:
            problems.append(("teacher_losses", f"names also used in losses: {', '.join(clash)}"))
        problems += tuning_problems(self.tuning, self.seeds, self.train.seed)
        if not 0 < self.extract.holdout_fraction < 1:
            problems.append(("extract.holdout_fraction", "must be in (0, 1)"))
        return problems

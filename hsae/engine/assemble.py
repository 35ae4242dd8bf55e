"""Build a Trainer from a :class:`TrainRecipe`: data -> model -> initializers -> losses, metrics."""

from __future__ import annotations

import torch

from hsae.data import DataSource
from hsae.engine.distributed import DistInfo
from hsae.engine.rundir import RunDir
from hsae.engine.schema import TrainRecipe
from hsae.engine.trainer import Trainer


def assemble(
    recipe: TrainRecipe, *, run_dir: RunDir | None = None, dist: DistInfo = DistInfo(),
    data: DataSource | None = None, prefix: str = "",
) -> Trainer:
    """Every component of ``recipe`` built and wired into a Trainer (nothing runs yet).

    ``data`` reuses an already built source (pipelines training several models on one).
    ``prefix`` is the recipe path of ``recipe`` inside a larger pipeline recipe.
    """
    data = data or recipe.data.build(seed=recipe.train.seed)
    torch.manual_seed(recipe.train.seed)  # same initial weights on every rank and every resume
    model = recipe.model.build(d_in=data.d_in)
    for spec in recipe.initializers.values():
        spec.build().apply(model, data)
    return Trainer(
        model=model,
        data=data,
        losses={name: spec.build() for name, spec in recipe.losses.items()},
        metrics={name: spec.build() for name, spec in recipe.metrics.items()},
        callbacks={name: spec.build() for name, spec in recipe.callbacks.items()},
        train=recipe.train,
        eval_cfg=recipe.eval,
        stages=recipe.stages,
        run_dir=run_dir,
        dist=dist,
        stages_path=f"{prefix}stages",
    )

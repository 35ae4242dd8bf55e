"""Build a Trainer from a :class:`TrainRecipe`: data -> model -> initializers -> losses, metrics.

Assembly is everything training does before its first step: every component is built, the
model's capabilities are checked against what losses, metrics and callbacks require, and
losses and callbacks are set up. ``hsae validate`` runs it, so it catches what a run would.
"""

from __future__ import annotations

import torch

from hsae.data import DataSource
from hsae.engine.distributed import DistInfo
from hsae.engine.requirements import check_requirements
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
    losses = {name: spec.build() for name, spec in recipe.losses.items()}
    metrics = {name: spec.build() for name, spec in recipe.metrics.items()}
    callbacks = {name: spec.build() for name, spec in recipe.callbacks.items()}
    check_requirements(model, {**_keyed("losses", losses), **_keyed("metrics", metrics),
                               **_keyed("callbacks", callbacks)})
    trainer = Trainer(
        model=model,
        data=data,
        losses=losses,
        metrics=metrics,
        callbacks=callbacks,
        train=recipe.train,
        eval_cfg=recipe.eval,
        stages=recipe.stages,
        run_dir=run_dir,
        dist=dist,
        stages_path=f"{prefix}stages",
    )
    trainer.setup()
    return trainer


def _keyed(table: str, parts: dict[str, object]) -> dict[str, object]:
    """``{"losses.mse": loss, ...}``: names that stay apart across tables."""
    return {f"{table}.{name}": part for name, part in parts.items()}

"""Per-arm learning-rate selection, fixed before any test metric is seen (the fair protocol).

The rule: every arm trains once per learning rate of ``[tuning].lrs`` with its full budget
(``train.steps``) under a tuning seed of its own (``[tuning].seed``, never one of the
evaluation seeds: a synthetic pipeline draws a separate world from it, a real-model pipeline
a separate SAE init and batch order over the same captured activations), and keeps the
learning rate with the lowest reconstruction error on the data source's ``validation`` split
(normalized MSE, i.e. 1 - EV around the batch mean). Ties go to the smaller learning rate;
a run that diverged (non-finite loss) is never chosen. Purity, leakage and every other test
metric play no part in the choice.

:func:`tune_lr` runs the search for one arm and records it in ``tuning/tuning.json``;
pipelines give it a function that trains the arm at one learning rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import attrs
import torch

from hsae.data import DataSource
from hsae.engine.rundir import RunDir
from hsae.io import read_json, write_json
from hsae.model import SAE

TUNING_DIR = "tuning"  # below the run directory: every grid point's run and tuning.json


@attrs.frozen
class TuningConfig:
    """The learning-rate grid and where it is searched.

    ``lrs``: candidate learning rates (empty: no tuning, every arm uses ``train.lr``).
    ``seed``: the seed the search trains with (keep it out of ``seeds``).
    ``validation_batches`` x ``validation_batch_size``: rows of the validation split scored.
    """

    lrs: tuple[float, ...] = ()
    seed: int = 1000
    validation_batches: int = 8
    validation_batch_size: int = 2048


def tuning_problems(tuning: TuningConfig, seeds: tuple[int, ...], train_seed: int) -> list[tuple[str, str]]:
    """Recipe problems of ``[tuning]``: a tuning seed among the evaluation seeds, a non-positive lr."""
    problems = []
    if tuning.seed in seeds or (not seeds and tuning.seed == train_seed):
        problems.append(("tuning.seed", "must differ from the evaluation seeds (tuning never sees a test world)"))
    if any(lr <= 0 for lr in tuning.lrs):
        problems.append(("tuning.lrs", "learning rates must be positive"))
    return problems


@torch.no_grad()
def validation_loss(model: SAE, data: DataSource, batches: int, batch_size: int, device: torch.device) -> float:
    """Normalized reconstruction error on the ``validation`` split: sum ||x - x_hat||^2 / sum ||x - mean||^2."""
    was_training = model.training
    model.eval()
    error = total = 0.0
    for batch in itertools.islice(data.batches(batch_size, split="validation"), batches):
        x = batch.x.to(device)
        x_hat = model(x).x_hat.float()
        error += float(((x - x_hat) ** 2).sum())
        total += float(((x - x.mean(dim=0, keepdim=True)) ** 2).sum())
    model.train(was_training)
    return error / total if total > 0 else math.nan


def choose_lr(losses: dict[float, float]) -> float:
    """The learning rate with the lowest finite validation loss (the smaller one on a tie)."""
    finite = {lr: loss for lr, loss in losses.items() if math.isfinite(loss)}
    if not finite:
        raise ValueError("every learning rate of the grid diverged")
    return min(finite, key=lambda lr: (finite[lr], lr))


def lr_folder(lr: float) -> str:
    """A run-directory name for one grid point, e.g. ``lr-0.002``."""
    return f"lr-{lr:g}"


RULE = "lowest normalized validation MSE (1 - EV) on the validation split, trained with the tuning seed; ties to the smaller lr"


def grid_record(grid: dict[str, dict[float, float]]) -> dict[str, Any]:
    """``tuning.json``: the whole grid and each arm's choice (JSON keys are strings)."""
    return {
        "rule": RULE,
        "arms": {arm: {"losses": {f"{lr:g}": loss for lr, loss in losses.items()}, "chosen_lr": choose_lr(losses)}
                 for arm, losses in grid.items()},
    }


Fit = Callable[[float, RunDir], Any]  # (lr, run dir) -> a trained Trainer (with .model, .data, .device)


def tune_lr(name: str, tuning: TuningConfig, world: RunDir, fit: Fit, *, resume: bool = False,
            is_main: bool = True) -> float:
    """Arm ``name``'s learning rate: every grid point trained by ``fit`` below ``world`` and scored once.

    Scores are kept in ``<world>/<arm>/lr-<lr>/validation.json`` (reused by later invocations
    unless ``resume``) and the grid in ``<world>/tuning.json``.
    """
    losses = {}
    for lr in tuning.lrs:
        run = world.sub(name).sub(lr_folder(lr))
        scored = run.root / "validation.json"
        if scored.is_file() and not resume:
            losses[lr] = read_json(scored)["validation_nmse"]
            continue
        trainer = fit(lr, run)
        losses[lr] = validation_loss(trainer.model, trainer.data, tuning.validation_batches,
                                     tuning.validation_batch_size, trainer.device)
        if is_main:
            write_json(scored, {"lr": lr, "validation_nmse": losses[lr], "seed": tuning.seed})
    if is_main:
        path = world.root / "tuning.json"
        record = read_json(path) if path.is_file() else {}
        arms = {**record.get("arms", {}), **grid_record({name: losses})["arms"]}
        write_json(path, {**grid_record({}), "seed": tuning.seed, "arms": arms})
    return choose_lr(losses)

"""Per-arm learning-rate selection, fixed before any test metric is seen.

The rule: every arm trains once per learning rate of ``[tuning].lrs`` with its full budget
(``train.steps``) on a synthetic world of its own (``[tuning].seed``, never one of the
evaluation seeds), and keeps the learning rate with the lowest reconstruction error on the
data source's ``validation`` split (normalized MSE, i.e. 1 - EV around the batch mean).
Ties go to the smaller learning rate; a run that diverged (non-finite loss) is never chosen.
Purity, leakage and every other test metric play no part in the choice.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import attrs
import torch

from hsae.data import DataSource
from hsae.model import SAE


TUNING_DIR = "tuning"  # below the run directory: the tuning world's geometry and every grid point's run


@attrs.frozen
class TuningConfig:
    """The learning-rate grid and where it is searched.

    ``lrs``: candidate learning rates (empty: no tuning, every arm uses ``train.lr``).
    ``seed``: the synthetic world the search trains on (keep it out of ``seeds``).
    ``validation_batches`` x ``validation_batch_size``: rows of the validation split scored.
    """

    lrs: tuple[float, ...] = ()
    seed: int = 1000
    validation_batches: int = 8
    validation_batch_size: int = 2048


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


RULE = "lowest normalized validation MSE (1 - EV) on the tuning world's validation split; ties to the smaller lr"


def grid_record(grid: dict[str, dict[float, float]]) -> dict[str, Any]:
    """``tuning.json``: the whole grid and each arm's choice (JSON keys are strings)."""
    return {
        "rule": RULE,
        "arms": {arm: {"losses": {f"{lr:g}": loss for lr, loss in losses.items()}, "chosen_lr": choose_lr(losses)}
                 for arm, losses in grid.items()},
    }

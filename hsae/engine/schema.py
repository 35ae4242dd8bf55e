"""Recipe schema of a training run: the tables ``[train]``, ``[eval]`` and ``[[stages]]``."""

from __future__ import annotations

from typing import Literal

import attrs

from hsae.config.spec import CallbackSpec, DataSpec, InitializerSpec, LossSpec, MetricSpec, ModelSpec


@attrs.frozen
class TrainConfig:
    """Optimizer, schedule, device and bookkeeping of a training run.

    steps: optimizer steps (each sees batch_size rows)
    lr: Adam's learning rate; 3e-3 suits unit-norm decoder rows (benchmarks/quality_per_minute.py: ~2.5x the MCC of 3e-4 at 1M samples)
    lr_warmup_steps: linear warmup from 0 to lr over these steps
    lr_schedule: after warmup: constant, linear or cosine decay to lr * lr_end_fraction
    grad_clip: clip the global gradient norm to this (none: no clipping)
    seed: seeds initialization and the training stream (synthetic worlds too, unless world_seed is set)
    device: auto (CUDA when present, else CPU), cpu, cuda or cuda:N
    precision: auto is bf16 autocast on CUDA and fp32 on CPU
    threads: CPU threads for training (none: the HSAE_THREADS environment variable, else torch's default of one per core)
    unit_norm_decoder: keep decoder directions at unit norm (the gradient along each is removed)
    dead_window_steps: a latent that has not fired for this many steps counts as dead (aux-k revives it)
    log_every: steps per metrics.jsonl line
    eval_every: run the metrics every N steps (0: only at the end)
    checkpoint_every: steps between checkpoints (0: only at the end)
    keep_checkpoints: how many recent checkpoints to keep
    progress: a progress bar on a terminal, plain progress lines elsewhere; false: neither
    tensorboard: also log to run_dir/tensorboard (pip install hsae[tensorboard])
    wandb_project: also log to this Weights & Biases project (pip install hsae[wandb])
    """

    steps: int = 1000
    batch_size: int = 1024
    lr: float = 3e-3
    lr_warmup_steps: int = 0
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    lr_end_fraction: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    threads: int | None = None
    unit_norm_decoder: bool = True
    dead_window_steps: int = 1000
    log_every: int = 50
    eval_every: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    progress: bool = True
    tensorboard: bool = False
    wandb_project: str | None = None


@attrs.frozen
class EvalConfig:
    """How much held-out data the metrics see.

    batches: held-out batches every metric sees
    batch_size: rows per held-out batch
    """

    batches: int = 8
    batch_size: int = 1024


@attrs.frozen
class Stage:
    """A span of training steps with some parameter groups frozen and some losses on.

    ``steps`` omitted means "the rest of ``train.steps``". ``losses`` omitted means all.
    """

    name: str = ""
    steps: int | None = None
    freeze: tuple[str, ...] = ()
    losses: tuple[str, ...] | None = None


def _default_losses() -> dict[str, LossSpec]:
    return {"mse": LossSpec("mse")}


def _default_metrics() -> dict[str, MetricSpec]:
    return {name: MetricSpec(name) for name in ("mse", "explained-variance", "l0", "dead-fraction", "dense-fraction")}


@attrs.frozen
class TrainRecipe:
    """One SAE trained on one data source: the ``train`` pipeline's recipe."""

    data: DataSpec
    model: ModelSpec
    losses: dict[str, LossSpec] = attrs.field(factory=_default_losses)
    metrics: dict[str, MetricSpec] = attrs.field(factory=_default_metrics)
    initializers: dict[str, InitializerSpec] = attrs.field(factory=dict)
    callbacks: dict[str, CallbackSpec] = attrs.field(factory=dict)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    stages: tuple[Stage, ...] = ()
    name: str = ""
    description: str = ""

    def check(self) -> list[tuple[str, str]]:
        """Cross-key problems as ``(path, message)``."""
        return check_training(self.train, self.stages, self.losses)


def check_training(train: TrainConfig, stages: tuple[Stage, ...], losses: dict[str, LossSpec], prefix: str = "") -> list[tuple[str, str]]:
    """Validate ``[train]`` numbers and ``[[stages]]`` against each other."""
    problems = []
    for key in ("steps", "batch_size"):
        if getattr(train, key) <= 0:
            problems.append((f"{prefix}train.{key}", f"must be positive, got {getattr(train, key)}"))
    if train.threads is not None and train.threads < 1:
        problems.append((f"{prefix}train.threads", f"must be at least 1, got {train.threads}"))
    if train.lr <= 0:
        problems.append((f"{prefix}train.lr", f"must be positive, got {train.lr}"))
    total = 0
    for i, stage in enumerate(stages):
        if stage.steps is None and i != len(stages) - 1:
            problems.append((f"{prefix}stages[{i}].steps", "only the last stage may omit steps"))
        total += stage.steps or 0
        for name in stage.losses or ():
            if name not in losses:
                problems.append((f"{prefix}stages[{i}].losses", f"no loss named {name!r}; losses are {', '.join(losses)}"))
    if total > train.steps:
        problems.append((f"{prefix}stages", f"stages add up to {total} steps, more than train.steps = {train.steps}"))
    return problems

"""Learning-rate schedule: linear warmup, then constant, linear or cosine decay."""

from __future__ import annotations

import math


def lr_factor(step: int, total: int, warmup: int, kind: str, end_fraction: float) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) of ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if kind == "linear":
        return 1.0 - (1.0 - end_fraction) * progress
    if kind == "cosine":
        return end_fraction + (1.0 - end_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown lr schedule {kind!r}")

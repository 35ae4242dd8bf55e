"""Summaries over seeds for multi-run reports: mean, sample standard deviation, formatting."""

from __future__ import annotations

import math

import numpy as np


def mean_std(values: list[float | None]) -> dict[str, float]:
    """``{"mean", "std", "n"}`` of the finite values (std with ddof=1; 0 for one value)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(np.mean(finite)), "std": std, "n": len(finite)}

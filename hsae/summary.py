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


def format_mean_std(stat: dict[str, float] | None) -> str:
    """``"0.512 ± 0.03"``, or the mean alone for one value, or ``n/a``."""
    if not stat or stat.get("n", 0) == 0:
        return "n/a"
    return f"{stat['mean']:.4g} ± {stat['std']:.2g}" if stat["n"] > 1 else f"{stat['mean']:.4g}"

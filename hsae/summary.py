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


def paired_effect(treated: list[float], control: list[float], confidence: float = 0.95) -> dict[str, float]:
    """The per-seed differences ``treated - control`` summarized for a verdict.

    ``median`` is the point estimate a single outlier seed cannot move far; ``mean`` with its
    two-sided t-interval (``low``, ``high``) and ``p_value`` (paired t-test) say how sure the
    direction is; ``positive``/``negative`` count the seeds on each side. With one seed the
    interval and p-value are NaN.
    """
    from scipy import stats

    pairs = [(t, c) for t, c in zip(treated, control)
             if t is not None and c is not None and math.isfinite(t) and math.isfinite(c)]
    diffs = np.array([t - c for t, c in pairs], dtype=float)
    n = len(diffs)
    out = {"n": n, "median": math.nan, "mean": math.nan, "low": math.nan, "high": math.nan, "p_value": math.nan,
           "positive": int((diffs > 0).sum()), "negative": int((diffs < 0).sum())}
    if n == 0:
        return out
    out.update(median=float(np.median(diffs)), mean=float(diffs.mean()))
    if n > 1:
        sem = float(diffs.std(ddof=1)) / math.sqrt(n)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
        out.update(low=out["mean"] - half, high=out["mean"] + half)
        out["p_value"] = float(stats.ttest_1samp(diffs, 0.0).pvalue) if sem > 0 else (0.0 if out["mean"] else 1.0)
    return out

"""Core evaluation metrics: reconstruction error, explained variance, sparsity, dead and dense latents."""

from __future__ import annotations

import attrs
import torch

from hsae.metric import EvalContext, Metric


class MSEMetric(Metric):
    """Mean over samples of the summed squared reconstruction error."""

    name = "mse"

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, batch, out, model) -> None:
        self.total += float((out.x_hat.float() - batch.x.float()).pow(2).sum())
        self.count += len(batch)

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        return {"mse": self.total / max(self.count, 1)}


class ExplainedVarianceMetric(Metric):
    """1 - SSE / total variance, the variance taken around the eval set's mean (not zero)."""

    name = "explained-variance"

    def reset(self) -> None:
        self.sse, self.sum, self.sumsq, self.count = 0.0, None, 0.0, 0

    def update(self, batch, out, model) -> None:
        x = batch.x.double()
        self.sse += float((out.x_hat.double() - x).pow(2).sum())
        self.sum = x.sum(0) if self.sum is None else self.sum + x.sum(0)
        self.sumsq += float(x.pow(2).sum())
        self.count += len(batch)

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        if not self.count:
            return {"explained_variance": float("nan")}
        total = self.sumsq - float(self.sum.pow(2).sum()) / self.count
        return {"explained_variance": 1.0 - self.sse / max(total, 1e-12)}


class L0Metric(Metric):
    """Mean number of active latents per sample."""

    name = "l0"

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, batch, out, model) -> None:
        self.total += float(out.codes.l0().sum())
        self.count += len(batch)

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        return {"l0": self.total / max(self.count, 1)}


class _FiringMetric(Metric):
    def reset(self) -> None:
        self.fires, self.count = None, 0

    def update(self, batch, out, model) -> None:
        counts = out.codes.fire_counts().cpu()
        self.fires = counts if self.fires is None else self.fires + counts
        self.count += len(batch)


class DeadFractionMetric(_FiringMetric):
    """Fraction of latents that never fire on the eval batches."""

    name = "dead-fraction"

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        return {"dead_fraction": float((self.fires == 0).float().mean()) if self.fires is not None else float("nan")}


class DenseFractionMetric(_FiringMetric):
    """Fraction of latents that fire on more than ``threshold`` of samples."""

    name = "dense-fraction"

    @attrs.frozen
    class Config:
        """``threshold``: firing rate above which a latent counts as dense."""

        threshold: float = 0.1

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        if self.fires is None:
            return {"dense_fraction": float("nan")}
        return {"dense_fraction": float((self.fires.float() / self.count > self.config.threshold).float().mean())}

"""Concept-level metrics of seed 001: purity, leakage and steering leakage.

Every metric matches latents to concepts the same way for every model, from activations
alone: each true concept (a read-out feature of the data source) is paired one-to-one
with the latent whose firing best agrees with it (Hungarian matching on F1 of
"latent fires" vs "concept active" over the eval batches). The teacher's own assignment
of vectors to concepts is never used.

* ``purity``: P(concept active | its latent fires), mean over concepts, in percentage points.
* ``leakage``: for a top-level (parent) concept, the rate at which its latent fires on
  samples where another parent is active and it is not; for a child concept, the rate at
  which its latent fires while the child's parent is inactive. Reported per group and as
  the mean over all concepts, as a fraction.
* ``steering leakage``: add ``alpha`` times a parent latent's decoder direction to the
  inputs and read the true features back by least squares against the true directions;
  the off-target change (sum of absolute changes of all other features) over the
  on-target change. Mean over parent concepts. The readout is linear, so the ratio does
  not depend on ``alpha`` or the inputs; ``alpha`` only sets the reported shift size.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from hsae.errors import UserError
from hsae.metric import EvalContext, Metric


class ConceptCounts:
    """Co-firing counts of latents and concepts over the eval batches."""

    def __init__(self) -> None:
        self.n = 0
        self.hits = self.fires = self.active = None  # (d_sae, C), (d_sae,), (C,)
        self.parent_leak = self.parent_leak_den = None  # (d_sae, P), (P,)
        self.child_leak = self.child_leak_den = None  # (d_sae, Cc), (Cc,)

    def update(self, fires: torch.Tensor, active: torch.Tensor, roots: torch.Tensor, child_idx: torch.Tensor,
               child_parent: torch.Tensor) -> None:
        f, a = fires.double(), active.double()
        root_active = a[:, roots]
        others = (root_active.sum(1, keepdim=True) - root_active) > 0
        parent_mask = ((1 - root_active) * others).double()
        child_mask = 1 - a[:, child_parent]
        parts = {
            "hits": f.T @ a, "fires": f.sum(0), "active": a.sum(0),
            "parent_leak": f.T @ parent_mask, "parent_leak_den": parent_mask.sum(0),
            "child_leak": f.T @ child_mask, "child_leak_den": child_mask.sum(0),
        }
        for key, value in parts.items():
            old = getattr(self, key)
            setattr(self, key, value.cpu() if old is None else old + value.cpu())
        self.n += fires.shape[0]

    def match(self) -> np.ndarray:
        """``(C,)`` the latent matched to each concept (Hungarian on firing F1)."""
        f1 = (2 * self.hits / (self.fires[:, None] + self.active[None, :]).clamp_min(1)).numpy()
        latents, concepts = linear_sum_assignment(-f1)
        out = np.full(f1.shape[1], -1, dtype=np.int64)
        out[concepts] = latents
        return out


@attrs.frozen
class _Structure:
    roots: torch.Tensor  # read-out features at level 0
    children: torch.Tensor  # read-out features with a read-out parent
    child_parent: torch.Tensor  # that parent, per child


class _ConceptMetric(Metric):
    needs_labels: ClassVar[bool] = True

    def start(self, ctx: EvalContext) -> None:
        self.counts = ConceptCounts()
        self.structure = self._structure(ctx.data)

    def _structure(self, data) -> _Structure:
        truth = data.ground_truth()
        if truth is None:
            raise UserError(f"metric {self.name!r} needs a data source with ground truth (e.g. hierarchical-synthetic)")
        parent = truth.parent.long()
        children = torch.nonzero(parent >= 0).flatten()
        return _Structure(torch.nonzero(parent < 0).flatten(), children, parent[children])

    def update(self, batch, out, model) -> None:
        if batch.labels is None:
            raise UserError(f"metric {self.name!r} needs labelled batches")
        rows, cols = out.codes.active()
        fires = torch.zeros(len(batch), out.codes.d_sae, device=rows.device)
        fires[rows, cols] = 1.0
        s = self.structure
        self.counts.update(fires, batch.labels > 0, s.roots.to(rows.device), s.children, s.child_parent.to(rows.device))


def _bound(metric: _ConceptMetric, ctx: EvalContext) -> ConceptCounts:
    if metric.counts.n == 0:
        raise UserError(f"metric {metric.name!r} saw no eval batches")
    return metric.counts


class PurityMetric(_ConceptMetric):
    """P(concept active | its matched latent fires), mean over concepts, in percentage points."""

    name = "purity"

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        c = _bound(self, ctx)
        latent = torch.from_numpy(c.match())
        concepts = torch.arange(len(latent))
        precision = c.hits[latent, concepts] / c.fires[latent].clamp_min(1)
        s = self.structure
        return {
            "purity_pp": 100 * float(precision.mean()),
            "purity_parents_pp": 100 * float(precision[s.roots].mean()) if len(s.roots) else float("nan"),
            "purity_children_pp": 100 * float(precision[s.children].mean()) if len(s.children) else float("nan"),
        }


class LeakageMetric(_ConceptMetric):
    """Rate at which a concept's latent fires outside its concept's context (other parent / parent off)."""

    name = "leakage"

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        c = _bound(self, ctx)
        latent = torch.from_numpy(c.match())
        s = self.structure
        parent_rates = c.parent_leak[latent[s.roots], torch.arange(len(s.roots))] / c.parent_leak_den.clamp_min(1)
        child_rates = c.child_leak[latent[s.children], torch.arange(len(s.children))] / c.child_leak_den.clamp_min(1)
        both = torch.cat([parent_rates, child_rates])
        return {
            "leakage": float(both.mean()),
            "leakage_parents": float(parent_rates.mean()) if len(parent_rates) else float("nan"),
            "leakage_children": float(child_rates.mean()) if len(child_rates) else float("nan"),
        }


class SteeringLeakageMetric(_ConceptMetric):
    """Off-target over on-target change of the true features when steering along a parent latent."""

    name = "steering-leakage"

    @attrs.frozen
    class Config:
        """``alpha``: steering strength, in units of the decoder direction's (unit) norm."""

        alpha: float = 4.0

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        c = _bound(self, ctx)
        latent = torch.from_numpy(c.match())
        truth = ctx.data.ground_truth()
        directions = truth.directions.double().cpu()  # (n_features, d)
        decoder = torch.nn.functional.normalize(model.decoder_directions().detach().double().cpu(), dim=1)
        readout = torch.linalg.pinv(directions)  # (d, n_features): x -> least-squares feature values
        ratios, shifts = [], []
        for concept in self.structure.roots.tolist():
            delta = self.config.alpha * decoder[latent[concept]] @ readout  # change of every true feature
            on = delta[concept].abs()
            off = delta.abs().sum() - on
            ratios.append(float(off / on.clamp_min(1e-12)))
            shifts.append(float(delta[concept]))
        return {"steering_leakage": float(np.mean(ratios)), "steering_on_target_shift": float(np.mean(shifts))}

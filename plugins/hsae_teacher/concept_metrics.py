"""Concept-level metrics of seed 001: purity, leakage and steering leakage.

Every metric matches latents to concepts the same way for every model, from activations
alone: each true concept (a read-out feature of the data source) is paired one-to-one
with the latent whose firing best agrees with it (Hungarian matching on F1 of
"latent fires" vs "concept active" over the eval batches). The teacher's own assignment
of vectors to concepts is never used.

Firing rule (:func:`firing_matrix`): a latent *fires* on a sample when its value is
``> 0``, as SAELens counts. The H-SAE always keeps its top child of a routed parent, even
below the threshold or at a negative value; such a child is *selected* but does not fire.
Purity and leakage are also reported under the ``any-selected`` rule (every nonzero value
counts), with their own matching, as ``purity_pp_any_selected`` and ``leakage_any_selected``.

Unmatched concepts: when there are fewer latents than concepts, some concepts get no
latent. They are *left out* of every mean (not scored 0), and each metric reports how
many there were as ``unmatched_concepts``.

* ``purity``: P(concept active | its latent fires), mean over matched concepts, in
  percentage points.
* ``leakage``: for a top-level (parent) concept, the rate at which its latent fires on
  samples where another parent is active and it is not; for a child concept, the rate at
  which its latent fires while the child's parent is inactive. Reported per group and as
  the mean over all matched concepts, as a fraction.
* ``steering leakage``: add ``alpha`` times a parent latent's decoder direction to the
  inputs and read the true features back by least squares against the true directions.
  The score is the total off-target change (sum of absolute changes of all other
  features) over the total on-target change, summed over the matched parent concepts
  (not a mean of per-concept ratios, so a concept whose on-target change is near zero
  cannot dominate it). With more features than dimensions the least-squares read-out
  cannot isolate one feature, so even the true direction leaks:
  ``steering_leakage_true_direction_floor`` is the same score for steering along each
  concept's true direction, the value a perfect model would get. The read-out is linear,
  so the scores do not depend on ``alpha`` or the inputs; ``alpha`` only sets the
  reported shift size.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from hsae.errors import UserError
from hsae.metric import EvalContext, Metric
from hsae.model import Codes

FiringRule = Literal["positive", "any-selected"]
FIRING_RULE: FiringRule = "positive"  # the rule every headline number uses
OTHER_RULE: FiringRule = "any-selected"  # reported beside it under the ``_any_selected`` keys
UNMATCHED = -1  # ConceptCounts.match()'s latent for a concept with none


def firing_mask(values: torch.Tensor, rule: FiringRule = FIRING_RULE) -> torch.Tensor:
    """Bool mask of the code ``values`` that count as firing under ``rule``."""
    if rule == "positive":
        return values > 0
    if rule == "any-selected":
        return values != 0
    raise ValueError(f"unknown firing rule {rule!r}; choose 'positive' or 'any-selected'")


def firing_matrix(codes: Codes, rule: FiringRule = FIRING_RULE) -> torch.Tensor:
    """``(B, d_sae)`` float, 1 where a latent fires under ``rule`` (see the module docstring)."""
    if not codes.is_sparse:
        return firing_mask(codes.values, rule).float()
    keep = firing_mask(codes.values, rule)
    out = torch.zeros(codes.n_rows, codes.d_sae, device=codes.values.device)
    out[codes.rows[keep], codes.cols[keep]] = 1.0
    return out


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
        """``(C,)`` the latent matched to each concept (Hungarian on firing F1), ``UNMATCHED`` for none."""
        f1 = (2 * self.hits / (self.fires[:, None] + self.active[None, :]).clamp_min(1)).numpy()
        latents, concepts = linear_sum_assignment(-f1)
        out = np.full(f1.shape[1], UNMATCHED, dtype=np.int64)
        out[concepts] = latents
        return out


def unmatched_count(latent: np.ndarray) -> int:
    """How many concepts :meth:`ConceptCounts.match` left without a latent."""
    return int((latent == UNMATCHED).sum())


def _per_concept(table: torch.Tensor, latent: np.ndarray, concepts: torch.Tensor) -> torch.Tensor:
    """``table[latent[c], i]`` for the ``i``-th of ``concepts``; NaN where ``c`` is unmatched."""
    mine = torch.from_numpy(latent[concepts.numpy()])
    values = table[mine.clamp_min(0), torch.arange(len(concepts))]
    return torch.where(mine >= 0, values, torch.full_like(values, float("nan")))


def concept_purity(c: ConceptCounts, latent: np.ndarray) -> torch.Tensor:
    """``(C,)`` P(concept active | its latent fires); NaN for unmatched concepts."""
    concepts = torch.arange(len(latent))
    return _per_concept(c.hits / c.fires[:, None].clamp_min(1), latent, concepts)


def parent_leakage(c: ConceptCounts, latent: np.ndarray, roots: torch.Tensor) -> torch.Tensor:
    """``(P,)`` how often a parent's latent fires where another parent is on and it is off; NaN unmatched."""
    return _per_concept(c.parent_leak / c.parent_leak_den.clamp_min(1), latent, roots.cpu())


def child_leakage(c: ConceptCounts, latent: np.ndarray, children: torch.Tensor) -> torch.Tensor:
    """``(Cc,)`` how often a child's latent fires while its parent is off; NaN unmatched."""
    return _per_concept(c.child_leak / c.child_leak_den.clamp_min(1), latent, children.cpu())


def matched_mean(values: torch.Tensor) -> float:
    """Mean over the matched (non-NaN) entries; NaN when there are none."""
    kept = values[~values.isnan()]
    return float(kept.mean()) if len(kept) else float("nan")


@attrs.frozen
class _Structure:
    roots: torch.Tensor  # read-out features at level 0
    children: torch.Tensor  # read-out features with a read-out parent
    child_parent: torch.Tensor  # that parent, per child


class _ConceptMetric(Metric):
    """Counts co-firing under both firing rules; ``compute`` reads ``self.counts[rule]``."""

    needs_labels: ClassVar[bool] = True

    def start(self, ctx: EvalContext) -> None:
        self.counts = {rule: ConceptCounts() for rule in (FIRING_RULE, OTHER_RULE)}
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
        s = self.structure
        device = out.codes.values.device
        for rule, counts in self.counts.items():
            counts.update(firing_matrix(out.codes, rule), batch.labels.to(device) > 0, s.roots.to(device), s.children,
                          s.child_parent.to(device))

    def counted(self, rule: FiringRule = FIRING_RULE) -> ConceptCounts:
        """The counts under ``rule``; an error when no eval batch was seen."""
        if self.counts[rule].n == 0:
            raise UserError(f"metric {self.name!r} saw no eval batches")
        return self.counts[rule]


class PurityMetric(_ConceptMetric):
    """P(concept active | its matched latent fires), mean over matched concepts, in percentage points."""

    name = "purity"

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        c = self.counted()
        latent = c.match()
        precision = concept_purity(c, latent)
        other = self.counted(OTHER_RULE)
        s = self.structure
        return {
            "purity_pp": 100 * matched_mean(precision),
            "purity_parents_pp": 100 * matched_mean(precision[s.roots]),
            "purity_children_pp": 100 * matched_mean(precision[s.children]),
            "purity_pp_any_selected": 100 * matched_mean(concept_purity(other, other.match())),
            "unmatched_concepts": float(unmatched_count(latent)),
        }


class LeakageMetric(_ConceptMetric):
    """Rate at which a concept's latent fires outside its concept's context (other parent / parent off)."""

    name = "leakage"

    def _rates(self, rule: FiringRule) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Per-parent and per-child leakage under ``rule``, and the matching they used."""
        c = self.counted(rule)
        latent = c.match()
        s = self.structure
        return parent_leakage(c, latent, s.roots), child_leakage(c, latent, s.children), latent

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        parent_rates, child_rates, latent = self._rates(FIRING_RULE)
        other_parents, other_children, _ = self._rates(OTHER_RULE)
        return {
            "leakage": matched_mean(torch.cat([parent_rates, child_rates])),
            "leakage_parents": matched_mean(parent_rates),
            "leakage_children": matched_mean(child_rates),
            "leakage_any_selected": matched_mean(torch.cat([other_parents, other_children])),
            "unmatched_concepts": float(unmatched_count(latent)),
        }


def steering_shifts(steer: torch.Tensor, readout: torch.Tensor, concepts: torch.Tensor,
                    alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(on, off)`` per steered concept: its own read-out shift and the others' total absolute shift.

    ``steer`` (n, d) holds one unit steering direction per concept in ``concepts``;
    ``readout`` (d, n_features) maps an input displacement to the change of every feature.
    """
    delta = alpha * steer @ readout  # (n, n_features)
    on = delta[torch.arange(len(concepts)), concepts]
    return on, delta.abs().sum(1) - on.abs()


def pooled_leakage(on: torch.Tensor, off: torch.Tensor, min_total: float = 1e-9) -> float:
    """``sum(off) / sum(|on|)``; NaN when the total on-target shift is below ``min_total``."""
    total = float(on.abs().sum())
    return float(off.sum()) / total if total > min_total else float("nan")


class SteeringLeakageMetric(_ConceptMetric):
    """Total off-target over total on-target change of the true features when steering along parent latents."""

    name = "steering-leakage"

    @attrs.frozen
    class Config:
        """``alpha``: steering strength, in units of the decoder direction's (unit) norm.

        ``weak_fraction``: a concept whose on-target shift is below this fraction of the
        true direction's is counted in ``steering_weak_concepts`` (it still counts in the score).
        """

        alpha: float = 4.0
        weak_fraction: float = 0.1

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        latent = self.counted().match()
        roots = self.structure.roots.cpu()
        matched = roots[torch.from_numpy(latent[roots.numpy()] >= 0)]
        directions = ctx.data.ground_truth().directions.double().cpu()  # (n_features, d)
        decoder = model.decoder_directions().detach().double().cpu()
        readout = torch.linalg.pinv(directions)  # (d, n_features): x -> least-squares feature values
        unit = torch.nn.functional.normalize
        alpha = self.config.alpha
        on, off = steering_shifts(unit(decoder[torch.from_numpy(latent[matched.numpy()])], dim=1), readout, matched, alpha)
        true_on, true_off = steering_shifts(unit(directions[matched], dim=1), readout, matched, alpha)
        weak = on.abs() < self.config.weak_fraction * true_on.abs()
        return {
            "steering_leakage": pooled_leakage(on, off),
            "steering_leakage_true_direction_floor": pooled_leakage(true_on, true_off),
            "steering_on_target_shift": float(on.mean()) if len(on) else float("nan"),
            "steering_weak_concepts": float(weak.sum()),
            "unmatched_concepts": float(len(roots) - len(matched)),
        }

"""The ``lm-concepts`` metric: purity and leakage of SAE latents on concept-labelled real prompts.

The data source must be ``lm-activations`` with ``concept-prompts`` texts (each row is a
WordNet word in a prompt, labelled with every concept holding that word). Latents are
matched to concepts exactly as seed 001's synthetic metrics do (Hungarian matching on the
F1 of "latent fires" vs "concept active", ``hsae_teacher.concept_metrics.ConceptCounts``):

* ``purity_pp``: P(concept | its latent fires), mean over concepts, in percentage points;
* ``leakage_parents``: for the concepts at ``parent_depth`` below the top (the "parents"),
  how often a parent's latent fires on words of another parent and not of its own;
* ``leakage_children``: how often a deeper concept's latent fires while its parent is off.

A latent fires when its value is ``> 0`` and unmatched concepts are left out of every mean
(``unmatched_concepts`` counts them), as in ``hsae_teacher.concept_metrics``. Only labelled
rows (concept words) are scored: rows of the source's unlabelled ``extra_texts`` are skipped.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np
import torch

from hsae.errors import UserError
from hsae.metric import EvalContext, Metric
from hsae_lm.splice_metric import lm_source
from hsae_teacher.concept_metrics import (ConceptCounts, child_leakage, concept_purity, firing_matrix, matched_mean,
                                          parent_leakage, unmatched_count)


class LMConceptMetric(Metric):
    """Purity and leakage of the latents matched to WordNet concepts on concept-prompt activations."""

    name: ClassVar[str] = "lm-concepts"
    needs_labels: ClassVar[bool] = True

    @attrs.frozen
    class Config:
        """``parent_depth``: which level of the concept tree counts as the parents (1: below the top)."""

        parent_depth: int = 1

    def start(self, ctx: EvalContext) -> None:
        source, _ = lm_source(ctx.data)
        if source.config.texts.source != "concept-prompts":
            raise UserError("metric 'lm-concepts' needs lm-activations with texts.source = \"concept-prompts\"")
        h = source.hierarchy
        depth = h.depth()
        self.roots = torch.from_numpy(np.flatnonzero(depth == self.config.parent_depth))
        self.children = torch.from_numpy(np.flatnonzero(h.parent_of >= 0))
        self.child_parent = torch.from_numpy(h.parent_of[self.children.numpy()])
        if len(self.roots) == 0:
            raise UserError(f"metric 'lm-concepts': no concepts at parent_depth = {self.config.parent_depth}")
        self.counts = ConceptCounts()

    def update(self, batch, out, model) -> None:  # noqa: ANN001
        if batch.labels is None:
            raise UserError("metric 'lm-concepts' needs labelled batches")
        fires = firing_matrix(out.codes)
        device = fires.device
        labels = batch.labels.to(device) > 0
        labelled = labels.any(dim=1)  # rows of unlabelled extra texts are not scored
        if not bool(labelled.any()):
            return
        self.counts.update(fires[labelled], labels[labelled], self.roots.to(device), self.children,
                           self.child_parent.to(device))

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:  # noqa: ANN001
        c = self.counts
        if c.n == 0:
            raise UserError("metric 'lm-concepts' saw no eval batches")
        latent = c.match()
        purity = concept_purity(c, latent)
        return {
            "purity_pp": 100 * matched_mean(purity),
            "purity_parents_pp": 100 * matched_mean(purity[self.roots]),
            "leakage_parents": matched_mean(parent_leakage(c, latent, self.roots)),
            "leakage_children": matched_mean(child_leakage(c, latent, self.children)),
            "n_concepts": float(len(latent)),
            "unmatched_concepts": float(unmatched_count(latent)),
        }

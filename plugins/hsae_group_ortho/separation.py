"""The ``feature-separation`` metric: how close decoder directions come across and within groups.

With ``u_i`` the unit decoder directions of the latents that fired on the eval batches
(all latents if none did) and groups from the model (an ungrouped model is cut by index
into ``fallback_groups`` groups, the static partition the grouped model starts from):

* ``cross_group_max_cos``: mean over latents of ``max |u_i . u_j|`` over ``j`` in other groups;
* ``within_group_max_cos``: the same over ``j != i`` in the latent's own group (latents
  alone in their group are left out);
* ``max_cos``: the same over every ``j != i`` (independent of any grouping);
* ``cross_group_sq_cos``: the ``group-ortho`` loss on these latents, ``mean (u_i . u_j)^2``
  over pairs in different groups.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from hsae.metric import EvalContext, Metric
from hsae_group_ortho.collect import grouping


class FeatureSeparationMetric(Metric):
    """Mean max decoder cosine across groups and within groups."""

    name = "feature-separation"

    @attrs.frozen
    class Config:
        """``fallback_groups``: index groups for models without groups."""

        fallback_groups: int = 16

    def reset(self) -> None:
        self.fires: torch.Tensor | None = None

    def update(self, batch, out, model) -> None:
        counts = out.codes.fire_counts().cpu()
        self.fires = counts if self.fires is None else self.fires + counts

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        groups, source = grouping(model, self.config.fallback_groups)
        directions = model.decoder_directions().detach().float().cpu()
        fired = self.fires is not None and bool((self.fires > 0).any())
        keep = torch.nonzero(self.fires > 0).flatten() if fired else torch.arange(model.d_sae)
        return separation(directions[keep], torch.from_numpy(groups)[keep], grouped=source == "model")


def separation(directions: torch.Tensor, groups: torch.Tensor, grouped: bool = True) -> dict[str, float]:
    """The module's four numbers for ``directions`` ``(n, d)`` in ``groups`` ``(n,)``."""
    unit = F.normalize(directions.double(), dim=1)
    cos = (unit @ unit.T).abs()
    n = cos.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    same = (groups[:, None] == groups[None, :]) & ~eye
    cross = groups[:, None] != groups[None, :]

    def mean_max(mask: torch.Tensor) -> float:
        has = mask.any(1)
        if not bool(has.any()):
            return float("nan")
        return float(cos.masked_fill(~mask, -1).max(1).values[has].mean())

    out = {"max_cos": mean_max(~eye), "cross_group_max_cos": mean_max(cross), "within_group_max_cos": mean_max(same),
           "cross_group_sq_cos": float(cos.pow(2)[cross].mean()) if bool(cross.any()) else float("nan"),
           "n_latents": float(n), "model_groups": float(grouped)}
    return {k: v for k, v in out.items() if not np.isnan(v)}

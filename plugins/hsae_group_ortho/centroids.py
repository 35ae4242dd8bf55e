"""The ``group-centroids`` callback: per-group EMA activation centers (seed run 2).

After each step, group ``g``'s batch center is the code-mass-weighted mean input
``sum_b w_bg x_b / sum_b w_bg`` with ``w_bg`` the sum of sample ``b``'s codes in group ``g``.
The centroid follows it as an EMA, ``c_g <- decay * c_g + (1 - decay) * center_g`` (set to the
first center outright, so there is no zero bias). ``centroid_mass`` tracks the EMA of the
group's mean code mass per sample; zero means never seen. ``input_mean`` is the same EMA of
the batch's mean input, so ``centroids - input_mean`` is what each group adds to the
average input (every raw centroid also holds the data's mean). All are buffers of
``model.groups``: the ``group-centroid`` loss and the ``group-reassign`` callback read them.
"""

from __future__ import annotations

import attrs
import torch

from hsae.callback import Callback
from hsae_group_ortho.groups import GroupState, code_entries, group_sums


@torch.no_grad()
def update_centroids(state: GroupState, x: torch.Tensor, codes, decay: float) -> None:  # noqa: ANN001
    """One EMA step of every group seen in this batch (see the module docstring)."""
    rows, cols, values = code_entries(codes)
    weights = group_sums(values.float(), rows, state.assignment[cols], codes.n_rows, state.n_groups)  # (B, G)
    mass = weights.sum(0)
    seen = mass > 0
    centers = (weights.T @ x.float()) / mass.clamp_min(1e-12)[:, None]
    rate_mean = 1.0 if bool((state.centroid_mass == 0).all()) else 1.0 - decay
    state.input_mean.add_(rate_mean * (x.float().mean(0) - state.input_mean))
    first = seen & (state.centroid_mass == 0)
    rate = torch.where(first, 1.0, 1.0 - decay) * seen  # 0 for groups absent from the batch
    state.centroids.add_(rate[:, None] * (centers - state.centroids))
    batch_mass = mass / codes.n_rows
    state.centroid_mass.copy_(torch.where(first, batch_mass, decay * state.centroid_mass + (1 - decay) * batch_mass))


class GroupCentroidsCallback(Callback):
    """Track each group's EMA activation centroid in ``model.groups.centroids``."""

    name = "group-centroids"
    requires = frozenset({"latent_groups"})  # model.groups: a GroupState

    @attrs.frozen
    class Config:
        """``decay`` of the EMA per step."""

        decay: float = 0.99

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        if not 0 <= config.decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {config.decay}")

    def on_step_end(self, batch, out, model, ctx) -> None:
        update_centroids(model.groups, batch.x, out.codes, self.config.decay)

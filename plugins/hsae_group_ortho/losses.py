"""The group-orthogonal SAE's three regularizers, each its own recipe term.

With ``d_i`` the decoder direction of latent ``i`` (``model.decoder_directions()``),
``u_i = d_i / ||d_i||``, ``g(i)`` its group (``model.groups.assignment``) and ``z`` the codes:

* ``group-ortho``: mean over ordered pairs ``(i, j)`` in *different* groups of ``(u_i . u_j)^2``.
  Zero exactly when every group's decoder directions are orthogonal to every other group's
  (directions within a group may overlap freely); positive otherwise.
* ``group-sparsity`` (inter-group sparsity): the group lasso ``mean_b sum_g ||z_{b,g}||_2``, where
  ``z_{b,g}`` are sample ``b``'s codes of group ``g``. For a fixed code norm it is smallest
  when the activity sits in few groups.
* ``group-centroid``: mean over latents of ``1 - cos(d_i, c_{g(i)} - mu)`` with ``c_g`` the
  group's EMA activation center and ``mu`` the EMA mean input (``model.groups``, kept by the
  ``group-centroids`` callback): ``c_g - mu`` is the direction group ``g`` adds to the average
  input. Groups not seen yet are skipped. It holds each group's directions near the region
  of input space where the group fires.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from hsae.config.bounds import NonNegativeFloat
from hsae.loss import Loss, LossConfig, StepContext
from hsae_group_ortho.groups import group_sums


@attrs.frozen
class GroupOrthoConfig(LossConfig):
    """The seed's weight 0.01."""

    coefficient: NonNegativeFloat = 0.01


class GroupOrthoLoss(Loss):
    """Mean squared cosine between decoder directions of latents in different groups."""

    name = "group-ortho"
    requires = frozenset({"latent_groups"})  # model.groups: a GroupState
    Config = GroupOrthoConfig

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        groups = model.groups.assignment
        return cross_group_ortho(model.decoder_directions(), groups)


def cross_group_ortho(directions: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``mean_{g(i) != g(j)} cos(d_i, d_j)^2`` (0 when there is a single group)."""
    unit = F.normalize(directions.float(), dim=1)
    cross = groups[:, None] != groups[None, :]
    n_pairs = cross.sum()
    if n_pairs == 0:
        return unit.new_zeros(())
    return (unit @ unit.T).pow(2).masked_fill(~cross, 0).sum() / n_pairs


@attrs.frozen
class GroupSparsityConfig(LossConfig):
    """Weight of the group lasso."""

    coefficient: NonNegativeFloat = 0.01


class GroupSparsityLoss(Loss):
    """Group lasso over the codes: per sample, the sum over groups of the group's code L2 norm."""

    name = "group-sparsity"
    requires = frozenset({"latent_groups"})  # model.groups: a GroupState
    Config = GroupSparsityConfig

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        state = model.groups
        codes = out.codes
        if codes.is_sparse:
            rows, cols, values = codes.rows, codes.cols, codes.values
        else:
            rows, cols = torch.nonzero(codes.values.detach(), as_tuple=True)
            values = codes.values[rows, cols]
        squares = group_sums(values.float().pow(2), rows, state.assignment[cols], codes.n_rows, state.n_groups)
        used = squares > 0  # sqrt only where it has a finite gradient; silent groups add exactly 0
        norms = torch.where(used, torch.where(used, squares, torch.ones_like(squares)).sqrt(), torch.zeros_like(squares))
        return norms.sum() / codes.n_rows


@attrs.frozen
class GroupCentroidConfig(LossConfig):
    """The seed's weight 0.01."""

    coefficient: NonNegativeFloat = 0.01


class GroupCentroidLoss(Loss):
    """Mean ``1 - cos`` between each latent's decoder direction and its group's centered EMA centroid."""

    name = "group-centroid"
    requires = frozenset({"latent_groups"})  # model.groups: a GroupState
    Config = GroupCentroidConfig

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        state = model.groups
        seen = state.centroid_mass[state.assignment] > 0
        if not bool(seen.any()):
            return out.x_hat.new_zeros(())
        directions = model.decoder_directions()[seen]
        centroids = state.centered_centroids()[state.assignment[seen]]
        return (1 - F.cosine_similarity(directions.float(), centroids.float(), dim=1)).mean()

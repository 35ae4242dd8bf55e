"""Latent groups: the shared state of the group-orthogonal SAE and helpers every component uses.

The group structure lives on the model, in :class:`GroupState` (``model.groups``), as
buffers: ``assignment`` (``(d_sae,)`` long, the group of each latent), ``centroids``
(``(n_groups, d_in)``, each group's EMA activation center) with ``centroid_mass``
(``(n_groups,)``, zero until a group has been seen), and ``input_mean`` (``(d_in,)``, the
EMA of the inputs' mean: centroids are compared as offsets from it). The model is the one object the trainer
hands to every loss, callback and metric, so state kept there is readable by all of them
(the encoder's group mask, the losses, the metrics) and is checkpointed and exported with
the weights. Callbacks write it (``group-centroids``, ``group-reassign``); nothing else does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn


if TYPE_CHECKING:
    from hsae.model import SAE, Codes


def index_assignment(d_sae: int, n_groups: int) -> torch.Tensor:
    """Static groups by index: latent ``i`` is in group ``i * n_groups // d_sae`` (contiguous, sizes differ by <= 1)."""
    return torch.arange(d_sae) * n_groups // d_sae


class GroupState(nn.Module):
    """Group assignment and per-group EMA centroids, as checkpointed buffers."""

    def __init__(self, d_sae: int, d_in: int, n_groups: int) -> None:
        super().__init__()
        if not 0 < n_groups <= d_sae:
            raise ValueError(f"n_groups must be in [1, d_sae={d_sae}], got {n_groups}")
        self.n_groups = n_groups
        self.register_buffer("assignment", index_assignment(d_sae, n_groups))
        self.register_buffer("centroids", torch.zeros(n_groups, d_in))
        self.register_buffer("centroid_mass", torch.zeros(n_groups))
        self.register_buffer("input_mean", torch.zeros(d_in))

    def centered_centroids(self) -> torch.Tensor:
        """``(n_groups, d_in)``: each centroid's offset from the mean input (the direction the group adds)."""
        return self.centroids - self.input_mean

    def sizes(self) -> torch.Tensor:
        """Latents per group, ``(n_groups,)``."""
        return torch.bincount(self.assignment, minlength=self.n_groups)

    @torch.no_grad()
    def move(self, latents: torch.Tensor, targets: torch.Tensor) -> None:
        """Reassign ``latents`` to ``targets`` (the only way group membership changes)."""
        self.assignment[latents] = targets.to(self.assignment.dtype)


def latent_groups(model: "SAE") -> torch.Tensor | None:
    """The model's group of each latent, or ``None`` for an ungrouped model."""
    state = getattr(model, "groups", None)
    return state.assignment if isinstance(state, GroupState) else None


def group_sums(values: torch.Tensor, rows: torch.Tensor, groups: torch.Tensor, n_rows: int, n_groups: int) -> torch.Tensor:
    """``out[r, g] = sum of values[e]`` over entries ``e`` with ``rows[e] == r`` and ``groups[e] == g``."""
    out = values.new_zeros(n_rows * n_groups)
    return out.index_add(0, rows * n_groups + groups, values).view(n_rows, n_groups)


def code_entries(codes: Codes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(rows, cols, values)`` of the nonzero codes, detached."""
    if codes.is_sparse:
        keep = codes.values != 0
        return codes.rows[keep], codes.cols[keep], codes.values.detach()[keep]
    rows, cols = torch.nonzero(codes.values, as_tuple=True)
    return rows, cols, codes.values.detach()[rows, cols]

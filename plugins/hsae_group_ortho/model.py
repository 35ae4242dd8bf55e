"""The group-orthogonal SAE (seed 002): the standard SAE with latents partitioned into groups.

Latents are split into ``n_groups`` groups (static by index at first; the ``group-reassign``
callback may move latents later). The encoder masks by group: each sample's groups are
scored by their largest pre-activation, and only latents of the ``active_groups``
best-scoring groups may fire; the router (TopK by default) then picks among those.
With ``active_groups = n_groups`` the mask is off and this is exactly the ``sae`` model.

Group state (assignment, centroids) lives in ``model.groups`` (see :mod:`hsae_group_ortho.groups`).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from hsae.config.bounds import PositiveInt
from hsae.model import Codes, SAEOutput, saelens_incompatible
from hsae_group_ortho.groups import GroupState
from hsae_standard.sae import StandardSAE


class GroupOrthoSAE(StandardSAE):
    """Standard SAE whose latents form groups; a per-sample group mask gates the encoder."""

    name = "group-ortho-sae"
    provides = frozenset({"latent_groups"})  # model.groups: a GroupState (losses and callbacks of this plugin)

    @attrs.frozen
    class Config(StandardSAE.Config):
        """The ``sae`` model's keys plus ``n_groups`` groups over ``d_sae`` latents, of which
        ``active_groups`` may fire per sample. The seed used 2304 latents in 36 groups of 64;
        the defaults are CPU-sized."""

        d_sae: PositiveInt = 512
        n_groups: int = 16
        active_groups: int = 4

    def __init__(self, config: Config, *, d_in: int) -> None:
        super().__init__(config, d_in=d_in)
        if not 0 < config.active_groups <= config.n_groups:
            raise ValueError(f"active_groups must be in [1, n_groups={config.n_groups}], got {config.active_groups}")
        self.groups = GroupState(config.d_sae, d_in, config.n_groups)

    @property
    def n_groups(self) -> int:
        return self.groups.n_groups

    def group_scores(self, pre: torch.Tensor) -> torch.Tensor:
        """``(B, n_groups)``: each group's largest pre-activation per sample."""
        index = self.groups.assignment.expand(pre.shape[0], -1)
        out = pre.new_full((pre.shape[0], self.n_groups), float("-inf"))
        return out.scatter_reduce(1, index, pre, reduce="amax", include_self=True)

    @torch.no_grad()
    def group_mask(self, pre: torch.Tensor) -> torch.Tensor | None:
        """``(B, d_sae)`` bool: latents allowed to fire (in an active group); ``None`` when all are."""
        if self.config.active_groups >= self.n_groups:
            return None
        top = self.group_scores(pre.detach()).topk(self.config.active_groups, dim=1, sorted=False).indices
        active = torch.zeros(pre.shape[0], self.n_groups, dtype=torch.bool, device=pre.device)
        active.scatter_(1, top, True)
        return active.gather(1, self.groups.assignment.expand(pre.shape[0], -1))

    def forward(self, x: torch.Tensor) -> SAEOutput:
        if self.router.sparse:
            with torch.no_grad():
                pre = self.pre_activations(x)
                allowed = self.group_mask(pre)
                if allowed is None:
                    rows, cols = self.router.select(pre)
                else:
                    rows, cols = self.router.select(pre.masked_fill(~allowed, float("-inf")))
                    keep = allowed[rows, cols]  # a router asked for more latents than the groups hold
                    rows, cols = rows[keep], cols[keep]
            values = self.router.activate(self.encode_entries(x, rows, cols, pre))
            codes = Codes.from_sparse(rows, cols, values, x.shape[0], self.d_sae)
        else:
            pre = self.pre_activations(x)
            codes = self.router(pre)
            allowed = self.group_mask(pre)
            if allowed is not None:
                codes = Codes.from_dense(codes.dense() * allowed)
        return SAEOutput(x_hat=self.decoder(codes), codes=codes, pre=pre)

    def saelens_cfg(self) -> dict[str, Any]:
        return {
            **super().saelens_cfg(),
            **saelens_incompatible("group_ortho", "the per-sample group mask and the group state have no SAELens "
                                                  "counterpart"),
            "n_groups": self.n_groups,
            "active_groups": self.config.active_groups,
        }

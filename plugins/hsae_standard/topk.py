"""TopK router (Gao et al. 2024) and the aux-k loss that revives dead latents."""

from __future__ import annotations

import attrs
import torch
from einops import repeat

from hsae.config.bounds import NonNegativeFloat
from hsae.loss import Loss, LossConfig, StepContext, squared_error
from hsae.model import Codes, Router
from hsae_standard.block_topk import row_topk_indices


class TopKRouter(Router):
    """Keep the ``k`` largest pre-activations of each sample (ReLU'd)."""

    name = "topk"
    sparse = True

    @attrs.frozen
    class Config:
        """``k`` latents per sample."""

        k: int = 32

    def __init__(self, config: Config, *, d_sae: int) -> None:
        super().__init__(config, d_sae=d_sae)
        if not 0 < config.k <= d_sae:
            raise ValueError(f"k must be in [1, d_sae={d_sae}], got {config.k}")

    def select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cols = row_topk_indices(pre, self.config.k)
        rows = repeat(torch.arange(pre.shape[0], device=pre.device), "b -> b k", k=self.config.k)
        return rows.reshape(-1), cols.reshape(-1)

    def activate(self, values: torch.Tensor) -> torch.Tensor:
        return torch.relu(values)

    def saelens_fields(self) -> dict:
        return {"architecture": "topk", "k": self.config.k}


@attrs.frozen
class AuxKConfig(LossConfig):
    """``k_aux``: dead latents used to model the residual (default d_in // 2)."""

    coefficient: NonNegativeFloat = 1 / 32
    k_aux: int | None = None


class AuxKLoss(Loss):
    """Aux-k: dead latents reconstruct the residual ``x - x_hat``, normalized by its variance."""

    name = "auxk"
    Config = AuxKConfig

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        dead = ctx.dead_mask
        n_dead = 0 if dead is None or out.pre is None else int(dead.sum())
        if n_dead == 0:  # the usual case once training is healthy: nothing to compute
            return out.x_hat.new_zeros(())
        k_aux = min(self.config.k_aux or model.d_in // 2, n_dead)
        pre = out.pre.detach()
        n_rows = pre.shape[0]
        dead_cols = torch.nonzero(dead).squeeze(1)
        if k_aux == n_dead:  # every dead latent takes part: nothing to select
            cols = dead_cols.repeat(n_rows)
        else:  # top k_aux among the dead latents' columns only (no masked copy of all of pre)
            picked = pre.index_select(1, dead_cols).topk(k_aux, dim=1, sorted=False).indices
            cols = dead_cols.index_select(0, picked.reshape(-1))
        rows = repeat(torch.arange(n_rows, device=pre.device), "b -> (b k)", k=k_aux)
        values = torch.relu(model.encode_entries(batch.x, rows, cols, out.pre))
        codes = Codes.from_sparse(rows, cols, values, n_rows, model.d_sae)
        residual = batch.x - out.x_hat.detach()
        residual_hat = model.decode(codes, bias=False)
        error = squared_error(residual_hat, residual)
        scale = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        return error / scale

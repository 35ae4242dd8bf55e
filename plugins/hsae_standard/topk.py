"""TopK router (Gao et al. 2024) and the aux-k loss that revives dead latents."""

from __future__ import annotations

import attrs
import torch
from einops import repeat

from hsae.loss import Loss, LossConfig, StepContext
from hsae.model import Codes, Router


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
        cols = pre.topk(self.config.k, dim=1, sorted=False).indices
        rows = repeat(torch.arange(pre.shape[0], device=pre.device), "b -> b k", k=self.config.k)
        return rows.reshape(-1), cols.reshape(-1)

    def activate(self, values: torch.Tensor) -> torch.Tensor:
        return torch.relu(values)

    def saelens_fields(self) -> dict:
        return {"architecture": "topk", "k": self.config.k}


@attrs.frozen
class AuxKConfig(LossConfig):
    """``k_aux``: dead latents used to model the residual (default d_in // 2)."""

    coefficient: float = 1 / 32
    k_aux: int | None = None


class AuxKLoss(Loss):
    """Aux-k: dead latents reconstruct the residual ``x - x_hat``, normalized by its variance."""

    name = "auxk"
    Config = AuxKConfig

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        dead = ctx.dead_mask
        if dead is None or not bool(dead.any()) or out.pre is None:
            return out.x_hat.new_zeros(())
        k_aux = min(self.config.k_aux or model.d_in // 2, int(dead.sum()))
        pre = out.pre.detach().masked_fill(~dead, float("-inf"))
        cols = pre.topk(k_aux, dim=1, sorted=False).indices
        rows = repeat(torch.arange(pre.shape[0], device=pre.device), "b -> (b k)", k=k_aux)
        values = torch.relu(model.encode_entries(batch.x, rows, cols.reshape(-1), out.pre))
        codes = Codes.from_sparse(rows, cols.reshape(-1), values, pre.shape[0], model.d_sae)
        residual = batch.x - out.x_hat.detach()
        residual_hat = model.decode(codes, bias=False)
        error = (residual_hat - residual).pow(2).sum(-1).mean()
        scale = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        return error / scale

"""Reconstruction and sparsity losses shared by every SAE."""

from __future__ import annotations

import attrs
import torch

from hsae.loss import Loss, LossConfig, StepContext, squared_error


class MSELoss(Loss):
    """Squared reconstruction error, summed over dimensions, averaged over samples."""

    name = "mse"

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        return squared_error(out.x_hat, batch.x)


class L1Loss(Loss):
    """L1 of the codes, each latent weighted by its decoder direction's norm."""

    name = "l1"

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        norms = model.decoder_directions().norm(dim=1)
        codes = out.codes
        if codes.is_sparse:
            return (codes.values.abs() * norms[codes.cols]).sum() / codes.n_rows
        return (codes.values.abs() * norms).sum(-1).mean()


@attrs.frozen
class MatryoshkaConfig(LossConfig):
    """``prefixes``: nested latent counts, e.g. [64, 256, 1024]; the full width is added if missing."""

    prefixes: tuple[int, ...] = (64, 256, 1024)


class MatryoshkaLoss(Loss):
    """Mean reconstruction error of nested prefixes of the latents (Bussmann et al. 2025)."""

    name = "matryoshka"
    Config = MatryoshkaConfig

    def __init__(self, config: MatryoshkaConfig) -> None:
        super().__init__(config)
        if list(config.prefixes) != sorted(set(config.prefixes)) or not config.prefixes or config.prefixes[0] <= 0:
            raise ValueError(f"prefixes must be strictly increasing positive counts, got {list(config.prefixes)}")

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        widths = [w for w in self.config.prefixes if w < model.d_sae] + [model.d_sae]
        terms = [squared_error(model.decode(out.codes.restrict(w)), batch.x) for w in widths[:-1]]
        terms.append(squared_error(out.x_hat, batch.x))
        return torch.stack(terms).mean()

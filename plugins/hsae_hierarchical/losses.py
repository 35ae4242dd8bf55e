"""The H-SAE's extra loss terms (the full reconstruction is the standard ``mse`` loss).

The official objective (``loss_fn`` in ``sae/moe_eqx.py``) is::

    ||x - x_hat||^2 + 0.1 ||x - x_hat_top||^2 + l1 * L1 + ortho * cross_ortho

with squared errors summed over dimensions and averaged over samples, and the ``l1`` and
``ortho`` weights ramped linearly from 0 over the first 1000 steps. Here each term is a
loss plugin whose default coefficient and warmup are the published ones.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from hsae.config.bounds import NonNegativeFloat, NonNegativeInt
from hsae.loss import Loss, LossConfig, StepContext, squared_error


@attrs.frozen
class TopMSEConfig(LossConfig):
    """The official weight of the top-level-only reconstruction is 0.1."""

    coefficient: NonNegativeFloat = 0.1


class TopMSELoss(Loss):
    """Squared error of the reconstruction from the top level (parents) alone, ``||x - x_hat_top||^2``."""

    name = "hsae-top-mse"
    Config = TopMSEConfig
    requires = frozenset({"top_reconstruction"})  # extras["x_hat_top"]

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        x_hat_top = out.extras["x_hat_top"]
        return squared_error(x_hat_top, batch.x)


@attrs.frozen
class HSAEL1Config(LossConfig):
    """Published: l1 = 1e-3, ramped up linearly over the first 1000 steps."""

    coefficient: NonNegativeFloat = 1e-3
    warmup_steps: NonNegativeInt = 1000


class HSAEL1Loss(Loss):
    """L1 of all parent codes before top-k plus all child codes of the selected experts before the argmax.

    As in the official code, the terms are the *activated* codes: the thresholded parent
    codes of all m experts (``extras["parent_acts"]``, so only parents above the threshold
    contribute) and the leaky-thresholded codes of all a atoms of each of the k selected
    experts, gated or not (``extras["child_acts"]``). Summed, divided by the batch size.
    """

    name = "hsae-l1"
    Config = HSAEL1Config
    requires = frozenset({"level_activations"})  # extras["parent_acts"] and extras["child_acts"]

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        parents, children = out.extras["parent_acts"], out.extras["child_acts"]
        return (parents.abs().sum() + children.abs().sum()) / parents.shape[0]


def top_level_weights(model) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """``(W_enc (d, m), W_dec (m, d))`` of an H-SAE or of a standard SAE with linear parts
    (a model that provides ``linear_encoder`` and ``linear_decoder``)."""
    if hasattr(model, "W_enc") and hasattr(model, "W_dec"):
        return model.W_enc, model.W_dec
    return model.encoder.W_enc, model.decoder.W_dec


def cross_orthogonality(W_enc: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """``||C - diag(C)||_F / (m^2 - m)`` with ``C[i, j] = cos(decoder column i, encoder row j)``.

    The official ``cross_orthogonality_penalty`` normalizes the encoder rows and decoder
    columns (eps 1e-6) and then subtracts ``jnp.diag(ED)``, a *vector*, which broadcasts
    across rows instead of removing the diagonal (a bug; ANCHORS section 1). This is the
    intended off-diagonal form. It builds the (m, m) matrix: O(m^2 d) time, m^2 memory.
    """
    m = W_dec.shape[0]
    if m < 2:
        return W_dec.new_zeros(())
    enc = F.normalize(W_enc.t(), dim=1, eps=1e-6)  # (m, d) encoder rows
    dec = F.normalize(W_dec, dim=1, eps=1e-6)  # (m, d) decoder columns
    cos = dec @ enc.t()  # (m, m)
    off_diagonal = cos - torch.diag_embed(torch.diagonal(cos))
    return torch.linalg.matrix_norm(off_diagonal) / (m * m - m)


@attrs.frozen
class OrthoConfig(LossConfig):
    """Published: ortho = 0.1, ramped up linearly over the first 1000 steps."""

    coefficient: NonNegativeFloat = 0.1
    warmup_steps: NonNegativeInt = 1000


class CrossOrthoLoss(Loss):
    """Cross-orthogonality of the top-level encoder and decoder: off-diagonal of cos(E, D), ||.||_F / (m^2 - m)."""

    name = "hsae-ortho"
    Config = OrthoConfig
    requires = frozenset({"linear_encoder", "linear_decoder"})  # W_enc (d, m) and W_dec (m, d)

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        return cross_orthogonality(*top_level_weights(model))

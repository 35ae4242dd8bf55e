"""The slot SAE's loss terms, each its own component (seed 003: L = l1 Lrec + l2 H + l3 CE + l4 Lind + l5 Lval).

Default coefficients are the seed's: 1 (reconstruction), 1e-3 (entropy), 1 (alignment),
1e-2 (independence), 0.5 (value).
"""

from __future__ import annotations

from typing import Literal

import attrs
import torch
import torch.nn.functional as F

from hsae.config.bounds import NonNegativeFloat
from hsae.loss import Loss, LossConfig, StepContext
from hsae_bios.slots.labels import split_labels


class SlotReconstructionLoss(Loss):
    """Squared reconstruction error averaged over samples and dimensions (the seed's F.mse_loss).

    hsae's ``mse`` sums over the d dimensions instead: with it the seed's balance of
    coefficients shifts d-fold towards reconstruction (768-fold for GPT-2 small).
    """

    name = "slot-reconstruction"

    @attrs.frozen
    class Config(LossConfig):
        """reduction: mean (over dimensions, the seed's) or sum (over dimensions, hsae's mse)"""

        reduction: Literal["mean", "sum"] = "mean"

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        err = (out.x_hat - batch.x).pow(2)
        return err.mean() if self.config.reduction == "mean" else err.sum(-1).mean()


class SlotEntropyLoss(Loss):
    """Mean entropy (nats) of the slot distribution softmax(logits / T): low means confident routing.

    The seed's H(z) of the noisy Gumbel sample is taken here on the noiseless probabilities,
    so it is defined for the hard variant too; its minimiser is the same. It pushes towards
    confident slots whatever the label, which the alignment term already does for labelled rows.
    """

    name = "slot-entropy"
    requires = frozenset({"slot_logits"})

    @attrs.frozen
    class Config(LossConfig):
        coefficient: NonNegativeFloat = 1e-3

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        logp = torch.log_softmax(out.extras["slot_logits"].float() / model.temperature, -1)
        return -(logp.exp() * logp).sum(-1).mean()


class SlotAlignmentLoss(Loss):
    """Cross-entropy of the slot logits to the rule index: the slot router is a multinomial logistic probe.

    Rows without a rule label (all-zero rule columns) are ignored.
    """

    name = "slot-alignment"
    requires = frozenset({"slot_logits"})
    needs_labels = True

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        logits = out.extras["slot_logits"].float()
        rule, _ = split_labels(batch.labels, logits.shape[-1])
        if not (rule >= 0).any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits, rule, ignore_index=-1)


def offdiag_mean_square(c: torch.Tensor) -> torch.Tensor:
    """Mean of the squared off-diagonal entries of a square matrix (0 for a 1 x 1 matrix)."""
    n = c.shape[0]
    if n < 2:
        return c.sum() * 0.0
    mask = ~torch.eye(n, dtype=torch.bool, device=c.device)
    return c[mask].pow(2).mean()


def coactivation(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(S, S)`` uncentered correlation of code columns: ``E[z_i z_j] / sqrt(E[z_i^2] E[z_j^2])``."""
    second = z.t() @ z / z.shape[0]
    scale = second.diagonal().clamp_min(eps).sqrt()
    return second / scale[:, None] / scale[None, :]


def correlation(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(n, n)`` Pearson correlation of code columns; a constant column correlates 0 with all."""
    centered = z - z.mean(0, keepdim=True)
    cov = centered.t() @ centered / z.shape[0]
    scale = cov.diagonal().clamp_min(eps).sqrt()
    return cov / scale[:, None] / scale[None, :]


def slot_independence(z_slot: torch.Tensor, z_free: torch.Tensor | None = None) -> torch.Tensor:
    """The satisfiable independence term (see :class:`SlotIndependenceLoss`)."""
    term = offdiag_mean_square(coactivation(z_slot))
    if z_free is not None and z_free.shape[1]:
        c = correlation(torch.cat([z_slot, z_free], 1))
        s = z_slot.shape[1]
        term = term + offdiag_mean_square(c[s:, s:]) + c[:s, s:].pow(2).mean()
    return term


def seed_independence(z: torch.Tensor) -> torch.Tensor:
    """The seed's ``||Cov(z) - I||^2`` (squared Frobenius norm), which one-hot codes cannot meet."""
    centered = z - z.mean(0, keepdim=True)
    cov = centered.t() @ centered / z.shape[0]
    return (cov - torch.eye(z.shape[1], device=z.device, dtype=z.dtype)).pow(2).sum()


class SlotIndependenceLoss(Loss):
    """Slots are decorrelated: no two slots are active on the same row (0 for one-hot codes).

    Definition (``decorrelated``): the mean squared off-diagonal entry of the *uncentered*
    correlation of the slot code's columns over the batch,
    ``C_ij = E[z_i z_j] / sqrt(E[z_i^2] E[z_j^2])``: the cosine between two slots' activation
    patterns. It is 0 exactly when no two slots co-fire, which a one-hot code achieves for any
    slot frequencies, and it grows as slots share rows (two slots that always fire together
    give C_ij = 1). With free latents it adds, AlignSAE style, the mean squared off-diagonal
    Pearson correlation among free latents and between each slot and each free latent: free
    latents should not duplicate each other nor re-encode the rule (O(F^2) memory per batch).

    The seed's ``||Cov(z) - I||^2`` (``definition = "seed"``, kept for comparison) cannot be
    met by one-hot codes: a one-hot slot is Bernoulli(p_i), so Cov_ii = p_i (1 - p_i) <= 1/4
    can never reach 1, and Cov_ij = -p_i p_j is fixed by the slot frequencies, not by how the
    slots are used. For 6 one-hot slots it is at least 6 (3/4)^2 = 3.375 whatever the
    frequencies, and 6 (31/36)^2 + 30/1296 (about 4.47) when they are balanced.
    """

    name = "slot-independence"
    requires = frozenset({"slot_logits"})

    @attrs.frozen
    class Config(LossConfig):
        """definition: decorrelated (satisfiable, the default) or seed (||Cov(z) - I||^2 of the slot code)"""

        coefficient: NonNegativeFloat = 1e-2
        definition: Literal["decorrelated", "seed"] = "decorrelated"

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        z = out.codes.dense().float()
        s = out.extras["slot_logits"].shape[-1]
        if self.config.definition == "seed":
            return seed_independence(z[:, :s])
        return slot_independence(z[:, :s], z[:, s:] if z.shape[1] > s else None)


class SlotValueLoss(Loss):
    """Cross-entropy of the value head of the *true* rule's slot to the answer's value id.

    Training reads the true rule's head (supervision); evaluation reads the predicted slot's
    (``slot-value-accuracy``). Rows without a value label are ignored.
    """

    name = "slot-value"
    requires = frozenset({"slot_logits", "value_heads"})
    needs_labels = True

    @attrs.frozen
    class Config(LossConfig):
        coefficient: NonNegativeFloat = 0.5

    def forward(self, batch, out, model, ctx: StepContext) -> torch.Tensor:
        per_slot = out.extras["value_logits_per_slot"].float()
        rule, value = split_labels(batch.labels, per_slot.shape[1])
        # narrower labels are fine: a source sizes them by the largest value id it saw
        if value is None or batch.labels.shape[1] > per_slot.shape[1] + per_slot.shape[2]:
            raise ValueError(f"slot-value needs labels of width at most n_slots + n_values = "
                             f"{per_slot.shape[1] + per_slot.shape[2]}, got {batch.labels.shape[1]}")
        value = torch.where(rule >= 0, value, torch.full_like(value, -1))
        if not (value >= 0).any():
            return per_slot.sum() * 0.0
        return F.cross_entropy(model.select_head(per_slot, rule), value, ignore_index=-1)

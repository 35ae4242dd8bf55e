"""The slot SAE of seed 003: supervised slots, optional free latents, value heads that can work.

Shapes: ``d`` input width, ``S`` slots (one per rule, i.e. attribute), ``F`` free latents,
``r`` value rank, ``V`` value vocabulary, ``B`` batch.

Forward pass::

    slot_logits = x W_slot + b_slot                       (B, S)   the seed's Linear(d -> 6)
    z_slot      = gumbel_softmax(slot_logits, T)          (B, S)   soft, or straight-through hard
    z_free      = relu(topk((x - b_dec) W_free + b_free)) (B, F)   optional, AlignSAE style
    codes       = [z_slot, z_free]                        (B, S + F), slots first
    x_hat       = codes W_dec + b_dec                     linear in the codes (decode)

Value heads. The seed's heads each read one scalar (the slot's activation, about 1 after
annealing), so a head cannot tell one person's birth city from another's; and at
evaluation the head was picked by the *true* rule, which leaks the label. Here slot ``i``
owns a rank-``r`` value subspace ``U_i`` (r x d) of the input; its value code is
``v_i = z_i * (U_i x)`` (gated by the slot, so an inactive slot carries no value), and head
``i`` maps it to value logits, ``v_i H_i + c_i`` (V values). Training
(:class:`~hsae_bios.slots.losses.SlotValueLoss`) uses the head of the true rule, which is
supervision, not a leak. Evaluation -- ``extras["value_logits"]``, :meth:`SlotSAE.predict_value`,
the ``slot-value-accuracy`` metric -- uses the head of the *predicted* slot (argmax of the
slot logits), so a misrouted row gets the wrong head's answer. The value code does not
enter the reconstruction: ``decode`` stays linear in the ``(B, S + F)`` code, which is what
ablation and swap interventions edit.

Reconstruction ceiling: with one-hot slot codes and no free latents, ``x_hat`` takes one
of S values, so the best reconstruction of a code that follows the rule is the
per-attribute mean (``hsae_bios.slots.probes.ev_ceiling``). Soft codes at evaluation
(``hard = false``) interpolate between slot directions and may exceed it slightly; free
latents can exceed it by far.

Temperature: a buffer ``temperature`` (saved with the model and in checkpoints), set to
``temperature_start`` at construction and annealed to ``temperature_end`` by the
``slot-temperature`` callback; without that callback it stays at ``temperature_start``.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from einops import einsum
from torch import nn

from hsae.config.bounds import NonNegativeInt, PositiveInt
from hsae.model import SAE, Codes, SAEOutput, saelens_incompatible
from hsae_bios.slots.router import slot_code


class SlotSAE(SAE):
    """Slot SAE (seed 003): one Gumbel-softmax slot per attribute, optional free TopK latents, value heads."""

    name = "slot-sae"
    architecture = "slot-sae"
    # extras["slot_logits"], ["slot_probs"]; the temperature buffer the slot-temperature callback anneals;
    # value heads only when n_values > 0 (capabilities() says so per instance)
    provides = frozenset({"slot_logits", "slot_temperature", "value_heads"})

    @attrs.frozen
    class Config:
        """A slot per rule (attribute), optional free latents, optional value heads.

        n_slots: supervised slots, one per rule (the seed's 6 attributes)
        n_free: unsupervised TopK latents beside the slots (0: the seed's design; AlignSAE adds many)
        k_free: free latents kept per sample (TopK), at most n_free; unused when n_free = 0
        n_values: size of the value vocabulary the value heads predict (0: no value heads)
        value_rank: width r of each slot's value subspace, the input of its value head
        hard: straight-through hard Gumbel-softmax (one-hot forward, soft gradient)
        temperature_start: Gumbel-softmax temperature at the start of training
        temperature_end: temperature at the end of training (reached through the slot-temperature callback)
        """

        n_slots: PositiveInt = 6
        n_free: NonNegativeInt = 0
        k_free: PositiveInt = 8
        n_values: NonNegativeInt = 0
        value_rank: PositiveInt = 16
        hard: bool = False
        temperature_start: float = 1.0
        temperature_end: float = 0.1

    def __init__(self, config: Config, *, d_in: int) -> None:
        super().__init__(config, d_in=d_in)
        c, d = config, d_in
        if c.n_slots < 1 or c.n_free < 0 or c.n_values < 0 or c.value_rank < 1:
            raise ValueError("n_slots and value_rank must be >= 1, n_free and n_values >= 0")
        if c.n_free and not 0 < c.k_free <= c.n_free:
            raise ValueError(f"k_free must be in [1, n_free={c.n_free}], got {c.k_free}")
        if not (c.temperature_start > 0 and c.temperature_end > 0):
            raise ValueError(f"temperatures must be > 0, got {c.temperature_start} and {c.temperature_end}")
        self.n_slots, self.n_free, self.n_values = c.n_slots, c.n_free, c.n_values
        self.d_sae = c.n_slots + c.n_free
        self.W_slot = nn.Parameter(torch.randn(d, c.n_slots) / d**0.5)
        self.b_slot = nn.Parameter(torch.zeros(c.n_slots))
        self.W_dec_slot = nn.Parameter(torch.zeros(c.n_slots, d))  # per-slot means are learned from zero
        self.b_dec = nn.Parameter(torch.zeros(d))
        if c.n_free:
            free = torch.randn(c.n_free, d)
            self.W_dec_free = nn.Parameter(free / free.norm(dim=1, keepdim=True))
            self.W_enc_free = nn.Parameter(self.W_dec_free.detach().t().clone())
            self.b_enc_free = nn.Parameter(torch.zeros(c.n_free))
        if c.n_values:
            self.U_value = nn.Parameter(torch.randn(c.n_slots, c.value_rank, d) / d**0.5)
            self.W_value = nn.Parameter(torch.randn(c.n_slots, c.value_rank, c.n_values) / c.value_rank**0.5)
            self.b_value = nn.Parameter(torch.zeros(c.n_slots, c.n_values))
        self.register_buffer("temperature", torch.tensor(float(c.temperature_start)))

    def capabilities(self) -> frozenset[str]:
        return self.provides if self.n_values else self.provides - {"value_heads"}

    # -- forward ---------------------------------------------------------------------------

    def slot_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_slots)``: the router's logits (the seed's ``Linear(d -> 6)``)."""
        return x @ self.W_slot + self.b_slot

    def predicted_slot(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,)`` long: argmax of the slot logits (no noise, whatever the mode)."""
        return self.slot_logits(x).argmax(-1)

    def _free(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = (x - self.b_dec) @ self.W_enc_free + self.b_enc_free
        top = pre.topk(self.config.k_free, dim=-1)
        code = torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))
        return pre, code

    def forward(self, x: torch.Tensor) -> SAEOutput:
        logits = self.slot_logits(x)
        z_slot = slot_code(logits, self.temperature, hard=self.config.hard, training=self.training)
        pre, z = logits, z_slot
        if self.n_free:
            free_pre, z_free = self._free(x)
            pre, z = torch.cat([logits, free_pre], -1), torch.cat([z_slot, z_free], -1)
        codes = Codes.from_dense(z)
        extras: dict[str, Any] = {
            "slot_logits": logits,  # (B, S), with gradient
            "slot_probs": torch.softmax(logits / self.temperature, -1),  # (B, S), no noise
            "slot_code": z_slot,  # (B, S), the slot part of the code (noisy in training)
        }
        if self.n_values:
            per_slot = self.value_logits_per_slot(x, z_slot)
            extras["value_logits_per_slot"] = per_slot  # (B, S, V): every head
            extras["value_logits"] = self.select_head(per_slot, logits.argmax(-1))  # (B, V): the predicted slot's
        return SAEOutput(x_hat=self.decode(codes), codes=codes, pre=pre.detach(), extras=extras)

    def encode(self, x: torch.Tensor) -> Codes:
        z = slot_code(self.slot_logits(x), self.temperature, hard=self.config.hard, training=self.training)
        if self.n_free:
            z = torch.cat([z, self._free(x)[1]], -1)
        return Codes.from_dense(z)

    def decode(self, codes: Codes, bias: bool = True) -> torch.Tensor:
        x_hat = codes.dense() @ self.decoder_directions()
        return x_hat + self.b_dec if bias else x_hat

    def decoder_directions(self) -> torch.Tensor:
        return torch.cat([self.W_dec_slot, self.W_dec_free]) if self.n_free else self.W_dec_slot

    # -- value heads -------------------------------------------------------------------------

    def value_codes(self, x: torch.Tensor, z_slot: torch.Tensor) -> torch.Tensor:
        """``(B, S, r)``: slot i's value code ``z_i * (U_i x)``."""
        return einsum(self.U_value, x, "s r d, b d -> b s r") * z_slot.unsqueeze(-1)

    def value_logits_per_slot(self, x: torch.Tensor, z_slot: torch.Tensor) -> torch.Tensor:
        """``(B, S, V)``: every head's value logits from its own slot's value code."""
        if not self.n_values:
            raise ValueError("this slot-sae has no value heads (n_values = 0)")
        return einsum(self.value_codes(x, z_slot), self.W_value, "b s r, s r v -> b s v") + self.b_value

    @staticmethod
    def select_head(per_slot: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """``(B, V)``: the logits of head ``slot[b]`` for each row (``per_slot`` is ``(B, S, V)``)."""
        index = slot.clamp_min(0).view(-1, 1, 1).expand(-1, 1, per_slot.shape[-1])
        return per_slot.gather(1, index).squeeze(1)

    def predict_value(self, x: torch.Tensor, slot: torch.Tensor | None = None) -> torch.Tensor:
        """``(B,)`` long: the value predicted by the head of ``slot`` (default: the predicted slot).

        Pass the true rule as ``slot`` only to measure the oracle (label-leaking) reading.
        """
        logits = self.slot_logits(x)
        z_slot = slot_code(logits, self.temperature, hard=self.config.hard, training=self.training)
        chosen = logits.argmax(-1) if slot is None else slot
        return self.select_head(self.value_logits_per_slot(x, z_slot), chosen).argmax(-1)

    # -- training and saving -------------------------------------------------------------------

    def unit_norm_parameters(self) -> list[tuple[nn.Parameter, int]]:
        # Slot directions carry the per-attribute means' size, so only free directions are unit norm.
        return [(self.W_dec_free, 1)] if self.n_free else []

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"router": [self.W_slot, self.b_slot], "decoder": [self.W_dec_slot, self.b_dec]}
        if self.n_free:
            groups["free"] = [self.W_enc_free, self.b_enc_free, self.W_dec_free]
        if self.n_values:
            groups["values"] = [self.U_value, self.W_value, self.b_value]
        return groups

    def saelens_cfg(self) -> dict[str, Any]:
        return saelens_incompatible("slot-sae", "SAELens has no Gumbel-softmax slot SAE with value heads")

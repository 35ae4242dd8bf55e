"""The standard SAE: Encoder -> Router -> Decoder, each a swappable recipe component.

ReLU, TopK, BatchTopK, JumpReLU and Matryoshka SAEs are all this model with a different
router and losses (see ``recipes/``).
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
import torch
from torch import nn

from hsae.config.bounds import PositiveInt
from hsae.config.spec import DecoderSpec, EncoderSpec, RouterSpec
from hsae.model import SAE, Codes, SAEOutput, saelens_incompatible
from hsae_standard.linear import LinearDecoder, LinearEncoder


class StandardSAE(SAE):
    """Encoder -> Router -> Decoder, with the decoder bias subtracted before encoding."""

    name = "sae"

    @attrs.frozen
    class Config:
        """``d_sae`` latents; ``tied_init`` starts ``W_enc`` as ``W_dec`` transposed, times ``encoder_init_scale``.

        b_dec_init: mean: b_dec starts at the first training batch's mean (set by the trainer); zeros: at zero
        encoder_init_scale: factor on the tied initial W_enc (none: 0.1 for dense routers such as relu and jumprelu, 1 for sparse ones such as topk)
        """

        d_sae: PositiveInt = 4096
        encoder: EncoderSpec = EncoderSpec("linear")
        router: RouterSpec = RouterSpec("topk")
        decoder: DecoderSpec = DecoderSpec("linear")
        tied_init: bool = True
        subtract_decoder_bias: bool = True
        b_dec_init: Literal["mean", "zeros"] = "mean"
        encoder_init_scale: float | None = None

    def __init__(self, config: Config, *, d_in: int) -> None:
        super().__init__(config, d_in=d_in)
        if config.d_sae <= 0:
            raise ValueError(f"d_sae must be positive, got {config.d_sae}")
        self.d_sae = config.d_sae
        self.encoder = config.encoder.build(d_in=d_in, d_sae=config.d_sae)
        self.router = config.router.build(d_sae=config.d_sae)
        self.decoder = config.decoder.build(d_in=d_in, d_sae=config.d_sae)
        if config.encoder_init_scale is not None and config.encoder_init_scale <= 0:
            raise ValueError(f"encoder_init_scale must be positive, got {config.encoder_init_scale}")
        if config.tied_init and hasattr(self.encoder, "W_enc") and hasattr(self.decoder, "W_dec"):
            with torch.no_grad():
                self.encoder.W_enc.copy_(self.decoder.W_dec.t()).mul_(self.encoder_init_scale())

    def encoder_init_scale(self) -> float:
        """The factor on the tied initial ``W_enc``: ``encoder_init_scale``, else 0.1 for a dense router, 1 for a sparse one.

        With a dense router (ReLU + L1, JumpReLU) and unit-norm decoder rows, a full-scale
        tied encoder makes about half the latents fire at step 0 with large codes: the first
        ~10-20 gradients are 20-50x larger than later ones, and Adam's second moment
        (beta2 0.999) remembers them, so later steps are 20-50x smaller than ``lr`` for
        hundreds of steps. At 0.1 the first gradients are ~8x, not ~50x, the later ones
        (benchmarks/README.md: the L1 SAE's MCC 0.24 -> 0.50 at 205k samples). A sparse
        router (TopK) keeps k codes whatever the scale, so it starts at full scale.
        """
        if self.config.encoder_init_scale is not None:
            return self.config.encoder_init_scale
        return 1.0 if self.router.sparse else 0.1

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Data-dependent start, before the first step: ``b_dec`` at the batch mean (``b_dec_init = "mean"``).

        Data with a large common offset (a bias, a mean activation) is then centered from
        step 0, instead of spending the first steps learning the offset while the
        latents chase it.
        """
        if self.config.b_dec_init == "mean" and hasattr(self.decoder, "b_dec"):
            self.decoder.b_dec.copy_(x.mean(0).to(self.decoder.b_dec.dtype))

    def _centered(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.decoder.b_dec if self.config.subtract_decoder_bias else x

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._centered(x))

    def encode_entries(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, pre: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activations at ``(rows, cols)`` with a sparse backward (aux-k, sparse routers)."""
        shift = self.decoder.b_dec if self.config.subtract_decoder_bias else None
        return self.encoder.entries(x, rows, cols, pre, shift=shift)

    def forward(self, x: torch.Tensor) -> SAEOutput:
        if self.router.sparse:
            with torch.no_grad():
                pre = self.pre_activations(x)
                rows, cols = self.router.select(pre)
            values = self.router.activate(self.encode_entries(x, rows, cols, pre))
            codes = Codes.from_sparse(rows, cols, values, x.shape[0], self.d_sae)
        else:
            pre = self.pre_activations(x)
            codes = self.router(pre)
        return SAEOutput(x_hat=self.decoder(codes), codes=codes, pre=pre)

    def decode(self, codes: Codes, bias: bool = True) -> torch.Tensor:
        return self.decoder(codes, bias=bias)

    def capabilities(self) -> frozenset[str]:
        """The model's ``provides`` plus its encoder's, router's and decoder's."""
        return self.provides | self.encoder.provides | self.router.provides | self.decoder.provides

    def decoder_directions(self) -> torch.Tensor:
        return self.decoder.directions()

    def unit_norm_parameters(self) -> list[tuple[nn.Parameter, int]]:
        return self.decoder.unit_norm_parameters()

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "encoder": list(self.encoder.parameters()),
            "router": list(self.router.parameters()),
            "decoder": list(self.decoder.parameters()),
        }

    def saelens_cfg(self) -> dict[str, Any]:
        """SAELens' keys: the router decides the architecture; only linear encoders and decoders have a counterpart."""
        if type(self.encoder) is not LinearEncoder or type(self.decoder) is not LinearDecoder:
            return saelens_incompatible(f"sae-{self.encoder.name}-{self.decoder.name}",
                                        "SAELens SAEs have linear encoders and decoders only")
        return {
            "architecture": "standard",
            "saelens_compatible": True,
            "apply_b_dec_to_input": self.config.subtract_decoder_bias,
            **self.router.saelens_fields(),
        }

    def to_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.router.to_saelens_tensors(tensors)

    def from_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.router.from_saelens_tensors(tensors)

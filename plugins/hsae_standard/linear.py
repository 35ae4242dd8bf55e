"""Linear encoder and decoder, with sparse paths for routers that select few latents.

The sparse encoder path takes the dense pre-activations (computed without gradient) and
returns only the selected entries; its backward pass touches only the selected columns
of ``W_enc``. The sparse decoder gathers only the selected rows of ``W_dec``. For TopK at
k=25 of 4096 latents this removes ~3/4 of the FLOPs of a dense SAE step.
"""

from __future__ import annotations

import attrs
import torch
from torch import nn

from hsae.model import Codes, Decoder, Encoder


class _SelectedEntries(torch.autograd.Function):
    """``pre[rows, cols]`` where ``pre = x @ W + b``, with a backward that is sparse in (rows, cols)."""

    @staticmethod
    def forward(ctx, x, weight, bias, rows, cols, pre):  # noqa: ANN001
        ctx.save_for_backward(x, weight, rows, cols)
        return pre[rows, cols]

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        x, weight, rows, cols = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            # Accumulate into the transposed weight so each update is one contiguous row.
            grad_wt = weight.new_zeros(weight.shape[1], weight.shape[0])
            grad_wt.index_add_(0, cols, x.index_select(0, rows) * grad.unsqueeze(1))
            grad_w = grad_wt.t()
        if ctx.needs_input_grad[2]:
            grad_b = grad.new_zeros(weight.shape[1]).index_add_(0, cols, grad)
        if ctx.needs_input_grad[0]:
            picked = weight.t().index_select(0, cols) * grad.unsqueeze(1)
            grad_x = x.new_zeros(x.shape).index_add_(0, rows, picked)
        return grad_x, grad_w, grad_b, None, None, None


class LinearEncoder(Encoder):
    """Affine map ``x @ W_enc + b_enc`` (SAELens parameter names and shapes)."""

    name = "linear"

    @attrs.frozen
    class Config:
        """``bias``: learn ``b_enc``."""

        bias: bool = True

    def __init__(self, config: Config, *, d_in: int, d_sae: int) -> None:
        super().__init__(config, d_in=d_in, d_sae=d_sae)
        self.W_enc = nn.Parameter(torch.empty(d_in, d_sae))
        nn.init.kaiming_uniform_(self.W_enc)
        self.b_enc = nn.Parameter(torch.zeros(d_sae), requires_grad=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b_enc, x, self.W_enc)

    def entries(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, pre: torch.Tensor | None = None) -> torch.Tensor:
        if pre is None:
            with torch.no_grad():
                pre = self.forward(x)
        return _SelectedEntries.apply(x, self.W_enc, self.b_enc, rows, cols, pre.to(x.dtype))


class LinearDecoder(Decoder):
    """``codes @ W_dec + b_dec``; sparse codes gather only their rows of ``W_dec``."""

    name = "linear"

    @attrs.frozen
    class Config:
        """``unit_norm``: keep each latent's direction (row of ``W_dec``) at unit norm."""

        unit_norm: bool = True

    def __init__(self, config: Config, *, d_in: int, d_sae: int) -> None:
        super().__init__(config, d_in=d_in, d_sae=d_sae)
        weight = torch.randn(d_sae, d_in)
        self.W_dec = nn.Parameter(weight / weight.norm(dim=1, keepdim=True))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    def forward(self, codes: Codes, bias: bool = True) -> torch.Tensor:
        if codes.is_sparse:
            rows_out = torch.index_select(self.W_dec, 0, codes.cols) * codes.values.unsqueeze(1).to(self.W_dec.dtype)
            base = self.b_dec.expand(codes.n_rows, -1) if bias else self.W_dec.new_zeros(codes.n_rows, self.d_in)
            return base.index_add(0, codes.rows, rows_out.to(base.dtype))
        out = codes.values.to(self.W_dec.dtype) @ self.W_dec
        return out + self.b_dec if bias else out

    def directions(self) -> torch.Tensor:
        return self.W_dec

    def unit_norm_parameters(self) -> list[tuple[nn.Parameter, int]]:
        return [(self.W_dec, 1)] if self.config.unit_norm else []

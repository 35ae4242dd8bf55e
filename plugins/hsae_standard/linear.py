"""Linear encoder and decoder, with sparse paths for routers that select few latents.

The sparse encoder path takes the dense pre-activations (computed without gradient) and
returns only the selected entries; its backward pass touches only the selected columns
of ``W_enc``. The sparse decoder sums only the selected rows of ``W_dec``. For TopK at
k=25 of 4096 latents this removes ~5/6 of the FLOPs of a dense SAE step (all but the
dense encoder forward that picks the latents).

Every sparse product is a segment sum ``out[g] = sum_e scale[e] * table[index[e]]`` over
the entries grouped by sample or by latent, computed by ``F.embedding_bag`` (mode "sum"
with per-sample weights). It never materializes the ``(nnz, d_in)`` gathered rows (at
k=25, batch 1024 that is 78 MB per product), and it sums each group on one thread in a
fixed order, so results are deterministic (no atomics, unlike ``index_add_`` on CUDA).
Codes denser than ``_DENSE_FRACTION`` (aux-k with many dead latents) use dense matmuls.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hsae.kernels import row_dots
from hsae.model import Codes, Decoder, Encoder


# Above this fraction of nonzero codes, dense matmuls beat the gathers: on CPU a gathered
# row costs about as much as 1/20 of a dense product's row (e.g. aux-k's k_aux = 384 of
# 4096 latents, 9.4%, is faster dense; TopK's k = 25, 0.6%, is ~10x faster sparse).
_DENSE_FRACTION = 1 / 16


def _is_dense(nnz: int, n_rows: int, n_cols: int) -> bool:
    return nnz > _DENSE_FRACTION * n_rows * n_cols


def _scatter_dense(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_rows: int, n_cols: int) -> torch.Tensor:
    """The ``(n_rows, n_cols)`` matrix with ``values`` at ``(rows, cols)`` (duplicates summed)."""
    return values.new_zeros(n_rows, n_cols).index_put_((rows, cols), values, accumulate=True)


# The last grouping computed: the encoder's and the decoder's backward passes group the
# same latent ids (one codes tensor), so the second finds the first's sort here.
_last_grouping: list = []


def _grouping(keys: torch.Tensor, n_groups: int) -> tuple[torch.Tensor | None, torch.Tensor]:
    """A stable permutation sorting ``keys`` (``None`` if already sorted) and each group's start offset.

    Group ``g`` holds the entries with ``keys == g`` (``0 <= g < n_groups``), in their order.
    """
    if _last_grouping and _last_grouping[0] is keys and _last_grouping[1:3] == [keys._version, n_groups]:
        return _last_grouping[3]
    result = _group(keys, n_groups)
    _last_grouping[:] = [keys, keys._version, n_groups, result]
    return result


def _group(keys: torch.Tensor, n_groups: int) -> tuple[torch.Tensor | None, torch.Tensor]:
    order = None
    # On CPU checking is cheaper than sorting; elsewhere sort rather than synchronize.
    if keys.device.type != "cpu" or bool((keys[1:] < keys[:-1]).any()):
        order = _stable_argsort(keys, n_groups)
    counts = torch.bincount(keys, minlength=n_groups)
    return order, torch.cumsum(counts, 0) - counts


def _stable_argsort(keys: torch.Tensor, n_groups: int) -> torch.Tensor:
    """``torch.sort(keys, stable=True).indices`` for keys in ``[0, n_groups)``."""
    if keys.device.type == "cpu" and n_groups <= 1 << 16:
        # NumPy sorts 16-bit integers by radix, in linear time: 0.09 vs 1.2 ms for 25,600 keys.
        order = np.argsort(keys.numpy().astype(np.uint16), kind="stable")
        return torch.from_numpy(order).to(torch.long)
    return torch.sort(keys, stable=True).indices


def _segment_sum(
    table: torch.Tensor, index: torch.Tensor, scale: torch.Tensor | None,
    order: torch.Tensor | None, offsets: torch.Tensor,
) -> torch.Tensor:
    """``out[g] = sum over entries e of group g of scale[e] * table[index[e]]``: ``(len(offsets), table.shape[1])``."""
    # index_select, not ``index[order]``: advanced indexing is far slower for small 1-D gathers on CPU.
    if order is not None:
        index = index.index_select(0, order)
        scale = None if scale is None else scale.index_select(0, order)
    if scale is not None:
        scale = scale.detach().to(table.dtype)
    # Detached, so embedding_bag skips the bookkeeping it keeps for its own backward.
    return F.embedding_bag(index, table.detach(), offsets, mode="sum", per_sample_weights=scale)


class _SelectedEntries(torch.autograd.Function):
    """``pre[rows, cols]`` where ``pre = (x - shift) @ W + b``, with a backward that is sparse in (rows, cols).

    ``shift`` (the SAE's decoder bias, or ``None``) is an input of its own so that its
    gradient, ``-sum over samples of grad_x = -W @ grad_b``, comes from the bias gradient
    (one matrix-vector product) instead of the per-sample input gradient (a segment sum
    over every entry); that one is computed only when ``x`` itself needs a gradient.
    """

    @staticmethod
    def forward(ctx, x, shift, weight, bias, rows, cols, pre):  # noqa: ANN001
        centered = x.detach() if shift is None else x.detach() - shift.detach()
        ctx.save_for_backward(centered, weight, rows, cols)
        # Gather, then convert: under autocast ``pre`` is bf16 and only the selected entries are needed in x's dtype.
        return pre.reshape(-1).index_select(0, rows * pre.shape[1] + cols).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        x, weight, rows, cols = ctx.saved_tensors
        need_x, need_shift, need_w, need_b = ctx.needs_input_grad[:4]
        products = _dense_products if _is_dense(grad.shape[0], x.shape[0], weight.shape[1]) else _sparse_products
        grad_x, grad_w, grad_b = products(grad, x, weight.detach(), rows, cols, need_x, need_w, need_b or need_shift)
        grad_shift = -torch.mv(weight.detach(), grad_b.to(weight.dtype)) if need_shift else None
        return grad_x, grad_shift, grad_w, grad_b if need_b else None, None, None, None


def _sparse_products(grad, x, weight, rows, cols, need_x, need_w, need_b):  # noqa: ANN001, ANN202
    """Gradients of ``pre[rows, cols]`` (``pre = x @ W + b``) for input, weight and bias, as segment sums."""
    grad_x = grad_w = grad_b = None
    if need_w or need_b:
        col_order, col_offsets = _grouping(cols, weight.shape[1])
        if need_w:  # row c of the transposed gradient sums grad * x over the entries of latent c
            grad_w = _segment_sum(x, rows, grad, col_order, col_offsets).to(weight.dtype).t()
        if need_b:
            entries = torch.arange(grad.shape[0], device=grad.device)
            grad_b = _segment_sum(grad.unsqueeze(1), entries, None, col_order, col_offsets).squeeze(1)
    if need_x:
        row_order, row_offsets = _grouping(rows, x.shape[0])
        grad_x = _segment_sum(weight.t().contiguous(), cols, grad, row_order, row_offsets).to(x.dtype)
    return grad_x, grad_w, grad_b


def _dense_products(grad, x, weight, rows, cols, need_x, need_w, need_b):  # noqa: ANN001, ANN202
    """The same gradients through the dense ``(B, d_sae)`` gradient matrix (codes denser than ``_DENSE_FRACTION``)."""
    dense = _scatter_dense(rows, cols, grad.to(weight.dtype), x.shape[0], weight.shape[1])
    # (dense^T @ x)^T: the weight gradient comes out in W_enc's column-major layout.
    grad_w = torch.mm(dense.t(), x.to(weight.dtype)).t() if need_w else None
    grad_b = dense.sum(0) if need_b else None
    grad_x = torch.mm(dense, weight.t()).to(x.dtype) if need_x else None
    return grad_x, grad_w, grad_b


class _SparseDecode(torch.autograd.Function):
    """``out[r] = sum over entries e of row r of values[e] * W[cols[e]]``: sparse codes @ ``W``."""

    @staticmethod
    def forward(ctx, weight, values, rows, cols, n_rows):  # noqa: ANN001
        values = values.to(weight.dtype)
        ctx.save_for_backward(weight, values, rows, cols)
        row_order, row_offsets = _grouping(rows, n_rows)
        return _segment_sum(weight, cols, values, row_order, row_offsets)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        weight, values, rows, cols = ctx.saved_tensors
        grad = grad.to(weight.dtype).contiguous()
        grad_w = grad_v = None
        if ctx.needs_input_grad[0]:
            col_order, col_offsets = _grouping(cols, weight.shape[0])
            grad_w = _segment_sum(grad, rows, values, col_order, col_offsets)
        if ctx.needs_input_grad[1]:
            grad_v = row_dots(grad, weight, rows, cols)
        return grad_w, grad_v, None, None, None


class LinearEncoder(Encoder):
    """Affine map ``x @ W_enc + b_enc`` (SAELens parameter names and shapes)."""

    name = "linear"
    provides = frozenset({"linear_encoder"})  # W_enc (d_in, d_sae)

    @attrs.frozen
    class Config:
        """``bias``: learn ``b_enc``."""

        bias: bool = True

    def __init__(self, config: Config, *, d_in: int, d_sae: int) -> None:
        super().__init__(config, d_in=d_in, d_sae=d_sae)
        # Shape (d_in, d_sae) as in SAELens, stored column-major: each latent's encoder
        # column is contiguous, so the sparse backward reads W_enc.t() and writes the
        # gradient in the parameter's own layout without transposing copies (the matmul
        # is as fast either way). Saved files hold the usual contiguous tensor.
        self.W_enc = nn.Parameter(torch.empty(d_sae, d_in).t())
        nn.init.kaiming_uniform_(self.W_enc)
        self.b_enc = nn.Parameter(torch.zeros(d_sae), requires_grad=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # addmm, not mm + add_: as fast in fp32, and under bf16 autocast on CPU an in-place
        # fp32 bias on the bf16 product costs 10 ms at 1024 x 4096, 3.5x the product itself.
        return torch.addmm(self.b_enc, x, self.W_enc)

    def entries(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, pre: torch.Tensor | None = None,
                shift: torch.Tensor | None = None) -> torch.Tensor:
        if pre is None:
            with torch.no_grad():
                pre = self.forward(x if shift is None else x - shift)
        return _SelectedEntries.apply(x, shift, self.W_enc, self.b_enc, rows, cols, pre)


class LinearDecoder(Decoder):
    """``codes @ W_dec + b_dec``; sparse codes gather only their rows of ``W_dec``."""

    name = "linear"
    provides = frozenset({"linear_decoder"})  # W_dec (d_sae, d_in)

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
        values = codes.values
        if codes.is_sparse:
            if not _is_dense(values.shape[0], codes.n_rows, codes.d_sae):
                out = _SparseDecode.apply(self.W_dec, values, codes.rows, codes.cols, codes.n_rows)
                return out + self.b_dec if bias else out
            values = _scatter_dense(codes.rows, codes.cols, values, codes.n_rows, codes.d_sae)
        out = values.to(self.W_dec.dtype) @ self.W_dec
        return out + self.b_dec if bias else out

    def directions(self) -> torch.Tensor:
        return self.W_dec

    def unit_norm_parameters(self) -> list[tuple[nn.Parameter, int]]:
        return [(self.W_dec, 1)] if self.config.unit_norm else []

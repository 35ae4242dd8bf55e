"""Products over the routed experts only, with sparse backward passes: the H-SAE's kernels.

An H-SAE sample touches k of the m experts. Its large per-expert products (those with a
``d``-sized side) are one of two shapes over a list of :class:`Entries` ``e``, each with a
row ``rows[e]`` and a column ``cols[e]``:

* :func:`gather_dot`: ``out[e] = left[rows[e]] . right[cols[e]]`` (projecting the input
  into the selected subspaces, ``u_j = W_down_j x``);
* :func:`scatter_rows`: ``out[r] = sum over the entries e of row r of values[e] * table[cols[e]]``
  (decoding: the parents' ``z_j d_j`` and the children's ``W_up_j v_j``).

Each is the other's backward, so both come from two kernels that never materialize the
gathered ``(entries, d)`` rows: ``F.embedding_bag`` (mode "sum", per-sample weights) for
segment sums, and the per-sample-weight gradient of ``embedding_bag`` for row dots.
Weight gradients are dense tensors of the parameters' shapes, each row summed by one
thread in a fixed order (deterministic; no ``index_add`` atomics). Gathering
``W_down[idx]`` (B, k, s, d) and multiplying with ``bmm`` instead runs ~10x slower on CPU
(tiny matrices, large copies). (The child encoders, only ``a * s`` values per expert, are
cheapest gathered outright; the model does that.)

The segment sums that produce weight gradients need the entries grouped by column.
Sorting is slow on CPU (~90 ms for 131k keys), so :class:`SlotGrouping` sorts only the
``B * k`` (sample, expert) slots by expert, once, and :func:`routed_entries` derives the
column order of every entry from it arithmetically.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from hsae.kernels import row_dots


@attrs.frozen
class Entries:
    """Entries sorted by row, with their column grouping: the index lists of one gathered product."""

    rows: torch.Tensor  # (E,) nondecreasing
    cols: torch.Tensor  # (E,)
    row_offsets: torch.Tensor  # (n_rows,) first entry of each row
    col_order: torch.Tensor  # (E,) entries listed column by column
    col_offsets: torch.Tensor  # (n_cols,) first position in col_order of each column


@attrs.frozen
class SlotGrouping:
    """The ``B * k`` (sample, selected expert) slots sorted by expert; computed once per forward."""

    idx: torch.Tensor  # (B * k,) expert of each slot
    k: int  # slots per sample
    order: torch.Tensor  # (B * k,) the slots sorted by expert (stable)
    start: torch.Tensor  # (m,) position in ``order`` of each expert's first slot
    count: torch.Tensor  # (m,) slots per expert

    @classmethod
    def of(cls, idx: torch.Tensor, n_experts: int) -> "SlotGrouping":
        """Slots of the ``(B, k)`` expert indices ``idx``."""
        flat = idx.reshape(-1)
        count = torch.bincount(flat, minlength=n_experts)
        order = torch.sort(flat, stable=True).indices
        return cls(flat, idx.shape[1], order, torch.cumsum(count, 0) - count, count)


def routed_entries(slots: SlotGrouping, width: int, rows_per_slot: bool) -> Entries:
    """Entries ``(slot, i)`` for ``i < width``, in that order, with column ``expert(slot) * width + i``.

    The row is the slot itself (``rows_per_slot``) or its sample (``slot // k``), so rows
    are sorted. Column ``j * width + i`` lists expert j's slots in slot order: with
    ``start[j]`` and ``count[j]`` the position and size of j's run among the sorted slots,
    its group starts at ``start[j] * width + i * count[j]`` and the r-th slot of j sits r
    places later.
    """
    n_slots, k, device = slots.idx.shape[0], slots.k, slots.idx.device
    i = torch.arange(width, device=device)
    cols = (slots.idx.unsqueeze(1) * width + i).reshape(-1)
    slot = torch.arange(n_slots, device=device)
    if rows_per_slot:
        rows, row_offsets = slot.repeat_interleave(width), slot * width
    else:
        rows, row_offsets = slot.repeat_interleave(width) // k, slot[: n_slots // k] * (k * width)
    expert = slots.idx.index_select(0, slots.order)  # expert of each sorted slot
    # The sorted slot at position p = start[j] + r goes to start[j] * width + i * count[j] + r.
    first = slot + slots.start.index_select(0, expert) * (width - 1)
    position = first.unsqueeze(1) + i * slots.count.index_select(0, expert).unsqueeze(1)
    col_order = torch.empty_like(cols)
    col_order[position.reshape(-1)] = (slots.order.unsqueeze(1) * width + i).reshape(-1)
    col_offsets = (slots.start.unsqueeze(1) * width + i * slots.count.unsqueeze(1)).reshape(-1)
    return Entries(rows, cols, row_offsets, col_order, col_offsets)


def _segment_sum(values: torch.Tensor | None, table: torch.Tensor, index: torch.Tensor,
                 order: torch.Tensor | None, offsets: torch.Tensor) -> torch.Tensor:
    """``out[g] = sum over the entries e of group g of values[e] * table[index[e]]``: ``(len(offsets), D)``.

    Groups are contiguous runs of entries, in ``order`` when given, starting at ``offsets``.
    """
    if order is not None:
        index = index.index_select(0, order)
        values = None if values is None else values.index_select(0, order)
    if values is not None:
        values = values.detach().to(table.dtype)
    return F.embedding_bag(index, table.detach(), offsets, mode="sum", per_sample_weights=values)


class _GatherDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, left, right, e):  # noqa: ANN001
        ctx.save_for_backward(left, right)
        ctx.entries = e
        return row_dots(left, right, e.rows, e.cols)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        left, right = ctx.saved_tensors
        e = ctx.entries
        grad_left = grad_right = None
        if ctx.needs_input_grad[0]:
            grad_left = _segment_sum(grad, right, e.cols, None, e.row_offsets).to(left.dtype)
        if ctx.needs_input_grad[1]:
            grad_right = _segment_sum(grad, left.to(right.dtype), e.rows, e.col_order, e.col_offsets)
        return grad_left, grad_right, None


class _ScatterRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, table, e):  # noqa: ANN001
        ctx.save_for_backward(values, table)
        ctx.entries = e
        return _segment_sum(values, table, e.cols, None, e.row_offsets)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        values, table = ctx.saved_tensors
        e = ctx.entries
        grad = grad.to(table.dtype).contiguous()
        grad_values = grad_table = None
        if ctx.needs_input_grad[0]:
            grad_values = row_dots(grad, table, e.rows, e.cols).to(values.dtype)
        if ctx.needs_input_grad[1]:
            grad_table = _segment_sum(values, grad, e.rows, e.col_order, e.col_offsets)
        return grad_values, grad_table, None


def gather_dot(left: torch.Tensor, right: torch.Tensor, entries: Entries) -> torch.Tensor:
    """``(E,)``: ``left[rows[e]] . right[cols[e]]``; differentiable in ``left`` and ``right``."""
    return _GatherDot.apply(left, right, entries)


def scatter_rows(values: torch.Tensor, table: torch.Tensor, entries: Entries) -> torch.Tensor:
    """``(n_rows, D)``: row r sums ``values[e] * table[cols[e]]`` over its entries; differentiable in both."""
    return _ScatterRows.apply(values, table, entries)

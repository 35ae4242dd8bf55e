"""Block-maxima top-k (plugins/hsae_standard/block_topk.py): the same values as torch.topk, in every layout."""

from __future__ import annotations

import pytest
import torch

from hsae_standard.block_topk import flat_topk, row_topk_indices


def _same_values(pre: torch.Tensor, got: torch.Tensor, k: int) -> bool:
    want = pre.topk(k, dim=1).values.sort(1).values
    return torch.equal(pre.gather(1, got).sort(1).values, want)


def _distinct(indices: torch.Tensor) -> bool:
    return bool((indices.sort(1).values.diff(dim=1) > 0).all())


@pytest.mark.parametrize(("rows", "n", "k"), [(64, 4096, 25), (33, 2048, 32), (16, 8192, 64), (8, 4096, 64), (8, 1024, 8), (8, 4000, 10)])
def test_row_topk_selects_the_k_largest_of_every_row(rows: int, n: int, k: int):
    pre = torch.randn(rows, n, generator=torch.Generator().manual_seed(n + k))
    got = row_topk_indices(pre, k)
    assert got.shape == (rows, k)
    assert _same_values(pre, got, k) and _distinct(got)


def test_row_topk_when_the_largest_entries_share_one_block_or_spread_over_all():
    pre = torch.randn(4, 4096, generator=torch.Generator().manual_seed(0))
    pre[0, 64:89] += 10  # all 25 largest in one 32-wide block
    pre[1, ::128] += 10  # 32 largest, each in its own block
    pre[2, 100:108] += 10  # 8 largest in one 8-wide sub-block of one block, the rest spread
    pre[2, 1000::160] += 5
    got = row_topk_indices(pre, 25)
    assert _same_values(pre, got, 25) and _distinct(got)
    assert set(got[0].tolist()) == set(range(64, 89))


def test_row_topk_with_ties_and_nan():
    pre = torch.randint(0, 3, (32, 4096), generator=torch.Generator().manual_seed(1)).float()
    got = row_topk_indices(pre, 25)
    assert _same_values(pre, got, 25) and _distinct(got)
    pre = torch.randn(4, 4096, generator=torch.Generator().manual_seed(2))
    pre[1, 7] = pre[2, ::300] = float("nan")  # topk ranks NaN above everything; so must the block path
    got = row_topk_indices(pre, 25)
    assert torch.equal(pre.gather(1, got).isnan().sum(1), torch.tensor([0, 1, 14, 0]))
    assert _distinct(got)


def test_flat_topk_selects_the_k_largest():
    flat = torch.randn(1 << 16, generator=torch.Generator().manual_seed(3))
    values, index = flat_topk(flat, 500)
    assert torch.equal(values.sort().values, flat.topk(500).values.sort().values)
    assert torch.equal(flat[index], values)


def test_row_topk_of_bf16_rows_selects_their_k_largest():
    pre = torch.randn(16, 4096, generator=torch.Generator().manual_seed(4)).bfloat16()  # many ties in bf16
    got = row_topk_indices(pre, 25)
    assert _same_values(pre, got, 25) and _distinct(got)

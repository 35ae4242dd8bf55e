"""hsae.engine.gradients: clipping through the optimizer equals clip_grad_norm_ + Adam; projections and norms are exact."""

from __future__ import annotations

import pytest
import torch

from hsae.engine.gradients import clip_divisor, global_norm, remove_parallel_gradient, renormalize
from hsae.kernels import row_dots
from hsae.engine.optim import Adam


def _tensors() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    column_major = torch.randn(40, 24, generator=g).t()  # (24, 40), as the linear encoder's W_enc
    return [column_major, torch.randn(40, 24, generator=g), torch.randn(40, generator=g), torch.randn(2, 3, 5, generator=g)]


def test_row_dots_and_global_norm_match_torch():
    a, b = torch.randn(300, 77), torch.randn(300, 77)
    torch.testing.assert_close(row_dots(a, b), (a * b).sum(1))
    rows, cols = torch.tensor([0, 5, 5, 299]), torch.tensor([3, 3, 0, 299])
    torch.testing.assert_close(row_dots(a, b, rows, cols), (a[rows] * b[cols]).sum(1))
    tensors = _tensors()
    torch.testing.assert_close(global_norm(tensors), torch.nn.utils.get_total_norm(tensors))


@pytest.mark.parametrize("fused", [True, None])
@pytest.mark.parametrize("scale", [1e-3, 1e3])  # below and above the clipping norm
def test_clipping_by_divisor_equals_clip_grad_norm_then_adam(fused: bool | None, scale: float):
    ours = [torch.nn.Parameter(t.clone()) for t in _tensors()]
    theirs = [torch.nn.Parameter(t.clone()) for t in _tensors()]
    opt_ours, opt_theirs = Adam(ours, lr=1e-2, fused=fused), torch.optim.Adam(theirs, lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        grads = [scale * torch.randn(p.shape, generator=g) for p in ours]
        for p, grad in zip(ours, grads):
            p.grad = grad.clone().as_strided(p.shape, p.stride()).copy_(grad)  # gradients in the parameters' layout
        for p, grad in zip(theirs, grads):
            p.grad = grad.clone()
        opt_ours.step(grad_divisor=clip_divisor([p.grad for p in ours], 1.0))
        torch.nn.utils.clip_grad_norm_(theirs, 1.0)
        opt_theirs.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=1e-6)
    moved = max(float((a.detach() - t).abs().max()) for a, t in zip(ours, _tensors()))
    assert moved > 1e-3  # the steps did something


def test_the_divisor_is_exactly_one_below_the_clipping_norm():
    assert float(clip_divisor([torch.full((10,), 0.01)], 1.0)) == 1.0
    assert float(clip_divisor([torch.full((100,), 1.0)], 1.0)) == pytest.approx(10.0, rel=1e-5)


def test_parallel_gradient_removed_and_rows_renormalized():
    p = torch.nn.Parameter(3 * torch.randn(50, 16))
    p.grad = torch.randn(50, 16)
    before = p.grad.clone()
    remove_parallel_gradient([(p, 1)])
    assert float(row_dots(p.grad, p.detach()).abs().max()) < 1e-4
    torch.testing.assert_close(p.grad + ((before * p).sum(1, keepdim=True) / (p * p).sum(1, keepdim=True)) * p.detach(), before)
    renormalize([(p, 1)])
    torch.testing.assert_close(p.detach().norm(dim=1), torch.ones(50))

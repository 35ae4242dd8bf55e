"""The linear encoder's and decoder's sparse autograd paths give the gradients dense autograd gives."""

from __future__ import annotations

import pytest
import torch

from hsae.config.spec import RouterSpec
from hsae.plugins import get_registry


def _model(k: int, d_sae: int = 64, d_in: int = 16):  # noqa: ANN202
    SAE, TopK = get_registry().get("model", "sae"), get_registry().get("router", "topk")
    torch.manual_seed(0)
    model = SAE(SAE.Config(d_sae=d_sae, router=RouterSpec("topk", TopK.Config(k=k))), d_in=d_in)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # nonzero biases, untied weights
    return model


def _dense_reference(model, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
    """The same forward as plain dense autograd: mask of the top k, ReLU, decode."""
    enc, dec = model.encoder, model.decoder
    pre = (x - dec.b_dec) @ enc.W_enc + enc.b_enc
    mask = torch.zeros_like(pre).scatter_(1, pre.detach().topk(model.router.config.k, dim=1).indices, 1.0)
    return (torch.relu(pre) * mask) @ dec.W_dec + dec.b_dec


@pytest.mark.parametrize("k", [2, 12])  # 2/64 takes the sparse products, 12/64 the dense fallback
@pytest.mark.parametrize("input_grad", [False, True])
def test_sparse_paths_match_dense_autograd(k: int, input_grad: bool):
    model = _model(k)
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    target = torch.randn(32, 16, generator=torch.Generator().manual_seed(2))
    grads = {}
    for name, forward in (("sparse", lambda x: model(x).x_hat), ("dense", lambda x: _dense_reference(model, x))):
        model.zero_grad(set_to_none=True)
        xin = x.clone().requires_grad_(input_grad)
        loss = (forward(xin) - target).pow(2).sum()
        loss.backward()
        grads[name] = {n: p.grad.clone() for n, p in model.named_parameters()}
        if input_grad:
            grads[name]["x"] = xin.grad.clone()
    assert set(grads["sparse"]) == set(grads["dense"])
    for n in grads["dense"]:
        torch.testing.assert_close(grads["sparse"][n], grads["dense"][n], rtol=1e-4, atol=1e-5, msg=n)
    assert float(grads["dense"]["decoder.b_dec"].abs().max()) > 1e-3  # the shift's gradient is exercised


def test_the_radix_argsort_is_torch_stable_sort():
    from hsae_standard.linear import _stable_argsort

    for n_groups in (7, 4096, 1 << 16, (1 << 16) + 1):
        keys = torch.randint(n_groups, (5000,), generator=torch.Generator().manual_seed(n_groups))
        assert torch.equal(_stable_argsort(keys, n_groups), torch.sort(keys, stable=True).indices)


def test_bf16_autocast_on_cpu_trains_with_fp32_codes_and_gradients():
    """precision = "bf16" on CPU: the encoder product runs in bf16, codes and parameter gradients stay fp32."""
    model = _model(k=4, d_sae=2048, d_in=32)  # wide enough for the block-maxima TopK
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
            loss = (out.x_hat.float() - x).pow(2).sum(-1).mean()
        assert out.pre.dtype == torch.bfloat16 and out.codes.values.dtype == torch.float32
        opt.zero_grad()
        loss.backward()
        assert all(p.grad.dtype == torch.float32 and bool(p.grad.isfinite().all()) for p in model.parameters())
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_codes_statistics_count_nonzero_entries_as_the_dense_matrix_does():
    from hsae.model import Codes

    g = torch.Generator().manual_seed(5)
    rows = torch.arange(6).repeat_interleave(3)
    cols = torch.cat([torch.randperm(10, generator=g)[:3] for _ in range(6)])  # distinct latents per sample
    values = torch.relu(torch.randn(18, generator=g))  # about half are zero
    values[0] = 0.0
    sparse = Codes.from_sparse(rows, cols, values, 6, 10)
    dense = Codes.from_dense(sparse.dense())
    want_l0 = torch.bincount(rows[values != 0], minlength=6).float()
    want_fired = torch.bincount(cols[values != 0], minlength=10)
    assert 0 < int(want_fired.sum()) < 18
    assert torch.equal(sparse.l0(), want_l0) and torch.equal(dense.l0(), want_l0)
    assert torch.equal(sparse.fire_counts(), want_fired) and torch.equal(dense.fire_counts(), want_fired)

"""The ReLU + L1 SAE starts its tied encoder at 0.1 of the decoder's transpose (dense routers only)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsae.config.spec import LossSpec, RouterSpec
from hsae.data import Batch
from hsae.engine.gradients import remove_parallel_gradient, renormalize
from hsae.loss import StepContext
from hsae.plugins import get_registry

from conftest import planted_features


def _sae(router: str, **kw):  # noqa: ANN003, ANN202
    SAE = get_registry().get("model", "sae")
    torch.manual_seed(0)
    spec = RouterSpec(router) if router != "topk" else RouterSpec("topk", get_registry().get("router", "topk").Config(k=4))
    return SAE(SAE.Config(d_sae=128, router=spec, **kw), d_in=32)


@pytest.mark.parametrize(("router", "scale"), [("relu", 0.1), ("jumprelu", 0.1), ("topk", 1.0)])
def test_the_tied_encoder_starts_scaled_for_dense_routers_only(router, scale):
    model = _sae(router)
    assert torch.allclose(model.encoder.W_enc, scale * model.decoder.W_dec.t())


def test_encoder_init_scale_overrides_the_default():
    model = _sae("relu", encoder_init_scale=1.0)
    assert torch.equal(model.encoder.W_enc, model.decoder.W_dec.t())
    with pytest.raises(ValueError, match="encoder_init_scale"):
        _sae("relu", encoder_init_scale=0.0)


def _train_l1(scale: float, steps: int = 100) -> float:
    """Mean best cosine of the planted directions after ``steps`` of mse + 0.3 * l1 at lr 3e-3."""
    x, directions, _ = planted_features(n=4096, n_features=64, d=32, p=0.05)
    model = _sae("relu", encoder_init_scale=scale)
    model.init_from_data(x[:256])
    mse, l1 = LossSpec("mse").build(), LossSpec("l1").build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    unit_norm = model.unit_norm_parameters()
    for step in range(steps):
        xb = x[(step % 16) * 256:(step % 16 + 1) * 256]
        out, ctx = model(xb), StepContext(step, steps)
        loss = mse(Batch(xb), out, model, ctx) + 0.3 * l1(Batch(xb), out, model, ctx)
        opt.zero_grad()
        loss.backward()
        remove_parallel_gradient(unit_norm)
        opt.step()
        renormalize(unit_norm)
    return float((F.normalize(model.decoder.W_dec.detach(), dim=1) @ directions.t()).max(0).values.mean())


def test_the_scaled_start_learns_the_features_faster():
    # Full scale: the first gradients are far larger than later ones, Adam's second moment
    # remembers them, and later steps crawl (measured: ~0.50 vs ~0.72 here).
    assert _train_l1(0.1) > _train_l1(1.0) + 0.1

"""Defaults that make the first samples count: ``b_dec`` starts at the data mean, fresh runs only."""

from __future__ import annotations

import numpy as np
import torch

from hsae.config import load_recipe
from hsae.config.spec import RouterSpec
from hsae.engine.assemble import assemble
from hsae.plugins import get_registry

from conftest import TOY_RECIPE, planted_features, write


def _explained_variance(model, x: torch.Tensor) -> float:  # noqa: ANN001
    with torch.no_grad():
        x_hat = model(x).x_hat
    return float(1 - (x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def _offset_data(n: int = 4096) -> torch.Tensor:
    x, _, _ = planted_features(n=n, n_features=64, d=32, p=0.05)
    offset = torch.randn(32, generator=torch.Generator().manual_seed(1))
    return x + 3 * offset / offset.norm()


def _model(b_dec_init: str):  # noqa: ANN202
    SAE, TopK = get_registry().get("model", "sae"), get_registry().get("router", "topk")
    torch.manual_seed(0)
    return SAE(SAE.Config(d_sae=64, router=RouterSpec("topk", TopK.Config(k=4)), b_dec_init=b_dec_init), d_in=32)


def test_b_dec_at_the_data_mean_explains_more_variance_at_step_0():
    x = _offset_data()
    mean_init, zero_init = _model("mean"), _model("zeros")
    for model in (mean_init, zero_init):
        model.init_from_data(x[:1024])
    assert torch.allclose(mean_init.decoder.b_dec, x[:1024].mean(0))
    assert torch.equal(zero_init.decoder.b_dec, torch.zeros(32))
    assert _explained_variance(mean_init, x[1024:]) > _explained_variance(zero_init, x[1024:]) + 0.1


def test_the_trainer_starts_b_dec_at_its_first_batch_mean(tmp_path):
    x = _offset_data()
    np.save(tmp_path / "toy.npy", x.numpy())
    text = TOY_RECIPE.format(k=4, steps=1, checkpoint_every=0).replace("lr = 3e-3", "lr = 1e-9")
    trainer = assemble(load_recipe(write(tmp_path / "r.toml", text)).config)
    first = next(trainer.data.batches(256)).x
    assert not torch.allclose(trainer.model.decoder.b_dec, first.mean(0), atol=1e-3)
    trainer.fit()
    assert torch.allclose(trainer.model.decoder.b_dec, first.mean(0), atol=1e-4)

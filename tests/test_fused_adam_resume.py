"""The trainer's fused Adam, and resume with it: bitwise equal to an uninterrupted run."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

from hsae.config import load_recipe
from hsae.engine import checkpoint as ckpt
from hsae.engine.assemble import assemble
from hsae.engine.optim import Adam
from hsae.engine.rundir import RunDir

from conftest import TOY_RECIPE, write


def _trainer(recipe, run):  # noqa: ANN001, ANN202
    return assemble(load_recipe(recipe).config, run_dir=RunDir(run))


@pytest.fixture(params=[None, 0.01], ids=["no-clip", "clip"])
def recipe(request, tmp_path, toy_data):  # noqa: ANN001, ANN201
    """The toy recipe, without and with gradient clipping (0.01 clips every step: the divisor goes through the fused kernel)."""
    extra = "keep_checkpoints = 5" + (f"\ngrad_clip = {request.param}" if request.param else "")
    text = TOY_RECIPE.format(k=4, steps=40, checkpoint_every=20).replace("progress = false", "progress = false\n" + extra)
    return write(tmp_path / "r.toml", text)


def _resumed_from_step_20(recipe, tmp_path):  # noqa: ANN001, ANN202
    straight = _trainer(recipe, tmp_path / "straight")
    straight.fit()
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "straight", cut)
    shutil.rmtree(cut / "checkpoints" / "step_00000040")  # as if killed between steps 20 and 40
    resumed = _trainer(recipe, cut)
    resumed.fit(resume=True)
    return straight.model.state_dict(), resumed.model.state_dict()


def test_training_uses_the_fused_adam_kernel(recipe, tmp_path):
    trainer = _trainer(recipe, tmp_path / "run")
    assert trainer._optimizer().defaults["fused"] is True


def test_resume_with_fused_adam_is_bitwise_equal(recipe, tmp_path):
    a, b = _resumed_from_step_20(recipe, tmp_path)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_column_major_w_enc_is_stepped_through_a_contiguous_alias(recipe, tmp_path):
    trainer = _trainer(recipe, tmp_path / "run")
    w_enc = trainer.model.encoder.W_enc
    assert not w_enc.is_contiguous()  # the encoder's layout, which the fused kernel would copy every step
    opt = trainer._optimizer()
    assert [original for original, _ in opt.aliases] == [w_enc]
    stepped = [p for group in opt.param_groups for p in group["params"]]
    assert all(p.is_contiguous() for p in stepped)
    alias = opt.aliases[0][1]
    assert alias.data_ptr() == w_enc.data_ptr() and alias.shape == w_enc.t().shape


def test_aliased_adam_steps_as_torch_adam_does():
    """Same updates as torch's for-loop Adam on the original layout, zero_grad clears the originals, and
    the state dict holds parameter-shaped tensors that load back."""
    torch.manual_seed(0)
    ours = nn.Parameter(torch.randn(6, 4).t())  # column-major (4, 6)
    ref = nn.Parameter(ours.detach().clone())
    other = nn.Parameter(torch.randn(3))
    opt = Adam([ours, other], lr=0.1, fused=True)
    ref_opt = torch.optim.Adam([ref], lr=0.1, foreach=False)
    for _ in range(3):
        grad = torch.randn(4, 6)
        ours.grad, ref.grad, other.grad = grad.clone(), grad.clone(), torch.randn(3)
        opt.step()
        ref_opt.step()
        opt.zero_grad()
        assert ours.grad is None and other.grad is None
    assert torch.allclose(ours, ref, atol=1e-6)
    saved = opt.state_dict()
    assert saved["state"][0]["exp_avg"].shape == (4, 6)
    assert torch.allclose(saved["state"][0]["exp_avg"], ref_opt.state[ref]["exp_avg"], atol=1e-6)
    fresh = Adam([ours, other], lr=0.1, fused=True)
    fresh.load_state_dict(ckpt.unflatten_optimizer(*ckpt.flatten_optimizer(saved)))
    restored = fresh.state[fresh.aliases[0][1]]["exp_avg"]
    assert restored.is_contiguous() and torch.equal(restored, opt.state[opt.aliases[0][1]]["exp_avg"])


def test_loaded_state_gets_its_parameters_strides():
    param = nn.Parameter(torch.randn(2, 3, 4).permute(2, 0, 1))  # not a plain transpose: stepped as it is
    opt = Adam([param], lr=0.1, fused=True)
    param.grad = torch.randn_like(param)
    opt.step()
    tensors, rest = ckpt.flatten_optimizer(opt.state_dict())
    tensors = {k: v.contiguous() for k, v in tensors.items()}  # as a checkpoint holds them
    assert tensors["0.exp_avg"].stride() != param.stride()
    opt.load_state_dict(ckpt.unflatten_optimizer(tensors, rest))
    assert opt.state[param]["exp_avg"].stride() == param.stride()

"""The trainer's fused Adam, and resume with it: bitwise equal to an uninterrupted run."""

from __future__ import annotations

import shutil

import pytest
import torch

from hsae.config import load_recipe
from hsae.engine import checkpoint as ckpt
from hsae.engine.assemble import assemble
from hsae.engine.rundir import RunDir

from conftest import TOY_RECIPE, write


def _trainer(recipe, run):  # noqa: ANN001, ANN202
    return assemble(load_recipe(recipe).config, run_dir=RunDir(run))


@pytest.fixture
def recipe(tmp_path, toy_data):  # noqa: ANN001, ANN201
    text = TOY_RECIPE.format(k=4, steps=40, checkpoint_every=20).replace("progress = false", "progress = false\nkeep_checkpoints = 5")
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


def test_without_matching_strides_fused_adam_resume_diverges(recipe, tmp_path, monkeypatch):
    """The layout fix is what makes the test above pass (W_enc is column-major, checkpoints contiguous)."""
    monkeypatch.setattr(ckpt, "match_parameter_layout", lambda opt: None)
    a, b = _resumed_from_step_20(recipe, tmp_path)
    assert not torch.equal(a["encoder.W_enc"], b["encoder.W_enc"])

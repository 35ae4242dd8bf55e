"""hsae.testing: plugin registration for one test, the contract checks, and the planted-feature source."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import torch

import hsae_standard
from hsae.errors import DuplicateComponentError
from hsae.loss import Loss
from hsae.model import Codes, Router
from hsae.plugins import get_registry
from hsae.testing import (ContractError, PlantedFeatures, check_config_roundtrip, check_resume, check_summary,
                          plugin_fixture, registered, tiny_recipe_for)


class HalfRouter(Router):
    """Keep the positive half of the pre-activations."""

    name = "test-half"

    def forward(self, pre: torch.Tensor) -> Codes:
        return Codes.from_dense(torch.relu(pre) / 2)


half_router = plugin_fixture(HalfRouter)


def test_registered_adds_components_for_the_block_only():
    assert "test-half" not in get_registry().names("router")
    with registered(HalfRouter) as registry:
        assert registry.get("router", "test-half") is HalfRouter
    assert "test-half" not in get_registry().names("router")


def test_plugin_fixture_registers_for_the_test(half_router):
    assert half_router.get("router", "test-half") is HalfRouter


def test_an_installed_plugin_is_left_registered():
    with registered(hsae_standard):
        pass
    assert "topk" in get_registry().names("router")


def test_a_clash_is_reported_and_leaves_the_registry_as_it_was():
    class OtherTopK(HalfRouter):
        """Clashes with the built-in topk."""

        name = "topk"

    with pytest.raises((DuplicateComponentError, ContractError), match="topk"), registered(OtherTopK):
        pass
    assert get_registry().get("router", "topk").__name__ == "TopKRouter"


def test_planted_features_are_stateless_in_the_step_and_known():
    source = PlantedFeatures(PlantedFeatures.Config(), seed=3)
    stream = source.batches(8, with_labels=True)
    fourth = [next(stream) for _ in range(4)][-1]
    again = next(source.batches(8, start_step=3, with_labels=True))
    assert torch.equal(fourth.x, again.x)
    assert torch.allclose(again.labels @ source.ground_truth().directions, again.x, atol=1e-6)
    assert not torch.equal(next(source.batches(8, split="eval")).x, next(source.batches(8)).x)


def test_check_summary_wants_a_docstring():
    class Undocumented(Router):
        name = "undocumented"

    Undocumented.__doc__ = None
    with pytest.raises(ContractError, match="router:undocumented: needs a docstring"):
        check_summary(Undocumented)


def test_check_config_roundtrip_catches_a_tuple_that_comes_back_a_list(tmp_path):
    class Loose(Router):
        """A config field typed Any: TOML gives back a list."""

        name = "loose"

        @attrs.frozen
        class Config:
            sizes: Any = (1, 2)

    with pytest.raises(ContractError, match="changes through TOML"):
        check_config_roundtrip(Loose, Loose.Config(), tmp_path)


class ForgetfulLoss(Loss):
    """Adds an L1 term after its fifth call, counting calls in a plain attribute that checkpoints miss."""

    name = "test-forgetful"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.calls = 0

    def forward(self, batch, out, model, ctx) -> torch.Tensor:
        self.calls += 1
        mse = (out.x_hat - batch.x).pow(2).sum(-1).mean()
        return mse + out.codes.dense().abs().sum(-1).mean() if self.calls > 5 else mse


def test_check_resume_catches_state_that_is_not_checkpointed(tmp_path):
    with registered(ForgetfulLoss):
        recipe = tiny_recipe_for(ForgetfulLoss, workdir=tmp_path)
        with pytest.raises(ContractError, match="differs after resuming"):
            check_resume(recipe, tmp_path)

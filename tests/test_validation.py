"""``hsae validate`` builds what training builds: setup, declared model–loss compatibility, bounds."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from conftest import TOY_RECIPE, write

from hsae import hookimpl, plugins
from hsae.errors import UserError
from hsae.loss import Loss, LossConfig


def toy(tmp_path: Path, extra: str = "") -> Path:
    """The toy recipe (tensor-file data, a TopK ``sae``) plus ``extra`` tables."""
    return write(tmp_path / "toy.toml", TOY_RECIPE.format(k=4, steps=4, checkpoint_every=0) + extra)


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == text)


def test_validate_catches_a_wrong_model_loss_pairing(tmp_path, toy_data, cli):
    recipe = toy(tmp_path, '\n[losses.top_mse]\ntype = "hsae-top-mse"\n')
    code, out, err = cli("validate", recipe)
    assert code == 2 and "Traceback" not in err
    where = f"{recipe}:{line_of(recipe, '[losses.top_mse]')}: losses.top_mse: "
    assert (f"{where}loss 'hsae-top-mse' needs a model that provides 'top_reconstruction' (type = \"hsae\"); "
            "model 'sae' provides: 'linear_decoder', 'linear_encoder'") in err


def test_run_with_a_wrong_pairing_stops_before_training_and_leaves_nothing(tmp_path, toy_data, cli):
    recipe = toy(tmp_path, '\n[losses.ortho]\ntype = "group-ortho"\n')
    code, _, err = cli("run", recipe, "--run-dir", tmp_path / "run")
    assert code == 2 and "Traceback" not in err
    assert "losses.ortho: loss 'group-ortho' needs a model that provides 'latent_groups'" in err
    assert 'type = "group-ortho-sae"' in err
    assert not (tmp_path / "run" / "recipe.toml").exists()


def test_every_declared_requirement_has_a_provider():
    registry = plugins.get_registry()
    provided = {c for kind in ("model", "encoder", "router", "decoder") for name in registry.names(kind)
                for c in registry.get(kind, name).provides}
    for kind in ("loss", "metric", "callback"):
        for name in registry.names(kind):
            missing = set(registry.get(kind, name).requires) - provided
            assert not missing, f"{kind} {name!r} requires {missing}, which no model or part provides"


class PickyLoss(Loss):
    """A loss whose setup refuses small models."""

    name = "test-picky"

    def setup(self, model, data) -> None:  # noqa: ANN001
        if model.d_sae < 1000:
            raise UserError(f"needs d_sae >= 1000, got {model.d_sae}")

    def forward(self, batch, out, model, ctx):  # noqa: ANN001
        return out.x_hat.sum() * 0


@pytest.fixture
def picky_plugin():
    module = types.ModuleType("hsae_test_picky")

    @hookimpl
    def hsae_register(registry):
        registry.add(PickyLoss)

    module.hsae_register = hsae_register
    manager = plugins.get_manager()
    manager.register(module)
    yield
    manager.unregister(module)


def test_a_setup_error_is_located_at_its_table(tmp_path, toy_data, cli, picky_plugin):
    recipe = toy(tmp_path, '\n[losses.picky]\ntype = "test-picky"\n')
    where = f"{recipe}:{line_of(recipe, '[losses.picky]')}: losses.picky: needs d_sae >= 1000, got 64"
    code, _, err = cli("validate", recipe)
    assert code == 2 and where in err and "Traceback" not in err
    code, _, err = cli("run", recipe, "--run-dir", tmp_path / "run")
    assert code == 2 and where in err and "Traceback" not in err
    assert not (tmp_path / "run" / "recipe.toml").exists()


def test_a_negative_coefficient_is_an_error_at_its_line(tmp_path, toy_data, cli):
    recipe = toy(tmp_path, '\n[losses.top_mse]\ntype = "hsae-top-mse"\ncoefficient = -0.1\nwarmup_steps = -3\n')
    code, _, err = cli("validate", recipe)
    assert code == 2
    assert f"{recipe}:{line_of(recipe, 'coefficient = -0.1')}: losses.top_mse.coefficient: must be >= 0, got -0.1" in err
    assert f"{recipe}:{line_of(recipe, 'warmup_steps = -3')}: losses.top_mse.warmup_steps: must be >= 0, got -3" in err


def test_a_bound_and_a_type_error_in_one_table_are_reported_together(tmp_path, toy_data, cli):
    recipe = toy(tmp_path).read_text().replace('type = "mse"', 'type = "mse"\ncoefficient = -1\nwarmup_steps = "x"')
    code, _, err = cli("validate", write(tmp_path / "toy.toml", recipe))
    assert code == 2
    assert "losses.mse.coefficient: must be >= 0, got -1.0" in err and "losses.mse.warmup_steps: expected int" in err


def test_a_model_bound_and_a_part_type_error_are_reported_together(tmp_path, toy_data, cli):
    recipe = toy(tmp_path).read_text().replace("d_sae = 64", "d_sae = 0").replace("k = 4", 'k = "four"')
    code, _, err = cli("validate", write(tmp_path / "toy.toml", recipe))
    assert code == 2 and "model.d_sae: must be >= 1, got 0" in err and "model.router.k: expected int" in err


def test_loss_config_refuses_negative_values_from_python():
    with pytest.raises(ValueError, match="coefficient must be >= 0"):
        LossConfig(coefficient=-1.0)
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        LossConfig(warmup_steps=-1)

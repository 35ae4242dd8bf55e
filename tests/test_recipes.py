"""Recipe loading: strict types, unknown keys and plugins, overrides, located errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsae.config import load_recipe
from hsae.errors import RecipeError

from conftest import TOY_RECIPE, write


def recipe_text(**kw) -> str:
    return TOY_RECIPE.format(**{"k": 4, "steps": 10, "checkpoint_every": 0, **kw})


def errors_of(path: Path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, list(overrides))
    return [str(p) for p in info.value.problems]


def test_wrong_type_names_file_line_and_path(tmp_path, toy_data):
    path = write(tmp_path / "r.toml", recipe_text(k='"five"'))
    (error,) = errors_of(path)
    assert error == f"{path}:8: model.router.k: expected int, got 'five'"


def test_typo_suggests_the_key(tmp_path, toy_data):
    path = write(tmp_path / "r.toml", recipe_text().replace("batch_size", "batch_sise"))
    (error,) = errors_of(path)
    assert "train.batch_sise: unknown key (did you mean 'batch_size'?)" in error
    assert f"{path}:" in error


def test_unknown_plugin_lists_closest(tmp_path, toy_data):
    path = write(tmp_path / "r.toml", recipe_text().replace('"topk"', '"topkk"'))
    (error,) = errors_of(path)
    assert "model.router.type: unknown router 'topkk' (did you mean 'topk'?)" in error
    assert "batchtopk" in error and "relu" in error


def test_all_errors_reported_at_once(tmp_path, toy_data):
    text = recipe_text(k='"five"').replace("lr = 3e-3", 'lr = "fast"').replace("batch_size", "batchsize")
    errors = errors_of(write(tmp_path / "r.toml", text))
    assert len(errors) == 3
    assert any("train.lr: expected float, got 'fast'" in e for e in errors)


def test_bool_is_not_an_int_and_int_is_not_a_string(tmp_path, toy_data):
    errors = errors_of(write(tmp_path / "r.toml", recipe_text(k="true")))
    assert "expected int, got True" in errors[0]


def test_missing_recipe_file(tmp_path):
    errors = errors_of(tmp_path / "nope.toml")
    assert errors == [f"{tmp_path / 'nope.toml'}: recipe file not found"]


def test_invalid_toml_syntax_has_line(tmp_path):
    path = write(tmp_path / "r.toml", "[train]\nsteps = = 3\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:2: invalid TOML")


def test_override_sets_and_validates(tmp_path, toy_data):
    path = write(tmp_path / "r.toml", recipe_text())
    recipe = load_recipe(path, ["train.steps=7", "model.router.k=3"])
    assert recipe.config.train.steps == 7 and recipe.config.model.config.router.config.k == 3
    errors = errors_of(path, ["train.steps=many"])
    assert errors == ["--set train.steps=many: expected int, got 'many'"]  # the argument, not a recipe line


def test_relative_paths_resolve_against_the_recipe(tmp_path, toy_data, monkeypatch):
    monkeypatch.chdir("/")
    recipe = load_recipe(write(tmp_path / "r.toml", recipe_text()))
    assert recipe.config.data.config.path == tmp_path / "toy.npy"


def test_resolved_recipe_round_trips(tmp_path, toy_data):
    recipe = load_recipe(write(tmp_path / "r.toml", recipe_text()))
    again = write(tmp_path / "resolved.toml", recipe.to_toml())
    assert load_recipe(again).config == recipe.config


def test_stage_errors_are_located(tmp_path, toy_data):
    text = recipe_text() + '\n[[stages]]\nsteps = 5\nlosses = ["mse", "nope"]\n\n[[stages]]\nsteps = 50\n'
    errors = errors_of(write(tmp_path / "r.toml", text))
    assert any("stages[0].losses: no loss named 'nope'" in e for e in errors)
    assert any("stages: stages add up to 55 steps" in e for e in errors)


def test_cli_exit_code_2_without_traceback(tmp_path, toy_data, cli):
    path = write(tmp_path / "r.toml", recipe_text(k='"five"'))
    code, out, err = cli("validate", path)
    assert code == 2
    assert "model.router.k: expected int, got 'five'" in err
    assert "Traceback" not in err


def test_missing_data_file_is_reported_at_build(tmp_path, cli):
    path = write(tmp_path / "r.toml", recipe_text())  # toy.npy was never written
    code, _, err = cli("validate", path)
    assert code == 2
    assert err == f"error: {path}:3: data.path: file not found: {tmp_path / 'toy.npy'}\n"  # the path line


def test_build_time_value_error_is_located(tmp_path, toy_data, cli):
    path = write(tmp_path / "r.toml", recipe_text(k=500))
    code, _, err = cli("validate", path)
    assert code == 2
    assert f"{path}:8: model.router: k must be in [1, d_sae=64], got 500" in err


def test_validate_ok(toy_recipe, cli):
    code, out, _ = cli("validate", toy_recipe)
    assert code == 0 and "ok" in out


LM_RECIPE = """
[data]
type = "lm-activations"
model = "no-such-model-dir"
hook = "hiden:3"
d_model = 8
eval_fraction = 2.0

[data.texts]
source = "file"
path = "missing.txt"

[model]
type = "sae"
d_sae = 16
"""


def test_lm_activations_problems_point_at_their_keys(tmp_path, cli):
    path = write(tmp_path / "lm.toml", LM_RECIPE)
    code, _, err = cli("validate", path)
    assert code == 2
    assert err.splitlines() == [
        f"error: {path}:10: data.texts.path: file not found: {tmp_path / 'missing.txt'}",
        f"error: {path}:4: data.hook: hook 'hiden:3': expected hidden:<layer>, resid:<layer> or module:<path>",
        f"error: {path}:6: data.eval_fraction: must be in [0, 1), got 2.0",
    ]

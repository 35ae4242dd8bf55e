"""The command line: fast help, ``hsae show`` / ``hsae list KIND NAME``, plain-text docs, ``--set`` errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hsae.plugins import get_registry

from conftest import REPO, TOY_RECIPE, write

HELP_IMPORTS = """
import contextlib, io, sys
from hsae.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        main(["--help"])
    except SystemExit:
        pass
print(",".join(m for m in ("torch", "numpy", "hsae_standard.topk") if m in sys.modules))
print(out.getvalue())
"""


def recipe_text(**kw) -> str:
    return TOY_RECIPE.format(**{"k": 4, "steps": 10, "checkpoint_every": 0, **kw})


# -- hsae --help is fast: no torch, no components ------------------------------------------

def test_help_imports_neither_torch_nor_components():
    done = subprocess.run([sys.executable, "-c", HELP_IMPORTS], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    imported, help_text = done.stdout.split("\n", 1)
    assert imported == ""
    for command in ("run", "validate", "plugins", "list", "show", "generate", "data"):
        assert f"    {command} " in help_text  # plugins' commands are there too


# -- hsae show / hsae list KIND NAME -------------------------------------------------------

def test_show_finds_the_kind_and_prints_keys_types_defaults_docs(cli):
    code, out, err = cli("show", "topk")
    assert code == 0 and err == ""
    assert out.splitlines()[0] == "router topk  (from standard (hsae))"
    assert "  k: int = 32\n      k latents per sample.\n" in out


def test_list_kind_name_is_show(cli):
    assert cli("list", "router", "topk") == cli("show", "topk")
    assert cli("show", "router", "topk") == cli("show", "router:topk")


def test_show_documents_tensor_file_key_and_required_path(cli):
    code, out, _ = cli("show", "tensor-file")
    assert code == 0
    assert "  path: path  (required)\n" in out
    assert "  key: string | none = (unset)\n      the array to read in a file with several" in out


def test_show_nested_spec_shows_its_default_type(cli):
    code, out, _ = cli("show", "model", "sae")
    assert code == 0
    assert '  router: router table = {type = "topk"}\n      router component: its type (see hsae list router)' in out


def test_show_pipeline_lists_train_and_eval_tables(cli):
    code, out, _ = cli("show", "train")
    assert code == 0 and out.startswith("pipeline train")
    assert "  train: table\n      Optimizer, schedule, device and bookkeeping of a training run.\n" in out
    assert "    steps: int = 1000\n" in out
    assert '    lr_schedule: "constant" | "linear" | "cosine" = "constant"\n' in out
    assert "  eval: table\n" in out and "    batches: int = 8\n" in out
    assert "  stages: list of tables = []\n" in out and "    freeze: list of string = []\n" in out
    assert '  losses: tables of loss = {mse = {type = "mse"}}\n' in out


def test_show_json(cli):
    code, out, _ = cli("show", "train", "--json")
    info = json.loads(out)
    assert code == 0 and (info["kind"], info["name"]) == ("pipeline", "train")
    keys = {k["key"]: k for k in info["keys"]}
    assert keys["data"]["required"] and keys["data"]["default"] is None
    train = {k["key"]: k for k in keys["train"]["keys"]}
    assert train["steps"] == {"key": "steps", "type": "int", "required": False, "default": 1000,
                              "doc": "optimizer steps (each sees batch_size rows)"}
    assert keys["metrics"]["default"]["l0"] == {"type": "l0"}
    code, out, _ = cli("list", "data", "tensor-file", "--json")
    assert {k["key"] for k in json.loads(out)["keys"]} == {"path", "key", "eval_fraction", "shuffle", "split_seed"}


@pytest.mark.parametrize("args, message", [
    (("show", "mse"), "error: 'mse' names several components (loss:mse, metric:mse); "
                      "say which, e.g. hsae show loss mse\n"),
    (("show", "tpok"), "error: no component named 'tpok' (did you mean 'topk'?); hsae list shows them all\n"),
    (("show", "router", "tpok"), "error: unknown router 'tpok' (did you mean 'topk'?); available: "),
    (("show", "routr:topk"), "error: unknown kind 'routr' (did you mean 'router'?); kinds are data, model,"),
    (("list", "routers"), "error: unknown kind 'routers' (did you mean 'router'?); kinds are"),
    (("show", "a", "b", "c"), "error: show takes NAME, KIND NAME or KIND:NAME, got 'a b c'\n"),
    (("list", "topk"), "error: 'topk' is a component, not a kind; hsae show topk shows its keys\n"),
])
def test_show_errors_are_clear(cli, args, message):
    code, out, err = cli(*args)
    assert code == 2 and out == "" and err.startswith(message) and "Traceback" not in err


def test_every_registered_component_can_be_shown(cli):
    for kind, name, _ in get_registry().entries():
        code, out, err = cli("show", kind, name)
        assert code == 0 and err == "", f"{kind} {name}: {err}"
        assert "``" not in out and ":class:" not in out, f"{kind} {name} shows reST markup"


# -- plain text: no reST markup in what the CLI prints ---------------------------------------

def test_list_and_plugins_print_plain_text(cli):
    for args in (("list",), ("plugins",), ("list", "--json"), ("plugins", "--json")):
        code, out, _ = cli(*args)
        assert code == 0
        assert "``" not in out and ":class:`" not in out and ":mod:`" not in out, args
    code, out, _ = cli("list", "pipeline", "--json")
    summaries = {r["name"]: r["summary"] for r in json.loads(out)}
    assert summaries["train"] == "Train one SAE from [data], [model], [losses.*] and [train]; evaluate [metrics.*]."
    code, out, _ = cli("plugins", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["hierarchical"]["summary"].startswith("H-SAE (Muchane et al. 2025): the hsae model, its parent-topk")


# -- --set errors name the argument ----------------------------------------------------------

def test_set_unknown_key_names_the_argument(tmp_path, toy_data, cli):
    path = write(tmp_path / "r.toml", recipe_text())
    code, out, err = cli("validate", path, "--set", "train.stepz=5")
    assert code == 2 and out == ""
    assert err.startswith("error: --set train.stepz=5: unknown key (did you mean 'steps'?); allowed: steps, ")
    assert str(path) not in err and err.count("\n") == 1


def test_set_wrong_type_inside_an_inline_table(tmp_path, toy_data, cli):
    path = write(tmp_path / "r.toml", recipe_text())
    code, _, err = cli("validate", path, "--set", 'model.router={type = "topk", kk = 3}')
    assert code == 2
    assert err == ("error: --set model.router={type = \"topk\", kk = 3}: model.router.kk: unknown key "
                   "(did you mean 'k'?); allowed: k\n")


def test_set_build_time_error_names_the_argument(tmp_path, toy_data, cli, monkeypatch):
    path = write(tmp_path / "r.toml", recipe_text())
    monkeypatch.chdir(tmp_path)  # a relative --set path is relative to the working directory
    code, _, err = cli("validate", path, "--set", "data.path=missing.npy")
    assert code == 2 and err == f"error: --set data.path=missing.npy: file not found: {tmp_path / 'missing.npy'}\n"


def test_set_malformed_list_is_one_error(tmp_path, toy_data, cli):
    path = write(tmp_path / "r.toml", recipe_text())
    code, _, err = cli("validate", path, "--set", "stages=[0,1")
    assert code == 2
    assert err.startswith("error: --set stages=[0,1: invalid TOML value '[0,1': ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_set_string_for_a_list_is_one_error_not_one_per_character(tmp_path, toy_data, cli):
    path = write(tmp_path / "r.toml", recipe_text())
    code, _, err = cli("validate", path, "--set", 'stages=[{freeze = "abc"}]')
    assert code == 2
    assert err == "error: --set stages=[{freeze = \"abc\"}]: stages[0].freeze: expected a list, got 'abc'\n"


def test_set_key_in_a_table_the_recipe_lacks_points_at_the_argument(tmp_path, toy_data, cli):
    text = recipe_text().replace('router = { type = "topk", k = 4 }\n', "")
    path = write(tmp_path / "r.toml", text)
    code, _, err = cli("validate", path, "--set", "model.router.k=8")
    assert code == 2 and err.startswith("error: --set model.router.k=8: model.router: missing 'type'")


def test_set_without_equals(tmp_path, toy_data, cli):
    path = write(tmp_path / "r.toml", recipe_text())
    code, _, err = cli("validate", path, "--set", "train")
    assert code == 2 and err == "error: --set train: not KEY=VALUE\n"

"""``hsae generate``: every command of the seed's "Usage commands" blocks, run in-process."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import hsae_synthetic
from hsae.errors import RecipeError, UserError
from hsae_synthetic import load_generated

TREES = Path(__file__).resolve().parents[1] / "recipes" / "trees"
SEED_FILES = ("simple_hierarchy.json", "simple_params.json", "exclusive_groups.json", "exclusive_params.json")


def hsae(command: str) -> int:
    """Run ``hsae <command>`` through the plugin's ``hsae_add_commands`` hook."""
    parser = argparse.ArgumentParser(prog="hsae")
    hsae_synthetic.hsae_add_commands(subparsers=parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(shlex.split(command))
    return args.handler(args)


def seed(command: str) -> int:
    """A command line exactly as the seed writes it, with ``python data_generator.py`` -> ``hsae generate``."""
    return hsae(command.replace("python data_generator.py", "generate"))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name in SEED_FILES:
        shutil.copy(TREES / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load_pt(path) -> dict:
    out = torch.load(path, weights_only=True)
    out["tree"] = json.loads(bytes(out["tree_json"].numpy()).decode())
    out["params"] = json.loads(bytes(out["params_json"].numpy()).decode())
    return out


def test_simple_hierarchy_commands(workdir):
    assert seed("python data_generator.py --config simple_params.json --n_samples 1000 --output simple_data.pt") == 0
    d = load_pt("simple_data.pt")
    assert d["data"].shape == (1000, 256) and d["activations"].shape == (1000, 3)
    assert d["feature_directions"].shape == (3, 256)
    assert torch.allclose(d["data"], d["activations"] @ d["feature_directions"], atol=1e-5)
    assert d["tree"] == json.loads((TREES / "simple_hierarchy.json").read_text())
    assert d["feature_parent"].tolist() == [-1, 0, 0]
    acts = d["activations"] > 0
    assert not (acts[:, 1:].any(1) & ~acts[:, 0]).any()  # sub-features only with their parent

    assert seed("python data_generator.py --config simple_params.json --d_model 512 --noise_level 0.01 --n_samples 2000") == 0
    d = load_pt("generated_data.pt")  # the default output name
    assert d["data"].shape == (2000, 512)
    residual = d["data"] - d["activations"] @ d["feature_directions"]
    assert residual.std().item() == pytest.approx(0.01, rel=0.05)
    assert d["params"]["d_model"] == 512 and d["params"]["noise_level"] == 0.01
    assert d["params"]["random_seed"] == 42 and d["params"]["feature_correlation"] == 0.0  # from the file


def test_exclusive_groups_commands(workdir):
    cmd = "python data_generator.py --config exclusive_params.json --n_samples 5000 --output exclusive_data.pt --save_stats"
    assert seed(cmd) == 0
    d = load_pt("exclusive_data.pt")
    assert d["data"].shape == (5000, 128)
    acts = d["activations"] > 0
    assert acts[:, 1:].sum(1).max() == 1  # competition: never both children
    stats = json.loads(Path("exclusive_data_stats.json").read_text())
    assert stats["expected_l0"] == pytest.approx(0.6)
    assert stats["empirical_l0"] == pytest.approx(acts.sum(1).float().mean().item())
    assert stats["n_samples"] == 5000 and len(stats["feature_frequencies"]) == 3
    np.testing.assert_allclose(stats["feature_frequencies"], acts.float().mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(stats["feature_means"], d["activations"].mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(stats["feature_stds"], d["activations"].std(0).numpy(), atol=1e-5)
    np.testing.assert_allclose(stats["expected_frequencies"], [0.3, 0.12, 0.18])

    # for seed in 42 123 456; do ... --random_seed $seed --output exclusive_data_${seed}.pt; done
    datas = []
    for s in (42, 123, 456):
        assert seed(f"python data_generator.py --config exclusive_params.json --random_seed {s} "
                    f"--output exclusive_data_{s}.pt") == 0
        d = load_pt(f"exclusive_data_{s}.pt")
        assert d["params"]["random_seed"] == s and d["data"].shape == (1000, 128)
        datas.append(d["feature_directions"])
    assert not torch.equal(datas[0], datas[1]) and not torch.equal(datas[1], datas[2])


def test_repository_default_tree_commands(workdir):
    # tree.json is not in the working directory: the shipped recipes/trees/tree.json is used.
    assert seed("python data_generator.py --tree_config tree.json --d_model 512 --n_samples 10000") == 0
    d = load_pt("generated_data.pt")
    assert d["data"].shape == (10000, 512) and d["activations"].shape == (10000, 15)
    assert d["tree"]["children"][0]["id"] == "A"

    assert seed("python data_generator.py --create_config tree_params.json --tree_config tree.json --d_model 512") == 0
    params = json.loads(Path("tree_params.json").read_text())
    assert params["tree_config_file"] == "tree.json" and params["d_model"] == 512
    assert sorted(p.name for p in workdir.iterdir() if p.suffix == ".pt") == ["generated_data.pt"]  # wrote no data

    assert seed("python data_generator.py --config tree_params.json --n_samples 10000 --output tree_data.pt") == 0
    d = load_pt("tree_data.pt")
    assert d["data"].shape == (10000, 512)
    l0 = (d["activations"] > 0).sum(1).double()
    assert abs(l0.mean().item() - 0.618) <= 4 * l0.std().item() / 100  # the analytic L0, within 4 SE


def test_local_tree_file_takes_precedence_over_the_shipped_one(workdir):
    Path("tree.json").write_text(json.dumps({"active_prob": 1.0, "children": [{"active_prob": 0.5}]}))
    assert hsae("generate --tree_config tree.json --d_model 8 --n_samples 10 --output t.pt") == 0
    assert load_pt("t.pt")["activations"].shape == (10, 2)


def test_custom_tree_command(workdir):
    cmd = ("python data_generator.py --generate_custom_tree --n_levels 4 --branching_factor 3 --root_prob 0.15 "
           "--d_model 512 --n_samples 5000 --output custom_data.pt")
    assert seed(cmd) == 0
    d = load_pt("custom_data.pt")
    assert d["data"].shape == (5000, 512)
    tree = d["tree"]
    assert tree["is_read_out"] is False and tree["children"][0]["active_prob"] == pytest.approx(0.15)
    assert d["feature_level"].max() <= 3
    assert d["activations"].shape[1] == d["feature_directions"].shape[0]


@pytest.mark.parametrize("ext", [".safetensors", ".npz"])
def test_other_output_formats(workdir, ext):
    assert hsae(f"generate --config exclusive_params.json --n_samples 300 --output out/data{ext}") == 0
    d = load_generated(f"out/data{ext}")
    assert d["data"].shape == (300, 128) and d["activations"].shape == (300, 3)
    assert d["tree"]["children"][0]["mutually_exclusive_children"] is True
    assert d["params"]["random_seed"] == 123
    raw = load_file(f"out/data{ext}") if ext == ".safetensors" else dict(np.load(f"out/data{ext}"))
    assert set(raw) >= {"data", "activations", "feature_directions", "feature_parent", "feature_level"}
    pt = hsae("generate --config exclusive_params.json --n_samples 300 --output same.pt")
    assert pt == 0 and torch.equal(load_pt("same.pt")["data"], torch.as_tensor(np.asarray(d["data"])))


def test_bad_inputs_are_one_line_errors_and_write_nothing(workdir):
    Path("bad_tree.json").write_text(json.dumps({"active_prob": 1, "children": [
        {"active_prob": 0.2, "children": [{"active_prob": 0.5}, {"active_prob": 1.5}]}]}))
    with pytest.raises(RecipeError) as info:
        hsae("generate --tree_config bad_tree.json --output x.pt")
    assert str(info.value) == "bad_tree.json: $.children[0].children[1].active_prob: 1.5 is not in [0, 1]"
    Path("broken.json").write_text("{\n  \"active_prob\": 1,,\n}")
    with pytest.raises(RecipeError, match=r"broken.json:2: invalid JSON"):
        hsae("generate --tree_config broken.json --output x.pt")
    with pytest.raises(UserError, match="missing.json: no such tree file"):
        hsae("generate --tree_config missing.json --output x.pt")
    with pytest.raises(UserError, match="nope.json: no such file"):
        hsae("generate --config nope.json --output x.pt")
    with pytest.raises(RecipeError, match=r"--noise_level: -1.0 must be >= 0"):
        hsae("generate --config simple_params.json --noise_level -1 --output x.pt")
    with pytest.raises(UserError, match="unknown output format '.csv'"):
        hsae("generate --config simple_params.json --output x.csv")
    with pytest.raises(UserError, match="no tree to generate from"):
        hsae("generate --d_model 8")
    assert not list(workdir.glob("x.*")) and not list(workdir.glob(".*.tmp"))


def test_a_failed_write_leaves_no_file(workdir, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        hsae("generate --config simple_params.json --n_samples 10 --output fail.pt")
    assert not list(workdir.glob("fail*")) and not list(workdir.glob(".fail*"))

"""The tensor-file source: .pt files (a tensor or a dict of tensors), key defaults, located file errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hsae.errors import UserError
from hsae_tensorfile.arrays import ArrayKeyError, open_array

from conftest import write

RECIPE = """
[data]
type = "tensor-file"
path = "{path}"
{key}
[model]
type = "sae"
d_sae = 16
router = {{ type = "topk", k = 2 }}

[train]
steps = 5
batch_size = 64
checkpoint_every = 0
progress = false
"""


def test_pt_dict_picks_key_then_data(tmp_path):
    x = torch.randn(50, 8)
    torch.save({"data": x, "labels": torch.zeros(50, dtype=torch.long), "note": "not a tensor"}, tmp_path / "d.pt")
    np.testing.assert_array_equal(open_array(tmp_path / "d.pt", None), x.numpy())  # several arrays: "data"
    with pytest.raises(ArrayKeyError, match=r"no array named 'acts'; it holds data, labels"):
        open_array(tmp_path / "d.pt", "acts")


def test_pt_single_tensor_and_single_entry_dict(tmp_path):
    x = torch.randn(20, 4, dtype=torch.bfloat16)
    torch.save(x, tmp_path / "t.pt")
    np.testing.assert_array_equal(open_array(tmp_path / "t.pt", None), x.float().numpy())
    torch.save({"acts": x.float()}, tmp_path / "one.pt")
    assert open_array(tmp_path / "one.pt", None).shape == (20, 4)


def test_pt_without_data_key_asks_for_key(tmp_path):
    torch.save({"a": torch.randn(5, 2), "b": torch.randn(5, 2)}, tmp_path / "ab.pt")
    with pytest.raises(ArrayKeyError, match=r"holds several arrays \(a, b\); set `key` in the recipe"):
        open_array(tmp_path / "ab.pt", None)


def test_pt_with_pickled_objects_is_refused(tmp_path):
    torch.save({"data": torch.randn(5, 2), "obj": Path("x")}, tmp_path / "obj.pt")
    with pytest.raises(UserError, match="cannot read activations"):
        open_array(tmp_path / "obj.pt", None)


def test_missing_file_points_at_the_path_line(tmp_path, cli):
    recipe = write(tmp_path / "r.toml", RECIPE.format(path="nope.pt", key=""))
    code, out, err = cli("validate", recipe)
    assert code == 2 and out == ""
    assert err == f"error: {recipe}:3: data.path: file not found: {tmp_path / 'nope.pt'}\n"


def test_bad_key_points_at_the_key_line(tmp_path, cli):
    torch.save({"data": torch.randn(50, 8)}, tmp_path / "d.pt")
    recipe = write(tmp_path / "r.toml", RECIPE.format(path="d.pt", key='key = "acts"\n'))
    code, _, err = cli("validate", recipe)
    assert code == 2
    assert err == f"error: {recipe}:4: data.key: {tmp_path / 'd.pt'}: no array named 'acts'; it holds data\n"


def test_generated_pt_trains_with_tensor_file(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("generate", "--tree_config", "tree.json", "--d_model", "16", "--n_samples", "400",
                         "--random_seed", "0")
    assert code == 0, err
    assert (tmp_path / "generated_data.pt").is_file()  # hsae generate's default output
    recipe = write(tmp_path / "r.toml", RECIPE.format(path="generated_data.pt", key=""))
    code, _, err = cli("run", recipe, "--run-dir", tmp_path / "run")
    assert code == 0, err
    cfg = json.loads((tmp_path / "run" / "cfg.json").read_text())
    assert cfg["d_in"] == 16  # trained on the data vectors, not the (400, n_features) true activations
    steps = [json.loads(line).get("step") for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s is not None) == 5


def test_held_out_rows_do_not_depend_on_the_run_seed(tmp_path):
    from hsae_tensorfile.source import TensorFileSource

    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32))
    config = TensorFileSource.Config(path=tmp_path / "x.npy", eval_fraction=0.1)
    a, b = TensorFileSource(config, seed=0), TensorFileSource(config, seed=7)
    assert np.array_equal(a.eval_rows, b.eval_rows) and len(a.eval_rows) == 20


def test_no_held_out_rows_means_no_metrics_not_training_rows(tmp_path):
    import torch

    from hsae.engine.evaluate import evaluate
    from hsae.plugins import get_registry
    from hsae_tensorfile.source import TensorFileSource

    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32))
    source = TensorFileSource(TensorFileSource.Config(path=tmp_path / "x.npy", eval_fraction=0.0))
    assert list(source.batches(16, split="eval")) == []
    registry = get_registry()
    model = registry.get("model", "sae")(registry.get("model", "sae").Config(d_sae=64), d_in=4)
    metric = registry.get("metric", "mse")(registry.get("metric", "mse").Config())
    with pytest.warns(UserWarning, match="no held-out rows"):
        assert evaluate(model, source, {"mse": metric}, batches=2, batch_size=16, device=torch.device("cpu")) == {}

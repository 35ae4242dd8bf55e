"""The concept-features pipeline (s0 -> s5) and s1 on a tiny real GPT-2 (seconds); commands on its outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hsae.cli import main
from hsae.config import loads_recipe
from hsae.errors import RecipeError
from hsae.plugins import get_registry
from hsae_concepts.reader import open_directory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from hsae import run_recipe
    from hsae.config.recipe import Recipe

    cls = get_registry().get("pipeline", "concept-features")
    root = tmp_path_factory.mktemp("cf") / "run"
    config = cls.example_config(root.parent)
    return run_recipe(Recipe(cls.name, config, base_dir=root.parent), root).root, config


def test_pipeline_writes_every_step(run):
    root, config = run
    assert (root / "sentences" / "split.json").is_file()
    assert all((root / "saes" / f"layer_{layer:02d}" / "model.safetensors").is_file() for layer in config.layers)
    assert len(list((root / "features").glob("sentence_*.npz"))) == 240
    assert (root / "ranked_features.csv").read_text().startswith("rank,layer,average_l0,feature_id,score")
    summary = json.loads((root / "classifiers.json").read_text())
    assert set(summary["layers"]) == {"0", "1"} and summary["score"] == "test accuracy"
    assert summary["embedding_baseline"]["n_test"] == 48
    assert (root / "accuracy_by_layer.png").stat().st_size > 1000
    with np.load(root / "datasets" / "h1_to_concept.npz", allow_pickle=False) as data:
        split = json.loads((root / "sentences" / "split.json").read_text())
        test_sentences = data["meta_sentence_indices"][data["split_test_indices"]]
        assert sorted(test_sentences.tolist()) == split["test"]  # s0's split is the one s4 stores


def test_sentence_files_have_the_seed_keys_and_documented_contents(run):
    from hsae_lm.models import load_model, load_tokenizer

    root, config = run
    sidecar = json.loads((root / "features" / "features.json").read_text())
    assert sidecar["layers"] == [0, 1] and sidecar["dtype"] == "float32"
    assert sidecar["saes"]["1"]["id"].endswith("layer_01") and sidecar["hooks"]["0"] == "output of transformer.h.0"
    from hsae_lm.models import weights_digest

    assert len(sidecar["model_weights_sha256"]) == 64  # which checkpoint produced these files
    assert sidecar["model_weights_sha256"] == weights_digest(sidecar["model_path"])
    with np.load(root / "features" / "sentence_000005.npz", allow_pickle=False) as data:
        assert {"embeddings", "hidden_states", "activations", "concept_strength_label", "is_final_token", "layers",
                "average_l0s"} <= set(data.files)
        n = len(data["is_final_token"])
        assert data["hidden_states"].shape == (2, n, 32) and data["activations"].shape == (2, n, 32)
        assert data["embeddings"].shape == (n, 32) and data["is_final_token"].sum() == 1
        assert data["average_l0s"].tolist() == [4.0, 4.0]  # TopK k = 4
        embeddings, layer0 = data["embeddings"], data["hidden_states"][0]
    text = (root / "sentences" / "sentences.csv").read_text().splitlines()[6].rsplit(",", 1)[0]
    model, tokenizer = load_model(config.model), load_tokenizer(config.model)
    with torch.no_grad():
        out = model(**tokenizer(tokenizer.bos_token + text, return_tensors="pt"), output_hidden_states=True)
    np.testing.assert_allclose(embeddings, out.hidden_states[0][0].numpy(), atol=1e-5)  # hidden_states[0]
    np.testing.assert_allclose(layer0, out.hidden_states[1][0].numpy(), atol=1e-5)  # after block 0


def test_capture_runs_one_forward_pass_per_batch(run):
    from hsae_concepts.capture import CaptureOptions, LayerCapture
    from hsae_lm.hooks import find_blocks
    from hsae_lm.models import load_model, load_tokenizer

    _, config = run
    model = load_model(config.model)
    calls = []
    handle = find_blocks(model)[0].register_forward_hook(lambda *a: calls.append(1))
    captured = list(LayerCapture(model, load_tokenizer(config.model), (0, 1), CaptureOptions(batch_size=4))(["a b"] * 10))
    handle.remove()
    assert len(captured) == 10 and len(calls) == 3  # 3 batches, both layers in each pass


def test_commands_on_the_pipeline_outputs(run, tmp_path, capsys):
    root, config = run
    features = str(root / "features")
    sparse = tmp_path / "sparse"
    assert main(["concepts", "features", "--sentences", str(root / "sentences" / "sentences.csv"), "--model",
                 config.model, "--layers", "0-1", "--sae", f"0={root / 'saes' / 'layer_00'}",
                 "--sae", f"1={root / 'saes' / 'layer_01'}", "--output", str(sparse), "--sparse"]) == 0
    assert open_directory(sparse).sparse and not open_directory(root / "features").sparse
    for directory in (features, str(sparse)):
        assert main(["generate-datasets", "--strategy", "hidden-to-feature", "--input", directory, "--target-layer",
                     "1", "--target-feature", "3", "--output", str(tmp_path / f"{len(directory)}.npz")]) == 0
    dense_y, sparse_y = (np.load(tmp_path / f"{len(d)}.npz")["y"] for d in (features, str(sparse)))
    np.testing.assert_allclose(dense_y, sparse_y, atol=1e-6)
    assert main(["concepts", "rank", "--input", features, "--output", str(tmp_path / "r.csv"), "--top", "5"]) == 0
    assert "training sentences of" in capsys.readouterr().err
    assert main(["concepts", "classify", str(root / "datasets" / "h0_to_concept.npz")]) == 0
    assert "logreg: CV" in capsys.readouterr().out
    assert main(["concepts", "features", "--demo", "dishonesty", "--model", config.model, "--layers", "0",
                 "--sae", f"1={root / 'saes' / 'layer_01'}", "--output", str(tmp_path / "x")]) == 2
    assert "--sae must name exactly the --layers" in capsys.readouterr().err


def test_layer_sweep_and_demo_data_commands(run, tmp_path, capsys):
    from hsae_concepts.demo import demo_path

    root, _ = run
    assert main(["concepts", "layer-sweep", "--input", str(root / "features"), "--output", str(tmp_path / "sweep"),
                 "--layers", "1", "--folds", "3"]) == 0
    summary = json.loads((tmp_path / "sweep" / "classifiers.json").read_text())
    assert list(summary["layers"]) == ["1"] and summary["embedding_baseline"]["folds"] == 3
    assert (tmp_path / "sweep" / "accuracy_by_layer.png").is_file()
    assert main(["concepts", "demo-data", "--output", str(tmp_path / "demo")]) == 0
    assert (tmp_path / "demo" / "aggression.csv").read_text() == demo_path("aggression").read_text()


def test_recipe_problems_are_located(tmp_path):
    from hsae_lm.testing import tiny_gpt2_dir

    text = f'pipeline = "concept-features"\nmodel = "{tiny_gpt2_dir()}"\nlayers = [0, 5]\n' \
           '[sentences]\ntest_fraction = 1.5\n'
    with pytest.raises(RecipeError) as info:
        loads_recipe(text, file="r.toml")
    assert "r.toml:5: sentences.test_fraction: must be in (0, 1), got 1.5" in str(info.value)
    recipe = loads_recipe(text.replace("1.5", "0.2"), file="r.toml")
    with pytest.raises(RecipeError, match="r.toml:3: layers: the model has blocks 0-1"):
        recipe.build_pipeline().validate()

"""Every usage example of seed 004's guide runs as ``hsae generate-datasets`` (the original ran
``uv run python generate_datasets.py``), on a directory in the seed's documented format:
26 layers, 16,384-wide SAEs cut to 8,924 latents here (the largest feature the examples name)."""

from __future__ import annotations

import shlex

import numpy as np
import pytest

from hsae.cli import main
from hsae_concepts.testing import write_sentence_dir

INPUT = "../s1_compute_all_features/dishonesty_100_features"
SEED_EXAMPLES = [
    "--strategy embedding-to-feature --input {i} --target-layer 12 --target-feature 1234 --output generated_datasets/dishonesty_emb_to_l12_f1234.npz",
    "--strategy embedding-to-feature --input {i} --target-layer 12 --target-feature 1234 --normalize minmax --output generated_datasets/dishonesty_emb_to_l12_f1234_minmax.npz",
    "--strategy hidden-to-feature --input {i} --target-layer 12 --target-feature 1234 --output generated_datasets/dishonesty_h12_to_f1234.npz",
    "--strategy hidden-to-feature --input {i} --target-layer 15 --target-feature 8923 --normalize none --output generated_datasets/dishonesty_h15_to_f8923_raw.npz",
    "--strategy hidden-to-concept --input {i} --layer 12 --output generated_datasets/dishonesty_h12_to_concept.npz",
    "--strategy hidden-to-concept --input {i} --layers 0-5 --output generated_datasets/dishonesty_h0-5_to_concept.npz",
    "--strategy hidden-to-concept --input {i} --layers 0-5 --output generated_datasets/dishonesty_early_layers.npz",
    "--strategy hidden-to-concept --input {i} --layers 10-15 --output generated_datasets/dishonesty_middle_layers.npz",
    "--strategy hidden-to-concept --input {i} --layers 20-25 --output generated_datasets/dishonesty_late_layers.npz",
    "--strategy hidden-to-concept --input {i} --layers 0,12,25 --output generated_datasets/dishonesty_sparse_layers.npz",
    # Workflow 1
    "--strategy embedding-to-feature --input {i} --target-layer 12 --target-feature 1234 --output generated_datasets/dishonesty_emb_to_f1234.npz",
    # Workflow 2
    *[f"--strategy hidden-to-concept --input {{i}} --layers {r} --output generated_datasets/dishonesty_layers_{r}.npz"
      for r in ("0-5", "6-11", "12-17", "18-25")],
    *[f"--strategy hidden-to-concept --input {{i}} --layers {r} --output generated_datasets/dishonesty_layers_{r.replace(',', '_')}.npz"
      for r in ("0,12,25", "5,15,20", "10,15,20")],
    # Workflow 3
    *[f"--strategy hidden-to-concept --input {{i}} --layer 12 --normalize {n} --output generated_datasets/dishonesty_h12_norm_{n}.npz"
      for n in ("standardize", "minmax", "none")],
    # Workflow 4 (one trait's directory stands for each)
    "--strategy hidden-to-concept --input {i} --layers 0-5 --output generated_datasets/aggression_h0-5_to_concept.npz",
]


@pytest.fixture(scope="module")
def seed_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed")
    work = root / "s4_classifier_data_prep"
    work.mkdir()
    write_sentence_dir(work / INPUT, n_sentences=8, layers=tuple(range(26)), d=8, d_sae=8924, fragments=(1, 2),
                       density=0.01)
    return work


@pytest.mark.parametrize("example", SEED_EXAMPLES, ids=range(len(SEED_EXAMPLES)))
def test_seed_usage_example(example, seed_dir, monkeypatch, capsys):
    monkeypatch.chdir(seed_dir)
    argv = ["generate-datasets", *shlex.split(example.format(i=INPUT))]
    assert main(argv) == 0, capsys.readouterr().err
    out = seed_dir / argv[argv.index("--output") + 1]
    with np.load(out, allow_pickle=False) as data:
        assert data["X"].shape[0] == data["y"].shape[0] == int(data["meta_n_samples"]) == 8
        assert data["X"].shape[1] == int(data["meta_input_dims"]) == 8 * max(1, len(data["meta_input_layers"]))
        assert str(data["norm_method"]) in ("standardize", "minmax", "none")

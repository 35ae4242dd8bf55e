"""Phase 1 on a real model: unembedding, whitening, WordNet teacher, controls, the teacher-lm recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hsae.errors import UserError
from hsae.io import load_tensors
from hsae_lm import testing
from hsae_lm.concepts import ConceptConfig, restrict
from hsae_lm.geometry import GeometryConfig, lm_geometry, summary, teacher_config, token_samples
from hsae_lm.models import load_model
from hsae_lm.unembedding import unembedding
from hsae_teacher.estimator import estimate_teacher
from hsae_teacher.validation import parent_delta_angles

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gamma():
    matrix, which = unembedding(testing.minilm_model())
    assert which == "input_embedding"  # MiniLM ships no LM head
    return matrix


@pytest.fixture(scope="module")
def animals():
    return restrict(testing.minilm_hierarchy(), ConceptConfig(root="animal.n.01"))


@pytest.fixture(scope="module")
def report(gamma, animals):
    rep, whitening = lm_geometry(gamma, animals, GeometryConfig(random_tokens=1000),
                                 exclude_tokens=testing.minilm_tokenizer().all_special_ids)
    return rep, whitening


def test_unembedding_sources():
    gpt2 = load_model(str(testing.tiny_gpt2_dir()))
    matrix, which = unembedding(gpt2)
    assert which == "lm_head" and matrix.shape == gpt2.lm_head.weight.shape
    with pytest.raises(UserError, match="no LM head"):
        unembedding(testing.minilm_model(), "lm_head")


def test_whitened_geometry_beats_the_shuffled_unembedding(report):
    rep, _ = report
    s = summary(rep)
    assert s["whitened"]["auc_mean"] > 0.8
    assert abs(s["shuffled_unembedding"]["auc_mean"] - 0.5) < 0.1
    assert s["whitened"]["auc_mean"] - s["shuffled_unembedding"]["auc_mean"] > 0.25
    assert rep["controls"]["euclidean"]["projection"]["auc_mean"] is not None
    assert rep["controls"]["random_parent"]["angles"]["n"] == rep["angles"]["n"] > 0
    assert rep["config"]["n_test"] == pytest.approx(0.3 * rep["config"]["n_tokens"], abs=1)


def test_angles_come_from_unnormalized_vectors(gamma, animals, report):
    _, whitening = report
    tokens, labels = token_samples(animals, gamma.shape[0], 1000, [], 0)
    teacher = estimate_teacher(gamma[torch.from_numpy(tokens)].double().numpy(), labels, animals.parent_of,
                               whitening, teacher_config(GeometryConfig()))
    j = 0
    child, parent = teacher.children[j], teacher.child_parent[j]
    ell_c, ell_p = teacher.vector(int(child)), teacher.vector(int(parent))
    delta = ell_c - ell_p
    manual = np.degrees(np.arccos(delta @ ell_p / np.linalg.norm(delta) / np.linalg.norm(ell_p)))
    assert parent_delta_angles(teacher)[j] == pytest.approx(manual)
    # the dual back map makes logits along a residual direction equal causal projections
    r = teacher.vectors_of([parent], "input")[0]
    g = whitening.transform(gamma[:50].double().numpy())
    assert np.allclose((gamma[:50].double().numpy() - whitening.mean) @ r, g @ ell_p, atol=1e-6)


def test_recipe_writes_the_geometry_report(tmp_path, cli):
    code, _, err = cli("run", REPO / "recipes" / "teacher-lm.toml", "--run-dir", tmp_path / "run", "--phase", "1",
                       "--set", 'concepts.root="animal.n.01"', "--set", "geometry.random_tokens=500",
                       "--set", f'wordnet_dir="{testing.wordnet_dir()}"')
    assert code == 0, err
    out = tmp_path / "run" / "geometry"
    summary_ = json.loads((out / "summary.json").read_text())
    assert summary_["unembedding"] == "input_embedding"
    assert summary_["whitened"]["auc_mean"] > summary_["shuffled_unembedding"]["auc_mean"] + 0.25
    table = (out / "geometry.md").read_text()
    assert "| projection AUC (mean) |" in table and "shuffled unembedding" in table
    teacher = load_tensors(out / "teacher-unembedding.safetensors")
    assert teacher["parent_vectors"].shape[1] == 384 and teacher["causal_metric"].shape == (384, 384)
    assert json.loads((out / "concepts.json").read_text())["names"][0] == "animal.n.01"


def test_gpu_recipe_validates_without_the_model(cli):
    code, out, err = cli("validate", REPO / "recipes" / "teacher-lm-gemma.toml")
    assert code == 0, err
    assert "ok (teacher-lm pipeline)" in out

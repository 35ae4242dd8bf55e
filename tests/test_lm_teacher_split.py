"""The LM teacher never sees the words the ``lm-concepts`` metric holds out (issue 10, defect 4)."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest
import torch

from hsae.config import load_recipe
from hsae.io import load_tensors
from hsae_lm import testing
from hsae_lm.concepts import ConceptConfig, restrict
from hsae_lm.geometry import GeometryConfig
from hsae_lm.prompts import concept_prompts
from hsae_lm.splice_metric import lm_source
from hsae_lm.teacher_pipeline import held_out_tokens, save_lm_teacher
from hsae_lm.unembedding import unembedding
from hsae_teacher.geometry import fit_whitening

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recipe():
    recipe = load_recipe(REPO / "recipes" / "teacher-lm.toml")
    source = attrs.evolve(recipe.config.data.config.source.config, wordnet_dir=testing.wordnet_dir())
    data = attrs.evolve(recipe.config.data.config, source=attrs.evolve(recipe.config.data.config.source, config=source))
    return attrs.evolve(recipe.config, data=attrs.evolve(recipe.config.data, config=data))


def test_held_out_tokens_are_the_words_of_the_metrics_eval_and_validation_prompts(recipe):
    source, _ = lm_source(recipe.data.build(seed=0))
    c = source.config
    eval_words = {p.token_id for p in concept_prompts(source.hierarchy, split="test", seed=c.text_seed)}
    validation_words = {p.token_id for p in concept_prompts(
        source.hierarchy, split="validation", seed=c.text_seed, validation_fraction=c.validation_fraction)}
    held_out = held_out_tokens(recipe)
    assert set(held_out.tolist()) == eval_words | validation_words and not eval_words & validation_words
    held_out_share = 0.3 + 0.7 * c.validation_fraction
    assert held_out_share - 0.05 < len(held_out) / len(source.hierarchy.token_ids()) < held_out_share + 0.05


def _teacher(tmp_path: Path, gamma: torch.Tensor, hierarchy, whitening, held_out: np.ndarray) -> dict:
    path = tmp_path / "teacher.safetensors"
    save_lm_teacher(path, gamma, hierarchy, whitening, GeometryConfig(random_tokens=500), held_out=held_out)
    return load_tensors(path)


def test_the_teacher_is_unchanged_when_held_out_rows_change(tmp_path, recipe):
    gamma, _ = unembedding(testing.minilm_model())
    animals = restrict(testing.minilm_hierarchy(), ConceptConfig(root="animal.n.01"))
    held_out = held_out_tokens(recipe)
    whitening = fit_whitening("matrix", matrix=gamma)  # over the whole vocabulary, shared by every estimate
    base = _teacher(tmp_path, gamma, animals, whitening, held_out)

    noise = torch.randn(len(held_out), gamma.shape[1], generator=torch.Generator().manual_seed(0))
    perturbed = gamma.clone()
    perturbed[torch.from_numpy(held_out)] += noise
    same = _teacher(tmp_path, perturbed, animals, whitening, held_out)
    assert torch.equal(same["concept_vectors"], base["concept_vectors"])

    train = np.setdiff1d(animals.token_ids(), held_out)
    perturbed = gamma.clone()
    perturbed[torch.from_numpy(train[:20])] += noise[:20]
    assert not torch.equal(_teacher(tmp_path, perturbed, animals, whitening, held_out)["concept_vectors"],
                           base["concept_vectors"])

"""Issue 10 on a real model: the validation split, BOS before each text, mixed texts, shared store orders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsae.errors import UserError
from hsae_lm import testing
from hsae_lm.capture import Capturer, CaptureConfig
from hsae_lm.concepts import ConceptConfig, restrict
from hsae_lm.prompts import prompt_word_split, prompt_word_splits
from hsae_lm.source import LMActivationsConfig, LMActivationsSource
from hsae_lm.texts import TextConfig, TextItem

from conftest import write

LINES = [f"sentence number {i} is about a dog" for i in range(40)]


def _source(tmp_path, **kw) -> LMActivationsSource:
    texts = write(tmp_path / "texts.txt", "\n".join(LINES))
    config = dict(model=str(testing.tiny_gpt2_dir()), hook="hidden:1", texts=TextConfig("file", texts),
                  eval_fraction=0.1, shard_rows=64, shuffle_buffer_rows=128, batch_texts=4, progress=False,
                  device="cpu", positions="last")
    return LMActivationsSource(LMActivationsConfig(**{**config, **kw}))


# -- the validation split -----------------------------------------------------------------------


def test_validation_texts_are_held_out_of_train_and_eval(tmp_path):
    source = _source(tmp_path, validation_fraction=0.25, cache_dir=tmp_path / "cache")
    texts = {split: {it.text for it in source.items(split)} for split in ("train", "validation", "eval")}
    assert len(texts["eval"]) == 4 and len(texts["validation"]) == 9 and len(texts["train"]) == 27
    assert not (texts["train"] & texts["validation"]) and not (texts["validation"] & texts["eval"])
    rows = list(source.batches(5, split="validation"))
    assert sum(len(b) for b in rows) == 9  # one row per text, served once
    items = {int(i) for b in rows for i in b.meta["item"]}
    assert items == set(range(9)) and (tmp_path / "cache" / "validation" / "manifest.json").is_file()
    # the eval texts are the same as without a validation split: only train gives texts up
    assert {it.text for it in _source(tmp_path).items("eval")} == texts["eval"]


def test_without_a_validation_fraction_the_split_is_refused_and_old_caches_stay_valid(tmp_path):
    source = _source(tmp_path)
    with pytest.raises(UserError, match="validation_fraction"):
        next(source.batches(4, split="validation"))
    assert "validation_fraction" not in source.fingerprint("train")  # caches written before it still match
    assert _source(tmp_path, validation_fraction=0.2).fingerprint("train")["validation_fraction"] == 0.2


def test_validation_words_are_train_words_and_never_test_words():
    h = restrict(testing.minilm_hierarchy(), ConceptConfig(root="mammal.n.01"))
    words = prompt_word_splits(h, validation_fraction=0.2, seed=3)
    train, test = prompt_word_split(h, seed=3)
    assert np.array_equal(words["test"], test)  # the metric's words do not move
    assert np.array_equal(np.union1d(words["train"], words["validation"]), train)
    assert not np.intersect1d(words["train"], words["validation"]).size
    assert abs(len(words["validation"]) - 0.2 * len(train)) <= 1


def test_the_lm_teacher_never_sees_validation_words():
    from pathlib import Path

    import attrs

    from hsae.config import load_recipe
    from hsae_lm.teacher_pipeline import held_out_tokens

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "teacher-lm.toml").config
    source = attrs.evolve(recipe.data.config.source.config, wordnet_dir=testing.wordnet_dir(), validation_fraction=0.1)
    data = attrs.evolve(recipe.data.config, source=attrs.evolve(recipe.data.config.source, config=source))
    recipe = attrs.evolve(recipe, data=attrs.evolve(recipe.data, config=data))
    built = recipe.data.build(seed=0).source
    words = prompt_word_splits(built.hierarchy, validation_fraction=0.1, seed=source.text_seed)
    held_out = set(held_out_tokens(recipe).tolist())
    assert held_out == set(words["test"].tolist()) | set(words["validation"].tolist())
    assert {int(t) for t in words["validation"]} <= held_out and not held_out & set(words["train"].tolist())


def test_a_shared_store_serves_each_seed_its_own_order(tmp_path):
    first = _source(tmp_path)
    second = LMActivationsSource(first.config, seed=1)
    second.reuse_capture(first)
    a, b = next(first.batches(8)), next(second.batches(8))
    again = next(first.batches(8))
    assert torch.equal(a.x, again.x) and not torch.equal(a.meta["item"], b.meta["item"])
    assert second._stores is first._stores  # captured once


# -- extra (unlabelled) texts -------------------------------------------------------------------


def test_extra_texts_mix_into_every_split_and_are_not_scored(tmp_path):
    from hsae.data import Batch
    from hsae.model import Codes, SAEOutput
    from hsae_lm.concept_metric import LMConceptMetric

    extra = write(tmp_path / "extra.txt", "\n".join(f"generic text {i}" for i in range(20)))
    config = LMActivationsConfig(model=testing.minilm(), hook="hidden:3", positions="last",
                                 texts=TextConfig("concept-prompts"), concepts=ConceptConfig(root="mammal.n.01"),
                                 extra_texts=TextConfig("file", extra), eval_fraction=0.25, validation_fraction=0.25,
                                 progress=False, device="cpu", wordnet_dir=testing.wordnet_dir())
    source = LMActivationsSource(config)
    source._tokenizer = testing.minilm_tokenizer()
    source._hierarchy = restrict(testing.minilm_hierarchy(), config.concepts)
    for split, n_extra in (("train", 11), ("validation", 4), ("eval", 5)):
        items = source.items(split)
        generic = [it for it in items if it.text.startswith("generic text")]
        assert len(generic) == n_extra and all(it.labels is None for it in generic)
        assert any(it.labels for it in items)

    class Data:  # what lm_source unwraps
        def __init__(self, source):
            self.source = source
        name = "wrapper"

    ctx = type("Ctx", (), {"data": Data(source)})()
    n = source.hierarchy.n_concepts
    labels = torch.zeros(6, n)
    labels[:3, 0] = 1  # three concept words, three unlabelled rows
    codes = torch.zeros(6, 4)
    codes[:, 1] = 1.0  # latent 1 fires everywhere
    scored = []
    for batch_rows in (slice(0, 6), slice(0, 3)):
        metric = LMConceptMetric(LMConceptMetric.Config())
        metric.start(ctx)
        part = codes[batch_rows]
        out = SAEOutput(part, Codes(len(part), part.shape[1], part), part, {})
        metric.update(Batch(codes[batch_rows], labels[batch_rows]), out, None)
        scored.append(metric.counts.n)
    assert scored[0] == scored[1] == 3  # the unlabelled rows are skipped


def test_extra_texts_must_be_unlabelled(tmp_path):
    from hsae.errors import RecipeError

    with pytest.raises(RecipeError, match="extra_texts"):
        _source(tmp_path, extra_texts=TextConfig("concept-prompts"))


# -- BOS before each text (SmolLM2's attention sink) --------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    return testing.smollm2_model(), testing.smollm2_tokenizer()


def test_prepend_bos_moves_smollm2s_attention_sink_onto_a_dropped_token(smollm2):
    model, tok = smollm2
    assert tok.bos_token == "<|im_start|>" and tok("a dog")["input_ids"][0] != tok.bos_token_id
    items = [TextItem("I am thinking of a dog", answer="dog"), TextItem("The word is horse and more", answer="horse")]

    def rows(**kw):
        return Capturer(model, tok, CaptureConfig(hook="hidden:15", **kw))(items)

    plain, with_bos = rows(positions="all"), rows(positions="all", prepend_bos=True)
    assert plain.x.norm(dim=1).max() > 20 * plain.x.norm(dim=1).median()  # the sink is a word without BOS
    assert with_bos.x.norm(dim=1).max() < 5 * with_bos.x.norm(dim=1).median()  # ... and dropped with it
    assert len(with_bos.x) == len(plain.x) and (with_bos.token_ids != tok.bos_token_id).all()
    assert torch.equal(with_bos.position, plain.position + 1)
    last = rows(positions="last", prepend_bos=True)
    assert sorted(tok.convert_ids_to_tokens(last.token_ids.tolist())) == ["Ġdog", "Ġmore"]
    answer = rows(positions="answer", prepend_bos=True)
    assert sorted(tok.convert_ids_to_tokens(answer.token_ids.tolist())) == ["Ġdog", "Ġhorse"]


def test_prepend_bos_needs_a_bos_token():
    from hsae_lm.capture import bos_prefix

    class NoBos:
        bos_token = None

    with pytest.raises(ValueError, match="bos_token"):
        bos_prefix(NoBos(), True)
    assert bos_prefix(NoBos(), False) == ""


def test_splice_scores_smollm2_with_unit_norm_inputs_and_bos(smollm2, tmp_path):
    """An identity 'SAE' spliced into SmolLM2 on unit-norm inputs changes nothing: CE score 1."""
    from hsae.model import SAEOutput
    from hsae_lm.splice_metric import LMSpliceMetric

    class Identity(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            assert torch.allclose(x.norm(dim=-1), torch.ones(len(x)), atol=1e-4)  # it sees unit-norm rows
            return SAEOutput(x, None, x, {})

    texts = write(tmp_path / "t.txt", "the cat sat on the mat\nthe dog ran in the park\n" * 4)
    config = LMActivationsConfig(model=str(testing.smollm2_dir()), hook="hidden:15", texts=TextConfig("file", texts),
                                 eval_fraction=0.5, prepend_bos=True, progress=False, device="cpu", d_model=576)
    source = LMActivationsSource(config)
    source._model, source._tokenizer = smollm2

    class UnitNorm:
        name = "unit-norm"

        def __init__(self, source):
            self.source = source

    ctx = type("Ctx", (), {"data": UnitNorm(source)})()
    result = LMSpliceMetric(LMSpliceMetric.Config(batches=1, batch_texts=4)).compute(Identity(), ctx)
    assert result["ce_loss_score"] == pytest.approx(1.0, abs=1e-3) and result["ce_zero_ablation"] > result["ce_orig"]


# -- the fair protocol end to end (MiniLM, mammals, a few steps) ---------------------------------


def test_teacher_lm_tunes_each_arm_trains_seeds_and_judges_paired_effects(tmp_path, cli):
    import json
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "teacher-lm.toml"
    sets = ['concepts.root="mammal.n.01"', 'data.source.concepts.root="mammal.n.01"', "geometry.random_tokens=300",
            f'wordnet_dir="{testing.wordnet_dir()}"', f'data.source.wordnet_dir="{testing.wordnet_dir()}"',
            "data.source.max_rows=400", "data.source.max_eval_rows=200", "data.source.validation_fraction=0.2",
            "sae.n_parents=8", "train.steps=6", "train.lr_warmup_steps=2", "train.log_every=3", "eval.batches=1",
            "tuning.lrs=[1e-3,3e-3]", "tuning.validation_batch_size=200", "seeds=[0,1]"]
    code, out, err = cli("run", recipe, "--run-dir", tmp_path / "run", *(a for s in sets for a in ("--set", s)))
    assert code == 0, err
    arms = tmp_path / "run" / "arms"
    tuning = json.loads((arms / "tuning" / "tuning.json").read_text())
    assert set(tuning["arms"]) == {"baseline", "teacher"} and tuning["seed"] == 1000
    for arm in tuning["arms"].values():  # the choice is the grid's lowest validation loss
        assert arm["chosen_lr"] == float(min(arm["losses"], key=arm["losses"].get))
    for seed in (0, 1):
        for name in ("baseline", "teacher"):
            assert (arms / f"seed-{seed}" / name / "eval.json").is_file()
    report = json.loads((arms / "report.json").read_text())
    assert report["seeds"] == [0, 1] and {t["target"] for t in report["targets"]} >= {"purity_gain", "reconstruction_gap"}
    assert all(t["n_seeds"] == 2 for t in report["targets"] if t["target"] == "purity_gain")
    text = (arms / "report.md").read_text()
    assert "| purity gain |" in text and "Tuning seed 1000" in text
    assert "paired effects, median over seeds" in out + err


def test_tuning_without_a_validation_split_is_refused(cli):
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "teacher-lm.toml"
    code, _, err = cli("validate", recipe, "--set", "tuning.lrs=[1e-3]", "--set", "data.source.validation_fraction=0.0")
    assert code == 2 and "validation_fraction" in err

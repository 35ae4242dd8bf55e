"""The small causal LM trained here: corpus, word-level tokenizer, GPT-2 training, reuse of the run."""

from __future__ import annotations

import json

import torch

from hsae_lm import testing
from hsae_lm.corpus import hypernym_statements
from hsae_lm.lm_train import pack, train_word_tokenizer
from hsae_lm.models import load_model, load_tokenizer

from conftest import write


def test_hypernym_statements_follow_the_hierarchy():
    statements = hypernym_statements(testing.wordnet_db(), max_up=3)
    assert "a dog is a kind of canine" in statements or "a dog is a type of canine" in statements \
        or "every dog is a canine" in statements
    assert any(s.startswith(("a dog is", "every dog is")) and s.endswith("carnivore") for s in statements)
    assert len(statements) > 100_000


def test_word_level_tokenizer_keeps_words_whole():
    texts = ["a dog is a kind of canine", "the aardvark ate ants", "a dog barked"] * 3
    tok = train_word_tokenizer(texts)
    assert tok("A dog barked", add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(w) for w in ("a", "dog", "barked")]
    windows = pack(texts, tok, 8)
    assert windows.shape[1] == 8 and windows[0, 0] == tok.bos_token_id and (windows == tok.eos_token_id).any()


def test_recipe_trains_saves_and_reuses_the_model(tmp_path, cli):
    recipe = write(tmp_path / "lm.toml", testing.tiny_lm_recipe_text(steps=30))
    code, _, err = cli("run", recipe, "--run-dir", tmp_path / "run")
    assert code == 0, err
    model_dir = tmp_path / "run" / "model"
    record = json.loads((model_dir / "training.json").read_text())
    assert record["log"][-1]["loss"] < record["log"][0]["loss"]
    model, tok = load_model(str(model_dir)), load_tokenizer(str(model_dir))
    assert type(model).__name__ == "GPT2LMHeadModel" and len(tok) <= 600
    ids = tok("a dog is a kind of", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tok))
    code, _, err = cli("run", recipe, "--run-dir", tmp_path / "run", "--phase", "1")
    assert code == 0 and "reusing the trained model" in err
    assert json.loads((model_dir / "training.json").read_text()) == record


def test_every_epoch_packs_the_texts_in_a_new_order():
    """A fixed packing lets a small model predict each text from its neighbour; re-packing does not."""
    from hsae_lm.lm_train import EpochWindows, TokenizerConfig

    texts = [f"text number {i} says {i}" for i in range(20)]
    tokenizer = train_word_tokenizer(texts, TokenizerConfig(vocab_size=100, min_frequency=1))
    windows = EpochWindows(texts, tokenizer, context_length=8, seed=0)
    n = len(windows)
    first, second = windows.batch(n), windows.batch(n)
    assert first.shape == second.shape == (n, 8) and not torch.equal(first, second)
    assert windows.batch(3 * n).shape == (3 * n, 8)  # a batch larger than an epoch spans several packings

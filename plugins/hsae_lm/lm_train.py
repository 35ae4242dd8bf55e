"""A small causal LM trained here: a word-level tokenizer and a GPT-2 on any list of texts.

No pretrained causal LM can be downloaded on a CPU-only, offline machine, so hsae trains
one: :func:`train_word_tokenizer` (``tokenizers`` WordLevel: each word, hence each
single-word WordNet lemma in the vocabulary, is one token) and :func:`train_causal_lm`
(``GPT2Config`` + ``GPT2LMHeadModel``, a plain AdamW loop over context windows packed from
a fresh text order every epoch).
The result is a normal Hugging Face model directory (``save_pretrained``) that every
model loader in hsae accepts. The same functions train on any corpus (e.g. seed 003's
biographies).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
import torch

from hsae.engine.schedule import lr_factor
from hsae.io import write_json
from hsae.progress import progress

SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<bos>", "eos_token": "<eos>"}


@attrs.frozen
class TokenizerConfig:
    """A word-level vocabulary: the ``vocab_size`` most frequent words seen ``min_frequency`` times."""

    vocab_size: int = 8_000
    min_frequency: int = 2
    lowercase: bool = True


@attrs.frozen
class GPT2Shape:
    """The GPT-2's size; ``context_length`` is also the training window."""

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    context_length: int = 32
    dropout: float = 0.0


@attrs.frozen
class LMTrainConfig:
    """The training loop: AdamW, linear warmup then cosine decay to 10%."""

    steps: int = 800
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    eval_fraction: float = 0.02
    eval_batches: int = 20
    seed: int = 0
    log_every: int = 100
    progress: bool = True


def train_word_tokenizer(texts: Sequence[str], config: TokenizerConfig = TokenizerConfig()):  # noqa: ANN201
    """A ``PreTrainedTokenizerFast`` with a word-level model trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=SPECIALS["unk_token"]))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()] if config.lowercase
                                          else [normalizers.NFKC()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    trainer = trainers.WordLevelTrainer(vocab_size=config.vocab_size, min_frequency=config.min_frequency,
                                        special_tokens=list(SPECIALS.values()))
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)


def encode(texts: Sequence[str], tokenizer) -> list[list[int]]:  # noqa: ANN001
    """``[bos, *ids, eos]`` of every text."""
    from hsae_lm.words import _plain_backend

    backend = _plain_backend(tokenizer)
    if backend is not None:
        ids = [e.ids for e in backend.encode_batch(list(texts), add_special_tokens=False)]
    else:
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [[tokenizer.bos_token_id, *seq, tokenizer.eos_token_id] for seq in ids]


def pack(texts: Sequence[str], tokenizer, context_length: int, order: Sequence[int] | None = None,  # noqa: ANN001
         encoded: list[list[int]] | None = None) -> torch.Tensor:
    """``<bos> text <eos>`` for every text (in ``order``), concatenated and cut into ``(n, context_length)`` windows."""
    encoded = encoded if encoded is not None else encode(texts, tokenizer)
    order = range(len(encoded)) if order is None else order
    flat = np.fromiter((t for i in order for t in encoded[i]), dtype=np.int64)
    n = len(flat) // context_length
    return torch.from_numpy(flat[: n * context_length].reshape(n, context_length))


class EpochWindows:
    """Training windows, re-packed from a fresh seeded text order every epoch.

    A fixed packing would let the model predict each text from the text packed before it
    (on a small corpus seen hundreds of times it memorizes the sequence, not the facts);
    re-packing makes every text's own tokens the only reliable context.
    """

    def __init__(self, texts: Sequence[str], tokenizer, context_length: int, seed: int) -> None:  # noqa: ANN001
        self.encoded, self.context_length = encode(texts, tokenizer), context_length
        self.rng = np.random.default_rng(seed)
        self.windows, self.next = self._pack(), 0
        if not len(self.windows):
            raise ValueError(f"the training texts fill no window of {context_length} tokens; give more text "
                             "or a shorter context")

    def _pack(self) -> torch.Tensor:
        order = self.rng.permutation(len(self.encoded))
        windows = pack((), None, self.context_length, order, self.encoded)
        return windows[torch.from_numpy(self.rng.permutation(len(windows)))]

    def __len__(self) -> int:
        return len(self.windows)

    def batch(self, size: int) -> torch.Tensor:
        """The next ``size`` windows, starting a new epoch (a new packing) whenever this one runs out."""
        parts = []
        while size > 0:
            if self.next == len(self.windows):
                self.windows, self.next = self._pack(), 0
            take = min(size, len(self.windows) - self.next)
            parts.append(self.windows[self.next: self.next + take])
            self.next, size = self.next + take, size - take
        return torch.cat(parts)


def build_gpt2(tokenizer, shape: GPT2Shape = GPT2Shape()):  # noqa: ANN001, ANN201
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=shape.context_length, n_embd=shape.n_embd, n_layer=shape.n_layer,
        n_head=shape.n_head, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, resid_pdrop=shape.dropout, embd_pdrop=shape.dropout,
        attn_pdrop=shape.dropout,
    )
    return GPT2LMHeadModel(config)


def lr_at(step: int, config: LMTrainConfig) -> float:
    return config.lr * lr_factor(step, config.steps, config.warmup_steps, "cosine", 0.1)


@torch.no_grad()
def mean_loss(model, windows: torch.Tensor, batch_size: int, max_batches: int) -> float:  # noqa: ANN001
    """Mean next-token cross-entropy over up to ``max_batches`` batches of ``windows``."""
    model.eval()
    losses = [float(model(input_ids=windows[i: i + batch_size], labels=windows[i: i + batch_size]).loss)
              for i in range(0, min(len(windows), batch_size * max_batches), batch_size)]
    model.train()
    return float(np.mean(losses)) if losses else float("nan")


def train_causal_lm(texts: Sequence[str], out_dir: Path, *, tokenizer_config: TokenizerConfig = TokenizerConfig(),
                    shape: GPT2Shape = GPT2Shape(), config: LMTrainConfig = LMTrainConfig(),
                    eval_texts: Sequence[str] | None = None) -> dict:
    """Train tokenizer and GPT-2 on ``texts``; save both to ``out_dir``; return the training record.

    The eval loss is measured on ``eval_texts`` when given (all of ``texts`` are trained on),
    else on a held-out ``config.eval_fraction`` of ``texts``.
    """
    torch.manual_seed(config.seed)
    if eval_texts is not None:
        train_texts, eval_texts = list(texts), list(eval_texts)
    else:
        order = np.random.default_rng(config.seed).permutation(len(texts))
        n_eval = max(1, int(round(config.eval_fraction * len(texts))))
        eval_texts, train_texts = [texts[i] for i in order[:n_eval]], [texts[i] for i in order[n_eval:]]
    tokenizer = train_word_tokenizer(train_texts, tokenizer_config)
    train_windows = EpochWindows(train_texts, tokenizer, shape.context_length, config.seed)
    eval_windows = pack(eval_texts, tokenizer, shape.context_length)
    model = build_gpt2(tokenizer, shape)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95))
    log, window_loss, start = [], 0.0, time.perf_counter()
    model.train()
    bar = progress(config.steps, desc="train lm", enabled=config.progress)
    for step in range(config.steps):
        batch = train_windows.batch(config.batch_size)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        window_loss += float(loss.detach())
        if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            n = (step % config.log_every) + 1
            log.append({"step": step + 1, "loss": window_loss / n, "lr": lr_at(step, config)})
            bar.set_postfix(loss=f"{window_loss / n:.3f}")
            window_loss = 0.0
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - start
    eval_loss = mean_loss(model, eval_windows, config.batch_size, config.eval_batches)
    out_dir = Path(out_dir)
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    record = {
        "steps": config.steps, "train_seconds": elapsed,
        "tokens_per_s": config.steps * config.batch_size * shape.context_length / max(elapsed, 1e-9),
        "train_tokens": int(train_windows.windows.numel()), "eval_tokens": int(eval_windows.numel()),
        "vocab_size": len(tokenizer), "params": sum(p.numel() for p in model.parameters()),
        "final_train_loss": log[-1]["loss"] if log else float("nan"), "eval_loss": eval_loss,
        "eval_perplexity": math.exp(eval_loss) if math.isfinite(eval_loss) else float("nan"), "log": log,
    }
    write_json(out_dir / "training.json", record)
    return record


def is_trained(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a finished model (its ``training.json`` is written last)."""
    out_dir = Path(out_dir)
    return (out_dir / "training.json").is_file() and (out_dir / "config.json").is_file()


def read_record(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / "training.json").read_text())

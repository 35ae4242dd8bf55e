"""The seed's step 2 for any local Hugging Face causal LM: a light SFT on biographies plus QA.

Texts are tokenized one by one (BOS when the tokenizer adds none, EOS appended), cut to
``max_length`` (or the model's context, if shorter), and batched in a seeded order; each batch is padded to *its own* longest
text, never to a fixed length (padding to 512, as the original did, makes CPU fine-tuning
tens of times slower). Padding positions are masked out of attention and of the loss.
"""

from __future__ import annotations

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


@attrs.frozen
class SFTConfig:
    """AdamW over ``epochs`` passes of the texts; linear warmup then cosine decay to 10%."""

    epochs: float = 3.0
    batch_size: int = 16
    lr: float = 5e-5
    warmup_steps: int = 20
    weight_decay: float = 0.0
    max_length: int = 256
    seed: int = 0
    progress: bool = True


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:  # noqa: ANN001
    """Token ids per text: BOS first (if the tokenizer has one and adds none), EOS last."""
    ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    out = []
    for seq in ids:
        seq = list(seq)
        if bos is not None and seq[:1] != [bos]:
            seq = [bos, *seq]
        if eos is not None and seq[-1:] != [eos]:
            seq = [*seq, eos]
        out.append(seq[:max_length])
    return out


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids, attention_mask, labels)`` to the batch's longest sequence; labels -100 on padding."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    return input_ids, mask, input_ids.masked_fill(mask == 0, -100)


def sft_causal_lm(model_dir: Path, texts: Sequence[str], out_dir: Path, config: SFTConfig = SFTConfig()) -> dict:
    """Fine-tune the causal LM in ``model_dir`` on ``texts``; save model and tokenizer to ``out_dir``."""
    from hsae_lm.models import load_model, load_tokenizer

    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(str(model_dir))
    model = load_model(str(model_dir), causal_lm=True).train()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    limit = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    sequences = tokenize(tokenizer, texts, min(config.max_length, limit or config.max_length))
    rng = np.random.default_rng(config.seed)
    per_epoch = math.ceil(len(sequences) / config.batch_size)
    steps = max(1, int(round(config.epochs * per_epoch)))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    order: list[int] = []
    padded_tokens = real_tokens = 0
    losses, start = [], time.perf_counter()
    bar = progress(steps, desc="sft", enabled=config.progress)
    for step in range(steps):
        if len(order) < config.batch_size:
            order += rng.permutation(len(sequences)).tolist()
        rows, order = order[: config.batch_size], order[config.batch_size:]
        input_ids, mask, labels = pad_batch([sequences[i] for i in rows], pad_id)
        padded_tokens += input_ids.numel()
        real_tokens += int(mask.sum())
        for group in opt.param_groups:
            group["lr"] = config.lr * lr_factor(step, steps, config.warmup_steps, "cosine", 0.1)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    model.eval()
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    record = {"method": "sft", "base_model": str(model_dir), "steps": steps, "texts": len(texts),
              "train_seconds": time.perf_counter() - start, "final_train_loss": float(np.mean(losses[-20:])),
              "padding_fraction": 1 - real_tokens / max(padded_tokens, 1), **attrs.asdict(config)}
    write_json(out_dir / "training.json", record)
    return record

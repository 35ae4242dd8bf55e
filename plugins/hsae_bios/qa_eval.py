"""Exact-match answer accuracy of a causal LM on QA rows (greedy decoding).

Prompts are batched with left padding (padded per batch, to the batch's longest prompt),
so the last column is every row's answer position. A prediction is correct when its greedy
continuation, up to EOS or ``max_new_tokens``, equals the answer up to case and spacing.
``hooks`` lets an evaluation run with an intervention at a hook point (see
``hsae_bios.interventions``): the same function measures clean and edited accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch

from hsae_bios.qa_format import normalize_answer, qa_prompt


def encode_prompts(tokenizer, prompts: Sequence[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Left-padded ``(input_ids, attention_mask)``; BOS first when the tokenizer has one and adds none."""
    ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None:
        ids = [seq if seq[:1] == [bos] else [bos, *seq] for seq in ids]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(seq) for seq in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, seq in enumerate(ids):
        input_ids[i, width - len(seq):] = torch.tensor(seq)
        mask[i, width - len(seq):] = 1
    return input_ids.to(device), mask.to(device)


@torch.no_grad()
def greedy_continuations(model, tokenizer, prompts: Sequence[str], max_new_tokens: int,  # noqa: ANN001
                         edit: Callable[[torch.Tensor, int], AbstractContextManager] | None = None) -> list[str]:
    """Greedy continuations of left-padded ``prompts``.

    ``edit(attention_mask, answer_column)`` wraps every forward pass; the answer position is column
    ``prompt_width - 1`` of each pass (the prompt is left-padded and the continuation is
    appended), so an edit there acts on the answer position only. Each step re-runs the whole
    sequence (no KV cache): answers are a few tokens, and the edit then applies the same way
    at every step.
    """
    device = next(model.parameters()).device
    input_ids, mask = encode_prompts(tokenizer, prompts, device)
    width, eos = input_ids.shape[1], tokenizer.eos_token_id
    context = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    steps = max_new_tokens if context is None else max(0, min(max_new_tokens, context - width + 1))
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    for _ in range(steps):  # never past the model's context: a longer continuation counts as wrong
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with (edit(mask, width - 1) if edit else nullcontext()):
            logits = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids).logits
        next_ids = torch.where(done, torch.full_like(done, eos, dtype=torch.long), logits[:, -1].argmax(-1))
        input_ids = torch.cat([input_ids, next_ids[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        done |= next_ids == eos
        if bool(done.all()):
            break
    tokens = input_ids[:, width:].tolist()
    return [tokenizer.decode(row[: row.index(eos)] if eos in row else row, skip_special_tokens=True)
            for row in tokens]


def answer_tokens(tokenizer, answers: Sequence[str]) -> int:  # noqa: ANN001
    """Longest answer in tokens (the decoding budget, plus one for EOS)."""
    return max(len(tokenizer(" " + a, add_special_tokens=False)["input_ids"]) for a in answers) + 1


def correct(model, tokenizer, rows: Sequence[dict], batch_size: int = 64,  # noqa: ANN001
            edit: Callable[[torch.Tensor, int], AbstractContextManager] | None = None) -> list[bool]:
    """Per row: does greedy decoding of ``qa_prompt(question)`` give ``answer``?"""
    budget = answer_tokens(tokenizer, [r["answer"] for r in rows]) if rows else 0
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start: start + batch_size]
        texts = greedy_continuations(model, tokenizer, [qa_prompt(r["question"]) for r in chunk], budget, edit)
        out += [normalize_answer(t) == normalize_answer(r["answer"]) for t, r in zip(texts, chunk)]
    return out


def accuracy(flags: Sequence[bool]) -> float:
    return float(sum(flags)) / len(flags) if flags else float("nan")

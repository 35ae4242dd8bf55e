"""One forward pass per batch of sentences with hooks on every requested layer (s1's capture).

The original ran the model once per layer; here a pre-hook on block 0 reads the
``embeddings`` (the input of block 0) and a hook on each requested block reads its output
(the residual stream after block ``L``), all in the same pass, which stops right after the
deepest requested block (no later blocks, no final norm, no LM head).

``prepend_bos`` puts the tokenizer's BOS token before each sentence when the tokenizer adds
none itself (SmolLM2's does not): the attention sink then falls on the BOS instead of the
first word. A sentence's fragments are all its real tokens, special ones included; its
final token is the last non-special one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import attrs
import numpy as np
import torch

from hsae.errors import UserError
from hsae_lm.capture import bos_prefix
from hsae_lm.hooks import HookPoint, StopForward, find_blocks, hooked


@attrs.frozen
class CaptureOptions:
    """How sentences are fed to the model.

    batch_size: sentences per forward pass
    context_length: tokens kept per sentence (longer ones are truncated; never more than the model's positions)
    prepend_bos: put the tokenizer's BOS before each sentence when it adds none itself
    """

    batch_size: int = 16
    context_length: int = 128
    prepend_bos: bool = True


@attrs.frozen
class Captured:
    """One sentence's fragments: ``embeddings`` [T, d], ``hidden`` [n_layers, T, d], masks [T]."""

    embeddings: np.ndarray
    hidden: np.ndarray
    special: np.ndarray  # bool: special tokens (BOS, CLS, SEP, ...)
    is_final: np.ndarray  # bool: the last non-special token


class LayerCapture:
    """Hidden states of ``layers`` (block outputs) and the embeddings, one pass per batch."""

    def __init__(self, model, tokenizer, layers: Sequence[int], options: CaptureOptions = CaptureOptions()) -> None:  # noqa: ANN001
        self.model, self.tokenizer, self.layers, self.options = model, tokenizer, tuple(layers), options
        blocks = find_blocks(model)
        bad = [layer for layer in self.layers if not 0 <= layer < len(blocks)]
        if bad:
            raise UserError(f"layers {bad} not in the model: it has blocks 0-{len(blocks) - 1}")
        self.points = [HookPoint("embeddings", blocks[0], pre=True)]
        self.points += [HookPoint(f"block {layer} output", blocks[layer], pre=False) for layer in self.layers]
        self.deepest = 1 + self.layers.index(max(self.layers))
        if tokenizer.pad_token is None:  # GPT-2 style tokenizers have none; padding is masked anyway
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.prefix = bos_prefix(tokenizer, options.prepend_bos and tokenizer.bos_token is not None)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self.device = next(model.parameters()).device
        positions = [getattr(model.config, k, None) for k in ("max_position_embeddings", "n_positions")]
        self.max_length = min([options.context_length, *(p for p in positions if isinstance(p, int))])

    def __call__(self, texts: Sequence[str]) -> Iterator[Captured]:
        """The captured fragments of each text, in order."""
        size = self.options.batch_size
        for start in range(0, len(texts), size):
            yield from self._batch(texts[start:start + size])

    @torch.no_grad()
    def _batch(self, texts: Sequence[str]) -> list[Captured]:
        enc = self.tokenizer([self.prefix + t for t in texts], padding=True, truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        boxes: list[list[torch.Tensor]] = [[] for _ in self.points]
        with contextlib.ExitStack() as stack:
            for i, point in enumerate(self.points):
                sink = (lambda box: lambda t: box.append(t.detach().float().cpu()) or None)(boxes[i])
                stack.enter_context(hooked(point, sink, stop=i == self.deepest))
            try:
                self.model.base_model(**{k: v.to(self.device) for k, v in enc.items()})
            except StopForward:
                pass
        embeddings, *hidden = (box[0] for box in boxes)
        stacked = torch.stack(hidden, dim=1)  # (B, n_layers, T, d)
        special = torch.isin(enc["input_ids"], self.special_ids)
        out = []
        for b, mask in enumerate(enc["attention_mask"].bool()):
            keep = mask.nonzero().squeeze(1)
            spec = special[b, keep].numpy()
            final = np.zeros(len(keep), dtype=bool)
            words = np.flatnonzero(~spec)
            final[words[-1] if len(words) else len(keep) - 1] = True
            out.append(Captured(embeddings[b, keep].numpy(), stacked[b][:, keep].numpy(), spec, final))
        return out

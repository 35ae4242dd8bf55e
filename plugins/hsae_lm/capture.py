"""Batched activation capture: texts -> tokenizer -> model up to the hook -> selected rows.

Position selection (``positions``):

* ``all``: every real token (padding never);
* ``last``: the last real token of each text;
* ``answer``: the last token of the item's ``answer`` substring (its last occurrence);
* ``mask``: the item's own token indices (``positions``), counted with special tokens.

``drop_special`` leaves out special tokens ([CLS], [SEP], BOS, EOS...) from ``all`` and
``last``; ``answer`` and ``mask`` are taken as given.

``prepend_bos`` puts the tokenizer's BOS token before every text (unless the tokenizer adds
one itself). Tokenizers such as SmolLM2's add none, so the first word of each text becomes
the model's attention sink, with a residual norm ~100x the others'; with a BOS the sink is
a special token that ``drop_special`` drops. ``answer`` positions are found in the text
with its prefix, ``mask`` positions then count the BOS too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs
import torch

from hsae_lm.hooks import resolve, run_to_hook
from hsae_lm.texts import TextItem

PositionKind = Literal["all", "last", "answer", "mask"]


@attrs.frozen
class CaptureConfig:
    """What to capture: the hook point, which positions, and how texts are batched."""

    hook: str = "hidden:3"
    positions: PositionKind = "all"
    drop_special: bool = True
    context_length: int = 128
    batch_texts: int = 32
    prepend_bos: bool = False


def bos_prefix(tokenizer, prepend_bos: bool) -> str:  # noqa: ANN001
    """The text to put before every text: the BOS token's string, or ``""`` (not asked, or added already)."""
    if not prepend_bos:
        return ""
    if tokenizer.bos_token is None:
        raise ValueError("prepend_bos needs a tokenizer with a bos_token")
    first = tokenizer("a")["input_ids"][:1]
    return "" if first == [tokenizer.bos_token_id] else tokenizer.bos_token


@attrs.define
class Rows:
    """Captured rows: activations plus, per row, its token, text index and position."""

    x: torch.Tensor  # (n, d) on the CPU
    token_ids: torch.Tensor  # (n,) int64
    item: torch.Tensor  # (n,) int64: index of the text in the list given to the capturer
    position: torch.Tensor  # (n,) int64


class Capturer:
    """Runs batches of texts through ``model`` and returns the selected rows at the hook."""

    def __init__(self, model, tokenizer, config: CaptureConfig) -> None:  # noqa: ANN001
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.point = resolve(model, config.hook)
        self.device = next(model.parameters()).device
        if tokenizer.pad_token is None:  # GPT-2 style tokenizers have none; padding is masked anyway
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self.prefix = bos_prefix(tokenizer, config.prepend_bos)

    @torch.no_grad()
    def __call__(self, items: Sequence[TextItem], offset: int = 0) -> Rows:
        """Rows of ``items``; ``item`` indices start at ``offset``.

        Texts are batched ``batch_texts`` at a time in order of length (less padding), so
        the rows come grouped by batch, not in text order; ``item`` says where each came from.
        """
        order = sorted(range(len(items)), key=lambda i: len(items[i].text))
        size = self.config.batch_texts
        parts = [self._batch([items[i] for i in order[s: s + size]], [offset + i for i in order[s: s + size]])
                 for s in range(0, len(items), size)]
        return Rows(*(torch.cat([getattr(p, f) for p in parts]) for f in ("x", "token_ids", "item", "position")))

    def _batch(self, items: Sequence[TextItem], index: list[int]) -> Rows:
        if self.prefix:
            items = [attrs.evolve(it, text=self.prefix + it.text) for it in items]
        enc = self.tokenizer(
            [it.text for it in items], padding=True, truncation=True, max_length=self.config.context_length,
            return_tensors="pt", return_offsets_mapping=self.config.positions == "answer",
        )
        offsets = enc.pop("offset_mapping", None)
        mask = self.select(items, enc["input_ids"], enc["attention_mask"], offsets)
        inputs = {k: v.to(self.device) for k, v in enc.items()}
        acts = run_to_hook(self.model, self.point, **inputs)
        rows, cols = mask.nonzero(as_tuple=True)
        return Rows(acts[rows.to(acts.device), cols.to(acts.device)].float().cpu(), enc["input_ids"][rows, cols],
                    torch.tensor(index, dtype=torch.long)[rows], cols)

    def select(self, items: Sequence[TextItem], ids: torch.Tensor, attention: torch.Tensor, offsets) -> torch.Tensor:  # noqa: ANN001
        """``(B, T)`` bool mask of the positions to capture."""
        real = attention.bool()
        kind = self.config.positions
        if kind in ("all", "last") and self.config.drop_special:
            real &= ~torch.isin(ids, self.special)
        if kind == "all":
            return real
        mask = torch.zeros_like(real)
        for b, item in enumerate(items):
            for t in self._item_positions(kind, item, real[b], offsets[b] if offsets is not None else None):
                if 0 <= t < ids.shape[1] and attention[b, t]:
                    mask[b, t] = True
        return mask

    @staticmethod
    def _item_positions(kind: str, item: TextItem, real: torch.Tensor, offsets) -> list[int]:  # noqa: ANN001
        if kind == "last":
            where = real.nonzero().flatten()
            return [int(where[-1])] if len(where) else []
        if kind == "mask":
            if item.positions is None:
                raise ValueError("positions = 'mask' needs each text's 'positions'")
            return list(item.positions)
        if item.answer is None:
            raise ValueError("positions = 'answer' needs each text's 'answer'")
        start = item.text.rfind(item.answer)
        if start < 0:
            return []
        end = start + len(item.answer)
        inside = [t for t, (a, b) in enumerate(offsets.tolist()) if b > a and a < end and b > start]
        return inside[-1:]

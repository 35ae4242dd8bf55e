"""The ``lm-splice`` metric: CE loss score and KL of a causal LM with the SAE spliced in."""

from __future__ import annotations

from typing import ClassVar

import attrs

from hsae.errors import UserError
from hsae.metric import EvalContext, Metric
from hsae_lm.capture import bos_prefix
from hsae_lm.hooks import resolve
from hsae_lm.splice import SpliceTotals, sae_reconstruct


def lm_source(data):  # noqa: ANN001, ANN201
    """The ``lm-activations`` source inside ``data`` (through wrappers such as ``unit-norm``)."""
    from hsae_lm.source import LMActivationsSource

    wrapped, normalized = data, False
    while not isinstance(wrapped, LMActivationsSource):
        if not hasattr(wrapped, "source"):
            raise UserError(f"metric 'lm-splice' needs an lm-activations data source, got {data.name!r}")
        normalized = normalized or wrapped.name == "unit-norm"
        wrapped = wrapped.source
    return wrapped, normalized


class LMSpliceMetric(Metric):
    """CE loss score, CE and KL of the LM with the SAE's reconstruction spliced in at the hook."""

    name: ClassVar[str] = "lm-splice"

    @attrs.frozen
    class Config:
        """``batches`` of ``batch_texts`` held-out texts (with the source's BOS when ``prepend_bos``);
        ``keep_first`` leaves position 0 (the BOS, or the attention sink) unspliced."""

        batches: int = 4
        batch_texts: int = 16
        keep_first: bool = True

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:  # noqa: ANN001
        source, normalized = lm_source(ctx.data)
        lm, tok = source.model, source.tokenizer
        if lm.get_output_embeddings() is None:
            raise UserError(f"metric 'lm-splice': {source.config.model!r} has no LM head (it needs a causal LM)")
        point = resolve(lm, source.config.hook)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        prefix = bos_prefix(tok, source.config.prepend_bos)  # the texts as captured
        texts = [prefix + item.text for item in source.items("eval")]
        totals = SpliceTotals()
        device = next(lm.parameters()).device
        size = self.config.batch_texts
        for start in range(0, min(len(texts), size * self.config.batches), size):
            enc = tok(texts[start: start + size], padding=True, truncation=True,
                      max_length=source.config.context_length, return_tensors="pt")
            totals.add(lm, point, enc["input_ids"].to(device), enc["attention_mask"].to(device),
                       sae_reconstruct(model, normalize=normalized), self.config.keep_first)
        if totals.n == 0:
            raise UserError("metric 'lm-splice' found no held-out texts")
        return totals.result()

"""The unembedding ``gamma`` (vocab x d) of a Hugging Face model, for the causal inner product.

A causal LM's ``lm_head`` weight is its unembedding. Encoders without an LM head (the
MiniLM package ships none) fall back to the input embedding matrix, which BERT's
pretraining ties to its MLM output layer. ``source = "auto"`` takes the head when there is
one; the report records which matrix was used.
"""

from __future__ import annotations

from typing import Literal

import torch

from hsae.errors import UserError

UnembeddingSource = Literal["auto", "lm_head", "input_embedding"]


def unembedding(model, source: UnembeddingSource = "auto") -> tuple[torch.Tensor, str]:  # noqa: ANN001
    """``(gamma (V, d) float32 on the CPU, which matrix it is)``."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if source in ("auto", "lm_head") and head is not None:
        return head.weight.detach().float().cpu(), "lm_head"
    if source == "lm_head":
        raise UserError(f"{type(model).__name__} has no LM head; use unembedding = \"input_embedding\" or \"auto\"")
    return model.get_input_embeddings().weight.detach().float().cpu(), "input_embedding"

"""Splice metrics for causal LMs: the SAE's reconstruction in place of the hooked activation.

For a batch of token sequences, three forward passes of the real model give next-token
distributions: the original, one with the hooked activation replaced by
``reconstruct(activation)`` (the SAE), and one with it replaced by zeros (zero ablation).

* ``ce_orig``, ``ce_sae``, ``ce_zero_ablation``: mean next-token cross-entropy (nats) over
  real (non-padding) targets;
* ``ce_loss_score = (ce_zero_ablation - ce_sae) / (ce_zero_ablation - ce_orig)``: 1 when the
  splice loses nothing, 0 when it is as bad as deleting the activation (SAELens' definition);
* ``kl_div_sae``, ``kl_div_zero_ablation``: mean KL(original || spliced) per position, and
  ``kl_div_score = 1 - kl_div_sae / kl_div_zero_ablation``.

``keep_first`` leaves position 0 (BOS) unspliced, as its activation is a huge-norm outlier
that SAEs are usually not trained on. Every other real position is spliced.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from hsae_lm.hooks import HookPoint, hooked

Reconstruct = Callable[[torch.Tensor], torch.Tensor]


def _spliced(point: HookPoint, reconstruct: Reconstruct, keep_first: bool, attention: torch.Tensor):  # noqa: ANN202
    def sink(act: torch.Tensor) -> torch.Tensor:
        flat = act.reshape(-1, act.shape[-1])
        new = reconstruct(flat.float()).to(act.dtype).reshape(act.shape)
        keep = ~attention.bool()  # padding stays as it was
        if keep_first:
            keep = keep.clone()
            keep[:, 0] = True
        return torch.where(keep[..., None].to(act.device), act, new)

    return hooked(point, sink, stop=False)


@torch.no_grad()
def splice_logits(model, point: HookPoint, input_ids: torch.Tensor, attention_mask: torch.Tensor,  # noqa: ANN001
                  reconstruct: Reconstruct | None, keep_first: bool = True) -> torch.Tensor:
    """Logits with the activation at ``point`` replaced by ``reconstruct(act)`` (None: original)."""
    if reconstruct is None:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
    with _spliced(point, reconstruct, keep_first, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits.float()


def _ce_and_kl(logits: torch.Tensor, ref_logp: torch.Tensor, input_ids: torch.Tensor, valid: torch.Tensor):  # noqa: ANN202
    logp = F.log_softmax(logits[:, :-1], dim=-1)
    nll = -logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (nll * valid).sum(), (kl * valid).sum()


class SpliceTotals:
    """Sums of CE and KL over batches; :meth:`result` gives the metrics."""

    def __init__(self) -> None:
        self.n = 0.0
        self.sums = {k: 0.0 for k in ("ce_orig", "ce_sae", "ce_zero_ablation", "kl_div_sae", "kl_div_zero_ablation")}

    @torch.no_grad()
    def add(self, model, point: HookPoint, input_ids: torch.Tensor, attention_mask: torch.Tensor,  # noqa: ANN001
            reconstruct: Reconstruct, keep_first: bool = True) -> None:
        valid = (attention_mask[:, 1:] * attention_mask[:, :-1]).float()
        orig = splice_logits(model, point, input_ids, attention_mask, None)
        ref_logp = F.log_softmax(orig[:, :-1], dim=-1)
        self.sums["ce_orig"] += float(_ce_and_kl(orig, ref_logp, input_ids, valid)[0])
        for name, fn in (("sae", reconstruct), ("zero_ablation", torch.zeros_like)):
            logits = splice_logits(model, point, input_ids, attention_mask, fn, keep_first)
            ce, kl = _ce_and_kl(logits, ref_logp, input_ids, valid)
            self.sums[f"ce_{name}"] += float(ce)
            self.sums[f"kl_div_{name}"] += float(kl)
        self.n += float(valid.sum())

    def result(self) -> dict[str, float]:
        out = {k: v / max(self.n, 1.0) for k, v in self.sums.items()}
        gap = out["ce_zero_ablation"] - out["ce_orig"]
        out["ce_loss_score"] = (out["ce_zero_ablation"] - out["ce_sae"]) / gap if gap else float("nan")
        kl0 = out["kl_div_zero_ablation"]
        out["kl_div_score"] = 1.0 - out["kl_div_sae"] / kl0 if kl0 else float("nan")
        out["n_tokens"] = self.n
        return out


def splice_metrics(model, point: HookPoint, batches, reconstruct: Reconstruct, keep_first: bool = True) -> dict:  # noqa: ANN001
    """The metrics over ``batches`` of ``(input_ids, attention_mask)``."""
    totals = SpliceTotals()
    for input_ids, attention_mask in batches:
        totals.add(model, point, input_ids, attention_mask, reconstruct, keep_first)
    return totals.result()


def sae_reconstruct(sae, normalize: bool = False) -> Reconstruct:  # noqa: ANN001
    """``x -> sae(x).x_hat``; with ``normalize``, the SAE sees unit-norm inputs and the output is
    scaled back by each input's norm (for SAEs trained on normalized activations, as H-SAE)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        device = next(sae.parameters()).device
        x = x.to(device)
        if not normalize:
            return sae(x).x_hat
        norms = x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return sae(x / norms).x_hat * norms

    return run

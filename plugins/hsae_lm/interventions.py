"""Interventions with concept vectors on a causal LM, and Park et al.'s ratio invariance.

A concept's residual-stream direction is its teacher vector mapped with the dual map,
``r_w = Cov^{-1/2} ell_w`` (phase 1). Adding ``alpha * r_w / ||ell_w||^2`` to the final hidden
state (``hidden:last``, the representation the unembedding reads) shifts the logit of a token
``y`` by ``alpha * g(y) . ell_w / ||ell_w||^2`` plus a constant: about ``alpha`` nats for the
concept's tokens (the projection test's "1") and about 0 for other tokens. At earlier hook
points the effect goes through the remaining blocks.

Measured per parent concept ``p`` with at least two children, over neutral prompts, at the
last position, against a random direction of the same causal norm:

* ``logit_shift_target`` / ``logit_shift_offtarget``: mean change of the logits of the
  parent's tokens / of concept tokens outside the parent (both centred by the mean change
  over the whole vocabulary);
* ``parent_logratio_change``: change of ``log P(parent's tokens) - log P(other concepts' tokens)``;
* ``child_logratio_change``: mean absolute change of ``log P(child_i's tokens) - log P(child_j's
  tokens)`` over the parent's child pairs. Ratio invariance: this stays small while the
  parent-vs-rest ratio moves.
"""

from __future__ import annotations

import itertools

import attrs
import numpy as np
import torch

from hsae.report import format_number, markdown_table
from hsae_lm.concepts import ConceptHierarchy
from hsae_lm.hooks import HookPoint, hooked

PROMPTS = ("a", "the", "every", "this is a", "it is a kind of", "he saw the", "there is a", "my favourite is the")


@attrs.frozen
class InterventionConfig:
    """``alpha``: the expected logit shift (nats) on the concept's own tokens; ``hook``: where to add."""

    alpha: float = 4.0
    hook: str = "hidden:last"
    prompts: tuple[str, ...] = PROMPTS
    max_parents: int = 50
    seed: int = 0


@torch.no_grad()
def last_logprobs(model, point: HookPoint, input_ids: torch.Tensor, attention_mask: torch.Tensor,  # noqa: ANN001
                  add: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token log-probabilities at each prompt's last real position, ``add`` added at ``point``."""
    def sink(act: torch.Tensor) -> torch.Tensor:
        return act + add.to(act.dtype).to(act.device)

    if add is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    else:
        with hooked(point, sink, stop=False):
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    last = attention_mask.sum(1) - 1
    return torch.log_softmax(logits[torch.arange(len(last)), last].double(), dim=-1)


def encode_prompts(tokenizer, prompts) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Prompts with BOS first (when the tokenizer has one), right-padded."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    enc = tokenizer(list(prompts), add_special_tokens=False, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if tokenizer.bos_token_id is not None:
        ids = torch.cat([torch.full((len(ids), 1), tokenizer.bos_token_id), ids], 1)
        mask = torch.cat([torch.ones(len(ids), 1, dtype=mask.dtype), mask], 1)
    return ids, mask


def _logmass(logp: torch.Tensor, tokens) -> torch.Tensor:  # noqa: ANN001
    index = torch.as_tensor(sorted(tokens), dtype=torch.long)
    if index.numel() == 0:
        return torch.full((len(logp),), float("nan"), dtype=logp.dtype)
    return torch.logsumexp(logp[:, index], dim=1)


def effects(base: torch.Tensor, steered: torch.Tensor, hierarchy: ConceptHierarchy, parent: int) -> dict[str, float]:
    """The four numbers of the module docstring for one parent and one steered run."""
    delta = steered - base
    centred = delta - delta.mean(1, keepdim=True)
    inside = set(hierarchy.tokens[parent])
    outside = sorted(set(hierarchy.token_ids().tolist()) - inside)
    children = [c for c in range(hierarchy.n_concepts) if hierarchy.parent_of[c] == parent]
    parent_ratio = lambda lp: _logmass(lp, inside) - _logmass(lp, outside)  # noqa: E731
    child_changes = []
    for a, b in itertools.combinations(children, 2):
        ratio = lambda lp: _logmass(lp, hierarchy.tokens[a]) - _logmass(lp, hierarchy.tokens[b])  # noqa: E731
        child_changes.append(float((ratio(steered) - ratio(base)).abs().mean()))
    return {
        "logit_shift_target": float(centred[:, sorted(inside)].mean()),
        "logit_shift_offtarget": float(centred[:, outside].mean()) if outside else float("nan"),
        "parent_logratio_change": float((parent_ratio(steered) - parent_ratio(base)).mean()),
        "child_logratio_change": float(np.mean(child_changes)) if child_changes else float("nan"),
    }


def intervention_report(model, tokenizer, point: HookPoint, hierarchy: ConceptHierarchy, teacher: dict,  # noqa: ANN001
                        whitening_inv_sqrt: np.ndarray, config: InterventionConfig = InterventionConfig()) -> dict:
    """Effects of steering along each parent's vector vs a random direction, averaged over parents.

    ``teacher``: phase 1's tensors (``concepts``, ``concept_vectors`` = dual-mapped ``r_w``);
    ``whitening_inv_sqrt``: ``Cov^{-1/2}`` (maps causal-space random directions to the residual).
    """
    ids, mask = encode_prompts(tokenizer, config.prompts)
    base = last_logprobs(model, point, ids, mask)
    rows = {int(c): i for i, c in enumerate(teacher["concepts"].tolist())}
    inv_sqrt = torch.as_tensor(whitening_inv_sqrt, dtype=torch.float64)
    causal = torch.linalg.pinv(inv_sqrt)  # residual direction -> causal vector (on the retained subspace)
    rng = torch.Generator().manual_seed(config.seed)
    parents = [p for p in range(hierarchy.n_concepts)
               if p in rows and sum(hierarchy.parent_of == p) >= 2][: config.max_parents]
    per_parent = []
    for p in parents:
        r = teacher["concept_vectors"][rows[p]].double()
        ell = causal @ r
        scale = config.alpha / float(ell @ ell)
        u = torch.randn(len(ell), generator=rng, dtype=torch.float64)
        u = u / u.norm() * ell.norm()  # a random causal direction of the same causal norm
        steer = effects(base, last_logprobs(model, point, ids, mask, (scale * r).float()), hierarchy, p)
        random = effects(base, last_logprobs(model, point, ids, mask, (scale * (inv_sqrt @ u)).float()), hierarchy, p)
        per_parent.append({"parent": hierarchy.names[p], "steer": steer, "random": random})
    return {"config": attrs.asdict(config), "n_parents": len(per_parent), "summary": _summary(per_parent),
            "parents": per_parent}


def _summary(per_parent: list[dict]) -> dict:
    out = {}
    for arm in ("steer", "random"):
        for key in ("logit_shift_target", "logit_shift_offtarget", "parent_logratio_change", "child_logratio_change"):
            values = np.array([row[arm][key] for row in per_parent], dtype=float)
            values = values[np.isfinite(values)]
            out[f"{arm}.{key}"] = {"mean": float(values.mean()) if values.size else float("nan"),
                                   "std": float(values.std()) if values.size else float("nan")}
    return out


def render_markdown(report: dict) -> str:
    s = report["summary"]
    rows = (("logit shift, parent's tokens (nats)", "logit_shift_target"),
            ("logit shift, other concepts' tokens (nats)", "logit_shift_offtarget"),
            ("change of log P(parent) / P(others)", "parent_logratio_change"),
            ("|change| of log P(child i) / P(child j)", "child_logratio_change"))
    lines = [f"Interventions: alpha = {report['config']['alpha']} at {report['config']['hook']}, "
             f"{report['n_parents']} parents, {len(report['config']['prompts'])} prompts (mean ± std over parents)", ""]
    cells = [[label, *(_mean_std(s[f"{arm}.{key}"]) for arm in ("steer", "random"))] for label, key in rows]
    lines += markdown_table(["effect", "parent vector", "random direction"], cells)
    return "\n".join(lines) + "\n"


def _mean_std(stat: dict) -> str:
    """``mean ± std`` in nats with three decimals, both always shown (a spread over parents, not seeds)."""
    return f"{format_number(stat['mean'], 'decimal')} ± {format_number(stat['std'], 'decimal')}"

"""The causal tests of one slot SAE at one layer (see ``hsae_bios.layer_eval``).

``rows`` are QA rows the clean LM answers correctly, each with ``attributes`` (the person's
value of every attribute), so a swap's success can be checked against attribute ``j``'s value.
"""

from __future__ import annotations

import numpy as np

from hsae_bios import interventions as iv
from hsae_bios.attributes import ATTRIBUTES
from hsae_bios.qa_eval import answer_tokens, greedy_continuations
from hsae_bios.qa_format import normalize_answer, qa_prompt


def _answers(lm, tokenizer, rows: list[dict], budget: int, edit=None, batch_size: int = 64) -> list[str]:  # noqa: ANN001
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start: start + batch_size]
        out += greedy_continuations(lm, tokenizer, [qa_prompt(r["question"]) for r in chunk], budget, edit)
    return [normalize_answer(a) for a in out]


def causal_tests(lm, tokenizer, hook: str, sae, rows: list[dict], settings) -> dict:  # noqa: ANN001
    """Identity, splice, ablation (6x6 accuracy) and swap success per alpha (6x6, diagonal NaN)."""
    from hsae_lm.hooks import resolve

    point = resolve(lm, hook)
    n = len(ATTRIBUTES)
    every_value = [v for r in rows for v in r["attributes"].values()]
    budget = answer_tokens(tokenizer, every_value) if rows else 0
    truth = [normalize_answer(r["answer"]) for r in rows]
    rule = np.array([r["rule_idx"] for r in rows])
    clean = _answers(lm, tokenizer, rows, budget)
    same = _answers(lm, tokenizer, rows, budget, iv.at_answer(point, iv.identity))
    spliced = _answers(lm, tokenizer, rows, budget, iv.at_answer(point, iv.splice(sae)))
    out = {"rows": len(rows), "identity_unchanged": same == clean,
           "clean_accuracy": float(np.mean([a == t for a, t in zip(clean, truth)])) if rows else float("nan"),
           "spliced_accuracy": float(np.mean([a == t for a, t in zip(spliced, truth)])) if rows else float("nan")}
    ablation = np.full((n, n), np.nan)
    for slot in range(n):
        edited = _answers(lm, tokenizer, rows, budget, iv.at_answer(point, iv.code_edit(sae, iv.ablate(slot))))
        hits = np.array([a == t for a, t in zip(edited, truth)])
        for r in range(n):
            if (rule == r).any():
                ablation[slot, r] = hits[rule == r].mean()
    out["ablation"] = ablation.tolist()
    out["swap"] = {}
    for alpha in settings.alphas:
        success = np.full((n, n), np.nan)
        for i in range(n):
            source_rows = [r for r in rows if r["rule_idx"] == i]
            if not source_rows:
                continue
            for j in range(n):
                if j == i:
                    continue
                edit = iv.at_answer(point, iv.code_edit(sae, iv.swap(i, j, alpha)))
                edited = _answers(lm, tokenizer, source_rows, budget, edit)
                success[i, j] = np.mean([a == normalize_answer(r["attributes"][ATTRIBUTES[j]])
                                         for a, r in zip(edited, source_rows)])
        out["swap"][str(alpha)] = success.tolist()
    return out


def intervention_rows(lm, tokenizer, dataset, n_rows: int) -> list[dict]:  # noqa: ANN001
    """Up to ``n_rows`` QA-train training-template rows the clean LM answers correctly, balanced
    over the rules, each with its person's ``attributes``."""
    from pathlib import Path

    from hsae_bios.capture import QA_SETS
    from hsae_bios.lm_corpus import read_kg, read_qa
    from hsae_bios.qa_eval import correct

    persons = {p["person_id"]: p for p in read_kg(Path(dataset) / "train_kg.json")}
    rows = [{**r, "attributes": {a: persons[r["person_id"]][a] for a in ATTRIBUTES}}
            for r in read_qa(Path(dataset) / QA_SETS["train"])]
    per_rule = max(1, n_rows // len(ATTRIBUTES))
    chosen = []
    for rule in range(len(ATTRIBUTES)):
        candidates = [r for r in rows if r["rule_idx"] == rule][: 4 * per_rule]
        flags = correct(lm, tokenizer, candidates) if candidates else []
        chosen += [r for r, ok in zip(candidates, flags) if ok][:per_rule]
    return chosen

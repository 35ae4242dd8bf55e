"""Step 5 of ``bio-slots`` for one layer: slot assignment, baselines, reconstruction, causal tests.

Scored sets (answer-position activations): ``train_template`` (the held-out rows of the QA-train
persons' training-template prompts), ``heldout_templates`` (same persons, the 3 held-out question
templates) and ``test_persons`` (persons never in QA training; slot identity does not depend on
the person, so this set tests the templates more than the persons). Per set:

* the slot SAE's slot accuracy (predicted slot = argmax of its slot logits) and confusion;
* baselines fitted on the same training rows: a multinomial logistic probe (what the alignment
  loss alone is), a nearest-class-mean probe, and the TopK SAE's best-matching latent per rule;
* explained variance of the slot SAE against the ceiling of a one-hot 6-slot code (the
  per-attribute mean), and the TopK SAE's.

Causal tests at the capture site (``hsae_bios.interventions``), on QA-train persons'
training-template questions the LM answers correctly: identity splice (must change nothing),
answer accuracy with the SAE's reconstruction spliced in, ablation (slot ``i`` zeroed: accuracy
per rule, a 6x6 matrix) and swap (slot ``i``'s code moved to slot ``j`` times ``alpha``: how
often the LM then answers with attribute ``j``'s value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hsae_bios.capture import N_RULES, rule_and_value
from hsae_bios.slot_training import LayerData, model_dir

SCORED_SETS = ("train_template", "heldout_templates", "test_persons")


def rows(data: LayerData, layer: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"fit": (x, labels), <scored set>: (x, labels)}`` at ``layer`` from the capture caches."""
    def read(qa_set: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        shards = list(data.source(layer, qa_set).store(split).in_order())
        return torch.cat([s["x"] for s in shards]).float(), torch.cat([s["labels"] for s in shards]).float()

    return {"fit": read("train", "train"), "train_template": read("train", "eval"),
            "heldout_templates": read("heldout_templates", "train"), "test_persons": read("test_persons", "train")}


def explained_variance(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    return float(1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())


@torch.no_grad()
def score_slot_sae(sae, sets: dict) -> dict:  # noqa: ANN001
    from hsae_bios.slots.labels import confusion_matrix

    sae.eval()
    out = {}
    for name in SCORED_SETS:
        x, labels = sets[name]
        rule, value = rule_and_value(labels)
        predicted = sae.predicted_slot(x).numpy()
        result = sae(x)
        entry = {"slot_accuracy": float((predicted == rule).mean()),
                 "confusion": confusion_matrix(predicted, rule, N_RULES).tolist(),
                 "explained_variance": explained_variance(x, result.x_hat)}
        logits = result.extras.get("value_logits")
        if logits is not None:
            entry["value_accuracy"] = float((logits.argmax(-1).numpy() == value).mean())
        out[name] = entry
    return out


@torch.no_grad()
def score_topk(sae, sets: dict) -> dict:  # noqa: ANN001
    from hsae_bios.slots.matching import best_latent_match

    fit_x, fit_labels = sets["fit"]
    fit_codes = sae.encode(fit_x).dense().numpy()
    out = {}
    for name in SCORED_SETS:
        x, labels = sets[name]
        match = best_latent_match(fit_codes, rule_and_value(fit_labels)[0], sae.encode(x).dense().numpy(),
                                  rule_and_value(labels)[0])
        out[name] = {"slot_accuracy": match.accuracy, "confusion": np.asarray(match.confusion).tolist(),
                     "explained_variance": explained_variance(x, sae(x).x_hat)}
    return out


def score_probes(sets: dict) -> dict:
    from hsae_bios.slots.probes import ev_ceiling, logistic_probe, nearest_class_mean_probe

    fit_x, fit_labels = sets["fit"]
    fit_rule = rule_and_value(fit_labels)[0]
    out = {"logistic": {}, "nearest_class_mean": {}, "ev_ceiling": {}}
    for name in SCORED_SETS:
        x, labels = sets[name]
        rule = rule_and_value(labels)[0]
        out["logistic"][name] = logistic_probe(fit_x.numpy(), fit_rule, x.numpy(), rule).accuracy
        out["nearest_class_mean"][name] = nearest_class_mean_probe(fit_x.numpy(), fit_rule, x.numpy(), rule).accuracy
        out["ev_ceiling"][name] = ev_ceiling(x.numpy(), rule)
    return out


def load(path: Path):  # noqa: ANN201
    from hsae.saving import load_sae

    return load_sae(path).eval()


def evaluate_layer(recipe, data: LayerData, layer: int, lm, tokenizer, qa_rows: list[dict]) -> dict:  # noqa: ANN001
    """Every score of ``layer`` (see the module docstring), per seed where a model is trained."""
    from hsae_bios.causal import causal_tests

    sets = rows(data, layer)
    seeds = list(recipe.config.slot_train.seeds)
    out = {"layer": layer, "seeds": seeds, "rows": {k: int(v[0].shape[0]) for k, v in sets.items()},
           "probes": score_probes(sets), "slot_sae": {}, "topk": {}, "causal": {}}
    for seed in seeds:
        sae = load(model_dir(data, layer, "slot-sae", seed))
        out["slot_sae"][str(seed)] = score_slot_sae(sae, sets)
        out["topk"][str(seed)] = score_topk(load(model_dir(data, layer, "topk", seed)), sets)
        out["causal"][str(seed)] = causal_tests(lm, tokenizer, f"resid:{layer}", sae, qa_rows, recipe.config.evaluate)
    return out


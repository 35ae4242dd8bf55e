"""Best-matching latents of an unsupervised SAE, one per rule (the honest baseline for slot accuracy).

A latent fires on a row when its code is > 0. For each (rule, latent) pair the firing F1
on the train rows is ``2 TP / (fires + rows of the rule)``; Hungarian matching
(``scipy.optimize.linear_sum_assignment``) picks distinct latents maximizing the total F1.
Test rows are classified by which matched latent is most active; a row where no matched
latent fires gets no prediction, counts as wrong, and is missing from the confusion matrix
(its row sums fall short of the class counts).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hsae_bios.slots.labels import _numpy, confusion_matrix


class LatentMatch(NamedTuple):
    """Test accuracy, ``(n_rules, n_rules)`` confusion counts, and the latent matched to each rule."""

    accuracy: float
    confusion: np.ndarray
    latents: np.ndarray  # (n_rules,) latent index per rule; -1 when there are fewer latents than rules


def firing_f1(codes, rule, n_rules: int | None = None) -> np.ndarray:
    """``(n_rules, n_latents)``: F1 of "latent fires" as a detector of "row has this rule"."""
    fires = (_numpy(codes) > 0).astype(np.float64)
    rule = _numpy(rule).astype(np.int64)
    n = int(n_rules if n_rules is not None else rule.max(initial=-1) + 1)
    onehot = np.zeros((len(rule), n))
    valid = (rule >= 0) & (rule < n)
    onehot[np.flatnonzero(valid), rule[valid]] = 1.0
    tp = onehot.T @ fires  # (n, L)
    denom = fires.sum(0)[None, :] + onehot.sum(0)[:, None]
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def best_latent_match(codes_train, rule_train, codes_test, rule_test, *, n_rules: int | None = None) -> LatentMatch:
    """Match one latent per rule by firing F1 on train rows, then classify test rows by the most active match."""
    from scipy.optimize import linear_sum_assignment

    rule_train, rule_test = _numpy(rule_train).astype(np.int64), _numpy(rule_test).astype(np.int64)
    n = int(n_rules if n_rules is not None else max(rule_train.max(initial=-1), rule_test.max(initial=-1)) + 1)
    f1 = firing_f1(codes_train, rule_train, n)
    rows, cols = linear_sum_assignment(f1, maximize=True)
    latents = np.full(n, -1, dtype=np.int64)
    latents[rows] = cols
    test = _numpy(codes_test).astype(np.float64)
    matched = np.where(latents >= 0, latents, 0)
    acts = np.where(latents[None, :] >= 0, test[:, matched], 0.0)  # (N, n_rules)
    pred = np.where(acts.max(1) > 0, acts.argmax(1), -1)
    accuracy = float(np.mean(pred == rule_test)) if len(rule_test) else float("nan")
    return LatentMatch(accuracy, confusion_matrix(pred, rule_test, n), latents)

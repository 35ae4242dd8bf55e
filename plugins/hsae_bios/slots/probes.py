"""Baselines on captured activations: a multinomial logistic probe, a nearest-class-mean probe, the EV ceiling.

Plain functions (numpy arrays or torch tensors in, numbers out) that the bios pipeline
calls per layer beside the slot SAE. The alignment loss alone trains exactly the logistic
probe (``Linear(d -> 6)`` with cross-entropy), so a slot accuracy is only as meaningful as
its gap to these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hsae_bios.slots.labels import _numpy, confusion_matrix


class ProbeResult(NamedTuple):
    """Test accuracy and the ``(n, n)`` confusion counts (row = true, column = predicted)."""

    accuracy: float
    confusion: np.ndarray


def _classes(train_rule: np.ndarray, test_rule: np.ndarray, n_classes: int | None) -> int:
    return int(n_classes if n_classes is not None else max(train_rule.max(initial=-1), test_rule.max(initial=-1)) + 1)


def _result(pred: np.ndarray, test_rule: np.ndarray, n: int) -> ProbeResult:
    matrix = confusion_matrix(pred, test_rule, n)
    accuracy = float(np.mean(pred == test_rule)) if len(test_rule) else float("nan")
    return ProbeResult(accuracy, matrix)


def logistic_probe(train_x, train_rule, test_x, test_rule, *, n_classes: int | None = None, C: float = 1.0,
                   max_iter: int = 1000, seed: int = 0) -> ProbeResult:
    """Multinomial logistic regression (L2, inverse strength ``C``) on standardized features.

    Standardizing (train mean and std) keeps the few huge residual-stream dimensions of
    GPT-2 from dominating the penalty and the solver.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, test_x = _numpy(train_x).astype(np.float64), _numpy(test_x).astype(np.float64)
    train_rule, test_rule = _numpy(train_rule).astype(np.int64), _numpy(test_rule).astype(np.int64)
    n = _classes(train_rule, test_rule, n_classes)
    if len(np.unique(train_rule)) < 2:  # one class: sklearn refuses; the probe answers it
        pred = np.full(len(test_rule), train_rule[0] if len(train_rule) else -1)
        return _result(pred, test_rule, n)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    probe.fit(train_x, train_rule)
    return _result(probe.predict(test_x), test_rule, n)


def nearest_class_mean_probe(train_x, train_rule, test_x, test_rule, *, n_classes: int | None = None) -> ProbeResult:
    """Each test row gets the class whose train mean is nearest (Euclidean); classes absent from train never win."""
    train_x, test_x = _numpy(train_x).astype(np.float64), _numpy(test_x).astype(np.float64)
    train_rule, test_rule = _numpy(train_rule).astype(np.int64), _numpy(test_rule).astype(np.int64)
    n = _classes(train_rule, test_rule, n_classes)
    present = [c for c in range(n) if (train_rule == c).any()]
    means = np.stack([train_x[train_rule == c].mean(0) for c in present])
    dist = (test_x**2).sum(1, keepdims=True) - 2 * test_x @ means.T + (means**2).sum(1)
    pred = np.asarray(present)[dist.argmin(1)]
    return _result(pred, test_rule, n)


def ev_ceiling(x, rule) -> float:
    """Explained variance of reconstructing every row by its rule's mean (over these rows).

    The best a one-hot code that follows the rule can reach with no free latents:
    ``1 - sum_r ||x - mean_r||^2 / sum ||x - mean||^2``. Rows with rule ``-1`` form one group.
    """
    x = _numpy(x).astype(np.float64)
    rule = _numpy(rule).astype(np.int64)
    total = float(((x - x.mean(0)) ** 2).sum())
    within = sum(float(((x[rule == r] - x[rule == r].mean(0)) ** 2).sum()) for r in np.unique(rule))
    return 1.0 - within / max(total, 1e-12)

"""The label layout of slot-SAE batches, and confusion matrices.

A labelled batch carries ``labels`` of shape ``(B, n_rules + n_values)``, float multi-hot:
the first ``n_rules`` columns one-hot the rule (the attribute the question asks for); the
remaining ``n_values`` columns one-hot the answer's id in a global value vocabulary (every
attribute's distinct answers, concatenated). A row whose rule (or value) part is all zero
has no such label: :func:`split_labels` gives it ``-1``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


def split_labels(labels: torch.Tensor, n_rules: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(rule, value)``: long tensors ``(B,)``; ``value`` is ``None`` when ``labels`` has no value columns.

    Rows without a rule (value) label get ``-1``.
    """
    if labels is None:
        raise ValueError("this batch has no labels; the data source must give rule labels (with_labels=True)")
    if labels.ndim != 2 or labels.shape[1] < n_rules:
        raise ValueError(f"labels must be (B, n_rules + n_values) with n_rules = {n_rules}, got shape {tuple(labels.shape)}")

    def index(part: torch.Tensor) -> torch.Tensor:
        return torch.where(part.sum(1) > 0, part.argmax(1), torch.full_like(part[:, 0], -1, dtype=torch.long))

    rule = index(labels[:, :n_rules])
    value = index(labels[:, n_rules:]) if labels.shape[1] > n_rules else None
    return rule, value


def confusion_matrix(pred, true, n: int) -> np.ndarray:
    """``(n, n)`` int64 counts: row = true class, column = predicted class.

    ``pred`` and ``true`` are integer arrays or tensors of the same length; pairs with a
    class outside ``[0, n)`` (``-1``: no prediction or no label) are not counted.
    """
    pred, true = _numpy(pred).astype(np.int64).ravel(), _numpy(true).astype(np.int64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"pred and true differ in length: {pred.shape[0]} and {true.shape[0]}")
    keep = (pred >= 0) & (pred < n) & (true >= 0) & (true < n)
    out = np.zeros((n, n), dtype=np.int64)
    np.add.at(out, (true[keep], pred[keep]), 1)
    return out


def confusion_keys(matrix: np.ndarray) -> dict[str, float]:
    """``{"confusion_<true>_<pred>": count}``: a confusion matrix as metric keys."""
    return {f"confusion_{i}_{j}": float(matrix[i, j]) for i in range(matrix.shape[0]) for j in range(matrix.shape[1])}


def confusion_from_metrics(values: Mapping[str, float], n: int, prefix: str = "") -> np.ndarray:
    """The ``(n, n)`` matrix back from ``slot-assignment``'s keys (``prefix`` e.g. ``"eval/slots."`` for metrics.jsonl)."""
    out = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(n):
            out[i, j] = int(values[f"{prefix}confusion_{i}_{j}"])
    return out


def _numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)

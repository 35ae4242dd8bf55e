"""Evaluation of the slot SAE on labelled held-out rows: slot assignment, EV against its ceiling, value accuracy.

Each metric asks for labels (``needs_labels``) in the layout of :mod:`hsae_bios.slots.labels`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hsae.metric import EvalContext, Metric
from hsae.model import Codes
from hsae_bios.slots.labels import confusion_keys, confusion_matrix, split_labels


class SlotAssignmentMetric(Metric):
    """Predicted slot (argmax of the slot logits) against the true rule: diagonal accuracy and the confusion matrix.

    Keys: ``slot_accuracy`` (fraction of labelled rows whose predicted slot is their rule),
    ``rows``, and ``confusion_<true>_<pred>`` counts (read them back with
    ``hsae_bios.slots.labels.confusion_from_metrics``).
    """

    name = "slot-assignment"
    needs_labels = True
    requires = frozenset({"slot_logits"})

    def reset(self) -> None:
        self.pred: list[torch.Tensor] = []
        self.true: list[torch.Tensor] = []
        self.n = 0

    def update(self, batch, out, model) -> None:
        logits = out.extras["slot_logits"]
        self.n = logits.shape[-1]
        rule, _ = split_labels(batch.labels, self.n)
        self.pred.append(logits.argmax(-1).cpu())
        self.true.append(rule.cpu())

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        pred, true = torch.cat(self.pred), torch.cat(self.true)
        matrix = confusion_matrix(pred, true, self.n)
        labelled = int((true >= 0).sum())
        accuracy = float(np.trace(matrix)) / labelled if labelled else float("nan")
        return {"slot_accuracy": accuracy, "rows": float(labelled), **confusion_keys(matrix)}


class SlotExplainedVarianceMetric(Metric):
    """Explained variance of the reconstruction against the ceiling of a one-hot slot code that follows the rule.

    Keys: ``ev`` (the model's x_hat), ``ev_hard`` (decoding the one-hot predicted slot, free
    latents unchanged), ``ev_ceiling`` (every row reconstructed by the mean of its rule's eval
    rows: the best a one-hot, rule-aligned code without free latents can do) and ``ev_ratio``
    = ev / ev_ceiling. Variance is taken around the eval rows' mean; rows without a rule
    label form one more group of the ceiling.
    """

    name = "slot-explained-variance"
    needs_labels = True
    requires = frozenset({"slot_logits"})

    def reset(self) -> None:
        self.sse = self.sse_hard = 0.0
        self.sums: torch.Tensor | None = None  # (groups, d) per-rule sums of x
        self.counts: torch.Tensor | None = None
        self.sumsq = 0.0

    def update(self, batch, out, model) -> None:
        logits = out.extras["slot_logits"]
        n = logits.shape[-1]
        rule, _ = split_labels(batch.labels, n)
        x = batch.x.double()
        self.sse += float((out.x_hat.double() - x).pow(2).sum())
        dense = out.codes.dense().clone()
        dense[:, :n] = F.one_hot(logits.argmax(-1), n).to(dense.dtype)
        self.sse_hard += float((model.decode(Codes.from_dense(dense)).double() - x).pow(2).sum())
        group = torch.where(rule >= 0, rule, torch.full_like(rule, n))
        if self.sums is None:
            self.sums = x.new_zeros(n + 1, x.shape[1])
            self.counts = x.new_zeros(n + 1)
        self.sums.index_add_(0, group, x)
        self.counts.index_add_(0, group, torch.ones_like(x[:, 0]))
        self.sumsq += float(x.pow(2).sum())

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        if self.sums is None:
            return {"ev": float("nan"), "ev_hard": float("nan"), "ev_ceiling": float("nan"), "ev_ratio": float("nan")}
        count = float(self.counts.sum())
        total = self.sumsq - float(self.sums.sum(0).pow(2).sum()) / count
        used = self.counts > 0
        sse_ceiling = self.sumsq - float((self.sums[used].pow(2).sum(1) / self.counts[used]).sum())
        total = max(total, 1e-12)
        ev, ceiling = 1 - self.sse / total, 1 - sse_ceiling / total
        return {"ev": ev, "ev_hard": 1 - self.sse_hard / total, "ev_ceiling": ceiling,
                "ev_ratio": ev / ceiling if ceiling > 0 else float("nan")}


class SlotValueAccuracyMetric(Metric):
    """Answer-value accuracy of the value head chosen by the *predicted* slot (never the true label).

    Keys: ``value_accuracy`` (head of the predicted slot), ``value_accuracy_oracle`` (head of
    the true rule: the seed's label-leaking reading, for comparison only), ``value_majority``
    (accuracy of always answering the most frequent value: chance level) and ``rows``.
    """

    name = "slot-value-accuracy"
    needs_labels = True
    requires = frozenset({"slot_logits", "value_heads"})

    def reset(self) -> None:
        self.correct = self.correct_oracle = self.rows = 0
        self.values: list[torch.Tensor] = []

    def update(self, batch, out, model) -> None:
        per_slot = out.extras["value_logits_per_slot"]
        rule, value = split_labels(batch.labels, per_slot.shape[1])
        if value is None:
            raise ValueError(f"slot-value-accuracy needs value labels (n_slots + n_values = "
                             f"{per_slot.shape[1] + per_slot.shape[2]} columns), got {batch.labels.shape[1]}")
        keep = (value >= 0) & (rule >= 0)
        predicted = out.extras["value_logits"].argmax(-1)
        oracle = model.select_head(per_slot, rule).argmax(-1)
        self.correct += int((predicted == value)[keep].sum())
        self.correct_oracle += int((oracle == value)[keep].sum())
        self.rows += int(keep.sum())
        self.values.append(value[keep].cpu())

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        if not self.rows:
            return {"value_accuracy": float("nan"), "value_accuracy_oracle": float("nan"),
                    "value_majority": float("nan"), "rows": 0.0}
        majority = float(torch.bincount(torch.cat(self.values)).max()) / self.rows
        return {"value_accuracy": self.correct / self.rows, "value_accuracy_oracle": self.correct_oracle / self.rows,
                "value_majority": majority, "rows": float(self.rows)}

"""The ``sparse-probing`` metric: SAEBench's k-sparse probing on "is concept p active" tasks.

As SAEBench's ``sparse_probing`` eval (``probe_training.py``), per binary task:

1. Data: the eval samples, the first ``train_fraction`` for training and the rest for
   testing; each split is balanced, ``n`` positives (at most ``max_per_class``) and ``n``
   negatives drawn at random. A task runs when both splits have ``min_per_class`` of each.
   On synthetic data task ``p`` is "is true feature ``p`` active" (every read-out feature, or
   the first ``max_tasks`` that run).
2. Latent selection: the ``k`` latents with the largest ``|mean(pos) - mean(neg)|`` of the
   SAE's codes on the training split.
3. Probe: sklearn ``LogisticRegression`` (L2, ``C``, ``max_iter``) on those ``k`` latents; the
   score is test accuracy, for each ``k`` in ``ks``.

Next to it the same probe on the raw activations (``llm_test_accuracy``) and, with
``full_probe``, on all latents (``sae_test_accuracy``). Keys follow SAEBench's
(``sae_top_1_test_accuracy``...) and are means over tasks. With ``ctx.out_dir`` set, the
whole result, per-task details included, is written as SAEBench JSON (``sparse_probing.json``).
"""

from __future__ import annotations

import warnings
from typing import Any

import attrs
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from hsae.metric import EvalContext, Metric
from hsae_group_ortho.collect import CodeRecord, feature_names


def balanced(labels: np.ndarray, max_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` positives and ``n`` negatives, ``n = min(#pos, #neg, max_per_class)``, shuffled."""
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    n = min(pos.size, neg.size, max_per_class)
    picked = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    return rng.permutation(picked)


def top_k_mean_diff(acts: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` columns with the largest ``|mean over positives - mean over negatives|``."""
    diff = np.abs(acts[labels].mean(0) - acts[~labels].mean(0))
    return np.argsort(-diff, kind="stable")[:k]


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   c: float, max_iter: int) -> float:
    """Test accuracy of an L2 logistic-regression probe."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe = LogisticRegression(C=c, max_iter=max_iter).fit(train_x, train_y)
    return float((probe.predict(test_x) == test_y).mean())


class SparseProbingMetric(Metric):
    """SAEBench sparse probing: top-k latents by class mean difference, logistic regression, test accuracy."""

    name = "sparse-probing"
    needs_labels = True

    @attrs.frozen
    class Config:
        """``ks`` latents per probe; the split, class balance, probe (``C``, ``max_iter``), task count and sampling ``seed``."""

        ks: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
        train_fraction: float = 0.5
        max_per_class: int = 1000
        min_per_class: int = 10
        C: float = 1.0
        max_iter: int = 1000
        full_probe: bool = True
        max_tasks: int | None = None
        seed: int = 0
        json_file: str = "sparse_probing.json"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        if not 0 < config.train_fraction < 1 or not config.ks or min(config.ks) < 1:
            raise ValueError("need 0 < train_fraction < 1 and positive ks")
        self.record = CodeRecord(labels=True)

    def reset(self) -> None:
        self.record.reset()

    def update(self, batch, out, model) -> None:
        self.record.update(batch, out)

    def task(self, p: int, codes: np.ndarray, x: np.ndarray, labels: np.ndarray, split: int) -> dict[str, float] | None:
        """One task's accuracies, or ``None`` when a split lacks examples."""
        c = self.config
        rng = np.random.default_rng([c.seed, p])
        y = labels[:, p]
        parts = []
        for rows in (np.arange(split), np.arange(split, y.size)):
            if min(y[rows].sum(), (~y[rows]).sum()) < c.min_per_class:
                return None
            parts.append(rows[balanced(y[rows], c.max_per_class, rng)])
        train, test = parts

        def fit(cols, acts: np.ndarray) -> float:  # noqa: ANN001 - a slice or an index array
            return probe_accuracy(acts[train][:, cols], y[train], acts[test][:, cols], y[test], c.C, c.max_iter)

        out = {"llm_test_accuracy": fit(slice(None), x), "n_train": float(train.size), "n_test": float(test.size)}
        if c.full_probe:
            out["sae_test_accuracy"] = fit(slice(None), codes)
        for k in c.ks:
            out[f"sae_top_{k}_test_accuracy"] = fit(top_k_mean_diff(codes[train], y[train], min(k, codes.shape[1])), codes)
        return out

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        if self.record.empty:
            return {}
        codes, x = self.record.codes().double().numpy(), self.record.x().double().numpy()
        labels = self.record.labels().numpy()
        split = int(self.config.train_fraction * labels.shape[0])
        gt = ctx.data.ground_truth()
        names = feature_names(gt) if gt is not None else [f"f{i}" for i in range(labels.shape[1])]
        levels = gt.level.tolist() if gt is not None else [0] * labels.shape[1]
        details = []
        for p in range(labels.shape[1]):
            if self.config.max_tasks is not None and len(details) >= self.config.max_tasks:
                break
            result = self.task(p, codes, x, labels, split)
            if result is not None:
                details.append({"dataset_name": f"concept_{p}_{names[p]}", "level": levels[p], **result})
        keys = [k for k in (details[0] if details else {}) if k.endswith("accuracy")]
        metrics = {k: float(np.mean([d[k] for d in details])) for k in keys}
        metrics["n_tasks"] = float(len(details))
        if ctx.out_dir is not None:
            self._write(model, ctx, metrics, details)
        return metrics

    def _write(self, model, ctx: EvalContext, metrics: dict[str, float], details: list[dict[str, Any]]) -> None:
        from hsae.engine.rundir import RunDir
        from hsae.saving import saelens_cfg

        grouped = {"llm": {k: v for k, v in metrics.items() if k.startswith("llm")},
                   "sae": {k: v for k, v in metrics.items() if k.startswith("sae")}}
        eval_config = {**attrs.asdict(self.config), "n_samples": int(self.record.codes().shape[0]), "n_tasks": len(details),
                       "step": ctx.step}
        RunDir(ctx.out_dir).write_eval(grouped, eval_config, saelens_cfg(model, ctx.data), eval_type="sparse_probing",
                                       details=details, name=self.config.json_file)

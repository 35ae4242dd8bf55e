"""s5: logistic regression and a linear SVM on s4 datasets, with stratified cross-validation.

Each classifier is a scikit-learn pipeline (standardize, then the model) refitted inside
every fold, so no fold's scaling sees its test rows. A dataset with stored split indices
(``split_train_indices`` / ``split_test_indices``) is cross-validated on its training rows
and then scored once on its test rows; one without is cross-validated on all rows.
:func:`write_sweep` reports hidden-to-concept at each layer against the embedding baseline
(``classifiers.json`` and ``accuracy_by_layer.png``; see :mod:`.sweep`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hsae.errors import UserError
from hsae.io import write_json
from hsae.report import pyplot, save_figure
from hsae_concepts.labels import class_balance

MODELS = ("logreg", "linear_svm")


def make_classifier(name: str, c: float, seed: int):  # noqa: ANN201 - a sklearn Pipeline
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    model = LogisticRegression(C=c, max_iter=2000) if name == "logreg" else \
        LinearSVC(C=c, max_iter=20000, random_state=seed)
    return make_pipeline(StandardScaler(), model)


def evaluate(x: np.ndarray, y: np.ndarray, train: np.ndarray | None = None, test: np.ndarray | None = None, *,
             folds: int = 5, c: float = 1.0, seed: int = 0) -> dict:
    """Cross-validated (and, with a split, test) accuracy of each classifier, with the majority rate."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    y = np.asarray(y)
    if y.dtype.kind not in "iub":
        raise UserError("s5 classifies concept labels: use a hidden-to-concept dataset (y holds integers)")
    train = np.arange(len(y)) if train is None else np.asarray(train)
    n_folds = min(folds, min((n for n in class_balance(y[train]).values() if n), default=0))
    if n_folds < 2 or len(np.unique(y[train])) < 2:
        raise UserError(f"only {len(train)} training samples ({class_balance(y[train])} per label): too few for "
                        "stratified cross-validation")
    cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    out: dict = {"n_train": int(len(train)), "n_test": 0 if test is None else int(len(test)), "folds": n_folds,
                 "majority": _majority(y[train], y[test] if test is not None else y[train])}
    for name in MODELS:
        scores = cross_val_score(make_classifier(name, c, seed), x[train], y[train], cv=cv)
        result = {"cv_mean": float(scores.mean()), "cv_std": float(scores.std(ddof=1))}
        if test is not None and len(test):
            result["test"] = float(make_classifier(name, c, seed).fit(x[train], y[train]).score(x[test], y[test]))
        out[name] = result
    return out


def evaluate_file(path: Path, *, folds: int = 5, c: float = 1.0, seed: int = 0) -> dict:
    """:func:`evaluate` on an s4 dataset file, using its stored split when it has one."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a dataset file ({exc})") from None
    with data:
        split = ("split_train_indices" in data.files)
        return evaluate(data["X"], data["y"], data["split_train_indices"] if split else None,
                        data["split_test_indices"] if split else None, folds=folds, c=c, seed=seed)


def _majority(train_y: np.ndarray, eval_y: np.ndarray) -> float:
    """Accuracy of always answering the training split's most common label."""
    values, counts = np.unique(train_y, return_counts=True)
    return float((eval_y == values[counts.argmax()]).mean())


def write_sweep(results: Mapping[int, dict], baseline: dict, out_dir: Path, *, title: str = "") -> dict:
    """``classifiers.json`` and ``accuracy_by_layer.png`` from per-layer results and the embedding baseline."""
    summary = {"score": "test accuracy" if "test" in baseline["logreg"] else "cross-validated accuracy",
               "embedding_baseline": baseline, "layers": {str(k): v for k, v in results.items()}}
    write_json(Path(out_dir) / "classifiers.json", summary)
    _plot(results, baseline, Path(out_dir) / "accuracy_by_layer.png", title)
    return summary


def headline_score(result: dict, model: str) -> float:
    """Test accuracy when there is a test split, else the cross-validated mean."""
    return result[model].get("test", result[model]["cv_mean"])


def _plot(results: Mapping[int, dict], baseline: dict, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    layers: Sequence[int] = sorted(results)
    for model, color in zip(MODELS, ("tab:blue", "tab:orange")):
        ax.plot(layers, [headline_score(results[k], model) for k in layers], "o-", color=color,
                label=f"hidden-to-concept, {model}")
        cv = [results[k][model]["cv_mean"] for k in layers]
        err = [results[k][model]["cv_std"] for k in layers]
        ax.errorbar(layers, cv, yerr=err, fmt="none", ecolor=color, alpha=0.4, capsize=2)
        ax.axhline(headline_score(baseline, model), color=color, linestyle="--", linewidth=1,
                   label=f"embedding baseline, {model}")
    ax.axhline(baseline["majority"], color="grey", linestyle=":", linewidth=1, label="majority class")
    score = "test accuracy" if "test" in baseline["logreg"] else "CV accuracy"
    ax.set(xlabel="layer (residual stream after block L)", ylabel=f"{score} (bars: CV mean ± std)",
           ylim=(0, 1.02), title=title or "concept strength from the final token")
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)

"""Phase 1: teacher vectors from labelled samples, saved for initialization, and validated.

The samples come from the data source's ``teacher`` split (separate from the training and
eval streams). Which concepts are active in each sample comes from the source's labels;
the true feature directions are used only to score the teacher in the report.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from hsae.data import DataSource
from hsae.errors import UserError
from hsae.io import save_tensors, write_json, write_text
from hsae_teacher.estimator import Teacher, TeacherConfig, estimate_teacher
from hsae_teacher.geometry import Whitening, fit_whitening
from hsae_teacher.schema import TeacherRecipe
from hsae_teacher.validation import ValidationConfig, render_markdown, validate_teacher


GEOMETRY_DIR = "geometry"  # phase 1's folder inside each seed's folder


def teacher_file(teacher_dir: Path, metric: str) -> Path:
    """Where phase 1 stores the teacher estimated under ``metric``."""
    return Path(teacher_dir) / f"teacher-{metric}.safetensors"


def collect_labelled(data: DataSource, n_samples: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x (n, d) float64, labels (n, C) bool)`` from the source's ``teacher`` split."""
    xs, labels = [], []
    stream = data.batches(batch_size, split="teacher", with_labels=True)
    for batch in itertools.islice(stream, -(-n_samples // batch_size)):
        if batch.labels is None:
            raise UserError(f"data source {data.name!r} gives no labels; the teacher needs concept labels")
        xs.append(batch.x.double().numpy())
        labels.append((batch.labels > 0).numpy())
    return np.concatenate(xs)[:n_samples], np.concatenate(labels)[:n_samples]


def save_teacher(path: Path, teacher: Teacher, whitening: Whitening) -> None:
    """The vectors the initializer and the causal-orthogonality loss read, as safetensors."""
    tensors = {
        "parents": torch.from_numpy(teacher.parents.astype(np.int64)),
        "parent_vectors": torch.from_numpy(teacher.parent_vectors_input).float(),
        "children": torch.from_numpy(teacher.children.astype(np.int64)),
        "child_parent": torch.from_numpy(teacher.child_parent.astype(np.int64)),
        "child_deltas": torch.from_numpy(teacher.deltas_input).float(),
        # the causal inner product of input-space vectors: <u, v>_C = u^T Cov^{-1} v
        "causal_metric": torch.from_numpy(whitening.inv_sqrt @ whitening.inv_sqrt).float(),
    }
    save_tensors(path, tensors, metadata={"metric": whitening.kind, "back_map": teacher.back_map})


def extract_teacher(recipe: TeacherRecipe, seed: int, out_dir: Path) -> dict:
    """Estimate, save and validate the teacher of one seed's world; returns the report."""
    cfg = recipe.extract
    data = recipe.data.build(seed=seed)
    truth = data.ground_truth()
    if truth is None:
        raise UserError(f"data source {recipe.data.type!r} has no ground truth; phase 1 needs concept labels")
    x, labels = collect_labelled(data, cfg.n_samples, cfg.batch_size)
    parent_of = truth.parent.numpy()
    estimator = TeacherConfig(min_samples=cfg.min_samples, max_samples=cfg.max_samples_per_concept, seed=seed)
    metrics = {cfg.metric} | {arm.metric for arm in recipe.arms.values() if arm.metric}
    for metric in sorted(metrics):
        whitening = fit_whitening(metric, data=x)
        save_teacher(teacher_file(out_dir, metric), estimate_teacher(x, labels, parent_of, whitening, estimator), whitening)

    # The report re-estimates on a seeded split (projection test on held-out samples) and runs
    # the controls: shuffled labels, a random parent, and euclidean instead of whitened.
    validation = ValidationConfig(train_frac=1 - cfg.holdout_fraction, seed=seed, teacher=estimator)
    report = validate_teacher(x, labels, parent_of, fit_whitening(cfg.metric, data=x),
                              true_directions=truth.directions.double().numpy(), config=validation)
    report["markdown"] = render_markdown(report)
    write_json(out_dir / "geometry.json", report)
    write_text(out_dir / "geometry.md", report["markdown"])
    return report

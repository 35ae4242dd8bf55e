"""One evaluation pass: every metric sees the same held-out batches."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import torch

from hsae.data import DataSource
from hsae.metric import EvalContext, Metric
from hsae.model import SAE


@torch.no_grad()
def evaluate(
    model: SAE, data: DataSource, metrics: dict[str, Metric], *, batches: int, batch_size: int,
    device: torch.device, out_dir: Path | None = None, step: int = 0,
) -> dict[str, dict[str, float]]:
    """``{metric table name: {key: value}}`` over ``batches`` eval batches."""
    was_training = model.training
    model.eval()
    ctx = EvalContext(data=data, device=device, out_dir=out_dir, step=step, batch_size=batch_size, n_batches=batches)
    for metric in metrics.values():
        metric.start(ctx)
    with_labels = any(m.needs_labels for m in metrics.values())
    stream = data.batches(batch_size, split="eval", with_labels=with_labels)
    seen = 0
    for batch in itertools.islice(stream, batches):
        batch = batch.to(device)
        out = model(batch.x)
        for metric in metrics.values():
            metric.update(batch, out, model)
        seen += 1
    if not seen:
        model.train(was_training)
        warnings.warn(f"data source {data.name!r} has no held-out rows; the metrics were not computed", stacklevel=2)
        return {}
    results = {name: {k: float(v) for k, v in metric.compute(model, ctx).items()} for name, metric in metrics.items()}
    model.train(was_training)
    return results


def flatten(results: dict[str, dict[str, float]], prefix: str = "eval/") -> dict[str, float]:
    """``{"eval/<key>": value}`` for single-valued metrics, ``eval/<table>.<key>`` otherwise."""
    flat = {}
    for table, values in results.items():
        for key, value in values.items():
            flat[f"{prefix}{key}" if len(values) == 1 else f"{prefix}{table}.{key}"] = value
    return flat

"""The few lines ``hsae run`` prints when a run ends: headline numbers and where the results are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hsae.io import read_json

if TYPE_CHECKING:
    from hsae.pipeline import Pipeline, RunContext

# eval.json metrics worth a line, in this order, when a pipeline names none itself.
HEADLINE_METRICS = ("explained_variance", "mse", "l0", "dead_fraction", "mcc", "f1", "ce_loss_score")


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (what a user would type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def eval_headline(eval_file: Path) -> list[str]:
    """``name: value`` for the headline metrics found in an SAEBench-style ``eval.json``."""
    if not eval_file.is_file():
        return []
    metrics: dict[str, Any] = read_json(eval_file).get("eval_result_metrics", {})
    flat = {key: value for group in metrics.values() if isinstance(group, dict) for key, value in group.items()}
    return [f"{key}: {flat[key]:.4g}" for key in HEADLINE_METRICS if isinstance(flat.get(key), (int, float))]


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.rglob(pattern) if ".tmp" not in p.name and "checkpoints" not in p.parts)


def summary_lines(pipeline: "Pipeline", ctx: "RunContext", seconds: float) -> list[str]:
    """Headline metrics (the pipeline's own, else ``eval.json``'s) and the paths of report, plots and weights."""
    root = ctx.run_dir.root
    lines = [f"done in {seconds:.0f} s: {shown_path(root)}"]
    headline = pipeline.headline(ctx) or eval_headline(root / "eval.json")
    lines += [f"  {line}" for line in headline]
    report = root / "report.md"
    if report.is_file():
        lines.append(f"  report:  {shown_path(report)}")
    plots = _files(root, "*.png")
    if plots:
        where = shown_path(plots[0]) if len(plots) == 1 else f"{len(plots)} PNGs under {shown_path(root)}"
        lines.append(f"  plots:   {where}")
    weights = _files(root, "model.safetensors")
    if weights:
        where = shown_path(weights[0]) if len(weights) == 1 else f"{len(weights)} models, e.g. {shown_path(weights[0])}"
        lines.append(f"  weights: {where} (load with hsae.load_sae(<its folder>))")
    return lines

"""Phase 4's report (seed 001): every arm's metrics over seeds, the targets, plots.

Writes ``report.json`` (numbers only), ``report.md`` (tables and a plain verdict on each
target), ``training_curves.png`` and ``concept_metrics.png`` into the run directory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from hsae.engine.rundir import RunDir
from hsae.errors import UserError
from hsae.io import read_json, write_json, write_text
from hsae.report import (
    NumberKind,
    bar_panel,
    curve,
    format_number,
    format_stat,
    mark_stages,
    markdown_table,
    metric_label,
    numbers_only,
    plot_curve,
    pyplot,
    save_figure,
    seeds_note,
    spread_caption,
    stage_boundaries,
)
from hsae.summary import mean_std
from hsae_teacher.extract import GEOMETRY_DIR
from hsae_teacher.schema import TeacherRecipe

EXPERIMENT = "Teacher-initialized vs random H-SAE"


class Row(NamedTuple):
    """One metric of the report: where it comes from, how it reads and which way is better."""

    key: str
    source: str
    label: str
    unit: str
    kind: NumberKind
    lower_is_better: bool | None
    transform: Callable[[float], float] | None = None


ROWS = (
    Row("purity_pp", "purity_pp", "purity", "%", "percent", False),
    Row("leakage", "leakage", "leakage", "rate", "fraction", True),
    Row("steering_leakage", "steering_leakage", "steering leakage", "ratio", "fraction", True),
    Row("one_minus_ev", "explained_variance", "1 - EV", "fraction of variance", "fraction", True, lambda v: 1 - v),
    Row("mcc", "mcc", "MCC", "mean |cos|", "fraction", False),
    Row("mcc_level_0", "mcc_level_0", "MCC parents", "mean |cos|", "fraction", False),
    Row("mcc_level_1", "mcc_level_1", "MCC children", "mean |cos|", "fraction", False),
    Row("absorbed_edge_fraction", "absorbed_edge_fraction", "absorbed edges", "fraction", "fraction", True),
    Row("l0", "l0", "L0", "active latents", "value", None),
)
ROW_BY_KEY = {row.key: row for row in ROWS}
PLOTTED = ("purity_pp", "leakage", "steering_leakage", "one_minus_ev")


def _find(metrics: dict[str, dict[str, float]], key: str) -> float | None:
    """``key`` from whichever metric table reported it."""
    return next((values[key] for values in metrics.values() if key in values), None)


def arm_numbers(arm_dir: Path) -> dict[str, float]:
    """The report's numbers for one trained arm, from its ``eval.json``."""
    metrics = read_json(arm_dir / "eval.json")["eval_result_metrics"]
    out = {}
    for row in ROWS:
        value = _find(metrics, row.source)
        if value is not None:
            out[row.key] = row.transform(value) if row.transform else value
    return out


def _mean(side: dict[str, dict], key: str) -> float:
    value = side.get(key, {}).get("mean")
    return math.nan if value is None else value


def _relative_change(baseline: dict[str, dict], teacher: dict[str, dict], key: str) -> float:
    """(teacher - baseline) / baseline of the means; NaN when the baseline is 0 or missing."""
    b = _mean(baseline, key)
    return (_mean(teacher, key) - b) / b if b else math.nan


def judge(config: TeacherRecipe, baseline: dict[str, dict], teacher: dict[str, dict]) -> list[dict[str, Any]]:
    """Each target with its threshold and measured value (numbers) and whether it was met."""
    t = config.targets
    gain = _mean(teacher, "purity_pp") - _mean(baseline, "purity_pp")
    leakage = _relative_change(baseline, teacher, "leakage")
    steering = _relative_change(baseline, teacher, "steering_leakage")
    ev_gap = _mean(teacher, "one_minus_ev") - _mean(baseline, "one_minus_ev")  # > 0: teacher reconstructs worse
    return [
        _target("purity_gain", "purity gain", "pp", "at least", t.purity_gain_pp, gain, gain >= t.purity_gain_pp),
        _target("leakage_change", "relative change of leakage", "relative", "at most", -t.leakage_reduction,
                leakage, leakage <= -t.leakage_reduction),
        _target("steering_leakage_change", "relative change of steering leakage", "relative", "at most",
                -t.steering_leakage_reduction, steering, steering <= -t.steering_leakage_reduction),
        _target("reconstruction_gap", "1 - EV above baseline", "fraction", "at most", t.reconstruction_tolerance,
                ev_gap, ev_gap <= t.reconstruction_tolerance),
    ]


def _target(name: str, label: str, kind: NumberKind, comparison: str, threshold: float, measured: float,
            met: bool) -> dict[str, Any]:
    return {"target": name, "label": label, "kind": kind, "comparison": comparison, "threshold": float(threshold),
            "measured": float(measured), "met": bool(met)}


def collect(config: TeacherRecipe, run_dir: RunDir, seeds: list[int]) -> dict[str, dict[str, list[float]]]:
    """``{arm: {key: [value per seed]}}``; an arm not trained yet is a :class:`UserError`."""
    per_arm: dict[str, dict[str, list[float]]] = {}
    for name in config.arms:
        for seed in seeds:
            arm_dir = run_dir.root / f"seed-{seed}" / name
            if not (arm_dir / "eval.json").is_file():
                raise UserError(f"{arm_dir}: arm {name!r} has not been trained; run phases 2-4 first")
            for key, value in arm_numbers(arm_dir).items():
                per_arm.setdefault(name, {}).setdefault(key, []).append(value)
    return per_arm


def read_geometry(run_dir: RunDir, seed: int) -> dict[str, Any]:
    """Phase 1's validation report of one seed (its rendered markdown included)."""
    return read_json(run_dir.root / f"seed-{seed}" / GEOMETRY_DIR / "geometry.json")


def write_report(config: TeacherRecipe, run_dir: RunDir, seeds: list[int]) -> dict[str, Any]:
    """Collect every arm of every seed and write the report files."""
    per_arm = collect(config, run_dir, seeds)
    summary = {name: {key: mean_std(values) for key, values in keys.items()} for name, keys in per_arm.items()}
    geometry = {str(seed): read_geometry(run_dir, seed) for seed in seeds}
    report = numbers_only({
        "experiment": EXPERIMENT, "seeds": seeds, "arms": summary, "per_seed": per_arm,
        "targets": judge(config, summary["baseline"], summary["teacher"]),
        "geometry": {seed: {k: v for k, v in geo.items() if k != "markdown"} for seed, geo in geometry.items()},
    })
    write_json(run_dir.root / "report.json", report)
    markdowns = {seed: geo.get("markdown", "see geometry.md") for seed, geo in geometry.items()}
    write_text(run_dir.root / "report.md", markdown(report, markdowns))
    plots(config, run_dir, seeds, summary)
    return report


def markdown(report: dict[str, Any], geometry_markdown: dict[str, str]) -> str:
    """``report.md``: the seeds note, the metrics table, the targets and phase 1's geometry."""
    lines = [f"# {EXPERIMENT}", "", seeds_note(report["seeds"]), "",
             "Each seed draws its own synthetic world; every arm of a seed trains on the same data.", ""]
    lines += metrics_table(report["arms"])
    lines += ["", "## Targets (teacher vs random-init baseline)", ""]
    lines += targets_table(report["targets"])
    lines += ["", verdict(report["targets"]), "", "## Phase 1: teacher geometry (per seed)", ""]
    for seed, text in geometry_markdown.items():
        lines += [f"### Seed {seed}", "", text.rstrip(), ""]
    lines += ["Plots: `training_curves.png`, `concept_metrics.png`.", ""]
    return "\n".join(lines)


def metrics_table(arms: dict[str, dict[str, dict]]) -> list[str]:
    """One row per metric some arm reported, one column per arm."""
    rows = [[metric_label(row.label, row.unit, row.lower_is_better),
             *(format_stat(arms[a].get(row.key), row.kind) for a in arms)]
            for row in ROWS if any(row.key in arms[a] for a in arms)]
    return markdown_table(["metric", *arms], rows)


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    """Each target: its threshold, the measured value and whether it was met."""
    rows = [[t["label"], f"{t['comparison']} {format_number(t['threshold'], t['kind'])}",
             format_number(t["measured"], t["kind"]), "yes" if t["met"] else "no"] for t in targets]
    return markdown_table(["target", "threshold", "measured", "met"], rows)


def verdict(targets: list[dict[str, Any]]) -> str:
    """How many targets were met, said plainly."""
    met = sum(t["met"] for t in targets)
    if met == len(targets):
        return f"**{met} of {len(targets)} targets met.** Every target was met."
    return (f"**{met} of {len(targets)} targets met.** The teacher initialization did not deliver every "
            "hoped-for improvement; the numbers above are as measured.")


def plots(config: TeacherRecipe, run_dir: RunDir, seeds: list[int], summary: dict[str, Any]) -> None:
    """``training_curves.png`` and ``concept_metrics.png``."""
    plot_training_curves(config, run_dir, seeds)
    plot_concept_metrics(summary, len(seeds), run_dir.root / "concept_metrics.png")


def plot_training_curves(config: TeacherRecipe, run_dir: RunDir, seeds: list[int]) -> Path:
    """Reconstruction loss per arm (mean over seeds, ± std band), with the stage-A/B boundary."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in config.arms:
        curves = [curve(RunDir(run_dir.root / f"seed-{seed}" / name).read_log(), "loss/mse") for seed in seeds]
        plot_curve(ax, curves, name)
    if any(arm.stages for arm in config.arms.values()):
        mark_stages(ax, [(step, f"{label}, staged arms") for step, label in stage_boundaries(config.stages)])
    ax.set(xlabel="training step", yscale="log",
           ylabel=metric_label("reconstruction loss", "MSE, log scale", lower_is_better=True, wrap=True),
           title=f"training curves ({spread_caption(len(seeds))})")
    ax.legend(fontsize="small")
    fig.suptitle(EXPERIMENT)
    return save_figure(fig, run_dir.root / "training_curves.png")


def plot_concept_metrics(summary: dict[str, dict[str, dict]], n_seeds: int, path: Path) -> Path:
    """One bar panel per headline metric, arms side by side."""
    plt = pyplot()
    arms = list(summary)
    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.8))
    colors = ["#888" if a == "baseline" else "#3a7" for a in arms]
    for ax, key in zip(axes, PLOTTED):
        row = ROW_BY_KEY[key]
        bar_panel(ax, arms, [summary[a].get(key) for a in arms], colors)
        ax.set_ylabel(metric_label(row.label, row.unit, row.lower_is_better, wrap=True))
        ax.set_title(row.label)
    fig.suptitle(f"{EXPERIMENT}: concept metrics ({spread_caption(n_seeds)})")
    return save_figure(fig, path)

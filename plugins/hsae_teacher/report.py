"""Phase 4's report (seed 001): every arm's metrics over seeds, the targets, plots.

Writes ``report.json`` (numbers only), ``report.md`` (tables and a plain verdict on each
target), ``training_curves.png`` and ``concept_metrics.png`` into the run directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hsae import comparison
from hsae.comparison import Row, TargetSpec, targets_table, tuning_table, verdict
from hsae.engine.rundir import RunDir
from hsae.errors import UserError
from hsae.io import read_json, write_json, write_text
from hsae.report import (
    PAIRED_TESTS,
    bar_panel,
    curve,
    mark_stages,
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
from hsae.tuning import TUNING_DIR
from hsae_teacher.extract import GEOMETRY_DIR
from hsae_teacher.schema import TeacherRecipe

EXPERIMENT = "Teacher-initialized vs random H-SAE"


ROWS = (
    Row("purity_pp", "purity_pp", "purity", "%", "percent", False),
    Row("leakage", "leakage", "leakage", "rate", "fraction", True),
    Row("purity_pp_any_selected", "purity_pp_any_selected", "purity (any-selected rule)", "%", "percent", False),
    Row("steering_leakage", "steering_leakage", "steering leakage", "ratio", "fraction", True),
    Row("steering_leakage_true_direction_floor", "steering_leakage_true_direction_floor",
        "steering leakage floor (true directions)", "ratio", "fraction", True),
    Row("one_minus_ev", "explained_variance", "1 - EV", "fraction of variance", "fraction", True, lambda v: 1 - v),
    Row("mcc", "mcc", "MCC", "mean |cos|", "fraction", False),
    Row("mcc_level_0", "mcc_level_0", "MCC parents", "mean |cos|", "fraction", False),
    Row("mcc_level_1", "mcc_level_1", "MCC children", "mean |cos|", "fraction", False),
    Row("absorbed_edge_fraction", "absorbed_edge_fraction", "absorbed edges", "fraction", "fraction", True),
    Row("l0", "l0", "L0", "active latents", "value", None),
)
ROW_BY_KEY = {row.key: row for row in ROWS}
PLOTTED = ("purity_pp", "leakage", "steering_leakage", "one_minus_ev")


def arm_numbers(arm_dir: Path) -> dict[str, float]:
    """The report's numbers for one trained arm, from its ``eval.json``."""
    return comparison.arm_numbers(arm_dir, ROWS)


def judge(config: TeacherRecipe, per_arm: dict[str, dict[str, list]]) -> list[dict[str, Any]]:
    """Each target, judged on the per-seed paired effects of teacher vs baseline (:func:`hsae.comparison.judge`)."""
    t = config.targets
    specs = (
        TargetSpec("purity_gain", "purity gain", "pp", "purity_pp", False, "at least", t.purity_gain_pp),
        TargetSpec("leakage_change", "relative change of leakage", "relative", "leakage", True, "at most",
                   -t.leakage_reduction),
        TargetSpec("steering_leakage_change", "relative change of steering leakage", "relative", "steering_leakage",
                   True, "at most", -t.steering_leakage_reduction),
        TargetSpec("reconstruction_gap", "1 - EV above baseline", "fraction", "one_minus_ev", False, "at most",
                   t.reconstruction_tolerance, non_inferiority=True),
    )
    return comparison.judge(specs, per_arm)


def collect(config: TeacherRecipe, run_dir: RunDir, seeds: list[int]) -> dict[str, dict[str, list[float]]]:
    """``{arm: {key: [value per seed]}}``; an arm not trained yet is a :class:`UserError`."""
    per_arm: dict[str, dict[str, list[float]]] = {}
    for name in config.arms:
        for seed in seeds:
            arm_dir = run_dir.root / f"seed-{seed}" / name
            if not (arm_dir / "eval.json").is_file():
                raise UserError(f"{arm_dir}: arm {name!r} has not been trained; run phases 2-4 first")
            numbers = arm_numbers(arm_dir)
            for row in ROWS:  # one entry per seed (None where missing), so seeds stay paired across arms
                per_arm.setdefault(name, {}).setdefault(row.key, []).append(numbers.get(row.key))
    return {name: {key: values for key, values in keys.items() if any(v is not None for v in values)}
            for name, keys in per_arm.items()}


def read_tuning(run_dir: RunDir) -> dict[str, Any] | None:
    """The learning-rate grid and each arm's choice (``tuning/tuning.json``), if the run tuned."""
    path = run_dir.root / TUNING_DIR / "tuning.json"
    return read_json(path) if path.is_file() else None


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
        "targets": judge(config, per_arm),
        "tuning": read_tuning(run_dir), "default_lr": config.train.lr,
        "geometry": {seed: {k: v for k, v in geo.items() if k != "markdown"} for seed, geo in geometry.items()},
    })
    write_json(run_dir.root / "report.json", report)
    markdowns = {seed: geo.get("markdown", "see geometry.md") for seed, geo in geometry.items()}
    write_text(run_dir.root / "report.md", markdown(report, markdowns))
    plots(config, run_dir, seeds, summary)
    return report


def headline(report: dict[str, Any]) -> list[str]:
    """The lines ``hsae run`` prints at the end: each target, measured and met or not."""
    return comparison.headline(EXPERIMENT, report["seeds"], report["targets"])


def markdown(report: dict[str, Any], geometry_markdown: dict[str, str]) -> str:
    """``report.md``: the seeds note, the metrics table, the targets and phase 1's geometry."""
    lines = [f"# {EXPERIMENT}", "", seeds_note(report["seeds"], tests=PAIRED_TESTS), "",
             "Each seed draws its own synthetic world; every arm of a seed trains on the same data.", ""]
    lines += metrics_table(report["arms"])
    lines += ["", "## Learning rates (validation 1 - EV per arm and lr)", ""]
    lines += tuning_table(report.get("tuning"), report.get("default_lr", math.nan), "its own world, never an evaluation seed")
    lines += ["", "## Targets (teacher vs random-init baseline, paired by seed)", ""]
    lines += targets_table(report["targets"])
    lines += ["", verdict(report["targets"]), "", "## Phase 1: teacher geometry (per seed)", ""]
    for seed, text in geometry_markdown.items():
        lines += [f"### Seed {seed}", "", text.rstrip(), ""]
    lines += ["Plots: `training_curves.png`, `concept_metrics.png`.", ""]
    return "\n".join(lines)


def metrics_table(arms: dict[str, dict[str, dict]]) -> list[str]:
    """One row per metric some arm reported, one column per arm."""
    return comparison.metrics_table(arms, ROWS)


def plots(config: TeacherRecipe, run_dir: RunDir, seeds: list[int], summary: dict[str, Any]) -> None:
    """``training_curves.png`` and ``concept_metrics.png``."""
    plot_training_curves(config, run_dir, seeds)
    random_init = {name for name, arm in config.arms.items() if arm.init == "random"}
    plot_concept_metrics(summary, len(seeds), run_dir.root / "concept_metrics.png", random_init)


def plot_training_curves(config: TeacherRecipe, run_dir: RunDir, seeds: list[int]) -> Path:
    """Reconstruction loss per arm (mean over seeds, ± std band), with the stage-A/B boundary."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    for name in config.arms:
        curves = [curve(RunDir(run_dir.root / f"seed-{seed}" / name).read_log(), "loss/mse") for seed in seeds]
        plot_curve(ax, curves, name)
    if any(arm.stages for arm in config.arms.values()):
        mark_stages(ax, [(step, f"{label}, staged arms") for step, label in stage_boundaries(config.stages)])
    ax.set(xlabel="training step", yscale="log",
           ylabel=metric_label("reconstruction loss", "MSE, log scale", lower_is_better=True, wrap=True),
           title=f"training curves ({spread_caption(len(seeds))})")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(EXPERIMENT)
    return save_figure(fig, run_dir.root / "training_curves.png")


def plot_concept_metrics(summary: dict[str, dict[str, dict]], n_seeds: int, path: Path,
                         random_init: set[str] = frozenset({"baseline"})) -> Path:
    """One bar panel per headline metric, arms side by side (random-init arms grey, teacher arms green)."""
    plt = pyplot()
    arms = list(summary)
    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.8))
    colors = ["#888" if a in random_init else "#3a7" for a in arms]
    for ax, key in zip(axes, PLOTTED):
        row = ROW_BY_KEY[key]
        bar_panel(ax, arms, [summary[a].get(key) for a in arms], colors)
        ax.set_ylabel(metric_label(row.label, row.unit, row.lower_is_better, wrap=True))
        ax.set_title(row.label)
    fig.suptitle(f"{EXPERIMENT}: concept metrics ({spread_caption(n_seeds)})")
    return save_figure(fig, path)

"""Phase 4's report: every arm's metrics over seeds, the seed's targets, plots.

Writes ``report.json`` (all numbers), ``report.md`` (tables and a plain verdict on each
target), ``training_curves.png`` and ``concept_metrics.png`` into the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hsae.engine.rundir import RunDir
from hsae.summary import format_mean_std, mean_std
from hsae.errors import UserError
from hsae.io import read_json, write_json, write_text
from hsae_teacher.extract import GEOMETRY_DIR
from hsae_teacher.schema import TeacherRecipe

# (report key, metric key in eval.json, transform, label, lower is better)
ROWS = (
    ("purity_pp", "purity_pp", None, "purity (pp)", False),
    ("leakage", "leakage", None, "leakage", True),
    ("steering_leakage", "steering_leakage", None, "steering leakage", True),
    ("one_minus_ev", "explained_variance", lambda v: 1 - v, "1 - EV", True),
    ("mcc", "mcc", None, "MCC", False),
    ("mcc_level_0", "mcc_level_0", None, "MCC parents", False),
    ("mcc_level_1", "mcc_level_1", None, "MCC children", False),
    ("absorbed_edge_fraction", "absorbed_edge_fraction", None, "absorbed edges", True),
    ("l0", "l0", None, "L0", None),
)


def _find(metrics: dict[str, dict[str, float]], key: str) -> float | None:
    for values in metrics.values():
        if key in values:
            return values[key]
    return None


def arm_numbers(arm_dir: Path) -> dict[str, float]:
    """The report's numbers for one trained arm, from its ``eval.json``."""
    metrics = read_json(arm_dir / "eval.json")["eval_result_metrics"]
    out = {}
    for key, source, transform, _, _ in ROWS:
        value = _find(metrics, source)
        if value is not None:
            out[key] = transform(value) if transform else value
    return out


def judge(config: TeacherRecipe, baseline: dict[str, dict], teacher: dict[str, dict]) -> list[dict[str, Any]]:
    """Each of seed 001's targets, with the measured value and whether it was met."""
    t = config.targets

    def mean(side, key):
        return side.get(key, {}).get("mean", float("nan"))

    def rel(key):
        b = mean(baseline, key)
        return (mean(teacher, key) - b) / b if b else float("nan")

    gain = mean(teacher, "purity_pp") - mean(baseline, "purity_pp")
    ev_gap = mean(teacher, "one_minus_ev") - mean(baseline, "one_minus_ev")  # > 0: teacher reconstructs worse
    return [
        {"target": f"purity +{t.purity_gain_pp:g}pp", "measured": f"{gain:+.2f}pp", "met": bool(gain >= t.purity_gain_pp)},
        {"target": f"leakage -{t.leakage_reduction:.0%}", "measured": f"{rel('leakage'):+.1%}",
         "met": bool(rel("leakage") <= -t.leakage_reduction)},
        {"target": f"steering leakage -{t.steering_leakage_reduction:.0%}", "measured": f"{rel('steering_leakage'):+.1%}",
         "met": bool(rel("steering_leakage") <= -t.steering_leakage_reduction)},
        {"target": f"reconstruction parity: 1-EV at most {t.reconstruction_tolerance:g} above baseline",
         "measured": f"{ev_gap:+.4f}", "met": bool(ev_gap <= t.reconstruction_tolerance)},
    ]


def write_report(config: TeacherRecipe, run_dir: RunDir, seeds: list[int]) -> dict[str, Any]:
    """Collect every arm of every seed and write the report files."""
    per_arm: dict[str, dict[str, list[float]]] = {}
    for name in config.arms:
        for seed in seeds:
            arm_dir = run_dir.root / f"seed-{seed}" / name
            if not (arm_dir / "eval.json").is_file():
                raise UserError(f"{arm_dir}: arm {name!r} has not been trained; run phases 2-4 first")
            for key, value in arm_numbers(arm_dir).items():
                per_arm.setdefault(name, {}).setdefault(key, []).append(value)
    summary = {name: {key: mean_std(values) for key, values in keys.items()} for name, keys in per_arm.items()}
    geometry = {seed: read_json(run_dir.root / f"seed-{seed}" / GEOMETRY_DIR / "geometry.json") for seed in seeds}
    verdict = judge(config, summary["baseline"], summary["teacher"])
    report = {"seeds": seeds, "arms": summary, "per_seed": per_arm, "targets": verdict,
              "geometry": {str(k): v for k, v in geometry.items()}}
    write_json(run_dir.root / "report.json", report)
    write_text(run_dir.root / "report.md", _markdown(config, report))
    _plots(config, run_dir, seeds, summary)
    return report


def _markdown(config: TeacherRecipe, report: dict[str, Any]) -> str:
    arms = list(report["arms"])
    lines = [f"# Teacher-initialized vs baseline H-SAE ({len(report['seeds'])} seed(s): {report['seeds']})", ""]
    lines += ["Means ± standard deviation over seeds; each seed draws its own synthetic world.", ""]
    lines += ["| metric | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for key, _, _, label, lower in ROWS:
        if not any(key in report["arms"][a] for a in arms):
            continue
        hint = "" if lower is None else (" (lower is better)" if lower else " (higher is better)")
        lines.append(f"| {label}{hint} | " + " | ".join(format_mean_std(report["arms"][a].get(key, {})) for a in arms) + " |")
    lines += ["", "## Seed 001's targets (teacher vs baseline)", "", "| target | measured | met |", "|---|---|---|"]
    for row in report["targets"]:
        lines.append(f"| {row['target']} | {row['measured']} | {'yes' if row['met'] else 'no'} |")
    met = sum(r["met"] for r in report["targets"])
    lines += ["", f"**{met} of {len(report['targets'])} targets met.** " + (
        "The teacher initialization did not deliver every improvement the seed hoped for; the numbers above are as measured."
        if met < len(report["targets"]) else "Every target was met.")]
    lines += ["", "## Phase 1: teacher geometry (per seed)", ""]
    for seed, geo in report["geometry"].items():
        lines += [f"### seed {seed}", "", geo.get("markdown", "see geometry.md"), ""]
    lines += ["Plots: `training_curves.png`, `concept_metrics.png`.", ""]
    return "\n".join(lines)


def _plots(config: TeacherRecipe, run_dir: RunDir, seeds: list[int], summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in config.arms:
        records = RunDir(run_dir.root / f"seed-{seeds[0]}" / name).read_log()
        steps = [r["step"] for r in records if "loss/mse" in r]
        ax.plot(steps, [r["loss/mse"] for r in records if "loss/mse" in r], label=name)
    ax.set(xlabel="step", ylabel="reconstruction loss (mse)", yscale="log", title=f"training curves (seed {seeds[0]})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir.root / "training_curves.png", dpi=120)
    plt.close(fig)

    keys = [("purity_pp", "purity (pp)"), ("leakage", "leakage"), ("steering_leakage", "steering leakage"),
            ("one_minus_ev", "1 - EV")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5))
    arms = list(summary)
    for ax, (key, label) in zip(axes, keys):
        means = [summary[a].get(key, {}).get("mean", float("nan")) for a in arms]
        stds = [summary[a].get(key, {}).get("std", 0.0) for a in arms]
        ax.bar(range(len(arms)), means, yerr=stds, color=["#888" if a == "baseline" else "#3a7" for a in arms])
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(run_dir.root / "concept_metrics.png", dpi=120)
    plt.close(fig)

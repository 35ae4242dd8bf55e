"""The comparison report (seed 002): every arm's metrics over seeds, training health, plots, group patterns.

Writes ``report.json`` (numbers only, per seed and summarized), ``report.md`` (tables),
``training_curves.png``, ``sparse_probing.png`` and ``groups.png`` into the run directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hsae.comparison import Row
from hsae.engine import checkpoint as ckpt
from hsae.engine.rundir import RunDir
from hsae.errors import UserError
from hsae.io import load_tensors, read_json, write_json, write_text
from hsae.report import (
    NumberKind,
    bar_panel,
    curve,
    format_number,
    format_stat,
    is_number,
    markdown_table,
    metric_label,
    numbers_only,
    plot_curve,
    pyplot,
    save_figure,
    seeds_note,
    spread_caption,
)
from hsae.summary import mean_std
from hsae_group_ortho.schema import ComparisonRecipe

EXPERIMENT = "Group-orthogonal vs baseline SAEs"
KS = (1, 2, 5, 10, 20, 50)


ROWS = (
    Row("probe_top_1", "sae_top_1_test_accuracy", "sparse probing acc, k=1", "accuracy", "fraction", False),
    Row("probe_top_5", "sae_top_5_test_accuracy", "sparse probing acc, k=5", "accuracy", "fraction", False),
    Row("probe_all", "sae_test_accuracy", "probe acc, all latents", "accuracy", "fraction", False),
    Row("probe_raw", "llm_test_accuracy", "probe acc, raw activations", "accuracy", "fraction", False),
    Row("cross_group_max_cos", "cross_group_max_cos", "mean max |cos| across groups", "", "fraction", True),
    Row("within_group_max_cos", "within_group_max_cos", "mean max |cos| within groups", "", "fraction", None),
    Row("max_cos", "max_cos", "mean max |cos|, any latent", "", "fraction", True),
    Row("ari", "ari", "group-hierarchy ARI, model's groups", "", "fraction", False),
    Row("ari_kmeans", "ari_kmeans", "group-hierarchy ARI, k-means of profiles", "", "fraction", False),
    Row("moved_fraction", "moved_fraction", "latents moved by reassignment", "fraction", "fraction", None),
    Row("explained_variance", "explained_variance", "explained variance", "fraction", "fraction", False),
    Row("mcc", "mcc", "MCC vs true features", "mean |cos|", "fraction", False),
    Row("l0", "l0", "L0", "active latents", "value", None),
    Row("final_loss", None, "final training loss", "", "value", None),
    Row("final_mse", None, "final training mse", "", "value", None),
    Row("steps", None, "training steps", "", "count", None),
)
ROW_BY_KEY = {row.key: row for row in ROWS}
PER_SEED = ("probe_top_1", "probe_top_5", "cross_group_max_cos", "ari", "ari_kmeans", "final_loss")
GROUP_PANELS = ("cross_group_max_cos", "within_group_max_cos", "ari", "ari_kmeans")


def find(metrics: dict[str, dict[str, float]], key: str) -> float | None:
    """``key`` from whichever metric table reported it."""
    return next((values[key] for values in metrics.values() if key in values), None)


def arm_numbers(arm_dir: Path) -> dict[str, float | int]:
    """One trained arm's numbers: its ``eval.json`` metrics and the last logged training record."""
    if not (arm_dir / "eval.json").is_file():
        raise UserError(f"{arm_dir}: not trained; run phase 1 first (hsae run RECIPE --phase 1 --run-dir DIR)")
    metrics = read_json(arm_dir / "eval.json")["eval_result_metrics"]
    out = {row.key: value for row in ROWS if row.source and (value := find(metrics, row.source)) is not None}
    for k in KS:
        for prefix in ("sae", "llm"):
            value = find(metrics, f"{prefix}_top_{k}_test_accuracy")
            if value is not None:
                out[f"{prefix}_top_{k}"] = value
    trained = [r for r in RunDir(arm_dir).read_log() if "loss" in r]
    if trained:
        out.update(final_loss=trained[-1]["loss"], steps=int(trained[-1]["step"]))
        if "loss/mse" in trained[-1]:
            out["final_mse"] = trained[-1]["loss/mse"]
    return out


def group_state_summary(arm_dir: Path, n_top: int = 3) -> dict[str, Any]:
    """From the arm's last checkpoint: latents moved by reassignment and each group's top patterns."""
    found = ckpt.list_checkpoints(arm_dir / "checkpoints")
    if not found:
        return {}
    state = read_json(found[-1] / "state.json").get("callbacks", {})
    tensors = load_tensors(found[-1] / "callbacks.safetensors")
    out: dict[str, Any] = {"moves": {k.rsplit(".", 1)[0]: int(v) for k, v in tensors.items() if k.endswith(".moves")}}
    for name, extra in state.items():
        if "groups" in extra and "capacity" in extra:
            out.setdefault("patterns", {})[name] = [
                sorted(([k, c] for k, c, _ in group["entries"]), key=lambda kc: (-kc[1], kc[0]))[:n_top] for group in extra["groups"]
            ]
    return out


def summarize(per_seed: dict[str, dict[int, dict[str, float]]], seeds: list[int]) -> dict[str, dict[str, dict]]:
    """``{arm: {key: mean_std over seeds}}`` of every key any seed reported."""
    summary = {}
    for name, by_seed in per_seed.items():
        keys = sorted({k for numbers in by_seed.values() for k in numbers})
        summary[name] = {k: mean_std([by_seed[s].get(k) for s in seeds]) for k in keys}
    return summary


def trained_ok(by_seed: dict[int, dict[str, float]]) -> bool:
    """Every seed trained some steps and ended with a finite loss."""
    return all(n.get("steps", 0) > 0 and is_number(n.get("final_loss", math.nan)) for n in by_seed.values())


def write_report(config: ComparisonRecipe, run_dir: RunDir, seeds: list[int]) -> dict[str, Any]:
    """Collect every arm of every seed and write the report files."""
    per_seed = {name: {seed: arm_numbers(run_dir.root / f"seed-{seed}" / name) for seed in seeds}
                for name in config.arms}
    summary = summarize(per_seed, seeds)
    report = numbers_only({
        "experiment": EXPERIMENT, "seeds": seeds, "arms": summary, "per_seed": per_seed,
        "trained": {name: trained_ok(by_seed) for name, by_seed in per_seed.items()},
        "group_state": {name: group_state_summary(run_dir.root / f"seed-{seeds[0]}" / name) for name in config.arms},
    })
    write_json(run_dir.root / "report.json", report)
    write_text(run_dir.root / "report.md", markdown(config, report))
    plots(config, run_dir, seeds, summary)
    return report


def markdown(config: ComparisonRecipe, report: dict[str, Any]) -> str:
    """``report.md``: the seeds note, the arms, the metrics over seeds, per seed, and group patterns."""
    seeds = report["seeds"]
    lines = [f"# {EXPERIMENT}", "", seeds_note(seeds), ""]
    if config.description:
        lines += [f"Recipe `{config.name or 'unnamed'}`: {config.description}", ""]
    lines += ["Each seed draws its own synthetic world and trains every arm on the same batches. Probe accuracies are "
              "on balanced binary tasks \"is true feature p active\" (chance 0.5).", ""]
    lines += arms_table(config)
    lines += ["", *metrics_table(report["arms"])]
    lines += ["", "Every arm trained (steps > 0, finite final loss): " + ", ".join(
        f"{a}: {'yes' if ok else 'NO'}" for a, ok in report["trained"].items()), ""]
    lines += ["## Per seed", "", *per_seed_table(report["per_seed"])]
    lines += group_lines(report["group_state"], seeds[0])
    lines += ["", "Plots: `training_curves.png`, `sparse_probing.png`, `groups.png`. Per arm and seed: `eval.json` and "
              "`sparse_probing.json` (SAEBench format), `interpretability.md`.", ""]
    return "\n".join(lines)


def arms_table(config: ComparisonRecipe) -> list[str]:
    """Each arm's model, losses and callbacks."""
    rows = []
    for name, arm in config.arms.items():
        losses = ", ".join(f"{n} ({s.type})" for n, s in arm.losses.items())
        callbacks = ", ".join(f"{n} ({s.type})" for n, s in arm.callbacks.items()) or "-"
        rows.append([name, arm.model.type, losses, callbacks])
    return markdown_table(["arm", "model", "losses", "callbacks"], rows)


def metrics_table(arms: dict[str, dict[str, dict]]) -> list[str]:
    """One row per metric some arm reported, one column per arm."""
    rows = [[metric_label(row.label, row.unit, row.lower_is_better),
             *(format_stat(arms[a].get(row.key), row.kind) for a in arms)]
            for row in ROWS if any(row.key in arms[a] for a in arms)]
    return markdown_table(["metric", *arms], rows)


def per_seed_table(per_seed: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """The headline numbers of every arm and seed."""
    header = ["arm", "seed", *(ROW_BY_KEY[k].label for k in PER_SEED)]
    rows = [[arm, seed, *(format_number(n.get(k), ROW_BY_KEY[k].kind) for k in PER_SEED)]
            for arm, by_seed in per_seed.items() for seed, n in by_seed.items()]
    return markdown_table(header, rows)


def group_lines(group_state: dict[str, Any], seed: int) -> list[str]:
    """Reassignment moves and each group's most frequent activation patterns, for one seed."""
    lines = []
    for arm, state in group_state.items():
        for callback, moves in state.get("moves", {}).items():
            lines += ["", f"{arm} (seed {seed}): {callback} moved {moves} latents in total."]
        for callback, groups in state.get("patterns", {}).items():
            lines += ["", f"### {arm} (seed {seed}): most frequent activation patterns per group ({callback})", ""]
            rows = [[g, "; ".join(f"{{{k}}}: {c}" for k, c in top)] for g, top in enumerate(groups)]
            lines += markdown_table(["group", "patterns (latents: count)"], rows)
    return lines


def plots(config: ComparisonRecipe, run_dir: RunDir, seeds: list[int], summary: dict[str, Any]) -> None:
    """``training_curves.png``, ``sparse_probing.png`` and ``groups.png``."""
    plot_training_curves(list(config.arms), run_dir, seeds)
    plot_sparse_probing(summary, len(seeds), run_dir.root / "sparse_probing.png")
    plot_groups(summary, len(seeds), run_dir.root / "groups.png")


def plot_training_curves(arms: list[str], run_dir: RunDir, seeds: list[int]) -> Path:
    """Total loss and reconstruction mse per arm (mean over seeds, ± std band)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in arms:
        logs = [RunDir(run_dir.root / f"seed-{seed}" / name).read_log() for seed in seeds]
        plot_curve(axes[0], [curve(log, "loss") for log in logs], name)
        plot_curve(axes[1], [curve(log, "loss/mse") for log in logs], name)
    panels = ((axes[0], "total training loss", "training loss"), (axes[1], "reconstruction MSE", "reconstruction"))
    for ax, label, title in panels:
        ax.set(xlabel="training step", ylabel=metric_label(label, "log scale", True, wrap=True), yscale="log",
               title=title)
    axes[0].legend(fontsize="small")
    fig.suptitle(f"{EXPERIMENT}: training curves ({spread_caption(len(seeds))})")
    return save_figure(fig, run_dir.root / "training_curves.png")


def plot_sparse_probing(summary: dict[str, dict[str, dict]], n_seeds: int, path: Path) -> Path:
    """Probe accuracy against k per arm, with error bars over seeds, and the raw-activation probe."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, stats in summary.items():
        ks = [k for k in KS if f"sae_top_{k}" in stats]
        stds = [stats[f"sae_top_{k}"]["std"] for k in ks] if n_seeds > 1 else None
        ax.errorbar(ks, [stats[f"sae_top_{k}"]["mean"] for k in ks], yerr=stds, marker="o", capsize=3, label=name)
    shown = sorted({k for stats in summary.values() for k in KS if f"sae_top_{k}" in stats})
    raw = [s["probe_raw"]["mean"] for s in summary.values() if "probe_raw" in s and is_number(s["probe_raw"]["mean"])]
    if raw:
        ax.axhline(sum(raw) / len(raw), color="k", linestyle="--", label="raw activations")
    ax.set_xscale("log")
    ax.set_xticks(shown, [str(k) for k in shown])
    ax.minorticks_off()
    ax.set(xlabel="k (latents per probe)",
           ylabel=metric_label("test accuracy", "fraction correct, chance 0.5", False, wrap=True),
           title=f"sparse probing ({spread_caption(n_seeds)})")
    ax.legend(fontsize="small")
    fig.suptitle(EXPERIMENT)
    return save_figure(fig, path)


def plot_groups(summary: dict[str, dict[str, dict]], n_seeds: int, path: Path) -> Path:
    """One bar panel per group-structure metric, arms side by side."""
    plt = pyplot()
    arms = list(summary)
    fig, axes = plt.subplots(1, len(GROUP_PANELS), figsize=(4 * len(GROUP_PANELS), 3.8))
    for ax, key in zip(axes, GROUP_PANELS):
        row = ROW_BY_KEY[key]
        bar_panel(ax, arms, [summary[a].get(key) for a in arms], [f"C{i}" for i in range(len(arms))])
        ax.set_ylabel(metric_label(row.label.replace("mean ", ""), row.unit, row.lower_is_better, wrap=True))
        ax.set_title(row.label, fontsize="medium")
    fig.suptitle(f"{EXPERIMENT}: group structure ({spread_caption(n_seeds)})")
    return save_figure(fig, path)

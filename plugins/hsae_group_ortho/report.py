"""The comparison report: every arm's metrics over seeds, training health, plots, group patterns.

Writes ``report.json`` (all numbers, per seed and summarized), ``report.md`` (tables),
``training_curves.png``, ``sparse_probing.png`` and ``groups.png`` into the run directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hsae.engine import checkpoint as ckpt
from hsae.engine.rundir import RunDir
from hsae.errors import UserError
from hsae.io import load_tensors, read_json, write_json, write_text
from hsae_group_ortho.schema import ComparisonRecipe
from hsae.summary import format_mean_std as fmt_stat
from hsae.summary import mean_std as summarize

KS = (1, 2, 5, 10, 20, 50)

# (report key, metric key in eval.json, label, lower is better / None: neither)
ROWS = (
    ("probe_top_1", "sae_top_1_test_accuracy", "sparse probing acc, k=1", False),
    ("probe_top_5", "sae_top_5_test_accuracy", "sparse probing acc, k=5", False),
    ("probe_all", "sae_test_accuracy", "probe acc, all latents", False),
    ("probe_raw", "llm_test_accuracy", "probe acc, raw activations", False),
    ("cross_group_max_cos", "cross_group_max_cos", "mean max |cos| across groups", True),
    ("within_group_max_cos", "within_group_max_cos", "mean max |cos| within groups", None),
    ("max_cos", "max_cos", "mean max |cos| (any latent)", True),
    ("ari", "ari", "group-hierarchy ARI (model's groups)", False),
    ("ari_kmeans", "ari_kmeans", "group-hierarchy ARI (k-means of profiles)", False),
    ("moved_fraction", "moved_fraction", "latents moved by reassignment", None),
    ("explained_variance", "explained_variance", "explained variance", False),
    ("mcc", "mcc", "MCC vs true features", False),
    ("l0", "l0", "L0", None),
    ("final_loss", None, "final training loss", None),
    ("final_mse", None, "final training mse", None),
    ("steps", None, "training steps", None),
)


def find(metrics: dict[str, dict[str, float]], key: str) -> float | None:
    """``key`` from whichever metric table reported it."""
    return next((values[key] for values in metrics.values() if key in values), None)


def arm_numbers(arm_dir: Path) -> dict[str, float]:
    """One trained arm's numbers: its ``eval.json`` metrics and the last logged training record."""
    if not (arm_dir / "eval.json").is_file():
        raise UserError(f"{arm_dir}: not trained; run phase 1 first (hsae run RECIPE --phase 1 --run-dir DIR)")
    metrics = read_json(arm_dir / "eval.json")["eval_result_metrics"]
    out = {key: value for key, source, _, _ in ROWS if source and (value := find(metrics, source)) is not None}
    for k in KS:
        for prefix in ("sae", "llm"):
            value = find(metrics, f"{prefix}_top_{k}_test_accuracy")
            if value is not None:
                out[f"{prefix}_top_{k}"] = value
    trained = [r for r in RunDir(arm_dir).read_log() if "loss" in r]
    if trained:
        out.update(final_loss=trained[-1]["loss"], steps=float(trained[-1]["step"]))
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


def write_report(config: ComparisonRecipe, run_dir: RunDir, seeds: list[int]) -> dict[str, Any]:
    """Collect every arm of every seed and write the report files."""
    per_seed = {name: {seed: arm_numbers(run_dir.root / f"seed-{seed}" / name) for seed in seeds} for name in config.arms}
    summary = {}
    for name, by_seed in per_seed.items():
        keys = sorted({k for numbers in by_seed.values() for k in numbers})
        summary[name] = {k: summarize([by_seed[s].get(k) for s in seeds]) for k in keys}
    healthy = {name: all(n.get("steps", 0) > 0 and math.isfinite(n.get("final_loss", math.nan)) for n in by_seed.values())
               for name, by_seed in per_seed.items()}
    groups = {name: group_state_summary(run_dir.root / f"seed-{seeds[0]}" / name) for name in config.arms}
    report = {"seeds": seeds, "arms": summary, "per_seed": {a: {str(s): v for s, v in d.items()} for a, d in per_seed.items()},
              "trained": healthy, "group_state": groups}
    write_json(run_dir.root / "report.json", report)
    write_text(run_dir.root / "report.md", markdown(config, report))
    plots(config, run_dir, seeds, summary)
    return report


def markdown(config: ComparisonRecipe, report: dict[str, Any]) -> str:
    arms, seeds = list(report["arms"]), report["seeds"]
    lines = [f"# {config.name or 'Group-orthogonal SAE vs baselines'} ({len(seeds)} seed(s): {seeds})", ""]
    if config.description:
        lines += [config.description, ""]
    lines += ["Means ± standard deviation over seeds; each seed draws its own synthetic world and trains every arm on "
              "the same batches. Probe accuracies are on balanced binary tasks \"is true feature p active\" (chance 0.5).", ""]
    lines += ["| arm | model | losses | callbacks |", "|---|---|---|---|"]
    for name, arm in config.arms.items():
        losses = ", ".join(f"{n} ({s.type})" for n, s in arm.losses.items())
        callbacks = ", ".join(f"{n} ({s.type})" for n, s in arm.callbacks.items()) or "-"
        lines.append(f"| {name} | {arm.model.type} | {losses} | {callbacks} |")
    lines += ["", "| metric | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for key, _, label, lower in ROWS:
        if not any(key in report["arms"][a] for a in arms):
            continue
        hint = "" if lower is None else (" (lower is better)" if lower else " (higher is better)")
        lines.append(f"| {label}{hint} | " + " | ".join(fmt_stat(report["arms"][a].get(key, {})) for a in arms) + " |")
    lines += ["", "Every arm trained (steps > 0, finite final loss): " + ", ".join(
        f"{a}: {'yes' if ok else 'NO'}" for a, ok in report["trained"].items()), ""]
    lines += ["## Per seed", "",
              "| arm | seed | probe k=1 | probe k=5 | cross-group max cos | ARI (groups) | ARI (k-means) | final loss |",
              "|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        for seed, n in report["per_seed"][arm].items():
            cells = [n.get(k) for k in ("probe_top_1", "probe_top_5", "cross_group_max_cos", "ari", "ari_kmeans", "final_loss")]
            lines.append(f"| {arm} | {seed} | " + " | ".join("n/a" if v is None else f"{v:.4g}" for v in cells) + " |")
    lines += _group_lines(report["group_state"], seeds[0])
    lines += ["", "Plots: `training_curves.png`, `sparse_probing.png`, `groups.png`. Per arm and seed: `eval.json` and "
              "`sparse_probing.json` (SAEBench format), `interpretability.md`.", ""]
    return "\n".join(lines)


def _group_lines(group_state: dict[str, Any], seed: int) -> list[str]:
    lines = []
    for arm, state in group_state.items():
        for callback, moves in state.get("moves", {}).items():
            lines += ["", f"{arm} (seed {seed}): {callback} moved {moves} latents in total."]
        for callback, groups in state.get("patterns", {}).items():
            lines += ["", f"### {arm} (seed {seed}): most frequent activation patterns per group ({callback})", "",
                      "| group | patterns (latents: count) |", "|---|---|"]
            for g, top in enumerate(groups):
                lines.append(f"| {g} | " + "; ".join(f"{{{k}}}: {c}" for k, c in top) + " |")
    return lines


def plots(config: ComparisonRecipe, run_dir: RunDir, seeds: list[int], summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(config.arms)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in arms:
        records = [r for r in RunDir(run_dir.root / f"seed-{seeds[0]}" / name).read_log() if "loss" in r]
        steps = [r["step"] for r in records]
        axes[0].plot(steps, [r["loss"] for r in records], label=name)
        axes[1].plot(steps, [r.get("loss/mse", math.nan) for r in records], label=name)
    axes[0].set(xlabel="step", ylabel="total loss", yscale="log", title=f"training loss (seed {seeds[0]})")
    axes[1].set(xlabel="step", ylabel="mse", yscale="log", title="reconstruction")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(run_dir.root / "training_curves.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in arms:
        ks = [k for k in KS if f"sae_top_{k}" in summary[name]]
        ax.errorbar(ks, [summary[name][f"sae_top_{k}"]["mean"] for k in ks],
                    yerr=[summary[name][f"sae_top_{k}"]["std"] for k in ks], marker="o", capsize=3, label=name)
    raw = [summary[a]["probe_raw"]["mean"] for a in arms if "probe_raw" in summary[a]]
    if raw:
        ax.axhline(sum(raw) / len(raw), color="k", linestyle="--", label="raw activations")
    ax.set(xscale="log", xlabel="k (latents per probe)", ylabel="test accuracy", title="sparse probing")
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir.root / "sparse_probing.png", dpi=120)
    plt.close(fig)

    keys = [("cross_group_max_cos", "max |cos| across groups"), ("within_group_max_cos", "max |cos| within groups"),
            ("ari", "ARI (model's groups)"), ("ari_kmeans", "ARI (k-means)")]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5))
    for ax, (key, label) in zip(axes, keys):
        means = [summary[a].get(key, {}).get("mean", math.nan) for a in arms]
        stds = [summary[a].get(key, {}).get("std", 0.0) for a in arms]
        ax.bar(range(len(arms)), means, yerr=stds, color=[f"C{i}" for i in range(len(arms))])
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(run_dir.root / "groups.png", dpi=120)
    plt.close(fig)

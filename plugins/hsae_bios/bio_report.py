"""The ``bio-slots`` report: ``report.json``, ``report.md`` and three PNGs in the run directory.

* ``per_layer.png``: slot accuracy of the slot SAE and the three baselines, EV against the
  one-hot ceiling, and the causal tests, against the layer;
* ``confusion.png``: the slot SAE's 6x6 confusion on held-out templates at the best layer;
* ``ablation.png``: answer accuracy per rule with each slot ablated, at the best layer.

Spreads are over the slot SAE's (and TopK baseline's) seeds; the probes are deterministic.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hsae.io import read_json, write_json, write_text
from hsae.report import format_number, is_number, format_stat, markdown_table, numbers_only, pyplot, save_figure, seeds_note
from hsae.summary import mean_std
from hsae_bios.attributes import ATTRIBUTES
from hsae_bios.layer_eval import SCORED_SETS
from hsae_bios.lm_phase import ACCURACY_FILE

EXPERIMENT = "Biography QA with a slot-aligned SAE (seed 003)"
SET_NAMES = {"train": "QA-train persons, training template", "train_template": "training template (held-out rows)",
             "heldout_templates": "held-out templates", "test_persons": "QA-test persons"}
PHYSICS_31 = "Physics of LMs 3.1 (QA-test persons): about 10% with 1 biography, about 96% with 5 permuted + full names."


def _percent(fraction: float | None) -> str:
    text = format_number(100 * fraction if fraction is not None else None, "percent")
    return text if text.endswith("%") or text == format_number(None) else text + "%"


def _off_diagonal(matrix: np.ndarray) -> np.ndarray:
    return matrix[~np.eye(len(matrix), dtype=bool)]


def summarize_layer(result: dict) -> dict:
    """Means and spreads over seeds of one layer's scores."""
    seeds = [str(s) for s in result["seeds"]]
    slot, topk, causal = result["slot_sae"], result["topk"], result["causal"]
    out = {"slot_sae": {}, "topk": {}, "slot_value_accuracy": {}, "ev": {}, "probes": result["probes"]}
    for name in SCORED_SETS:
        out["slot_sae"][name] = mean_std([slot[s][name]["slot_accuracy"] for s in seeds])
        out["topk"][name] = mean_std([topk[s][name]["slot_accuracy"] for s in seeds])
        out["slot_value_accuracy"][name] = mean_std([slot[s][name].get("value_accuracy") for s in seeds])
        out["ev"][name] = {"slot_sae": mean_std([slot[s][name]["explained_variance"] for s in seeds]),
                           "topk": mean_std([topk[s][name]["explained_variance"] for s in seeds]),
                           "ceiling": result["probes"]["ev_ceiling"][name]}
    ablation = [np.array(causal[s]["ablation"], dtype=float) for s in seeds]
    out["causal"] = {
        "rows": causal[seeds[0]]["rows"],
        "identity_unchanged": all(causal[s]["identity_unchanged"] for s in seeds),
        "spliced_accuracy": mean_std([causal[s]["spliced_accuracy"] for s in seeds]),
        "ablation_diagonal": mean_std([float(np.nanmean(np.diag(a))) for a in ablation]),
        "ablation_off_diagonal": mean_std([float(np.nanmean(_off_diagonal(a))) for a in ablation]),
        "ablation_mean": np.nanmean(ablation, axis=0).tolist(),
        "swap": {alpha: mean_std([float(np.nanmean(_off_diagonal(np.array(causal[s]["swap"][alpha], dtype=float))))
                                  for s in seeds]) for alpha in causal[seeds[0]]["swap"]},
    }
    out["confusion_heldout_seed0"] = slot[seeds[0]]["heldout_templates"]["confusion"]
    return out


def write_report(config, root: Path, results: list[dict]) -> dict:  # noqa: ANN001 - BioSlotsRecipe
    """Summaries of every layer, the LM table and the plots; returns the report."""
    per_layer = {r["layer"]: summarize_layer(r) for r in results}
    best = max(per_layer, key=lambda layer: per_layer[layer]["slot_sae"]["heldout_templates"]["mean"])
    report = numbers_only({"experiment": EXPERIMENT, "seeds": results[0]["seeds"], "layers": list(per_layer),
                           "best_layer": best, "lm": read_json(root / ACCURACY_FILE),
                           "per_layer": {str(k): v for k, v in per_layer.items()}})
    write_json(root / "report.json", report)
    write_text(root / "report.md", markdown(report))
    plot_layers(report, root / "per_layer.png")
    plot_matrix(np.array(per_layer[best]["confusion_heldout_seed0"], dtype=float), "predicted slot", "true rule",
                f"slot assignment at layer {best} (held-out templates, seed {results[0]['seeds'][0]})",
                root / "confusion.png", counts=True)
    plot_matrix(np.array(per_layer[best]["causal"]["ablation_mean"], dtype=float), "rule asked", "slot ablated",
                f"answer accuracy with one slot ablated, layer {best} (mean over seeds)", root / "ablation.png")
    return report


def lm_table(lm: dict) -> list[str]:
    rows = []
    for arm in ("main", "single"):
        if arm not in lm:
            continue
        bios = lm[arm].get("biographies") or {}
        label = (f"{bios.get('per_person', '?')} biograph{'y' if bios.get('per_person') == 1 else 'ies'}"
                 + (", permuted" if bios.get("permute") else "") + (", full names" if bios.get("full_name") else ""))
        rows.append([f"{arm} ({label})", *(_percent(lm[arm]["accuracy"][k]) for k in
                                           ("train", "heldout_templates", "test_persons"))])
    return markdown_table(["LM trained on", "QA-train persons, training template", "held-out templates",
                           "QA-test persons"], rows)


def markdown(report: dict) -> str:
    layers = report["per_layer"]
    lines = [f"# {EXPERIMENT}", "", seeds_note(report["seeds"]), "",
             "## Does the LM know the facts? (exact match, greedy decoding)", "", *lm_table(report["lm"]), "",
             PHYSICS_31, ""]
    for name in SCORED_SETS:
        lines += [f"## Slot accuracy: {SET_NAMES[name]}", "",
                  *markdown_table(["layer", "slot SAE", "logistic probe", "nearest class mean", "TopK best latent"],
                                  [[layer, format_stat(v["slot_sae"][name], "fraction"),
                                    format_number(v["probes"]["logistic"][name], "fraction"),
                                    format_number(v["probes"]["nearest_class_mean"][name], "fraction"),
                                    format_stat(v["topk"][name], "fraction")] for layer, v in layers.items()]), ""]
    lines += ["The alignment loss alone is a multinomial logistic probe: a slot SAE is only worth its name where it "
              "matches the probe *and* the causal tests below show its slots act on the answer.", "",
              "## Reconstruction (held-out templates)", "",
              *markdown_table(["layer", "EV slot SAE", "EV ceiling of a one-hot code", "EV TopK SAE"],
                              [[layer, format_stat(v["ev"]["heldout_templates"]["slot_sae"], "fraction"),
                                format_number(v["ev"]["heldout_templates"]["ceiling"], "fraction"),
                                format_stat(v["ev"]["heldout_templates"]["topk"], "fraction")]
                               for layer, v in layers.items()]), "",
              "## Causal tests at the capture site (clean-correct QA-train questions)", ""]
    alphas = list(next(iter(layers.values()))["causal"]["swap"])
    lines += markdown_table(
        ["layer", "rows", "identity splice unchanged", "accuracy, SAE spliced", "accuracy, own slot ablated",
         "accuracy, other slot ablated", *(f"swap success, alpha {a}" for a in alphas)],
        [[layer, v["causal"]["rows"], "yes" if v["causal"]["identity_unchanged"] else "NO",
          format_stat(v["causal"]["spliced_accuracy"], "fraction"),
          format_stat(v["causal"]["ablation_diagonal"], "fraction"),
          format_stat(v["causal"]["ablation_off_diagonal"], "fraction"),
          *(format_stat(v["causal"]["swap"][a], "fraction") for a in alphas)] for layer, v in layers.items()])
    lines += ["", f"Best layer by held-out-template slot accuracy: {report['best_layer']}. "
              "Plots: `per_layer.png`, `confusion.png`, `ablation.png`."]
    return "\n".join(lines) + "\n"


def plot_layers(report: dict, path: Path) -> Path:
    plt = pyplot()
    layers = [int(k) for k in report["per_layer"]]
    values = list(report["per_layer"].values())
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))

    def line(ax, stats, label, style="-o"):  # noqa: ANN001 - stats: {"mean", "std"} or plain numbers (None: NaN)
        number = lambda v: float(v) if is_number(v) else math.nan  # noqa: E731
        means = [number(s.get("mean") if isinstance(s, dict) else s) for s in stats]
        stds = [number(s.get("std") if isinstance(s, dict) else 0) for s in stats]
        ax.errorbar(layers, means, yerr=[0 if not math.isfinite(x) else x for x in stds], fmt=style, capsize=3,
                    label=label)

    ax = axes[0]
    line(ax, [v["slot_sae"]["heldout_templates"] for v in values], "slot SAE")
    line(ax, [v["probes"]["logistic"]["heldout_templates"] for v in values], "logistic probe", "--s")
    line(ax, [v["probes"]["nearest_class_mean"]["heldout_templates"] for v in values], "nearest class mean", "--^")
    line(ax, [v["topk"]["heldout_templates"] for v in values], "TopK best latent", ":d")
    ax.set(title="slot accuracy, held-out templates", xlabel="layer (resid:L)", ylabel="accuracy", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    ax = axes[1]
    line(ax, [v["ev"]["heldout_templates"]["slot_sae"] for v in values], "slot SAE")
    line(ax, [v["ev"]["heldout_templates"]["ceiling"] for v in values], "one-hot ceiling", "--")
    line(ax, [v["ev"]["heldout_templates"]["topk"] for v in values], "TopK SAE", ":d")
    ax.set(title="explained variance, held-out templates", xlabel="layer (resid:L)", ylabel="EV")
    ax.legend(fontsize=8)
    ax = axes[2]
    line(ax, [v["causal"]["ablation_diagonal"] for v in values], "accuracy, own slot ablated")
    line(ax, [v["causal"]["ablation_off_diagonal"] for v in values], "accuracy, other slot ablated", "--s")
    for alpha in values[0]["causal"]["swap"]:
        line(ax, [v["causal"]["swap"][alpha] for v in values], f"swap success, alpha {alpha}", ":^")
    ax.set(title="causal tests", xlabel="layer (resid:L)", ylabel="fraction of questions", ylim=(-0.05, 1.05))
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(layers)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_matrix(matrix: np.ndarray, xlabel: str, ylabel: str, title: str, path: Path, counts: bool = False) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    shown = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) if counts else matrix
    image = ax.imshow(shown, vmin=0, vmax=1, cmap="viridis")
    names = [a.replace("_", " ") for a in ATTRIBUTES]
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            text = f"{int(matrix[i, j])}" if counts else format_number(matrix[i, j], "fraction")
            ax.text(j, i, text, ha="center", va="center", color="white" if shown[i, j] < 0.5 else "black", fontsize=8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path)


def headline(report: dict) -> list[str]:
    """What ``hsae run`` prints at the end."""
    best = str(report["best_layer"])
    layer = report["per_layer"][best]
    lm = report["lm"]["main"]["accuracy"]
    lines = [f"{EXPERIMENT}",
             f"LM exact match: training template {_percent(lm['train'])}, held-out templates "
             f"{_percent(lm['heldout_templates'])}, QA-test persons "
             f"{_percent(lm['test_persons'])}"]
    if "single" in report["lm"]:
        lines.append(f"  with 1 biography per person: QA-test persons "
                     f"{_percent(report['lm']['single']['accuracy']['test_persons'])}")
    lines += [f"layer {best}: slot accuracy {format_stat(layer['slot_sae']['heldout_templates'], 'fraction')} "
              f"(logistic probe {format_number(layer['probes']['logistic']['heldout_templates'], 'fraction')}), "
              f"own-slot ablation accuracy {format_stat(layer['causal']['ablation_diagonal'], 'fraction')}"]
    return lines

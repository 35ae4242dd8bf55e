"""Phase 1 on a real model: Park et al.'s geometry from the unembedding and WordNet token sets.

Samples are unembedding rows: ``x = gamma[y]`` for every token ``y`` of a concept, plus
``random_tokens`` other vocabulary tokens that carry no concept (negatives for the
projection test of broad categories). Token ``y`` is labelled with every concept whose
token set holds it. The whitening is ``Cov(gamma)^{-1/2}`` over the *whole* vocabulary,
exactly (``hsae_teacher.geometry.fit_whitening("matrix", matrix=gamma)``), and the teacher
is estimated with hsae_teacher's LDA estimator on a seeded 70/30 split of the tokens.

Mapping to the residual stream (chosen explicitly): the teacher's causal-space vectors are
mapped back with ``back_map = "dual"``, ``Cov^{-1/2} v``: representations transform with
``Cov^{1/2}`` when ``gamma`` is whitened with ``Cov^{-1/2}``, so ``lambda^T gamma`` is
preserved (see ``hsae_teacher.geometry``). Those are the vectors saved for initialising an
H-SAE on residual-stream activations and for interventions.

Controls, each re-estimated on the same split: ``shuffled_unembedding`` (the rows of
``gamma`` permuted over the whole vocabulary, so each token gets another token's vector;
the covariance and hence the whitening are unchanged), ``shuffled_labels`` (labels
permuted among the sampled tokens), ``random_parent`` and ``euclidean`` (no whitening).

The markdown also gives the hierarchical-orthogonality statistics as distributions
(quantiles of ``cos(ell_c - ell_p, ell_p)`` and ``cos(ell_c - ell_p, ell_p - ell_gp)`` per
column) and Park et al.'s worked examples (``hsae_lm.examples``).
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import torch

from hsae.report import markdown_table
from hsae_lm.concepts import ConceptHierarchy
from hsae_teacher.estimator import TeacherConfig
from hsae_teacher.geometry import fit_whitening
from hsae_teacher.validation import ValidationConfig, validate_teacher


@attrs.frozen
class GeometryConfig:
    """Options of phase 1 (see the module docstring)."""

    unembedding: str = attrs.field(default="auto", validator=attrs.validators.in_(("auto", "lm_head", "input_embedding")))
    random_tokens: int = 2000
    train_fraction: float = 0.7
    min_samples: int = 20
    max_samples_per_concept: int | None = 2000
    controls: bool = True
    seed: int = 0


def token_samples(hierarchy: ConceptHierarchy, vocab_size: int, n_random: int, exclude: list[int],
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(token ids, labels (n, C) bool)``: every concept token plus ``n_random`` others."""
    concept_tokens = hierarchy.token_ids()
    others = np.setdiff1d(np.arange(vocab_size), np.union1d(concept_tokens, exclude))
    rng = np.random.default_rng(seed)
    extra = np.sort(rng.choice(others, size=min(n_random, others.size), replace=False))
    tokens = np.concatenate([concept_tokens, extra])
    return tokens, hierarchy.labels(tokens)


def lm_geometry(gamma: torch.Tensor, hierarchy: ConceptHierarchy, config: GeometryConfig = GeometryConfig(),
                exclude_tokens: list[int] = ()) -> tuple[dict, object]:
    """The phase-1 report and the whitening; the report's teacher is re-estimated by the caller."""
    tokens, labels = token_samples(hierarchy, gamma.shape[0], config.random_tokens, list(exclude_tokens), config.seed)
    whitening = fit_whitening("matrix", matrix=gamma)
    validation = ValidationConfig(train_frac=config.train_fraction, seed=config.seed, controls=config.controls,
                                  teacher=teacher_config(config))
    x = gamma[torch.from_numpy(tokens)].double().numpy()
    report = validate_teacher(x, labels, hierarchy.parent_of, whitening, config=validation)
    if config.controls:
        perm = torch.randperm(gamma.shape[0], generator=torch.Generator().manual_seed(config.seed + 1))
        shuffled = gamma[perm[torch.from_numpy(tokens)]].double().numpy()
        control = validate_teacher(shuffled, labels, hierarchy.parent_of, whitening,
                                   config=attrs.evolve(validation, controls=False))
        report["controls"]["shuffled_unembedding"] = {k: control[k] for k in ("projection", "angles", "grandparent")}
    report["examples"] = examples(gamma, hierarchy, tokens, labels, whitening, config)
    report["config"].update(n_tokens=int(len(tokens)), n_random_tokens=int(len(tokens) - len(hierarchy.token_ids())),
                            vocab_size=int(gamma.shape[0]), d_model=int(gamma.shape[1]))
    return report, whitening


def examples(gamma: torch.Tensor, hierarchy: ConceptHierarchy, tokens: np.ndarray, labels: np.ndarray, whitening,  # noqa: ANN001
             config: GeometryConfig) -> dict:
    """Park et al.'s example cosines and logit differences, for the model and its controls."""
    from hsae_lm.examples import example_columns, example_report

    columns, test = example_columns(gamma, hierarchy, tokens, labels, whitening, teacher_config(config), config.seed,
                                    config.train_fraction)
    return example_report(columns, hierarchy, test, config.seed)


def teacher_config(config: GeometryConfig) -> TeacherConfig:
    return TeacherConfig(min_samples=config.min_samples, max_samples=config.max_samples_per_concept,
                         back_map="dual", seed=config.seed)


# -- the summary and its markdown ---------------------------------------------------------------------

COLUMNS = (("whitened", None), ("shuffled unembedding", "shuffled_unembedding"),
           ("shuffled labels", "shuffled_labels"), ("random parent", "random_parent"), ("euclidean", "euclidean"))
ROWS = (
    ("projection AUC (mean)", "projection", "auc_mean", ".3f"),
    ("projection AUC (parents)", "projection", "auc_parents_mean", ".3f"),
    ("projection AUC (children)", "projection", "auc_children_mean", ".3f"),
    ("projection test / random", "projection", ("proj_test_mean", "proj_random_mean"), ".2f"),
    ("angle(ell_p, delta_c|p) median (deg)", "angles", "median_deg", ".1f"),
    ("angle IQR (deg)", "angles", "iqr_deg", ".1f"),
    ("fraction of angles >= 80 deg", "angles", "frac_above_80", ".2f"),
    ("cos(delta_c|p, ell_p - ell_gp) median", "grandparent", "median_cos", ".3f"),
)


def summary(report: dict) -> dict:
    """The headline numbers per column: AUC, median angle and the controls."""
    out = {}
    for label, key in COLUMNS:
        section = report if key is None else (report.get("controls") or {}).get(key)
        if section:
            out[key or "whitened"] = {
                "auc_mean": _get(section, "projection", "auc_mean"),
                "median_angle_deg": _get(section, "angles", "median_deg"),
            }
    return out


def render_markdown(report: dict, title: str = "") -> str:
    """A table of the teacher and every control, side by side."""
    present = [(label, report if key is None else (report.get("controls") or {}).get(key)) for label, key in COLUMNS]
    present = [(label, section) for label, section in present if section]
    lines = [f"# {title}", ""] if title else []
    rows = []
    for label, part, key, spec in ROWS:
        cells = []
        for _, section in present:
            keys = key if isinstance(key, tuple) else (key,)
            values = [_get(section, part, k) for k in keys]
            cells.append(" / ".join(_fmt(v, spec) for v in values))
        if any(c.strip("- /") for c in cells):
            rows.append([label, *cells])
    lines += markdown_table(["metric", *(label for label, _ in present)], rows)
    c, n = report["config"], report["counts"]
    lines += ["", "## Hierarchical orthogonality as distributions", "",
              "Quantiles (10%, 25%, 50%, 75%, 90%) over children; 0 is orthogonal.", ""]
    lines += distribution_table(present)
    if report.get("examples"):
        from hsae_lm.examples import render_examples

        lines += ["", *render_examples(report["examples"])]
    lines += ["", f"{c['n_concepts']} concepts ({n['n_parents']} parents, {n['n_children']} children) over "
              f"{c['n_tokens']} tokens ({c['n_random_tokens']} random), d = {c['d_model']}, vocabulary {c['vocab_size']}; "
              f"split {c['n_train']} train / {c['n_test']} test tokens, seed {c['seed']}."]
    return "\n".join(lines) + "\n"


QUANTILES = (10, 25, 50, 75, 90)


def distribution_table(present: list[tuple[str, dict]]) -> list[str]:
    """Quantiles of cos(delta, ell_p) and cos(delta, ell_p - ell_gp), one row per column that has them."""
    rows = []
    for label, section in present:
        angles = np.asarray((section.get("angles") or {}).get("all_deg") or [], dtype=float)
        grand = np.asarray((section.get("grandparent") or {}).get("all_cos") or [], dtype=float)
        for name, values in (("cos(delta, ell_p)", np.cos(np.radians(angles))), ("cos(delta, ell_p - ell_gp)", grand)):
            values = values[np.isfinite(values)]
            if values.size:
                rows.append([label, name, str(values.size), *(f"{q:.3f}" for q in np.percentile(values, QUANTILES))])
    return markdown_table(["column", "statistic", "n", *(f"q{q}" for q in QUANTILES)], rows)


def _get(section: dict, part: str, key: str):
    inner = section.get(part) or {}
    return inner.get(key)


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

"""Park et al.'s worked examples on a real unembedding, against controls.

Park, Choe, Jiang, Veitch (2024) report, on Gemma: the cosine of the mammal and reptile
vectors under animal (0.198, vs 0.031 with shuffled unembedding rows), and the logit
difference along ``ell_animal - ell_plant`` (5.13 ± 1.17 on animal-vs-plant token pairs, the
"parent pairs", vs -0.06 ± 1.22 on pairs of two animal subcategories, the "child pairs").
Both are measured here in the causal (whitened) space and for each control:

* ``child_cos``: ``cos(ell_a, ell_b)`` and ``cos(ell_a - ell_p, ell_b - ell_p)`` for two
  children ``a``, ``b`` of ``p`` (both forms, as the paper's wording allows either);
* ``logit_difference``: ``(g(y1) - g(y2))^T (ell_p1 - ell_p2)`` over seeded random pairs of
  held-out tokens, ``y1`` of ``p1`` and ``y2`` of ``p2`` (parent pairs), and ``y1``, ``y2`` of two
  children of ``p1`` (child pairs); mean ± std.

The vectors are estimated on the train tokens of the 70/30 split, pairs are drawn from the
test tokens. A concept below the analysis threshold is reported as absent.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from hsae_lm.concepts import ConceptHierarchy, split_tokens

PAIRS = (("animal.n.01", "mammal.n.01", "reptile.n.01"), ("animal.n.01", "mammal.n.01", "bird.n.01"),
         ("animal.n.01", "mammal.n.01", "fish.n.01"))
LOGIT = ("animal.n.01", "plant.n.02", ("mammal.n.01", "bird.n.01"))
N_PAIRS = 2000


@attrs.frozen
class ExampleGeometry:
    """What one column (the model or a control) needs: whitened token rows and the teacher estimated on them."""

    g: np.ndarray  # (n_tokens, d) whitened rows of ``tokens``
    tokens: np.ndarray  # token ids of the rows
    teacher: object  # hsae_teacher.estimator.Teacher


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else math.nan


def _vector(geo: ExampleGeometry, index: dict[str, int], name: str) -> np.ndarray | None:
    try:
        return geo.teacher.vector(index[name])
    except (KeyError, IndexError):
        return None


def child_cosines(geo: ExampleGeometry, index: dict[str, int], parent: str, a: str, b: str) -> dict:
    """Both cosines of children ``a``, ``b`` of ``parent`` (None where a concept is absent)."""
    p, va, vb = (_vector(geo, index, n) for n in (parent, a, b))
    if p is None or va is None or vb is None:
        return {"absent": [n for n, v in ((parent, p), (a, va), (b, vb)) if v is None]}
    return {"cos_children": _cos(va, vb), "cos_child_deltas": _cos(va - p, vb - p)}


def _pair_differences(geo: ExampleGeometry, first: np.ndarray, second: np.ndarray, v: np.ndarray,
                      rng: np.random.Generator) -> dict:
    rows = {int(t): i for i, t in enumerate(geo.tokens)}
    first = np.array([rows[int(t)] for t in first if int(t) in rows])
    second = np.array([rows[int(t)] for t in second if int(t) in rows])
    if first.size == 0 or second.size == 0:
        return {"n": 0}
    i, j = rng.choice(first, N_PAIRS), rng.choice(second, N_PAIRS)
    diff = geo.g[i] @ v - geo.g[j] @ v
    return {"mean": float(diff.mean()), "std": float(diff.std(ddof=1)), "n": N_PAIRS}


def logit_differences(geo: ExampleGeometry, hierarchy: ConceptHierarchy, index: dict[str, int],
                      test_tokens: np.ndarray, seed: int) -> dict:
    """Logit difference along ``ell_p1 - ell_p2`` on parent pairs and on child pairs (held-out tokens)."""
    p1, p2, (c1, c2) = LOGIT
    vectors = [_vector(geo, index, n) for n in (p1, p2)]
    missing = [n for n in (p1, p2, c1, c2) if n not in index] + [n for n, v in zip((p1, p2), vectors) if v is None]
    if missing:
        return {"absent": sorted(set(missing))}
    v = vectors[0] - vectors[1]
    rng = np.random.default_rng(seed)

    def held_out(name: str) -> np.ndarray:
        return np.intersect1d(np.asarray(hierarchy.tokens[index[name]]), test_tokens)

    only1, only2 = np.setdiff1d(held_out(p1), held_out(p2)), np.setdiff1d(held_out(p2), held_out(p1))
    a, b = np.setdiff1d(held_out(c1), held_out(c2)), np.setdiff1d(held_out(c2), held_out(c1))
    return {"parent_pairs": _pair_differences(geo, only1, only2, v, rng),
            "child_pairs": _pair_differences(geo, a, b, v, rng)}


def example_report(columns: dict[str, ExampleGeometry], hierarchy: ConceptHierarchy, test_tokens: np.ndarray,
                   seed: int) -> dict:
    """``{column: {"pairs": {...}, "logit_difference": {...}}}`` for the model and each control."""
    index = {name: i for i, name in enumerate(hierarchy.names)}
    out = {}
    for column, geo in columns.items():
        out[column] = {
            "pairs": {f"{a} vs {b} under {p}": child_cosines(geo, index, p, a, b) for p, a, b in PAIRS},
            "logit_difference": logit_differences(geo, hierarchy, index, test_tokens, seed),
        }
    return out


def example_columns(gamma, hierarchy: ConceptHierarchy, tokens: np.ndarray, labels: np.ndarray,  # noqa: ANN001
                    whitening, teacher_config, seed: int, train_frac: float) -> tuple[dict[str, ExampleGeometry], np.ndarray]:
    """The model's, the shuffled unembedding's and the euclidean column, estimated on the train tokens."""
    import torch

    from hsae_teacher.estimator import estimate_teacher
    from hsae_teacher.geometry import Whitening

    train, test = split_tokens(tokens, train_frac, seed)
    is_train = np.isin(tokens, train)
    perm = torch.randperm(gamma.shape[0], generator=torch.Generator().manual_seed(seed + 1))
    sources = {"whitened": (gamma[torch.from_numpy(tokens)], whitening),
               "shuffled unembedding": (gamma[perm[torch.from_numpy(tokens)]], whitening),
               "euclidean": (gamma[torch.from_numpy(tokens)], Whitening.euclidean(gamma.shape[1],
                                                                               mean=gamma.double().mean(0).numpy()))}
    columns = {}
    for name, (rows, metric) in sources.items():
        x = rows.double().numpy()
        teacher = estimate_teacher(x[is_train], labels[is_train], hierarchy.parent_of, metric, teacher_config)
        columns[name] = ExampleGeometry(np.asarray(metric.transform(x)), tokens, teacher)
    return columns, test


def render_examples(examples: dict) -> list[str]:
    """Markdown: the example cosines and logit differences per column, beside Park et al.'s Gemma numbers."""
    from hsae.report import markdown_table

    columns = list(examples)
    rows = []
    first = examples[columns[0]]
    for pair in first["pairs"]:
        for key, label in (("cos_children", "cos(ell_a, ell_b)"), ("cos_child_deltas", "cos(ell_a - ell_p, ell_b - ell_p)")):
            rows.append([f"{pair}: {label}", *(_cell(examples[c]["pairs"][pair], key) for c in columns)])
    p1, p2, (c1, c2) = LOGIT
    for key, label in (("parent_pairs", f"{p1} vs {p2} tokens"), ("child_pairs", f"{c1} vs {c2} tokens")):
        rows.append([f"logit diff along ell_{p1} - ell_{p2}: {label}",
                     *(_logit_cell(examples[c]["logit_difference"], key) for c in columns)])
    lines = ["## Park et al.'s examples", "",
             "Park et al. on Gemma-2B: reptile-mammal cosine 0.198 (shuffled unembedding 0.031); logit "
             "difference along ell_animal - ell_plant 5.13 ± 1.17 on parent pairs, -0.06 ± 1.22 on child pairs.", ""]
    return lines + markdown_table(["example", *columns], rows)


def _cell(section: dict, key: str) -> str:
    if "absent" in section:
        return "absent: " + ", ".join(section["absent"])
    value = section.get(key)
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def _logit_cell(section: dict, key: str) -> str:
    if "absent" in section:
        return "absent: " + ", ".join(section["absent"])
    part = section.get(key, {})
    return "-" if not part.get("n") else f"{part['mean']:.2f} ± {part['std']:.2f}"

"""Validation report for a geometric teacher: projection test, hierarchical orthogonality, controls.

Two entry points build the same JSON-able dict (floats, ints, strings, small lists; nan
becomes ``None``):

* :func:`validation_report`: from a train/test split and teachers already estimated on the
  train part, one per metric (what the pipeline does);
* :func:`validate_teacher`: from all samples and one whitening; it makes a seeded 70/30 split,
  estimates the teachers and calls :func:`validation_report`.

Sections, for the primary teacher and again for each control:

* ``projection``: the projection test of Park et al. Each sample is scored by
  ``g . ell / ||ell||^2`` (``g`` the sample in the teacher's causal space). ``auc_*`` is the ROC
  AUC separating held-out samples with the concept from held-out samples without it.
  ``proj_train_mean``, ``proj_test_mean``, ``proj_random_mean`` are medians over concepts of the
  mean score on train samples with the concept (exactly 1 by construction), test samples with
  it, and "random" test samples, i.e. those without it (about 0 for a meaningful vector).
* ``angles``: angles in degrees between ``ell_p`` and ``delta_c|p`` in the causal space:
  median, quartiles, IQR, all values.
* ``angles_normalized_first``: the same angle when ``ell_c`` and ``ell_p`` are normalized before
  subtracting (the origin code's pitfall; always >= 90 degrees). Diagnostic only.
* ``grandparent``: ``cos(delta_c|p, ell_p - ell_grandparent)`` where a grandparent exists.
* ``true_cosine``: cosines, in input space, of parent vectors / child deltas / child vectors to
  the given true directions. True directions are used only here, never by the estimator.

Controls (``controls``): ``shuffled_labels`` (one seeded permutation of the label rows, so the
samples carrying each concept are random while the hierarchy's co-occurrence is kept; the
teacher is re-estimated on them), ``random_parent`` (each child's delta taken against a
random other parent), and ``euclidean`` (the euclidean teacher; ``None`` when the primary
metric is euclidean or no euclidean teacher was given).

Reading the angles: shuffled labels also give angles near 90 degrees (noise vectors in high
dimension are nearly orthogonal), so a median near 90 is evidence only together with a high
projection AUC and a clear gap to the controls. Under ``data-covariance`` whitening the
metric itself absorbs the parent/child co-activation, so even an exactly orthogonal planted
hierarchy reads a few degrees below 90 (about 82 on the tests' data).
"""

from __future__ import annotations

import math

import attrs
import numpy as np
from scipy.stats import rankdata

from .estimator import Teacher, TeacherConfig, check_hierarchy, estimate_teacher
from .geometry import Whitening, as_numpy


@attrs.frozen
class ValidationConfig:
    """Options of :func:`validate_teacher`."""

    train_frac: float = attrs.field(default=0.7, validator=[attrs.validators.gt(0.0), attrs.validators.lt(1.0)])
    seed: int = 0
    teacher: TeacherConfig = attrs.field(factory=TeacherConfig)
    controls: bool = True


def validate_teacher(
    x,
    labels,
    parent_of,
    whitening: Whitening,
    *,
    true_directions=None,
    config: ValidationConfig | None = None,
) -> dict:
    """Split, estimate (on train) and validate (on test) the teacher; return the report.

    ``x`` ``(n, d)``, ``labels`` ``(n, C)`` bool, ``parent_of`` ``(C,)`` as for
    :func:`~hsae_teacher.estimator.estimate_teacher`; ``true_directions`` ``(C, d)`` in input
    space, optional and used only for the ``true_cosine`` entries. The euclidean control
    centres on ``whitening.mean``.
    """
    config = config or ValidationConfig()
    x, labels = as_numpy(x), as_numpy(labels, bool)
    order = np.random.default_rng(config.seed).permutation(labels.shape[0])
    n_train = int(round(config.train_frac * labels.shape[0]))
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])
    whitenings = {whitening.kind: whitening}
    if config.controls and whitening.kind != "euclidean":
        whitenings["euclidean"] = Whitening.euclidean(whitening.dim, whitening.mean)
    teachers = {
        kind: (estimate_teacher(x[train], labels[train], parent_of, w, config.teacher), w)
        for kind, w in whitenings.items()
    }
    return validation_report(
        x_train=x[train], labels_train=labels[train], x_test=x[test], labels_test=labels[test],
        parent_of=parent_of, teachers=teachers, primary=whitening.kind, true_directions=true_directions,
        estimator=config.teacher, seed=config.seed, controls=config.controls,
    )


def validation_report(
    *,
    x_train,
    labels_train,
    x_test,
    labels_test,
    parent_of,
    teachers: dict[str, tuple[Teacher, Whitening]],
    primary: str,
    true_directions=None,
    estimator: TeacherConfig | None = None,
    seed: int = 0,
    controls: bool = True,
) -> dict:
    """The report for ``teachers[primary]``, each teacher estimated on the train part.

    ``teachers`` maps a metric name to ``(teacher, whitening)``; its ``"euclidean"`` entry, if
    any, is the euclidean control. ``estimator`` re-estimates the shuffled-label control.
    """
    x_train, x_test = as_numpy(x_train), as_numpy(x_test)
    labels_train, labels_test = as_numpy(labels_train, bool), as_numpy(labels_test, bool)
    parent_of = check_hierarchy(parent_of, labels_train.shape[1])
    true = None if true_directions is None else as_numpy(true_directions)
    teacher, whitening = teachers[primary]
    data = (x_train, labels_train, x_test, labels_test)
    report = {
        "config": {
            "whitening": whitening.kind,
            "whitening_rank": int(whitening.rank),
            "back_map": teacher.back_map,
            "min_samples": teacher.min_samples,
            "seed": seed,
            "n_train": int(labels_train.shape[0]),
            "n_test": int(labels_test.shape[0]),
            "n_concepts": int(labels_train.shape[1]),
        },
        "counts": {
            "n_parents": int(teacher.parents.size),
            "n_children": int(teacher.children.size),
            "skipped": list(teacher.skipped),
            "orphans": list(teacher.orphans),
        },
        **evaluate_teacher(teacher, whitening, *data, parent_of, true),
        "controls": None,
    }
    if controls:
        rng = np.random.default_rng(seed)
        shuffled = (x_train, labels_train[rng.permutation(len(labels_train))],
                    x_test, labels_test[rng.permutation(len(labels_test))])
        t_shuffled = estimate_teacher(shuffled[0], shuffled[1], parent_of, whitening, estimator or TeacherConfig())
        euclid = teachers.get("euclidean") if primary != "euclidean" else None
        report["controls"] = {
            "shuffled_labels": evaluate_teacher(t_shuffled, whitening, *shuffled, parent_of, true),
            "random_parent": random_parent_control(teacher, true, rng),
            "euclidean": None if euclid is None else evaluate_teacher(*euclid, *data, parent_of, true),
        }
    return _jsonable(report)


def evaluate_teacher(teacher: Teacher, whitening: Whitening, x_train, labels_train, x_test, labels_test,
                     parent_of, true=None) -> dict:
    """One report section: projection test on the held-out samples, geometry of the teacher."""
    g_train, g_test = whitening.transform(x_train), whitening.transform(x_test)
    return {
        "projection": projection_test(teacher, g_train, labels_train, g_test, labels_test),
        "angles": _angle_stats(parent_delta_angles(teacher)),
        "angles_normalized_first": _angle_stats(parent_delta_angles(teacher, normalize_first=True), full=False),
        "grandparent": grandparent_cosines(teacher, parent_of),
        "true_cosine": None if true is None else true_cosines(teacher, true),
    }


# -- the individual statistics -------------------------------------------------------------


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank statistic (ties count 1/2, as sklearn's)."""
    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def projection_scores(teacher: Teacher, g, rows=slice(None)) -> np.ndarray:
    """``g . ell / ||ell||^2`` for every sample and (the ``rows`` of the) estimated concepts."""
    ell = teacher.vectors_causal[rows]
    sq = np.sum(ell * ell, axis=1)
    return (as_numpy(g) @ ell.T) / np.where(sq > 0, sq, np.nan)


def projection_test(teacher: Teacher, g_train, labels_train, g_test, labels_test, chunk: int = 256) -> dict:
    """Projection-test AUC on held-out samples and mean projections (train / test / random)."""
    aucs, train_pos, test_pos, test_neg = [], [], [], []
    for start in range(0, teacher.concepts.size, chunk):  # chunks keep memory at O(n * chunk)
        rows = slice(start, start + chunk)
        s_train, s_test = projection_scores(teacher, g_train, rows), projection_scores(teacher, g_test, rows)
        for k, c in enumerate(teacher.concepts[rows]):
            pos_tr, pos, neg = labels_train[:, c], labels_test[:, c], ~labels_test[:, c]
            ok = pos.any() and neg.any() and np.all(np.isfinite(s_test[:, k]))
            aucs.append(roc_auc(pos, s_test[:, k]) if ok else math.nan)
            train_pos.append(_mean(s_train[pos_tr, k]))
            test_pos.append(_mean(s_test[pos, k]))
            test_neg.append(_mean(s_test[neg, k]))
    aucs = np.asarray(aucs)
    is_parent = np.isin(teacher.concepts, teacher.parents)
    return {
        "auc_mean": _nanstat(np.nanmean, aucs),
        "auc_median": _nanstat(np.nanmedian, aucs),
        "auc_min": _nanstat(np.nanmin, aucs),
        "auc_parents_mean": _nanstat(np.nanmean, aucs[is_parent]),
        "auc_children_mean": _nanstat(np.nanmean, aucs[~is_parent]),
        "proj_train_mean": _nanstat(np.nanmedian, np.asarray(train_pos)),
        "proj_test_mean": _nanstat(np.nanmedian, np.asarray(test_pos)),
        "proj_random_mean": _nanstat(np.nanmedian, np.asarray(test_neg)),
        "concepts": [int(c) for c in teacher.concepts],
        "auc": aucs.tolist(),
    }


def parent_delta_angles(teacher: Teacher, normalize_first: bool = False) -> np.ndarray:
    """Angle (degrees) between ``ell_p`` and ``delta_c|p`` for every child, causal space.

    ``normalize_first`` reproduces the origin code's pitfall (unit ``ell_c``, ``ell_p``
    before subtracting), which forces every angle to be >= 90 degrees.
    """
    ell_p = teacher.vectors_of(teacher.child_parent)
    if normalize_first:
        delta = _unit(teacher.child_vectors_causal) - _unit(ell_p)
    else:
        delta = teacher.deltas_causal
    return _angles_deg(ell_p, delta)


def grandparent_cosines(teacher: Teacher, parent_of) -> dict:
    """``cos(delta_c|p, ell_p - ell_gp)`` for children whose parent has an estimated parent."""
    estimated = set(int(c) for c in teacher.concepts)
    cos = []
    for j, (c, p) in enumerate(zip(teacher.children, teacher.child_parent)):
        gp = int(parent_of[p])
        if gp >= 0 and gp in estimated:
            up = teacher.vector(int(p)) - teacher.vector(gp)
            cos.append(_cos_rows(teacher.deltas_causal[j][None], up[None])[0])
    cos = np.asarray(cos)
    return {
        "n": int(cos.size),
        "median_cos": _nanstat(np.nanmedian, cos),
        "mean_abs_cos": _nanstat(np.nanmean, np.abs(cos)),
        "all_cos": cos.tolist(),
    }


def true_cosines(teacher: Teacher, true) -> dict:
    """Input-space cosines of parent vectors, child deltas and child vectors to the truth."""
    parent = _cos_rows(teacher.parent_vectors_input, true[teacher.parents])
    delta = _cos_rows(teacher.deltas_input, true[teacher.children])
    child = _cos_rows(teacher.child_vectors_input, true[teacher.children])
    out = {}
    for name, values in (("parent", parent), ("delta", delta), ("child", child)):
        out[f"{name}_median"] = _nanstat(np.nanmedian, values)
        out[f"{name}_min"] = _nanstat(np.nanmin, values)
        out[name] = values.tolist()
    return out


def random_parent_control(teacher: Teacher, true, rng: np.random.Generator) -> dict:
    """Deltas of each child against a randomly chosen *other* parent: angles and true cosines."""
    n_parents = teacher.parents.size
    if n_parents < 2 or teacher.children.size == 0:
        return {"angles": _angle_stats(np.array([])), "true_cosine": None}
    own = np.searchsorted(teacher.parents, teacher.child_parent)  # ``parents`` is sorted
    draw = rng.integers(0, n_parents - 1, size=own.size)
    fake = teacher.parents[draw + (draw >= own)]  # uniform over the other parents
    ell_q = teacher.vectors_of(fake)
    section = {"angles": _angle_stats(_angles_deg(ell_q, teacher.child_vectors_causal - ell_q)), "true_cosine": None}
    if true is not None:
        delta_in = teacher.child_vectors_input - teacher.vectors_of(fake, "input")
        cos = _cos_rows(delta_in, true[teacher.children])
        section["true_cosine"] = {"delta_median": _nanstat(np.nanmedian, cos), "delta_min": _nanstat(np.nanmin, cos)}
    return section


# -- markdown ------------------------------------------------------------------------------

_ROWS = (  # (label, (section, key) or None for the projection triple, number format)
    ("projection AUC (mean)", ("projection", "auc_mean"), ".3f"),
    ("projection AUC (parents)", ("projection", "auc_parents_mean"), ".3f"),
    ("projection AUC (children)", ("projection", "auc_children_mean"), ".3f"),
    ("projection train / test / random", None, ".2f"),
    ("angle(ell_p, delta) median (deg)", ("angles", "median_deg"), ".1f"),
    ("angle IQR (deg)", ("angles", "iqr_deg"), ".1f"),
    ("angle, normalized first (pitfall, deg)", ("angles_normalized_first", "median_deg"), ".1f"),
    ("cos(delta, ell_p - ell_gp) median", ("grandparent", "median_cos"), ".3f"),
    ("cos(parent, true) median", ("true_cosine", "parent_median"), ".3f"),
    ("cos(delta, true) median", ("true_cosine", "delta_median"), ".3f"),
    ("cos(delta, true) min", ("true_cosine", "delta_min"), ".3f"),
)
_PROJECTIONS = ("proj_train_mean", "proj_test_mean", "proj_random_mean")


def render_markdown(report: dict) -> str:
    """A markdown table of the teacher and its controls side by side, then each control's angle gap."""
    from hsae.report import markdown_table

    controls = report.get("controls") or {}
    columns = [("teacher (" + report["config"]["whitening"] + ")", report)]
    for name in ("shuffled_labels", "random_parent", "euclidean"):
        if controls.get(name):
            columns.append((name.replace("_", " "), controls[name]))
    rows = []
    for label, path, spec in _ROWS:
        cells = []
        for _, section in columns:
            if path is None:
                values = [_get(section, ("projection", key)) for key in _PROJECTIONS]
                cells.append(" / ".join(_fmt(v, spec) for v in values) if any(v is not None for v in values) else "-")
            else:
                cells.append(_fmt(_get(section, path), spec))
        if any(cell != "-" for cell in cells):
            rows.append([label, *cells])
    lines = markdown_table(["metric", *(name for name, _ in columns)], rows)
    lines += ["", angle_gaps(report, columns[1:])]
    counts = report["counts"]
    lines += ["", f"{counts['n_parents']} parents, {counts['n_children']} children; "
              f"{len(counts['skipped'])} concepts skipped (< {report['config']['min_samples']} samples)."]
    return "\n".join(lines) + "\n"


def angle_gaps(report: dict, controls: list[tuple[str, dict]]) -> str:
    """How far the teacher's median parent-delta angle is from 90 degrees and from each control's."""
    teacher = _get(report, ("angles", "median_deg"))
    if teacher is None:
        return "No parent-delta angles (no parent with children)."
    gaps = [f"{name} {teacher - angle:+.1f}" for name, section in controls
            if (angle := _get(section, ("angles", "median_deg"))) is not None]
    return (f"Median angle(ell_p, delta): {teacher:.1f} deg, {teacher - 90:+.1f} from orthogonal; "
            f"teacher minus control: {', '.join(gaps) if gaps else 'no controls'} (deg).")


def _get(section: dict, path: tuple[str, str]):
    inner = section.get(path[0])
    return None if not inner else inner.get(path[1])


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# -- helpers -------------------------------------------------------------------------------


def _angle_stats(angles: np.ndarray, full: bool = True) -> dict:
    angles = np.asarray(angles, dtype=float)
    if angles.size == 0:
        q25 = med = q75 = math.nan
    else:
        q25, med, q75 = np.nanpercentile(angles, [25, 50, 75])
    stats = {"median_deg": med, "q25_deg": q25, "q75_deg": q75, "iqr_deg": q75 - q25, "n": int(angles.size)}
    if full:
        stats["mean_deg"] = _nanstat(np.nanmean, angles)
        stats["frac_above_80"] = float(np.mean(angles >= 80.0)) if angles.size else math.nan
        stats["all_deg"] = angles.tolist()
    return stats


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, np.nan)


def _cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(_unit(a) * _unit(b), axis=-1)


def _angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(_cos_rows(a, b), -1.0, 1.0)))


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if v.size else math.nan


def _nanstat(fn, values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    if values.size == 0 or np.all(np.isnan(values)):
        return math.nan
    return float(fn(values))


def _jsonable(obj):
    """Plain Python types only; nan/inf become None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj

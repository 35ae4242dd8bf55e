"""Treated-vs-control comparisons over seeds: report rows, targets judged on paired effects, tables.

Shared by the multi-arm pipelines (the synthetic ``teacher`` and the real-model
``teacher-lm``): each arm's final metrics come from its ``eval.json`` (one value per seed),
a target compares the treated arm with the control arm seed by seed
(:func:`hsae.summary.paired_effect`), and the tables and headline lines read the same in
every report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from hsae.io import read_json
from hsae.report import NumberKind, format_number, format_stat, markdown_table, metric_label
from hsae.summary import paired_effect


class Row(NamedTuple):
    """One metric of a report: where it comes from, how it reads and which way is better."""

    key: str
    source: str | None  # the metric key in eval.json; None: the report computes it (e.g. from the training log)
    label: str
    unit: str
    kind: NumberKind
    lower_is_better: bool | None
    transform: Callable[[float], float] | None = None


class TargetSpec(NamedTuple):
    """One success criterion on the treated-minus-control effect of a report row.

    ``relative``: the effect is ``(treated - control) / control`` per seed. ``comparison``:
    ``at least`` or ``at most`` ``threshold``. ``non_inferiority``: with several seeds the
    interval must stay within the threshold (a tolerated loss), instead of excluding zero on
    the good side (an improvement).
    """

    name: str
    label: str
    kind: NumberKind
    key: str
    relative: bool
    comparison: str
    threshold: float
    non_inferiority: bool = False


def _find(metrics: dict[str, dict[str, float]], key: str) -> float | None:
    """``key`` from whichever metric table reported it."""
    return next((values[key] for values in metrics.values() if key in values), None)


def arm_numbers(arm_dir: Path, rows: tuple[Row, ...]) -> dict[str, float]:
    """The report's numbers for one trained arm, from its ``eval.json``."""
    metrics = read_json(arm_dir / "eval.json")["eval_result_metrics"]
    out = {}
    for row in rows:
        value = _find(metrics, row.source)
        if value is not None:
            out[row.key] = row.transform(value) if row.transform else value
    return out


def seed_effects(per_arm: dict[str, dict[str, list]], key: str, relative: bool, treated: str = "teacher",
                 control: str = "baseline") -> dict[str, float]:
    """Treated-minus-control effect of one metric, seed by seed, summarized by :func:`paired_effect`."""
    values, reference = per_arm[treated].get(key, []), per_arm[control].get(key, [])
    if relative:  # (treated - control) / control per seed, so each seed is its own yardstick
        values = [t / b if t is not None and b else None for t, b in zip(values, reference)]
        reference = [1.0 if b else None for b in reference]
    return paired_effect(values, reference)


def judge(specs: tuple[TargetSpec, ...], per_arm: dict[str, dict[str, list]], treated: str = "teacher",
          control: str = "baseline") -> list[dict[str, Any]]:
    """Each target, judged on the per-seed paired effects of ``treated`` vs ``control``.

    The measured value is the median over seeds (one outlying seed cannot carry it). With
    several seeds a target also needs its 95% interval of the mean effect on the right side:
    an improvement excludes zero, a non-inferiority target stays under its tolerance.
    """
    return [judged(spec, seed_effects(per_arm, spec.key, spec.relative, treated, control)) for spec in specs]


def judged(spec: TargetSpec, effect: dict[str, float]) -> dict[str, Any]:
    """One target's verdict from its paired effect."""
    median, low, high = effect["median"], effect["low"], effect["high"]
    at_least = spec.comparison == "at least"
    point_ok = median >= spec.threshold if at_least else median <= spec.threshold
    if effect["n"] < 2:
        interval_ok = True  # one seed: no interval; the report says so
    elif spec.non_inferiority:
        interval_ok = low >= spec.threshold if at_least else high <= spec.threshold
    else:
        interval_ok = low > 0 if at_least else high < 0
    return {"target": spec.name, "label": spec.label, "kind": spec.kind, "comparison": spec.comparison,
            "threshold": float(spec.threshold), "measured": median, "mean": effect["mean"], "ci_low": low,
            "ci_high": high, "p_value": effect["p_value"],
            "seeds_favouring": effect["positive"] if at_least else effect["negative"], "n_seeds": effect["n"],
            "met": bool(point_ok and interval_ok and math.isfinite(median))}


def metrics_table(arms: dict[str, dict[str, dict]], rows: tuple[Row, ...]) -> list[str]:
    """One row per metric some arm reported (mean ± std over seeds), one column per arm."""
    lines = [[metric_label(row.label, row.unit, row.lower_is_better),
              *(format_stat(arms[a].get(row.key), row.kind) for a in arms)]
             for row in rows if any(row.key in arms[a] for a in arms)]
    return markdown_table(["metric", *arms], lines)


def targets_table(targets: list[dict[str, Any]]) -> list[str]:
    """Each target: threshold, median effect over seeds, 95% interval, p-value, seeds in favour, met."""
    def interval(t: dict[str, Any]) -> str:
        if t["n_seeds"] < 2:
            return "n/a (1 seed)"
        return f"[{format_number(t['ci_low'], t['kind'])}, {format_number(t['ci_high'], t['kind'])}]"

    rows = [[t["label"], f"{t['comparison']} {format_number(t['threshold'], t['kind'])}",
             format_number(t["measured"], t["kind"]), interval(t),
             format_number(t["p_value"], "fraction") if t["n_seeds"] > 1 else "n/a",
             f"{t['seeds_favouring']}/{t['n_seeds']}", "yes" if t["met"] else "no"] for t in targets]
    return markdown_table(["target", "threshold", "median over seeds", "95% CI of the mean", "paired t-test p",
                           "seeds in favour", "met"], rows)


def tuning_table(tuning: dict[str, Any] | None, default_lr: float, seed_note: str = "never an evaluation seed") -> list[str]:
    """The learning-rate grid: validation score per arm and lr, and each arm's choice."""
    if not tuning:
        return [f"No learning-rate search: every arm trained at train.lr = {default_lr:g}."]
    arms = tuning["arms"]
    lrs = sorted({float(lr) for arm in arms.values() for lr in arm["losses"]})
    rows = [[name, *(format_number(arm["losses"].get(f"{lr:g}"), "fraction") for lr in lrs), f"{arm['chosen_lr']:g}"]
            for name, arm in arms.items()]
    return [f"Rule, fixed before any test metric: {tuning['rule']}. Tuning seed {tuning.get('seed')}, {seed_note}.", "",
            *markdown_table(["arm", *(f"lr {lr:g}" for lr in lrs), "chosen lr"], rows)]


def verdict(targets: list[dict[str, Any]]) -> str:
    """How many targets were met, said plainly."""
    met = sum(t["met"] for t in targets)
    if met == len(targets):
        return f"**{met} of {len(targets)} targets met.** Every target was met."
    return (f"**{met} of {len(targets)} targets met.** The teacher initialization did not deliver every "
            "hoped-for improvement; the numbers above are as measured.")


def headline(title: str, seeds: list[int], targets: list[dict[str, Any]]) -> list[str]:
    """The lines ``hsae run`` prints at the end: each target, measured and met or not."""
    n = len(seeds)
    lines = [f"{title}, {n} seed{'s' if n != 1 else ''} (paired effects, median over seeds):"]
    for t in targets:
        lines.append(f"  {t['label']}: {format_number(t['measured'], t['kind'])} "
                     f"(target {t['comparison']} {format_number(t['threshold'], t['kind'])}): "
                     f"{'met' if t['met'] else 'not met'}")
    return lines

"""Shared pieces of experiment reports: markdown tables, number formats, seed notes and plots.

Every report (``report.md``, ``report.json`` and its PNGs) renders through these helpers, so
tables escape ``|`` the same way, a metric kind always shows the same number of decimals,
a single-seed report says that it has no spread, and plots label units and directions alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

NumberKind = Literal["percent", "pp", "fraction", "decimal", "relative", "value", "count"]

# One format per kind of number: percentages (and their pp differences) with one decimal,
# bounded scores (and ``decimal`` quantities such as nats) with three, unbounded values with
# three significant digits, counts as integers.
_SPECS: dict[str, str] = {
    "percent": ".1f",
    "pp": "+.1f",
    "fraction": ".3f",
    "decimal": ".3f",
    "relative": "+.1%",
    "value": "#.3g",
    "count": ".0f",
}
_STD_SPECS: dict[str, str] = {"value": ".2g"}  # a spread of unbounded values: two significant digits
_SUFFIXES: dict[str, str] = {"pp": " pp"}
MISSING = "n/a"
SEEDS_HINT = "--set 'seeds=[0,1,2]'"


# -- numbers -------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """True for a finite int or float (``bool`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_number(value: float | None, kind: NumberKind = "value") -> str:
    """``value`` in the format of its kind (``+1.2 pp``, ``0.873``, ``-12.0%``); ``n/a`` if missing."""
    if not is_number(value):
        return MISSING
    return format(value, _SPECS[kind]) + _SUFFIXES.get(kind, "")


def format_stat(stat: Mapping[str, Any] | None, kind: NumberKind = "value") -> str:
    """A ``{"mean", "std", "n"}`` summary as ``mean ± std``, the mean alone for one value, or ``n/a``."""
    if not stat or not stat.get("n") or not is_number(stat.get("mean")):
        return MISSING
    mean = format_number(stat["mean"], kind)
    if stat["n"] < 2 or not is_number(stat.get("std")):
        return mean
    spread = format(abs(stat["std"]), _STD_SPECS.get(kind, _SPECS[kind].lstrip("+"))) + _SUFFIXES.get(kind, "")
    return f"{mean} ± {spread}"


def numbers_only(value: Any) -> Any:
    """``value`` with numpy scalars made plain Python numbers and NaN/inf made ``None`` (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): numbers_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [numbers_only(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- markdown ------------------------------------------------------------------------------


def escape_cell(value: object) -> str:
    """Cell text safe inside a markdown table: ``|`` escaped, line breaks made spaces."""
    return str(value).replace("|", r"\|").replace("\r", " ").replace("\n", " ")


def table_row(cells: Iterable[object]) -> str:
    """One markdown table row of escaped cells."""
    return "| " + " | ".join(escape_cell(c) for c in cells) + " |"


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    """A markdown table as lines: header, separator, one line per row."""
    return [table_row(header), "|" + "---|" * len(header), *(table_row(r) for r in rows)]


def direction_hint(lower_is_better: bool | None) -> str:
    """``higher is better ↑``, ``lower is better ↓`` or empty for neither."""
    if lower_is_better is None:
        return ""
    return "lower is better ↓" if lower_is_better else "higher is better ↑"


def metric_label(label: str, unit: str = "", lower_is_better: bool | None = None, wrap: bool = False) -> str:
    """``purity (%, higher is better ↑)``: the metric, its unit and which way is better.

    ``wrap`` puts the parenthesis on a second line (axis labels).
    """
    parts = [p for p in (unit, direction_hint(lower_is_better)) if p]
    if not parts:
        return label
    return f"{label}{chr(10) if wrap else ' '}({', '.join(parts)})"


PAIRED_TESTS = "targets are judged on paired per-seed effects (median, 95% t-interval, paired t-test)"


def seeds_note(seeds: Sequence[int], hint: str | None = SEEDS_HINT, tests: str | None = None) -> str:
    """The line that says how many seeds the numbers rest on, and what one seed cannot tell.

    ``tests`` says which significance tests the report makes (none when omitted).
    """
    listed = ", ".join(str(s) for s in seeds)
    if len(seeds) == 1:
        rerun = f"; run with {hint} for means and spreads" if hint else ""
        return f"1 seed ({listed}): no spread and no significance test{rerun}."
    return (f"{len(seeds)} seeds ({listed}): mean ± sample standard deviation over seeds; "
            f"{tests or 'no significance test'}.")


# -- plots ---------------------------------------------------------------------------------


def pyplot():  # noqa: ANN201 - matplotlib.pyplot, imported lazily
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve(records: Iterable[Mapping[str, Any]], key: str) -> dict[int, float]:
    """``{step: value}`` of one logged quantity, from ``metrics.jsonl`` records."""
    return {int(r["step"]): float(r[key]) for r in records if "step" in r and is_number(r.get(key))}


def mean_curve(curves: Sequence[Mapping[int, float]]) -> tuple[list[int], list[float], list[float]]:
    """Steps logged by every curve, with the mean and sample std over curves at each step."""
    from hsae.summary import mean_std

    if not curves:
        return [], [], []
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    stats = [mean_std([c[s] for c in curves]) for s in steps]
    return steps, [st["mean"] for st in stats], [st["std"] for st in stats]


def plot_curve(ax, curves: Sequence[Mapping[int, float]], label: str, color: str | None = None) -> None:  # noqa: ANN001
    """The mean curve over seeds; a shaded ± std band when there are several seeds."""
    steps, means, stds = mean_curve(curves)
    if not steps:
        return
    (line,) = ax.plot(steps, means, label=label, color=color)
    if len(curves) > 1:
        low = [m - s for m, s in zip(means, stds)]
        high = [m + s for m, s in zip(means, stds)]
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def stage_boundaries(stages: Sequence[Any]) -> list[tuple[int, str]]:
    """``(step, label)`` where each stage but the last ends (stages with ``name`` and ``steps``)."""
    out, step = [], 0
    for current, following in zip(stages, stages[1:]):
        if current.steps is None:
            break
        step += current.steps
        out.append((step, f"stage {current.name or '?'} → {following.name or '?'}"))
    return out


def mark_stages(ax, boundaries: Sequence[tuple[int, str]]) -> None:  # noqa: ANN001
    """A dashed vertical line, labelled in the legend, at each stage boundary."""
    for step, label in boundaries:
        ax.axvline(step, color="k", linestyle="--", linewidth=1, alpha=0.6, label=f"{label} (step {step})")


def bar_panel(ax, names: Sequence[str], stats: Sequence[Mapping[str, Any] | None],  # noqa: ANN001
              colors: Sequence[str] | None = None) -> None:
    """One bar per arm at its mean; error bars (± std) only when some bar has several seeds."""
    means = [s["mean"] if s and is_number(s.get("mean")) else math.nan for s in stats]
    several = any(s and s.get("n", 0) > 1 for s in stats)
    stds = [s["std"] if s and is_number(s.get("std")) else 0.0 for s in stats] if several else None
    ax.bar(range(len(names)), means, yerr=stds, capsize=3 if several else 0, color=colors)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")


def spread_caption(n_seeds: int) -> str:
    """Figure caption part: ``mean ± std over 3 seeds`` or ``1 seed, no spread``."""
    return f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "1 seed, no spread"


def save_figure(fig, path: Path) -> Path:  # noqa: ANN001
    """Write ``fig`` as a PNG and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    return path

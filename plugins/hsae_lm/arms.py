"""Phases 3-4 of ``teacher-lm``: H-SAEs on the real model's activations, random vs teacher init.

Each arm is an ordinary training recipe built from the pipeline recipe's ``[data]``,
``[sae]``, ``[losses]``, ``[metrics]``, ``[train]`` and ``[eval]`` tables, plus the arm's own
``init`` (``teacher``: hsae_teacher's ``teacher-vectors`` initializer reading phase 1's
``teacher-unembedding.safetensors``) and ``set`` overrides. All arms share one data source,
so activations are captured once. ``evaluate`` puts every arm's final metrics side by side
in ``<run>/arms/report.md`` and ``report.json``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import attrs

from hsae.config.converter import error_problems, make_converter
from hsae.config.toml_io import apply_override, parse_override
from hsae.errors import Problem, RecipeError, UserError
from hsae.io import read_json, write_json, write_text

ARMS_DIR = "arms"
TEACHER_FILE = "teacher-unembedding.safetensors"
_TABLES = {"data": "data", "sae": "model", "losses": "losses", "metrics": "metrics", "train": "train", "eval": "eval"}


@attrs.frozen
class LMArm:
    """One H-SAE of the comparison: ``init`` random or from phase 1's teacher; ``set`` overrides."""

    init: Literal["random", "teacher"] = "random"
    set: tuple[str, ...] = ()


def arm_recipe(recipe, name: str, arm: LMArm, teacher_path: Path | None):  # noqa: ANN001 - hsae Recipe
    """The ``TrainRecipe`` of one arm; ``teacher_path`` None (validation) leaves out the initializer."""
    from hsae.engine.schema import TrainRecipe

    doc = recipe.to_dict()
    base = {target: doc[source] for source, target in _TABLES.items() if doc.get(source) is not None}
    if arm.init == "teacher" and teacher_path is not None:
        base["initializers"] = {"teacher": {"type": "teacher-vectors", "path": str(teacher_path)}}
    for item in arm.set:
        path, value = parse_override(item)
        apply_override(base, path, value, item)
    try:
        return make_converter(recipe.base_dir).structure(base, TrainRecipe)
    except Exception as exc:  # cattrs raises exception groups; each becomes a located problem
        raise RecipeError([Problem(m, path=f"arms.{name}: {p}", file=recipe.file) for p, m in error_problems(exc)]) from None


def validate_arms(recipe) -> None:  # noqa: ANN001
    """Build every arm's components without training (no teacher file needed)."""
    from hsae.engine.assemble import assemble

    for name, arm in recipe.config.arms.items():
        assemble(arm_recipe(recipe, name, arm, None), prefix=f"arms.{name}: ")


def train_arms(recipe, run_root: Path, ctx) -> None:  # noqa: ANN001 - RunContext
    """Train every arm not trained yet (``--resume`` continues an interrupted one)."""
    from hsae.engine.assemble import assemble

    teacher = run_root / "geometry" / TEACHER_FILE
    data = None
    for name, arm in recipe.config.arms.items():
        if arm.init == "teacher" and not teacher.is_file():
            raise UserError(f"{teacher.parent}: no teacher vectors; run phase 1 first (--phase 1)")
        arm_dir = ctx.run_dir.sub(f"{ARMS_DIR}/{name}")
        if (arm_dir.root / "model.safetensors").is_file() and not ctx.resume:
            continue  # trained by an earlier invocation
        train = arm_recipe(recipe, name, arm, teacher)
        if data is None:
            data = train.data.build(seed=train.train.seed)
        trainer = assemble(train, run_dir=arm_dir, dist=ctx.dist, data=data, prefix=f"arms.{name}: ")
        trainer.fit(resume=ctx.resume)


def compare_arms(recipe, run_root: Path) -> dict:  # noqa: ANN001
    """Every arm's final metrics side by side: ``report.json`` and ``report.md`` in ``<run>/arms``."""
    arms = {}
    for name in recipe.config.arms:
        path = run_root / ARMS_DIR / name / "eval.json"
        if not path.is_file():
            raise UserError(f"{path.parent}: arm {name!r} is not trained; run its phase first")
        metrics = read_json(path)["eval_result_metrics"]
        arms[name] = {key: value for table in metrics.values() for key, value in table.items()}
    keys = sorted({k for values in arms.values() for k in values})
    lines = ["| metric | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
    for key in keys:
        cells = [_fmt(arms[a].get(key)) for a in arms]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    report = {"arms": arms, "markdown": "\n".join(lines) + "\n"}
    write_json(run_root / ARMS_DIR / "report.json", report)
    write_text(run_root / ARMS_DIR / "report.md", report["markdown"])
    return report


def _fmt(value) -> str:  # noqa: ANN001
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"

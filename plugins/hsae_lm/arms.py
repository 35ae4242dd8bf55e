"""Phases 3-4 of ``teacher-lm``: H-SAEs on the real model's activations, random vs teacher init.

Each arm is an ordinary training recipe built from the pipeline recipe's ``[data]``,
``[sae]``, ``[losses]``, ``[metrics]``, ``[train]`` and ``[eval]`` tables, plus the arm's own
``init`` (``teacher``: hsae_teacher's ``teacher-vectors`` initializer reading phase 1's
``teacher-unembedding.safetensors``) and ``set`` overrides. All arms share one data source,
so activations are captured once. ``evaluate`` puts every arm's final metrics side by side
in ``<run>/arms/report.md`` and ``report.json``, with ``training_curves.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from hsae.config.converter import error_problems, make_converter
from hsae.config.toml_io import apply_override, parse_override
from hsae.errors import Problem, RecipeError, UserError
from hsae.io import read_json, write_json, write_text
from hsae.report import (curve, format_number, markdown_table, metric_label, numbers_only, plot_curve, pyplot,
                         save_figure, seeds_note, spread_caption)

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


EXPERIMENT = "Teacher-initialized vs random H-SAE"
SEED_HINT = "--set train.seed=N (one run directory per seed)"


def compare_arms(recipe, run_root: Path) -> dict:  # noqa: ANN001
    """Every arm's final metrics side by side: ``report.json``, ``report.md`` and plots in ``<run>/arms``."""
    arms = {name: arm_metrics(run_root / ARMS_DIR / name) for name in recipe.config.arms}
    seed = recipe.config.train.seed
    report = numbers_only({"experiment": EXPERIMENT, "model": recipe.config.model, "seeds": [seed], "arms": arms})
    write_json(run_root / ARMS_DIR / "report.json", report)
    text = arms_markdown(recipe.config.model, seed, arms)
    write_text(run_root / ARMS_DIR / "report.md", text)
    plot_training_curves(recipe.config, run_root / ARMS_DIR)
    return {**report, "markdown": text}


def arm_metrics(arm_dir: Path) -> dict[str, float]:
    """One trained arm's final metrics (every table of its ``eval.json`` flattened)."""
    path = arm_dir / "eval.json"
    if not path.is_file():
        raise UserError(f"{arm_dir}: arm {arm_dir.name!r} is not trained; run its phase first")
    metrics = read_json(path)["eval_result_metrics"]
    return {key: value for table in metrics.values() for key, value in table.items()}


def arms_markdown(model: str, seed: int, arms: dict[str, dict[str, float]]) -> str:
    """``report.md``: the seed note and one row per metric, one column per arm."""
    keys = sorted({k for values in arms.values() for k in values})
    rows = [[key, *(format_number(arms[a].get(key), "value") for a in arms)] for key in keys]
    lines = [f"# {EXPERIMENT} on {model}", "", seeds_note([seed], SEED_HINT), "",
             *markdown_table(["metric", *arms], rows), "", "Plot: `training_curves.png`."]
    return "\n".join(lines) + "\n"


def plot_training_curves(config, arms_dir: Path) -> Path:  # noqa: ANN001 - TeacherLMRecipe
    """Reconstruction loss of every arm over training (one seed: no band)."""
    from hsae.engine.rundir import RunDir

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in config.arms:
        plot_curve(ax, [curve(RunDir(arms_dir / name).read_log(), "loss/mse")], name)
    ax.set(xlabel="training step", yscale="log",
           ylabel=metric_label("reconstruction loss", "MSE, log scale", lower_is_better=True, wrap=True),
           title=f"training curves ({spread_caption(1)})")
    ax.legend(fontsize="small")
    fig.suptitle(f"{EXPERIMENT} on {config.model}", fontsize="medium")
    return save_figure(fig, arms_dir / "training_curves.png")

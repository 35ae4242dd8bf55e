"""``hsae run``: pick the run directory, then run the recipe's pipeline phase by phase."""

from __future__ import annotations

import time
from pathlib import Path

from hsae.config.recipe import Recipe
from hsae.engine.distributed import DistInfo, init_from_env
from hsae.engine.rundir import RunDir
from hsae.errors import UserError
from hsae.pipeline import RunContext


def default_run_dir(recipe: Recipe, dist: DistInfo) -> Path:
    """``runs/<recipe stem>-<UTC time>``, agreed on by every rank."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if dist.enabled:
        import torch.distributed as tdist

        box = [stamp]
        tdist.broadcast_object_list(box, src=0)
        stamp = box[0]
    return Path("runs") / f"{Path(recipe.file).stem}-{stamp}"


def latest_run_dir(recipe: Recipe) -> Path | None:
    found = sorted(Path("runs").glob(f"{Path(recipe.file).stem}-*"))
    return found[-1] if found else None


def select_phases(names: tuple[str, ...], phase: int | None) -> list[str]:
    if phase is None:
        return list(names)
    if not 1 <= phase <= len(names):
        listing = ", ".join(f"{i} {n}" for i, n in enumerate(names, 1))
        raise UserError(f"--phase {phase}: this pipeline has phases {listing}")
    return [names[phase - 1]]


def run_recipe(recipe: Recipe, run_dir: str | Path | None = None, *, resume: bool = False, phase: int | None = None) -> RunDir:
    """Run ``recipe``'s pipeline (all phases, or one) and return its run directory."""
    dist = init_from_env()
    pipeline = recipe.build_pipeline()
    phases = select_phases(pipeline.phases, phase)
    if run_dir is None:
        run_dir = (latest_run_dir(recipe) if resume or phase else None) or default_run_dir(recipe, dist)
    root = Path(run_dir)
    if root.is_dir() and any(root.iterdir()) and not (resume or phase):
        raise UserError(f"{root}: already holds a run; pass --resume to continue it, --phase N to rerun a phase, "
                        "or another --run-dir")
    ctx = RunContext(RunDir(root), resume=resume, dist=dist, recipe_text=recipe.to_toml())
    saved = root / "recipe.toml"
    if resume and saved.is_file() and saved.read_text() != ctx.recipe_text:
        raise UserError(f"{saved}: the recipe differs from the one this run started with; resume with the "
                        "same recipe and --set values, or start a new --run-dir")
    if dist.is_main:
        ctx.run_dir.create()
        ctx.run_dir.write_recipe(ctx.recipe_text)
    for name in phases:
        pipeline.run_phase(name, ctx)
    return ctx.run_dir

"""``hsae run``: pick the run directory, then run the recipe's pipeline phase by phase."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from hsae.config.recipe import Recipe
from hsae.engine.distributed import DistInfo, barrier, init_from_env
from hsae.engine.rundir import RunDir
from hsae.errors import UserError
from hsae.pipeline import RunContext
from hsae.run_summary import summary_lines


def default_run_dir(recipe: Recipe, dist: DistInfo) -> Path:
    """``runs/<recipe stem>-<UTC time>`` (``-2``, ``-3``... if taken), agreed on by every rank."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = f"{Path(recipe.file).stem}-{stamp}"
    candidate, n = Path("runs") / name, 1
    while candidate.exists():
        n += 1
        candidate = Path("runs") / f"{name}-{n}"
    if dist.enabled:
        import torch.distributed as tdist

        box = [str(candidate)]
        tdist.broadcast_object_list(box, src=0)
        candidate = Path(box[0])
    return candidate


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


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``root`` is the run directory to ``--resume``."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root


def choose_run_dir(recipe: Recipe, run_dir: str | Path | None, *, resume: bool, phase: int | None,
                   dist: DistInfo) -> Path:
    """The run directory, made absolute once so every path a pipeline derives from it is too."""
    if run_dir is None:
        run_dir = latest_run_dir(recipe) if resume or phase else None
        if run_dir is None and resume:
            raise UserError(f"--resume: no earlier run of {recipe.file} under {Path('runs').absolute()}; "
                            "pass its --run-dir, or start a new run without --resume")
        run_dir = run_dir or default_run_dir(recipe, dist)
    root = Path(run_dir).absolute()
    holds_run = (root / "recipe.toml").is_file()
    if resume and not holds_run:
        raise UserError(f"{root}: holds no run to resume (no recipe.toml); start one without --resume "
                        "(Python: resume=False)")
    if root.is_dir() and any(root.iterdir()) and not (resume or phase):
        raise UserError(f"{root}: already holds a run; continue it with --resume (Python: resume=True), rerun "
                        "one phase with --phase N (phase=N), or choose another --run-dir (run_dir=...)")
    return root


def run_recipe(recipe: Recipe, run_dir: str | Path | None = None, *, resume: bool = False, phase: int | None = None,
               announce: bool = False) -> RunDir:
    """Run ``recipe``'s pipeline (all phases, or one) and return its run directory.

    A run that fails before it wrote anything but ``recipe.toml`` leaves no directory
    behind. ``announce`` prints a line as each phase starts and a summary at the end.
    """
    dist = init_from_env()
    pipeline = recipe.build_pipeline()
    phases = select_phases(pipeline.phases, phase)
    root = choose_run_dir(recipe, run_dir, resume=resume, phase=phase, dist=dist)
    barrier(dist)  # every rank has checked the directory before rank 0 writes into it
    ctx = RunContext(RunDir(root), resume=resume, dist=dist, recipe_text=recipe.to_toml())
    saved = root / "recipe.toml"
    if resume and saved.read_text() != ctx.recipe_text:
        raise UserError(f"{saved}: the recipe differs from the one this run started with; resume with the "
                        "same recipe and --set values, or start a new --run-dir")
    created = not root.exists()
    if dist.is_main:
        ctx.run_dir.create()
        ctx.run_dir.write_recipe(ctx.recipe_text)
    started = time.perf_counter()
    try:
        for number, name in enumerate(phases, 1):
            if announce and dist.is_main and len(pipeline.phases) > 1:
                index = pipeline.phases.index(name) + 1
                print(f"phase {index}/{len(pipeline.phases)}: {name}", file=sys.stderr, flush=True)
            pipeline.run_phase(name, ctx)
    except KeyboardInterrupt:
        raise RunInterrupted(root) from None
    except BaseException:
        if created and dist.is_main:
            remove_if_unused(root)
        raise
    if announce and dist.is_main:
        for line in summary_lines(pipeline, ctx, time.perf_counter() - started):
            print(line, file=sys.stderr)
    return ctx.run_dir


def remove_if_unused(root: Path) -> None:
    """Delete a run directory that holds nothing but its ``recipe.toml`` (and empty folders)."""
    files = [p for p in root.rglob("*") if p.is_file() or p.is_symlink()]
    if all(p == root / "recipe.toml" for p in files):
        shutil.rmtree(root, ignore_errors=True)

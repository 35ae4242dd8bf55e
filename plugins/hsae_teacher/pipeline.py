"""The ``teacher`` pipeline: does a geometric teacher make H-SAE features purer? (seed 001)

Phases, each reusing what the earlier ones left in the run directory:

1. ``extract``: estimate parent vectors and child deltas from labelled samples (the
   data source's ground-truth labels, never its true directions) and validate them.
2. ``baseline``: train the randomly initialized H-SAE (``arms.baseline``).
3. ``teacher``: train the teacher-initialized H-SAE with stages A/B (``arms.teacher``).
4. ``evaluate``: train the ablation arms, then compare every arm in ``report.md``,
   ``report.json`` and plots.

Each phase runs for every seed in ``seeds``; arms of one seed share data and steps.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from hsae.config.converter import error_problems, make_converter
from hsae.config.spec import InitializerSpec
from hsae.config.toml_io import apply_override, parse_override
from hsae.engine.assemble import assemble
from hsae.engine.rundir import RunDir
from hsae.engine.schema import TrainRecipe
from hsae.errors import Problem, RecipeError, UserError
from hsae.io import read_json
from hsae.pipeline import Pipeline, RunContext
from hsae.tuning import TUNING_DIR, tune_lr
from hsae_teacher.extract import GEOMETRY_DIR, extract_teacher, teacher_file
from hsae_teacher.report import headline, write_report
from hsae_teacher.schema import Arm, TeacherRecipe

_TRAIN_KEYS = ("data", "model", "losses", "metrics", "train", "eval", "stages")


def _teacher_losses(doc: dict, metric_path: Path | None) -> dict[str, dict]:
    """The recipe's ``teacher_losses``; an unset ``causal-ortho`` metric file becomes the arm's teacher file.

    ``to_dict()`` fills in every default, so an unset ``metric_file`` is present as None.
    ``metric_path`` None (validation) leaves it unset.
    """
    losses = {name: dict(spec) for name, spec in doc.get("teacher_losses", {}).items()}
    for spec in losses.values():
        if spec.get("type") == "causal-ortho" and spec.get("metric_file") is None and metric_path is not None:
            spec["metric_file"] = str(metric_path)
    return losses


class TeacherPipeline(Pipeline):
    """Seed 001: teacher extraction, baseline and teacher-initialized H-SAEs, evaluation and ablations."""

    name = "teacher"
    Config = TeacherRecipe
    phases = ("extract", "baseline", "teacher", "evaluate")

    @classmethod
    def example_config(cls, workdir: Path) -> TeacherRecipe:
        """A small but complete teacher experiment (used by the contract test)."""
        from hsae.config.converter import make_converter

        small = {
            "data": {"type": "unit-norm", "source": {
                "type": "hierarchical-synthetic", "d_model": 16, "orthogonal_features": False,
                "hierarchy": {"n_features": 15, "n_roots": 3, "branching_factor": 4, "depth": 1}}},
            "model": {"type": "hsae", "n_parents": 3, "subspace": 2, "n_children": 4,
                      "parent_router": {"type": "parent-topk", "k": 1}},
            "losses": {"mse": {"type": "mse"}},
            "metrics": {"purity": {"type": "purity"}},
        }
        return make_converter(workdir).structure(small, TeacherRecipe)

    def arm_recipe(self, name: str, arm: Arm, teacher_dir: Path | None) -> TrainRecipe:
        """The training recipe of one arm: the shared tables plus this arm's init, stages and overrides.

        ``teacher_dir`` holds phase 1's output; ``None`` (validation) leaves out what reads it.
        The arm's teacher file (its ``metric``, else ``[extract].metric``) both initializes it
        and gives stage A's ``causal-ortho`` loss its metric, so init and loss agree.
        """
        doc = self.recipe.to_dict()
        base = {key: doc[key] for key in _TRAIN_KEYS if key in doc}
        metric_path = None if teacher_dir is None else teacher_file(teacher_dir, arm.metric or self.config.extract.metric)
        if arm.stages:
            base["losses"] = {**base["losses"], **_teacher_losses(doc, metric_path)}
        else:
            base.pop("stages", None)
        if arm.init == "teacher" and metric_path is not None:
            base["initializers"] = {"teacher": {"type": "teacher-vectors", "path": str(metric_path)}}
        for item in arm.set:
            path, value = parse_override(item)
            apply_override(base, path, value, item)
        try:
            return make_converter(self.recipe.base_dir).structure(base, TrainRecipe)
        except Exception as exc:
            problems = [Problem(m, path=f"arms.{name}: {p}", file=self.recipe.file) for p, m in error_problems(exc)]
            raise RecipeError(problems) from None

    def seed_recipe(self, recipe: TrainRecipe, seed: int) -> TrainRecipe:
        return attrs.evolve(recipe, train=attrs.evolve(recipe.train, seed=seed))

    def validate(self) -> None:
        for name, arm in self.config.arms.items():
            assemble(self.arm_recipe(name, arm, None), prefix=f"arms.{name}: ")
        InitializerSpec("teacher-vectors").cls  # registered

    def run_phase(self, phase: str, ctx: RunContext) -> None:
        if phase == "extract" and self.config.tuning.lrs and ctx.dist.is_main:
            extract_teacher(self.config, self.config.tuning.seed, ctx.run_dir.sub(TUNING_DIR).root / GEOMETRY_DIR)
        for seed in self.seeds():
            root = ctx.run_dir.sub(f"seed-{seed}")
            if phase == "extract":
                if ctx.dist.is_main:
                    extract_teacher(self.config, seed, root.root / GEOMETRY_DIR)
            elif phase in ("baseline", "teacher"):
                self.train_arm(phase, seed, root, ctx)
            elif phase == "evaluate":
                for name in self.config.arms:
                    if name not in ("baseline", "teacher"):
                        self.train_arm(name, seed, root, ctx)
        if phase == "evaluate" and ctx.dist.is_main:
            write_report(self.config, ctx.run_dir, self.seeds())

    def headline(self, ctx: RunContext) -> list[str]:
        path = ctx.run_dir.root / "report.json"
        return headline(read_json(path)) if path.is_file() else []

    def seeds(self) -> list[int]:
        return list(self.config.seeds) or [self.config.train.seed]

    def train_arm(self, name: str, seed: int, root: RunDir, ctx: RunContext) -> None:
        """Train arm ``name`` on seed ``seed``'s world at the arm's own (tuned) learning rate."""
        arm_dir = root.sub(name)
        if (arm_dir.root / "model.safetensors").is_file() and not ctx.resume:
            return  # trained by an earlier invocation; --phase reruns reuse it
        lr = self.tuned_lr(name, ctx)
        self.fit_arm(name, seed, root, arm_dir, ctx, lr)

    def fit_arm(self, name: str, seed: int, world: RunDir, arm_dir: RunDir, ctx: RunContext, lr: float,
                with_metrics: bool = True):
        """Train one arm on the world whose phase-1 output lies in ``world``; returns the trainer.

        ``with_metrics=False`` (tuning runs) skips the test metrics: only validation loss counts there.
        """
        arm = self.config.arms[name]
        teacher_dir = world.root / GEOMETRY_DIR
        if (arm.init == "teacher" or arm.stages) and not teacher_file(teacher_dir, arm.metric or self.config.extract.metric).is_file():
            raise UserError(f"{teacher_dir}: no teacher vectors; run phase 1 first (hsae run RECIPE --phase 1 --run-dir DIR)")
        recipe = self.seed_recipe(self.arm_recipe(name, arm, teacher_dir), seed)
        recipe = attrs.evolve(recipe, train=attrs.evolve(recipe.train, lr=lr))
        if not with_metrics:
            recipe = attrs.evolve(recipe, metrics={})
        trainer = assemble(recipe, run_dir=arm_dir, dist=ctx.dist, prefix=f"arms.{name}: ")
        trainer.fit(resume=ctx.resume)
        return trainer

    def tuned_lr(self, name: str, ctx: RunContext) -> float:
        """The arm's learning rate: ``train.lr``, or the grid point chosen on validation data.

        Each grid point trains with the full budget on the tuning world and is scored once
        (see :mod:`hsae.tuning` for the rule and the files it keeps).
        """
        tuning = self.config.tuning
        if not tuning.lrs:
            return self.config.train.lr
        world = ctx.run_dir.sub(TUNING_DIR)
        return tune_lr(name, tuning, world,
                       lambda lr, run: self.fit_arm(name, tuning.seed, world, run, ctx, lr, with_metrics=False),
                       resume=ctx.resume, is_main=ctx.dist.is_main)

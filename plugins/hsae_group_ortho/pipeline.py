"""The ``group-ortho-comparison`` pipeline (seed 002): train every arm on the same data, then compare.

Phases:

1. ``train``: for each seed, build the data source once and train every arm on it
   (``seed-<s>/<arm>/``, a full run directory each: metrics.jsonl, checkpoints, model,
   SAEBench ``eval.json`` and the metrics' own files such as ``sparse_probing.json``).
2. ``report``: ``report.md``, ``report.json`` and plots over arms and seeds.

Like the teacher pipeline, an arm already trained is reused unless ``--resume`` is given.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from hsae.config.spec import DataSpec, LossSpec, MetricSpec, ModelSpec
from hsae.data import DataSource
from hsae.engine.assemble import assemble
from hsae.engine.rundir import RunDir
from hsae.engine.schema import TrainConfig, TrainRecipe
from hsae.pipeline import Pipeline, RunContext
from hsae_group_ortho.report import write_report
from hsae_group_ortho.schema import Arm, ComparisonRecipe


class GroupOrthoComparisonPipeline(Pipeline):
    """Seed 002: the group-orthogonal SAE against its baselines on one data source, over seeds."""

    name = "group-ortho-comparison"
    Config = ComparisonRecipe
    phases = ("train", "report")

    @classmethod
    def example_config(cls, workdir: Path) -> ComparisonRecipe:
        from hsae.plugins import get_registry

        source = get_registry().get("data", "hierarchical-synthetic")
        model = get_registry().get("model", "group-ortho-sae")
        grouped = ModelSpec("group-ortho-sae", model.Config(d_sae=32, n_groups=4, active_groups=2))
        return ComparisonRecipe(
            data=DataSpec("hierarchical-synthetic", source.example_config(workdir)),
            arms={"group_ortho": Arm(grouped, {"mse": LossSpec("mse"), "ortho": LossSpec("group-ortho")}),
                  "vanilla": Arm(ModelSpec("sae"))},
            metrics={"separation": MetricSpec("feature-separation")},
            train=TrainConfig(steps=10, batch_size=64, progress=False),
        )

    def seeds(self) -> list[int]:
        return list(self.config.seeds) or [self.config.train.seed]

    def arm_recipe(self, name: str, seed: int) -> TrainRecipe:
        """The training recipe of one arm and seed: shared tables plus the arm's own."""
        c, arm = self.config, self.config.arms[name]
        return TrainRecipe(data=c.data, model=arm.model, losses=arm.losses, metrics=c.metrics, callbacks=arm.callbacks,
                           train=attrs.evolve(c.train, seed=seed), eval=c.eval, name=f"{c.name}/{name}")

    def validate(self) -> None:
        for name in self.config.arms:
            assemble(self.arm_recipe(name, self.seeds()[0]), prefix=f"arms.{name}: ")

    def run_phase(self, phase: str, ctx: RunContext) -> None:
        if phase == "train":
            for seed in self.seeds():
                data = self.config.data.build(seed=seed)
                for name in self.config.arms:
                    self.train_arm(name, seed, data, ctx)
        elif phase == "report" and ctx.dist.is_main:
            write_report(self.config, ctx.run_dir, self.seeds())

    def train_arm(self, name: str, seed: int, data: DataSource, ctx: RunContext) -> None:
        arm_dir: RunDir = ctx.run_dir.sub(f"seed-{seed}").sub(name)
        if (arm_dir.root / "model.safetensors").is_file() and not ctx.resume:
            return  # trained by an earlier invocation; a --phase rerun reuses it
        trainer = assemble(self.arm_recipe(name, seed), run_dir=arm_dir, dist=ctx.dist, data=data, prefix=f"arms.{name}: ")
        trainer.fit(resume=ctx.resume)

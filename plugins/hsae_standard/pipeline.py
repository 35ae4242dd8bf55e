"""The default pipeline: train one SAE on one data source, then evaluate it."""

from __future__ import annotations

from pathlib import Path

from hsae.config.spec import DataSpec, ModelSpec
from hsae.engine.assemble import assemble
from hsae.engine.schema import TrainRecipe
from hsae.pipeline import Pipeline, RunContext


class TrainPipeline(Pipeline):
    """Train one SAE from ``[data]``, ``[model]``, ``[losses.*]`` and ``[train]``; evaluate ``[metrics.*]``."""

    name = "train"
    Config = TrainRecipe
    phases = ("train",)

    @classmethod
    def example_config(cls, workdir: Path) -> TrainRecipe:
        from hsae.plugins import get_registry

        source = get_registry().get("data", "tensor-file")
        return TrainRecipe(data=DataSpec("tensor-file", source.example_config(workdir)), model=ModelSpec("sae"))

    def validate(self) -> None:
        assemble(self.config)

    def run_phase(self, phase: str, ctx: RunContext) -> None:
        trainer = assemble(self.config, run_dir=ctx.run_dir, dist=ctx.dist)
        trainer.fit(resume=ctx.resume)

"""The ``bio-slots`` pipeline: seed 003 end to end.

Phases: ``data`` (``hsae data bios`` into the run), ``lm`` (the causal LM that must know the
facts, its QA accuracy; ``hsae_bios.lm_phase``), ``capture`` (answer-position activations at
every layer; ``hsae_bios.capture``), ``slots`` (per layer and seed: the slot SAE and the TopK
baseline; ``hsae_bios.slot_training``) and ``evaluate`` (``hsae_bios.layer_eval``, then the
report: ``report.md``, ``report.json`` and the PNGs; ``hsae_bios.bio_report``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from hsae.errors import UserError
from hsae.io import read_json, write_json
from hsae.pipeline import Pipeline, RunContext
from hsae_bios.recipe import BioSlotsRecipe

EVAL_FILE = "layer-{layer}.json"


class BioSlotsPipeline(Pipeline):
    """Biography QA with a slot-aligned SAE (seed 003): data, LM, capture, slot SAEs, evaluation."""

    name = "bio-slots"
    Config = BioSlotsRecipe
    phases = ("data", "lm", "capture", "slots", "evaluate")

    def validate(self) -> None:
        c = self.config
        if c.data.dir is not None and not (Path(c.data.dir) / "train_kg.json").is_file():
            from hsae.errors import Problem, RecipeError

            raise RecipeError([Problem(f"{c.data.dir}: no train_kg.json (write one with `hsae data bios`)",
                                       path="data.dir", file=self.recipe.file)])
        if c.lm.method == "sft":
            from hsae_lm.models import check_model

            check_model(c.lm.base_model)

    def run_phase(self, phase: str, ctx: RunContext) -> None:
        if not ctx.dist.is_main:
            return
        root = ctx.run_dir.root
        if phase == "data":
            from hsae_bios.lm_phase import generate

            generate(self.config, root)
        elif phase == "lm":
            from hsae_bios.lm_phase import train_and_score

            _needs(root, "data", self.config)
            train_and_score(self.config, root)
        elif phase == "capture":
            data = self._layer_data(root)
            for layer in self._layers(data):
                counts = data.capture(layer)
                print(f"layer {layer}: captured " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
        elif phase == "slots":
            from hsae_bios.slot_training import train_models

            data = self._layer_data(root)
            for layer in self._layers(data):
                train_models(self.recipe, data, layer, ctx)
        elif phase == "evaluate":
            self._evaluate(root)

    def _layer_data(self, root: Path):  # noqa: ANN202
        from hsae_bios.lm_phase import LM_DIR, data_dir
        from hsae_bios.slot_training import LayerData
        from hsae_lm.lm_train import is_trained

        model_dir = root / LM_DIR
        if not is_trained(model_dir):
            raise UserError(f"{model_dir}: no trained LM; run the lm phase first (--phase 2)")
        return LayerData(self.recipe, root, data_dir(self.config, root), model_dir)

    def _layers(self, data) -> list[int]:  # noqa: ANN001
        from hsae_bios.slot_training import layers_of

        return layers_of(self.recipe, data.model_dir)

    def _evaluate(self, root: Path) -> None:
        from hsae_bios.bio_report import write_report
        from hsae_bios.causal import intervention_rows
        from hsae_bios.layer_eval import evaluate_layer
        from hsae_lm.models import load_model, load_tokenizer

        data = self._layer_data(root)
        lm, tokenizer = load_model(str(data.model_dir), causal_lm=True), load_tokenizer(str(data.model_dir))
        rows = intervention_rows(lm, tokenizer, data.dataset, self.config.evaluate.intervention_rows)
        results = []
        for layer in self._layers(data):
            result = evaluate_layer(self.recipe, data, layer, lm, tokenizer, rows)
            write_json(root / "evaluation" / EVAL_FILE.format(layer=layer), result)
            results.append(result)
            print(f"layer {layer}: evaluated", file=sys.stderr)
        write_report(self.config, root, results)

    def headline(self, ctx: RunContext) -> list[str]:
        path = ctx.run_dir.root / "report.json"
        if not path.is_file():
            return []
        from hsae_bios.bio_report import headline

        return headline(read_json(path))


def _needs(root: Path, phase: str, config: BioSlotsRecipe) -> None:
    from hsae_bios.lm_phase import data_dir

    if not (data_dir(config, root) / "train_kg.json").is_file():
        raise UserError(f"{data_dir(config, root)}: no dataset; run the {phase} phase first (--phase 1)")

"""Steps 3-4 of ``bio-slots``: capture every layer, then train the slot SAEs and the TopK baseline.

Per layer ``L`` (hook ``resid:L``) and seed ``s``, under ``<run>/layers/layer-<L>/``:

* ``capture/<set>/``: the ``lm-activations`` caches of the three QA sets (``hsae_bios.capture``);
* ``slot-sae/seed-<s>/`` and ``topk/seed-<s>/``: ordinary hsae training runs (safetensors +
  ``cfg.json``), trained on the QA-train persons' training-template prompts minus the
  ``evaluate.held_out_fraction`` held out to score them; the seed sets initialization and batch
  order, and both models get the same epochs over the same rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hsae.config.converter import error_problems, make_converter
from hsae.engine.rundir import RunDir
from hsae.errors import Problem, RecipeError
from hsae_bios.capture import QA_SETS, adds_bos, source_config, value_vocabulary, write_prompts
from hsae_bios.lm_corpus import read_qa

LAYERS_DIR = "layers"
PROMPTS_DIR = "prompts"


def layers_of(recipe, model_dir: Path) -> list[int]:  # noqa: ANN001 - Recipe
    """The recipe's ``layers``, else every residual layer 0 .. n_blocks of the LM."""
    if recipe.config.layers is not None:
        return list(recipe.config.layers)
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    n = next(getattr(config, k) for k in ("num_hidden_layers", "n_layer") if isinstance(getattr(config, k, None), int))
    return list(range(n + 1))


class LayerData:
    """The prompt files and ``lm-activations`` tables of one run (one LM, one dataset)."""

    def __init__(self, recipe, run_root: Path, dataset: Path, model_dir: Path) -> None:  # noqa: ANN001
        self.recipe, self.run_root, self.dataset, self.model_dir = recipe, run_root, dataset, model_dir
        self.vocabulary = value_vocabulary(dataset)
        self._prepend_bos: bool | None = None

    def prompts(self, qa_set: str) -> Path:
        """The labelled prompt JSONL of a QA set (written on first use)."""
        path = self.run_root / PROMPTS_DIR / f"{qa_set}.jsonl"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_prompts(read_qa(self.dataset / QA_SETS[qa_set]), self.vocabulary, path)
        return path

    @property
    def prepend_bos(self) -> bool:
        if self._prepend_bos is None:
            from hsae_lm.models import load_tokenizer

            self._prepend_bos = not adds_bos(load_tokenizer(str(self.model_dir)))
        return self._prepend_bos

    def layer_dir(self, layer: int) -> RunDir:
        return RunDir(self.run_root / LAYERS_DIR / f"layer-{layer}")

    def table(self, layer: int, qa_set: str) -> dict[str, Any]:
        """The data table capturing ``qa_set`` at ``resid:<layer>``; the training set holds some rows out."""
        table = source_config(self.model_dir, layer, self.prompts(qa_set), self.layer_dir(layer).root / "capture" / qa_set,
                              self.prepend_bos, self.recipe.config.capture)
        if qa_set == "train":
            table["eval_fraction"] = self.recipe.config.evaluate.held_out_fraction
        return table

    def source(self, layer: int, qa_set: str):  # noqa: ANN201 - LMActivationsSource
        from hsae.config.spec import DataSpec

        spec = make_converter(self.recipe.base_dir).structure(self.table(layer, qa_set), DataSpec)
        return spec.build(seed=0)

    def capture(self, layer: int) -> dict[str, int]:
        """Capture (or reuse) every QA set at ``layer``; returns rows per set and split."""
        counts = {}
        for qa_set in QA_SETS:
            source = self.source(layer, qa_set)
            for split in (("train", "eval") if qa_set == "train" else ("train",)):
                counts[f"{qa_set}/{split}"] = source.store(split).n_rows
        return counts


def training_recipe(recipe, data: LayerData, layer: int, which: str, seed: int):  # noqa: ANN001, ANN201
    """The ``TrainRecipe`` of the slot SAE (``which = "slot-sae"``) or the TopK baseline at ``layer``."""
    from hsae.engine.schema import TrainRecipe

    config, doc = recipe.config, recipe.to_dict()
    n_rows = data.source(layer, "train").store("train").n_rows
    if which == "slot-sae":
        model = dict(doc["slot_sae"])
        if not model.get("n_values"):  # 0 (the default): one value per (attribute, answer) of the dataset
            model["n_values"] = len(data.vocabulary)
        opt = config.slot_train
        base = {"model": model, "losses": doc.get("slot_losses", {}), "callbacks": doc.get("slot_callbacks", {}),
                "initializers": doc.get("slot_initializers", {})}
    else:
        opt = config.topk
        base = {"model": {"type": "sae", "d_sae": opt.d_sae, "router": {"type": "topk", "k": opt.k}},
                "losses": {"mse": {"type": "mse"}}}
    steps = max(1, math.ceil(opt.epochs * n_rows / opt.batch_size))
    base.update(data=data.table(layer, "train"), metrics={},
                train={"steps": steps, "batch_size": opt.batch_size, "lr": opt.lr, "seed": seed, "progress": False,
                       "checkpoint_every": 0, "log_every": max(1, steps // 50)})
    try:
        return make_converter(recipe.base_dir).structure(base, TrainRecipe)
    except Exception as exc:  # cattrs exception groups: each becomes a located problem
        table = "slot_sae" if which == "slot-sae" else "topk"
        raise RecipeError([Problem(m, path=f"{table}: {p}", file=recipe.file) for p, m in error_problems(exc)]) from None


def train_models(recipe, data: LayerData, layer: int, ctx) -> None:  # noqa: ANN001 - RunContext
    """Every seed's slot SAE and TopK baseline at ``layer``; finished runs are kept."""
    from hsae.engine.assemble import assemble

    for which in ("slot-sae", "topk"):
        for seed in recipe.config.slot_train.seeds:
            run = data.layer_dir(layer).sub(which).sub(f"seed-{seed}")
            if (run.root / "model.safetensors").is_file() and not ctx.resume:
                continue
            train = training_recipe(recipe, data, layer, which, seed)
            trainer = assemble(train, run_dir=run, dist=ctx.dist, prefix=f"layers[{layer}].{which}: ")
            trainer.fit(resume=ctx.resume)


def model_dir(data: LayerData, layer: int, which: str, seed: int) -> Path:
    return data.layer_dir(layer).root / which / f"seed-{seed}"


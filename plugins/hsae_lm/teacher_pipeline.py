"""The ``teacher-lm`` pipeline: seed 001 on a real language model.

Phases: ``geometry`` (phase 1, below), ``interventions`` (steering along phase 1's parent
vectors, causal LMs only; ``hsae_lm.interventions``), ``train`` (the H-SAE arms on the
model's activations, random or teacher init; ``hsae_lm.arms``) and ``evaluate`` (the arms
side by side). ``train`` and ``evaluate`` do nothing when the recipe has no ``[arms]``.

Phase ``geometry`` loads the model (only to read its unembedding), builds the WordNet
concepts for its tokenizer, and writes into ``<run>/geometry/``:

* ``report.json``: the full validation report (projection test, angles, controls);
* ``geometry.md`` and ``summary.json``: the headline numbers side by side with the controls;
* ``concepts.json``: the concept hierarchy (names, token sets, parents);
* ``teacher-unembedding.safetensors``: parent vectors and child deltas estimated on the
  concept tokens except the words the ``lm-concepts`` metric scores and the validation words
  learning rates are chosen on (the test and validation words of the recipe's
  ``concept-prompts`` data, :func:`held_out_tokens`; all tokens when the recipe
  trains on other texts), mapped to the residual stream with ``Cov^{-1/2}``
  (``back_map = "dual"``), in the layout of ``hsae_teacher``'s initializer; its
  ``causal_metric`` is ``Cov``, the causal inner product of residual-stream directions
  (``<r, s>_C = r^T Cov s``).

Validation never opens the model: a recipe for a model that lives on another machine
(``recipes/teacher-lm-gemma.toml``) validates anywhere.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import attrs
import numpy as np
import torch

from hsae.config.spec import DataSpec, LossSpec, MetricSpec, ModelSpec
from hsae.engine.schema import EvalConfig, TrainConfig
from hsae.errors import UserError
from hsae.io import save_tensors, write_json, write_text
from hsae.pipeline import Pipeline, RunContext
from hsae.tuning import TuningConfig, tuning_problems
from hsae_lm.arms import LMArm, LMTargets, compare_arms, headline, train_arms, validate_arms
from hsae_lm.concepts import ConceptConfig
from hsae_lm.geometry import GeometryConfig, lm_geometry, render_markdown, summary, teacher_config, token_samples
from hsae_lm.interventions import InterventionConfig
from hsae_lm.models import check_model

GEOMETRY_DIR = "geometry"


@attrs.frozen
class TeacherLMRecipe:
    """The model, the concepts, phase 1's options, and optionally the H-SAE arms.

    ``model``: a local HF model directory, ``pkg:<package>`` or a hub name.
    ``wordnet_dir``: an nltk data directory with WordNet (default: ``hsae data wordnet``'s).
    ``data``, ``sae``, ``losses``, ``metrics``, ``train``, ``eval``: the training tables shared
    by every arm (``sae`` is the H-SAE, the ``model`` table of a training recipe).
    ``tuning``, ``seeds``, ``targets``: the fair protocol of ``hsae_lm.arms`` (per-arm lr chosen
    on the validation split, several seeds, targets judged on paired effects).
    """

    model: str
    concepts: ConceptConfig = ConceptConfig()
    geometry: GeometryConfig = GeometryConfig()
    interventions: InterventionConfig = InterventionConfig()
    data: DataSpec | None = None
    sae: ModelSpec | None = None
    losses: dict[str, LossSpec] = attrs.field(factory=dict)
    metrics: dict[str, MetricSpec] = attrs.field(factory=dict)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    arms: dict[str, LMArm] = attrs.field(factory=dict)
    tuning: TuningConfig = TuningConfig()
    seeds: tuple[int, ...] = ()  # empty: train.seed only; a seed sets the SAEs' init and batch order
    targets: LMTargets = LMTargets()
    device: str = "cpu"
    dtype: str = "float32"
    wordnet_dir: Path | None = None
    name: str = ""
    description: str = ""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not 0 < self.geometry.train_fraction < 1:
            problems.append(("geometry.train_fraction", "must be in (0, 1)"))
        if self.geometry.min_samples < 2:
            problems.append(("geometry.min_samples", "must be at least 2"))
        if self.geometry.random_tokens < 0:
            problems.append(("geometry.random_tokens", "must be at least 0"))
        if self.arms:
            for key in ("data", "sae"):
                if getattr(self, key) is None:
                    problems.append((key, "is required when there are [arms]"))
            if not self.losses:
                problems.append(("losses", "at least one loss is required when there are [arms]"))
            problems += tuning_problems(self.tuning, self.seeds, self.train.seed)
        return problems


class TeacherLMPipeline(Pipeline):
    """Seed 001's phase 1 on a real LM: WordNet concepts, unembedding geometry, controls."""

    name = "teacher-lm"
    Config = TeacherLMRecipe
    phases = ("geometry", "interventions", "train", "evaluate")

    @classmethod
    def example_config(cls, workdir: Path) -> TeacherLMRecipe:
        from hsae_lm import testing

        return TeacherLMRecipe(model=str(testing.tiny_gpt2_dir()))

    def validate(self) -> None:
        """Check the model reference without opening it; a model missing here is only a warning."""
        try:
            check_model(self.config.model)
        except UserError as exc:
            warnings.warn(f"{exc}; it must exist where the recipe runs", stacklevel=2)
        validate_arms(self.recipe)

    def run_phase(self, phase: str, ctx: RunContext) -> None:
        root = ctx.run_dir.root
        if phase == "train":  # every rank trains (DDP); the other phases run on the main process
            if self.config.arms:
                train_arms(self.recipe, root, ctx)
        elif not ctx.dist.is_main:
            return
        elif phase == "geometry":
            run_geometry(self.config, root / GEOMETRY_DIR)
        elif phase == "interventions":
            run_interventions(self.config, root / GEOMETRY_DIR)
        elif phase == "evaluate" and self.config.arms:
            compare_arms(self.recipe, root)

    def headline(self, ctx: RunContext) -> list[str]:
        return headline(ctx.run_dir.root)


def run_geometry(config: TeacherLMRecipe, out_dir: Path) -> dict:
    """Phase 1: returns the report after writing everything into ``out_dir``."""
    from hsae_lm.concepts import build_hierarchy
    from hsae_lm.models import load_model, load_tokenizer
    from hsae_lm.unembedding import unembedding
    from hsae_lm.wordnet_db import open_db

    tokenizer = load_tokenizer(config.model)
    hierarchy = build_hierarchy(tokenizer, config.concepts, open_db(config.wordnet_dir))
    if hierarchy.n_concepts < 2:
        raise UserError(f"only {hierarchy.n_concepts} WordNet concept(s) for this tokenizer; lower concepts.min_tokens")
    model = load_model(config.model, device=_device(config), dtype=config.dtype)
    gamma, which = unembedding(model, config.geometry.unembedding)
    del model
    report, whitening = lm_geometry(gamma, hierarchy, config.geometry, exclude_tokens=tokenizer.all_special_ids)
    report["config"].update(model=config.model, unembedding=which, back_map="dual")
    report["summary"] = summary(report)
    title = f"Phase 1 geometry: {config.model} ({which}), WordNet nouns"
    report["markdown"] = render_markdown(report, title)

    out_dir.mkdir(parents=True, exist_ok=True)
    hierarchy.save(out_dir / "concepts.json")
    write_json(out_dir / "report.json", report)
    write_json(out_dir / "summary.json", {"model": config.model, "unembedding": which, **report["summary"]})
    write_text(out_dir / "geometry.md", report["markdown"])
    save_lm_teacher(out_dir / "teacher-unembedding.safetensors", gamma, hierarchy, whitening, config.geometry,
                    held_out=held_out_tokens(config))
    return report


def held_out_tokens(config: TeacherLMRecipe) -> np.ndarray:
    """Token ids of the words training never sees: the test words of ``[data]``'s concept prompts
    (what ``lm-concepts`` scores) and its validation words (what learning rates are chosen on).

    Empty when ``[data]`` is absent or is not ``lm-activations`` with ``concept-prompts`` texts.
    """
    source = _concept_prompt_source(config.data)
    if source is None:
        return np.empty(0, dtype=np.int64)
    from hsae_lm.prompts import prompt_word_splits

    words = prompt_word_splits(source.hierarchy, seed=source.config.text_seed,
                               validation_fraction=source.config.validation_fraction)
    return np.union1d(words["test"], words["validation"])


def _concept_prompt_source(spec: DataSpec | None):  # noqa: ANN202 - an LMActivationsSource or None
    """The ``lm-activations`` source with ``concept-prompts`` texts inside ``spec`` (through wrappers), or None."""
    while spec is not None and spec.type != "lm-activations":
        spec = getattr(spec.resolved_config(), "source", None)
    if spec is None or spec.resolved_config().texts.source != "concept-prompts":
        return None
    return spec.build(seed=0)  # builds without opening the model; its hierarchy reads only the tokenizer


def teacher_samples(hierarchy, vocab_size: int, config: GeometryConfig,  # noqa: ANN001
                    held_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Phase 1's token samples (concept tokens plus random ones) without the ``held_out`` tokens."""
    tokens, labels = token_samples(hierarchy, vocab_size, config.random_tokens, [], config.seed)
    keep = ~np.isin(tokens, held_out)
    return tokens[keep], labels[keep]


def save_lm_teacher(path: Path, gamma: torch.Tensor, hierarchy, whitening, config: GeometryConfig,  # noqa: ANN001
                    *, held_out: np.ndarray) -> None:
    """The teacher on the concept tokens not ``held_out``, in residual-stream coordinates (dual back map)."""
    from hsae_teacher.estimator import estimate_teacher

    tokens, labels = teacher_samples(hierarchy, gamma.shape[0], config, held_out)
    teacher = estimate_teacher(gamma[torch.from_numpy(tokens)].double().numpy(), labels, hierarchy.parent_of,
                               whitening, teacher_config(config))
    save_tensors(path, {
        "concepts": torch.from_numpy(teacher.concepts.astype(np.int64)),
        "concept_vectors": torch.from_numpy(teacher.vectors_input).float(),
        "parents": torch.from_numpy(teacher.parents.astype(np.int64)),
        "parent_vectors": torch.from_numpy(teacher.parent_vectors_input).float(),
        "children": torch.from_numpy(teacher.children.astype(np.int64)),
        "child_parent": torch.from_numpy(teacher.child_parent.astype(np.int64)),
        "child_deltas": torch.from_numpy(teacher.deltas_input).float(),
        "causal_metric": torch.from_numpy(whitening.sqrt @ whitening.sqrt).float(),
        "whitening_inv_sqrt": torch.from_numpy(whitening.inv_sqrt).float(),
        "whitening_mean": torch.from_numpy(whitening.mean).float(),
    }, metadata={"metric": "unembedding", "back_map": "dual", "concept_names": json.dumps(list(hierarchy.names))})


def run_interventions(config: TeacherLMRecipe, out_dir: Path) -> dict:
    """Phase 2: steering along phase 1's parent vectors vs random directions (causal LMs only)."""
    from hsae.io import load_tensors
    from hsae_lm.concepts import ConceptHierarchy
    from hsae_lm.hooks import resolve
    from hsae_lm.interventions import intervention_report, render_markdown as render_interventions
    from hsae_lm.models import load_model, load_tokenizer

    teacher_path = out_dir / "teacher-unembedding.safetensors"
    if not teacher_path.is_file():
        raise UserError(f"{out_dir}: no phase-1 output; run phase 1 first (hsae run RECIPE --phase 1 --run-dir DIR)")
    model = load_model(config.model, device=_device(config), dtype=config.dtype)
    if model.get_output_embeddings() is None:
        note = f"Interventions skipped: {config.model} has no LM head (an encoder), so there are no logits to steer.\n"
        write_text(out_dir / "interventions.md", note)
        return {"skipped": note.strip()}
    teacher = load_tensors(teacher_path)
    hierarchy = ConceptHierarchy.load(out_dir / "concepts.json")
    point = resolve(model, config.interventions.hook)
    report = intervention_report(model, load_tokenizer(config.model), point, hierarchy, teacher,
                                 teacher["whitening_inv_sqrt"].double().numpy(), config.interventions)
    report["markdown"] = render_interventions(report)
    write_json(out_dir / "interventions.json", report)
    write_text(out_dir / "interventions.md", report["markdown"])
    return report


def _device(config: TeacherLMRecipe) -> str:
    from hsae.engine.device import pick_device

    return str(pick_device(config.device))

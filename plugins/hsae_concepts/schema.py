"""Recipe schema of the ``concept-features`` pipeline (s0 -> s1 -> s2 -> s4 -> s5)."""

from __future__ import annotations

from pathlib import Path

import attrs

from hsae.config.spec import LossSpec, ModelSpec
from hsae.engine.schema import EvalConfig, TrainConfig, check_training
from hsae_concepts.capture import CaptureOptions
from hsae_concepts.normalize import Method
from hsae_concepts.demo import traits


@attrs.frozen
class SentencesConfig:
    """s0: the labelled sentences and their split.

    demo: a shipped generated trait (dishonesty or aggression), used when path is not set
    path: a CSV or JSONL file with text and label (0-3), relative to the recipe
    test_fraction: share of each label held out for testing (ranking, normalization and classifiers never fit on it)
    split_seed: seeds the stratified split
    """

    demo: str = "dishonesty"
    path: Path | None = None
    test_fraction: float = 0.2
    split_seed: int = 0


def _default_losses() -> dict[str, LossSpec]:
    return {"mse": LossSpec("mse")}


@attrs.frozen
class SAEConfig:
    """s1's SAEs: one per layer, trained by hsae on the model's activations, or loaded.

    model: the SAE trained at every layer (any hsae model table)
    train: the [train] keys of every layer's SAE (defaults here: steps 500, batch_size 256, lr 1e-3, device cpu, no checkpoints)
    pretrained: layer -> an hsae run or SAELens-format directory (cfg.json + safetensors); those layers are not trained
    training_rows: token activations per layer kept for training (from the training sentences' non-special tokens)
    eval_fraction: share of those rows held out for the SAE's own metrics
    """

    model: ModelSpec = ModelSpec("sae")
    losses: dict[str, LossSpec] = attrs.field(factory=_default_losses)
    train: TrainConfig = TrainConfig(steps=500, batch_size=256, lr=1e-3, progress=False, checkpoint_every=0,
                                     device="cpu")
    eval: EvalConfig = EvalConfig(batches=2, batch_size=256)
    pretrained: dict[str, Path] = attrs.field(factory=dict)
    training_rows: int = 50_000
    eval_fraction: float = 0.1


@attrs.frozen
class ClassifyConfig:
    """s5: the classifiers.

    folds: stratified cross-validation folds (fewer when a label has fewer training rows)
    c: inverse regularization strength of both classifiers
    """

    folds: int = 5
    c: float = 1.0


@attrs.frozen
class ConceptFeaturesRecipe:
    """From labelled sentences to a trained probe: s0 sentences, SAEs, s1 feature files,
    s2 ranked features, s4 datasets, s5 classifiers.

    model: a local HF model directory, pkg:<package>, smollm2, or a hub name
    layers: the layers whose residual stream (after block L) is stored and given an SAE
    sparse: store the SAE activations sparsely (CSR) instead of the seed's dense array
    top_features: rows of ranked_features.csv
    feature_datasets: how many top-ranked features get embedding-to-feature and hidden-to-feature datasets
    normalize: normalization of every s4 dataset (fitted on the training split)
    device: where the language model runs (auto, cpu, cuda)
    """

    sentences: SentencesConfig = SentencesConfig()
    model: str = "smollm2"
    layers: tuple[int, ...] = (0, 4, 8, 12, 16, 20, 24, 29)
    capture: CaptureOptions = CaptureOptions()
    sae: SAEConfig = SAEConfig()
    sparse: bool = False
    top_features: int = 100
    feature_datasets: int = 1
    normalize: Method = "standardize"
    classify: ClassifyConfig = ClassifyConfig()
    device: str = "cpu"
    dtype: str = "float32"
    name: str = ""
    description: str = ""

    def check(self) -> list[tuple[str, str]]:
        """Problems visible without loading anything."""
        problems = check_training(self.sae.train, (), self.sae.losses, prefix="sae.")
        s = self.sentences
        if s.path is None and s.demo not in traits():
            problems.append(("sentences.demo", f"no demo trait {s.demo!r}; traits: {', '.join(traits())}"))
        if s.path is not None and not Path(s.path).is_file():
            problems.append(("sentences.path", f"file not found: {s.path}"))
        if not 0 < s.test_fraction < 1:
            problems.append(("sentences.test_fraction", f"must be in (0, 1), got {s.test_fraction}"))
        if not self.layers:
            problems.append(("layers", "needs at least one layer"))
        if len(set(self.layers)) != len(self.layers) or any(layer < 0 for layer in self.layers):
            problems.append(("layers", f"must be distinct layers >= 0, got {list(self.layers)}"))
        for key, path in self.sae.pretrained.items():
            if not key.isdigit() or int(key) not in self.layers:
                problems.append((f"sae.pretrained.{key}", f"must be one of layers {list(self.layers)}"))
            elif not Path(path).is_dir():
                problems.append((f"sae.pretrained.{key}", f"no such directory: {path}"))
        for key in ("top_features", "feature_datasets"):
            if getattr(self, key) < 0:
                problems.append((key, f"must be >= 0, got {getattr(self, key)}"))
        if self.capture.batch_size < 1 or self.capture.context_length < 2:
            problems.append(("capture", "batch_size must be >= 1 and context_length >= 2"))
        if self.classify.folds < 2:
            problems.append(("classify.folds", f"must be at least 2, got {self.classify.folds}"))
        if not 0 < self.sae.eval_fraction < 1 or self.sae.training_rows < 1:
            problems.append(("sae", "eval_fraction must be in (0, 1) and training_rows >= 1"))
        return problems

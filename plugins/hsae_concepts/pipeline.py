"""The ``concept-features`` pipeline: labelled sentences to a trained probe (seed 004, s0-s5).

Phases, each reading the previous ones' outputs from the run directory:

1. ``sentences`` (s0): read and check the sentences, report the class balance, split them
   (stratified) -> ``sentences/sentences.csv``, ``sentences/split.json``;
2. ``saes``: capture every layer's residual stream at the training sentences' non-special
   tokens (one forward pass per batch) and train one SAE per layer with hsae's trainer
   -> ``saes/layer_LL/`` (run directories; layers in ``sae.pretrained`` are skipped);
3. ``features`` (s1): ``features/sentence_NNNNNN.npz`` and ``features/features.json``;
4. ``rank`` (s2): ``ranked_features.csv``, on the training sentences only;
5. ``datasets`` (s4): ``datasets/h<L>_to_concept.npz`` per layer, the embedding baseline,
   and embedding/hidden-to-feature datasets for the top features, all with the stored split;
6. ``classify`` (s5): ``classifiers.json`` and ``accuracy_by_layer.png``.

Finished SAEs and a finished feature directory are reused by a rerun unless ``--resume``
is given (which retrains and rewrites them).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from hsae.config.spec import DataSpec
from hsae.engine.assemble import assemble
from hsae.engine.schema import TrainRecipe
from hsae.errors import Problem, RecipeError, UserError
from hsae.io import atomic_write, read_json, write_json, write_text
from hsae.pipeline import Pipeline, RunContext
from hsae_concepts import demo
from hsae_concepts.labels import Sentence, class_balance, read_sentences, stratified_split
from hsae_concepts.schema import ConceptFeaturesRecipe


class ConceptFeaturesPipeline(Pipeline):
    """Seed 004 end to end: sentences, per-layer SAEs, feature files, ranked features, datasets, classifiers."""

    name = "concept-features"
    Config = ConceptFeaturesRecipe
    phases = ("sentences", "saes", "features", "rank", "datasets", "classify")

    @classmethod
    def example_config(cls, workdir: Path) -> ConceptFeaturesRecipe:
        import attrs

        from hsae.config.spec import ModelSpec, RouterSpec
        from hsae.plugins import get_registry
        from hsae_lm.testing import tiny_gpt2_dir

        registry = get_registry()
        sae = registry.get("model", "sae").Config(d_sae=32, router=RouterSpec("topk", registry.get("router", "topk").Config(k=4)))
        config = ConceptFeaturesRecipe(model=str(tiny_gpt2_dir()), layers=(0, 1))
        return attrs.evolve(config, sae=attrs.evolve(config.sae, model=ModelSpec("sae", sae),
                                                     train=attrs.evolve(config.sae.train, steps=5)))

    # -- validation ----------------------------------------------------------------------------

    def validate(self) -> None:
        c = self.config
        problems: list[Problem] = []
        try:
            hidden, n_blocks = _model_shape(c.model)
        except UserError as exc:
            raise RecipeError([self._problem("model", str(exc))]) from None
        if n_blocks is not None and any(layer >= n_blocks for layer in c.layers):
            problems.append(self._problem("layers", f"the model has blocks 0-{n_blocks - 1}, got {list(c.layers)}"))
        if hidden is not None and self._layers_to_train():
            c.sae.model.build(d_in=hidden)  # a bad SAE table is a located RecipeError
        for key, path in c.sae.pretrained.items():
            from hsae_concepts.saes import LayerSAE

            try:
                sae = LayerSAE(path)
            except UserError as exc:
                problems.append(self._problem(f"sae.pretrained.{key}", str(exc)))
                continue
            if hidden is not None and sae.d_in != hidden:
                problems.append(self._problem(f"sae.pretrained.{key}", f"SAE d_in {sae.d_in} != the model's width {hidden}"))
        if problems:
            raise RecipeError(problems)

    def _problem(self, path: str, message: str) -> Problem:
        """A problem at ``path``, at its recipe line when the recipe was loaded from text (specs carry its locator)."""
        locator = self.config.sae.model.locator
        return locator.problem(path, message) if locator is not None else Problem(message, path=path, file=self.recipe.file)

    def _layers_to_train(self) -> list[int]:
        return [layer for layer in self.config.layers if str(layer) not in self.config.sae.pretrained]

    # -- phases --------------------------------------------------------------------------------

    def run_phase(self, phase: str, ctx: RunContext) -> None:
        if not ctx.dist.is_main:
            return
        root = ctx.run_dir.root
        getattr(self, f"_{phase}")(root, ctx)

    def _sentences(self, root: Path, ctx: RunContext) -> None:
        s = self.config.sentences
        source = s.path if s.path is not None else demo.demo_path(s.demo)
        sentences = read_sentences(source)
        labels = np.array([x.label for x in sentences])
        train, test = stratified_split(labels, s.test_fraction, s.split_seed)
        balance = class_balance(labels)
        write_text(root / "sentences" / "sentences.csv", demo.to_csv(sentences))
        write_json(root / "sentences" / "split.json", {
            "source": str(source), "generated_demo": s.path is None, "class_balance": balance,
            "test_fraction": s.test_fraction, "split_seed": s.split_seed,
            "train": train.tolist(), "test": test.tolist()})
        _note(f"s0: {len(sentences)} sentences from {source}; per label 0-3: {list(balance.values())}; "
              f"{len(train)} train / {len(test)} test (stratified)")

    def _saes(self, root: Path, ctx: RunContext) -> None:
        layers = self._layers_to_train()
        if not layers:
            return
        todo = [layer for layer in layers if ctx.resume or not (root / _sae_dir(layer) / "model.safetensors").is_file()]
        if not todo:
            return
        sentences, split = self._load_sentences(root)
        folder = root / "saes" / "activations"
        if not all((folder / f"layer_{layer:02d}.npy").is_file() for layer in todo):
            self._capture_training_rows([sentences[i] for i in split["train"]], todo, folder)
        c = self.config.sae
        source_cls = _registry().get("data", "tensor-file")
        for layer in todo:
            data = DataSpec("tensor-file", source_cls.Config(path=folder / f"layer_{layer:02d}.npy",
                                                             eval_fraction=c.eval_fraction))
            recipe = TrainRecipe(data=data, model=c.model, losses=c.losses, train=c.train, eval=c.eval,
                                 name=f"{self.config.name or self.name}/layer {layer}")
            run_dir = ctx.run_dir.sub("saes").sub(f"layer_{layer:02d}")
            _note(f"training the layer-{layer} SAE -> {run_dir.root}")
            assemble(recipe, run_dir=run_dir, dist=ctx.dist, prefix="sae.").fit(resume=False)

    def _capture_training_rows(self, sentences: list[Sentence], layers: list[int], folder: Path) -> None:
        """Non-special-token hidden states of ``layers`` (one pass per batch), up to ``training_rows`` each."""
        from hsae_concepts.capture import LayerCapture
        from hsae_lm.models import load_model, load_tokenizer

        c = self.config
        model = load_model(c.model, device=c.device, dtype=c.dtype)
        capture = LayerCapture(model, load_tokenizer(c.model), layers, c.capture)
        rows: list[list[np.ndarray]] = [[] for _ in layers]
        for captured in capture([s.text for s in sentences]):
            for i in range(len(layers)):
                rows[i].append(captured.hidden[i][~captured.special])
        folder.mkdir(parents=True, exist_ok=True)
        for i, layer in enumerate(layers):
            block = np.concatenate(rows[i])[: c.sae.training_rows]
            atomic_write(folder / f"layer_{layer:02d}.npy", lambda tmp: _save_npy(tmp, block))
        _note(f"captured {len(block)} token activations per layer ({len(sentences)} training sentences) at "
              f"layers {layers} for SAE training")

    def _features(self, root: Path, ctx: RunContext) -> None:
        from hsae_concepts.features import write_features
        from hsae_concepts.saes import LayerSAE

        out = root / "features"
        if (out / "features.json").is_file() and not ctx.resume:
            return
        shutil.rmtree(out, ignore_errors=True)
        c = self.config
        sentences, split = self._load_sentences(root)
        dirs = {layer: Path(c.sae.pretrained.get(str(layer), root / _sae_dir(layer))) for layer in c.layers}
        saes = {layer: LayerSAE(path) for layer, path in dirs.items()}
        write_features(sentences, c.model, saes, out, options=c.capture, sparse=c.sparse, device=c.device,
                       dtype=c.dtype, extra={"sentences": split["source"], "split": split})
        _note(f"s1: {len(sentences)} feature files -> {out}")

    def _rank(self, root: Path, ctx: RunContext) -> None:
        from hsae_concepts.ranking import rank_features, write_ranked_csv
        from hsae_concepts.reader import open_directory

        _, split = self._load_sentences(root)
        ranked = rank_features(open_directory(root / "features"), set(split["train"]), self.config.top_features)
        write_ranked_csv(ranked, root / "ranked_features.csv")
        if ranked:
            top = ranked[0]
            _note(f"s2: top feature layer {top.layer} #{top.feature_id} (r = {top.correlation:+.3f}) -> "
                  f"{root / 'ranked_features.csv'}")

    def _datasets(self, root: Path, ctx: RunContext) -> None:
        from hsae_concepts.datasets import DatasetSpec, build_dataset, save_dataset
        from hsae_concepts.reader import open_directory
        from hsae_concepts.sweep import write_layer_datasets

        c, s = self.config, self.config.sentences
        info = open_directory(root / "features")
        folder = root / "datasets"
        write_layer_datasets(info, c.layers, folder, test_fraction=s.test_fraction, split_seed=s.split_seed,
                             normalize=c.normalize)
        for layer, feature in _top_features(root / "ranked_features.csv", c.feature_datasets):
            for strategy, name in (("embedding-to-feature", f"emb_to_l{layer}_f{feature}.npz"),
                                   ("hidden-to-feature", f"h{layer}_to_f{feature}.npz")):
                spec = DatasetSpec(strategy, target_layer=layer, target_feature=feature, normalize=c.normalize,
                                   test_fraction=s.test_fraction, split_seed=s.split_seed)
                save_dataset(build_dataset(info, spec), folder / name, info.directory)
        _note(f"s4: datasets -> {folder}")

    def _classify(self, root: Path, ctx: RunContext) -> None:
        from hsae_concepts.sweep import classify_layer_datasets

        c = self.config
        title = f"{c.sentences.demo if c.sentences.path is None else Path(c.sentences.path).stem} on {c.model}"
        classify_layer_datasets(root / "datasets", c.layers, root, folds=c.classify.folds, c=c.classify.c,
                                seed=c.sentences.split_seed, title=title)
        _note(f"s5: {root / 'classifiers.json'}, {root / 'accuracy_by_layer.png'}")

    def _load_sentences(self, root: Path) -> tuple[list[Sentence], dict]:
        path = root / "sentences" / "split.json"
        if not path.is_file():
            raise UserError(f"{path} is missing: run the 'sentences' phase first")
        return read_sentences(root / "sentences" / "sentences.csv"), read_json(path)

    def headline(self, ctx: RunContext) -> list[str]:
        path = ctx.run_dir.root / "classifiers.json"
        if not path.is_file():
            return []
        from hsae_concepts.classifiers import headline_score

        summary = read_json(path)
        layers = {int(k): v for k, v in summary["layers"].items()}
        best = max(layers, key=lambda k: headline_score(layers[k], "logreg"))
        base = summary["embedding_baseline"]
        lines = [f"{summary['score']} (logreg / linear SVM): best layer {best}: "
                 f"{headline_score(layers[best], 'logreg'):.3f} / {headline_score(layers[best], 'linear_svm'):.3f}; "
                 f"embedding baseline {headline_score(base, 'logreg'):.3f} / {headline_score(base, 'linear_svm'):.3f}; "
                 f"majority class {base['majority']:.3f}"]
        top = _top_features(ctx.run_dir.root / "ranked_features.csv", 1)
        if top:
            lines.append(f"top feature: layer {top[0][0]} #{top[0][1]} (ranked_features.csv)")
        return lines


def _sae_dir(layer: int) -> str:
    return f"saes/layer_{layer:02d}"


def _top_features(path: Path, n: int) -> list[tuple[int, int]]:
    """``(layer, feature_id)`` of the first ``n`` rows of ``ranked_features.csv``."""
    import csv

    if not path.is_file() or n == 0:
        return []
    with open(path, newline="") as f:
        return [(int(r["layer"]), int(r["feature_id"])) for r, _ in zip(csv.DictReader(f), range(n))]


def _model_shape(ref: str) -> tuple[int | None, int | None]:
    """``(hidden size, blocks)`` from the model's config, or Nones when it is not local yet (a hub name, or
    SmolLM2 before its one-time conversion); a UserError when the reference cannot resolve."""
    from hsae_lm import gguf_models
    from hsae_lm.models import check_model, resolve_model

    check_model(ref)
    gguf = gguf_models.by_reference(ref)
    if gguf is not None and not gguf_models.is_converted(gguf_models.default_dest(gguf)):
        return None, None
    resolved = Path(resolve_model(ref))
    if not resolved.is_dir():
        return None, None
    config = read_json(resolved / "config.json")
    hidden = next((config[k] for k in ("hidden_size", "n_embd", "d_model") if isinstance(config.get(k), int)), None)
    blocks = next((config[k] for k in ("num_hidden_layers", "n_layer", "num_layers") if isinstance(config.get(k), int)),
                  None)
    return hidden, blocks


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add .npy to a temporary name
        np.save(f, array)


def _registry():  # noqa: ANN202
    from hsae.plugins import get_registry

    return get_registry()


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

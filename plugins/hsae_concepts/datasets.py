"""s4: classifier datasets from a feature directory (``hsae generate-datasets``, seed 004).

Strategies (input -> target, one sample per sentence file, at its final token):

* ``embedding-to-feature``: ``embeddings`` -> one SAE latent of ``--target-layer``;
* ``hidden-to-feature``: ``hidden_states[target_layer]`` -> a latent of the same layer's SAE;
* ``hidden-to-concept``: ``hidden_states`` of one layer, or several concatenated in the
  order given -> the concept strength label 0-3;
* ``embedding-to-concept`` (not a seed flag; s5's embedding baseline): ``embeddings`` -> label.

The output ``.npz`` holds the keys the seed documents (``X``, ``y``, ``meta_*``,
``norm_*``), every one a plain array, so ``np.load(path, allow_pickle=False)`` reads it.
``meta_sentence_indices`` gives each row's file number. With a ``test_fraction``, rows are
split (stratified by concept label, seeded), the normalization is fitted on the training
rows only, and ``split_train_indices`` / ``split_test_indices`` (row positions in ``X``)
are stored, so a classifier trained on them never saw its test rows' statistics. A JSON
sidecar (``<output>.json``) repeats the metadata with the feature directory's provenance.
The file is written to a temporary name and renamed, so a failed run leaves no output.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from hsae.errors import UserError
from hsae_concepts import normalize
from hsae_concepts.choices import SEED_STRATEGIES
from hsae_concepts.featurefile import read_sidecar
from hsae_concepts.labels import stratified_split
from hsae_concepts.reader import DirInfo, FinalTokens, Request, open_directory, read_final_tokens

STRATEGIES = (*SEED_STRATEGIES, "embedding-to-concept")


@attrs.frozen
class DatasetSpec:
    """What to build: a strategy, its layers or target latent, the normalization and the split."""

    strategy: str
    layers: tuple[int, ...] = ()  # hidden-to-concept inputs
    target_layer: int | None = None
    target_feature: int | None = None
    normalize: normalize.Method = "standardize"
    test_fraction: float = 0.0  # 0: normalization fitted on every row (the seed's behaviour)
    split_seed: int = 0

    def check(self) -> None:
        """Argument problems, as the seed's usage would report them."""
        if self.strategy not in STRATEGIES:
            raise UserError(f"unknown strategy {self.strategy!r}; choose from {', '.join(SEED_STRATEGIES)}")
        if self.strategy.endswith("-to-feature"):
            if self.target_layer is None or self.target_feature is None:
                raise UserError(f"--strategy {self.strategy} needs --target-layer and --target-feature")
        elif self.strategy == "hidden-to-concept" and not self.layers:
            raise UserError("--strategy hidden-to-concept needs --layer (one layer) or --layers (several)")
        if not 0 <= self.test_fraction < 1:
            raise UserError(f"--test-fraction must be in [0, 1), got {self.test_fraction}")

    @property
    def input_source(self) -> str:
        return "embeddings" if self.strategy.startswith("embedding-") else "hidden_states"

    @property
    def input_layers(self) -> tuple[int, ...]:
        if self.input_source == "embeddings":
            return ()
        return (self.target_layer,) if self.strategy == "hidden-to-feature" else self.layers

    def request(self) -> Request:
        feature = (self.target_layer, self.target_feature) if self.strategy.endswith("-to-feature") else None
        return Request(embeddings=self.input_source == "embeddings", hidden_layers=self.input_layers, feature=feature)


@attrs.frozen
class Dataset:
    """``X``, ``y`` and every other key of the output file."""

    X: np.ndarray
    y: np.ndarray
    extra: dict[str, np.ndarray]  # meta_*, norm_*, split_*

    def arrays(self) -> dict[str, np.ndarray]:
        return {"X": self.X, "y": self.y, **self.extra}


def build_dataset(source: Path | DirInfo, spec: DatasetSpec) -> Dataset:
    """Read the final tokens ``spec`` needs from ``source`` and assemble the dataset."""
    spec.check()
    info = source if isinstance(source, DirInfo) else open_directory(Path(source))
    tokens = read_final_tokens(info, spec.request())
    x = _inputs(tokens, spec)
    y = tokens.labels if tokens.feature is None else tokens.feature
    meta = {
        "meta_strategy": np.array(spec.strategy),
        "meta_input_source": np.array(spec.input_source),
        "meta_input_layers": np.asarray(spec.input_layers, dtype=np.int64),
        "meta_input_dims": np.array(x.shape[1], dtype=np.int64),
        "meta_n_samples": np.array(len(x), dtype=np.int64),
        "meta_sentence_indices": tokens.sentence_indices,
        "meta_concept_labels": tokens.labels,
        "meta_input_path": np.array(str(info.directory)),
    }
    if tokens.feature is not None:
        meta.update(meta_target_layer=np.array(spec.target_layer, dtype=np.int64),
                    meta_target_feature=np.array(spec.target_feature, dtype=np.int64),
                    meta_average_l0=np.array(info.average_l0(spec.target_layer), dtype=np.float64))
    fit_rows, split = _split(tokens.labels, spec)
    norm = normalize.fit(x[fit_rows], spec.normalize)
    meta["meta_norm_fitted_on"] = np.array("train split" if spec.test_fraction else "all samples")
    return Dataset(norm.apply(x), y, {**meta, **norm.arrays(), **split})


def _inputs(tokens: FinalTokens, spec: DatasetSpec) -> np.ndarray:
    if spec.input_source == "embeddings":
        return tokens.embeddings
    return tokens.hidden.reshape(len(tokens.hidden), -1)  # layers concatenated in the order given


def _split(labels: np.ndarray, spec: DatasetSpec) -> tuple[np.ndarray | slice, dict[str, np.ndarray]]:
    """The rows the normalization is fitted on, and the split keys to store (none without a split)."""
    if not spec.test_fraction:
        return slice(None), {}
    if len(labels) < 2:
        raise UserError(f"only {len(labels)} samples: too few to split off a test set")
    train, test = stratified_split(labels, spec.test_fraction, spec.split_seed)
    return train, {"split_train_indices": train.astype(np.int64), "split_test_indices": test.astype(np.int64),
                   "meta_test_fraction": np.array(spec.test_fraction), "meta_split_seed": np.array(spec.split_seed)}


def save_dataset(dataset: Dataset, output: Path, input_dir: Path | None = None) -> Path:
    """Write the ``.npz`` (atomically, parent folders created) and its JSON sidecar."""
    from hsae.io import atomic_write, write_json  # here: building a dataset needs no torch

    output = Path(output)
    arrays = dataset.arrays()
    atomic_write(output, lambda tmp: _savez(tmp, arrays))
    sidecar = {key: value.tolist() for key, value in arrays.items() if key.startswith("meta_") or key == "norm_method"}
    sidecar["X_shape"], sidecar["y_shape"] = list(dataset.X.shape), list(dataset.y.shape)
    provenance = read_sidecar(input_dir) if input_dir is not None else None
    if provenance is not None:
        sidecar["features"] = {k: v for k, v in provenance.items() if k != "split"}
    write_json(output.with_suffix(".json"), sidecar)
    return output


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)

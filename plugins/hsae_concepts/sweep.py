"""The per-layer comparison: hidden-to-concept datasets at each layer plus the embedding
baseline (s4), then both classifiers on each (s5).

The datasets are written to ``<out>/datasets/`` (``h<L>_to_concept.npz`` and
``embedding_to_concept.npz``), each with the same stratified split and a normalization
fitted on its training rows; ``<out>/classifiers.json`` and ``accuracy_by_layer.png`` follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hsae_concepts.classifiers import evaluate_file, write_sweep
from hsae_concepts.datasets import DatasetSpec, build_dataset, save_dataset
from hsae_concepts.reader import DirInfo

BASELINE = "embedding_to_concept.npz"


def layer_dataset_name(layer: int) -> str:
    return f"h{layer}_to_concept.npz"


def write_layer_datasets(info: DirInfo, layers: Sequence[int], folder: Path, *, test_fraction: float,
                         split_seed: int, normalize: str = "standardize") -> None:
    """One hidden-to-concept dataset per layer and the embedding-to-concept baseline, in ``folder``."""
    common = {"test_fraction": test_fraction, "split_seed": split_seed, "normalize": normalize}
    specs = {BASELINE: DatasetSpec("embedding-to-concept", **common)}
    specs.update({layer_dataset_name(layer): DatasetSpec("hidden-to-concept", layers=(layer,), **common)
                  for layer in layers})
    for name, spec in specs.items():
        save_dataset(build_dataset(info, spec), Path(folder) / name, info.directory)


def classify_layer_datasets(folder: Path, layers: Sequence[int], out_dir: Path, *, folds: int = 5, c: float = 1.0,
                            seed: int = 0, title: str = "") -> dict:
    """Both classifiers on every dataset :func:`write_layer_datasets` wrote; the report in ``out_dir``."""
    results = {layer: evaluate_file(Path(folder) / layer_dataset_name(layer), folds=folds, c=c, seed=seed)
               for layer in layers}
    baseline = evaluate_file(Path(folder) / BASELINE, folds=folds, c=c, seed=seed)
    return write_sweep(results, baseline, out_dir, title=title)

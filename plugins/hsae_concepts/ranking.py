"""s2: rank SAE latents by how strongly their final-token activation tracks the concept label.

``score`` is the absolute Pearson correlation, over the *training* sentences only, between
a latent's activation at the final token and the concept strength 0-3 (a latent that never
fires, or fires equally everywhere, scores 0); ``correlation`` keeps its sign. Ranking on
every labelled sentence, as the original did, lets the test sentences choose the features
that are later tested on them.

``ranked_features.csv`` columns: ``rank,layer,average_l0,feature_id,score,correlation``.
``feature_id`` is the fourth column, so the seed's Workflow 5 (``cut -d',' -f2`` for the
layer, ``-f4`` for the feature) reads the right fields.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import attrs
import numpy as np

from hsae.io import write_text
from hsae_concepts.reader import DirInfo, Request, read_final_tokens

COLUMNS = ("rank", "layer", "average_l0", "feature_id", "score", "correlation")


@attrs.frozen
class RankedFeature:
    layer: int
    feature_id: int
    average_l0: float
    correlation: float

    @property
    def score(self) -> float:
        return abs(self.correlation)


def rank_features(info: DirInfo, train_sentences: set[int] | None, top: int = 100) -> list[RankedFeature]:
    """The ``top`` latents over all layers, best first; one streamed pass over the files per layer."""
    found: list[RankedFeature] = []
    for layer in info.layers:
        tokens = read_final_tokens(info, Request(activation_layers=(layer,)))
        keep = np.ones(len(tokens.labels), dtype=bool) if train_sentences is None else \
            np.isin(tokens.sentence_indices, sorted(train_sentences))
        corr = correlations(tokens.activations[keep, 0], tokens.labels[keep].astype(np.float64))
        best = np.argsort(-np.abs(corr), kind="stable")[:top]
        found += [RankedFeature(layer, int(f), info.average_l0(layer), float(corr[f])) for f in best]
    return sorted(found, key=lambda r: -r.score)[:top]


def correlations(acts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``acts`` with ``labels`` (0 for constant columns)."""
    a = acts.astype(np.float64) - acts.mean(0)
    b = labels - labels.mean()
    denom = np.sqrt((a * a).sum(0) * (b * b).sum())
    return np.divide(a.T @ b, denom, out=np.zeros(acts.shape[1]), where=denom > 0)


def write_ranked_csv(ranked: list[RankedFeature], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for rank, r in enumerate(ranked, 1):
        writer.writerow([rank, r.layer, f"{r.average_l0:g}", r.feature_id, f"{r.score:.6f}", f"{r.correlation:.6f}"])
    return write_text(path, buffer.getvalue())

"""Ground-truth metrics for any SAE trained on a source that knows its features.

Definitions follow SAELens ``sae_lens.synthetic.evals`` (SynthSAEBench) where it has one:

* ``mcc``: mean ``|cos|`` between decoder directions and true directions under the optimal
  one-to-one (Hungarian) matching; ``mcc_level_<k>`` restricts the mean to matched true
  features at read-out level ``k``. ``uniqueness``: distinct true features among each
  latent's best match (argmax ``|cos|``), divided by the number of latents.
* ``precision``/``recall``/``f1``: each latent is a detector of its best-matching true
  feature (argmax ``|cos|``); firing counts come from the eval batches; means over all
  latents (0 for a latent with an undefined ratio, as in SAELens).
* ``l0``, ``true_l0``, ``l0_ratio``, ``dead_latents`` (latents that never fired in eval).
* ``shrinkage``: mean ``||x_hat|| / ||x||`` over samples with ``||x|| > 1e-6``.
* absorption on ground truth: true features are matched one-to-one to latents (Hungarian).
  For every read-out edge parent -> child with both matched, ``r_child`` is the fraction of
  samples with the child active on which the parent's latent fires, ``r_alone`` the same
  on samples with the parent active and that child inactive. An edge is evaluated when
  both sample counts reach ``min_count`` and ``r_alone >= threshold`` (the parent's latent
  does track its parent); it is absorbed when ``r_child < threshold``.
  ``absorbed_edge_fraction`` = absorbed / evaluated (NaN when none is evaluated).

The metrics record only which latents and features fired (sparse), so an eval pass
costs ``O(nnz)`` memory; matching happens once in ``compute`` and is cached.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from hsae.errors import UserError
from hsae.metric import EvalContext, Metric

if TYPE_CHECKING:
    from hsae.data import Batch, GroundTruth
    from hsae.model import SAE, SAEOutput


# --------------------------------------------------------------------------- matching
def abs_cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """``|cos|`` between every row of ``a`` and every row of ``b``: ``(len(a), len(b))``."""
    a = torch.nn.functional.normalize(a.detach().float().cpu(), dim=1)
    b = torch.nn.functional.normalize(b.detach().float().cpu(), dim=1)
    return (a @ b.T).abs().numpy()


def _fingerprint(t: torch.Tensor) -> str:
    return hashlib.blake2b(t.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()


@attrs.frozen
class Matching:
    """Latents vs true features: the Hungarian pairs and each latent's best match."""

    latent: np.ndarray  # (k,) latent of each matched pair
    feature: np.ndarray  # (k,) true feature of each matched pair
    cosine: np.ndarray  # (k,) |cos| of each pair
    best_feature: np.ndarray  # (d_sae,) argmax-|cos| true feature of each latent
    n_features: int

    def latent_of_feature(self) -> np.ndarray:
        """``(n_features,)`` matched latent of each true feature, -1 if unmatched."""
        out = np.full(self.n_features, -1, dtype=np.int64)
        out[self.feature] = self.latent
        return out


_cache: dict[tuple[str, str], Matching] = {}


def match(decoder: torch.Tensor, truth: torch.Tensor) -> Matching:
    """Match decoder directions ``(d_sae, d)`` to true directions ``(n_features, d)``.

    The last result is cached (keyed by the tensors' contents), so several metrics of one
    evaluation share one Hungarian solve.
    """
    key = (_fingerprint(decoder), _fingerprint(truth))
    if key not in _cache:
        cos = abs_cosines(decoder, truth)
        rows, cols = linear_sum_assignment(cos, maximize=True)
        _cache.clear()
        _cache[key] = Matching(rows, cols, cos[rows, cols], cos.argmax(1), truth.shape[0])
    return _cache[key]


def _ground_truth(ctx: EvalContext, metric: str) -> "GroundTruth":
    gt = ctx.data.ground_truth()
    if gt is None:
        raise UserError(f"metric {metric!r} needs a data source with ground-truth features, such as hierarchical-synthetic")
    return gt


# --------------------------------------------------------------------------- firing record
class FiringRecord:
    """Which true features and which latents fired on each eval sample (sparse), plus norms."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.n_rows = 0
        self._labels: list[tuple[np.ndarray, np.ndarray]] = []
        self._latents: list[tuple[np.ndarray, np.ndarray]] = []
        self.shrinkage_sum = 0.0
        self.shrinkage_count = 0

    def update(self, batch: "Batch", out: "SAEOutput", *, labels: bool = True, latents: bool = True) -> None:
        n = len(batch)
        if labels:
            if batch.labels is None:
                raise UserError("ground-truth metrics need labelled batches (true feature activations)")
            r, f = torch.nonzero(batch.labels.detach(), as_tuple=True)
            self._labels.append(((r.cpu() + self.n_rows).numpy(), f.cpu().numpy()))
        if latents:
            r, c = out.codes.active()
            self._latents.append(((r.detach().cpu() + self.n_rows).numpy(), c.detach().cpu().numpy()))
        x_norm = batch.x.detach().float().norm(dim=-1)
        valid = x_norm > 1e-6
        ratio = out.x_hat.detach().float().norm(dim=-1)[valid] / x_norm[valid]
        self.shrinkage_sum += float(ratio.sum())
        self.shrinkage_count += int(valid.sum())
        self.n_rows += n

    @staticmethod
    def _cat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, features)`` of every active true feature."""
        return self._cat(self._labels)

    def latents(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, latents)`` of every firing latent."""
        return self._cat(self._latents)


def _contains(keys_sorted: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Membership of ``query`` in the sorted array ``keys_sorted``."""
    if keys_sorted.size == 0:
        return np.zeros(query.shape, dtype=bool)
    pos = np.searchsorted(keys_sorted, query).clip(max=keys_sorted.size - 1)
    return keys_sorted[pos] == query


# --------------------------------------------------------------------------- computations
def mcc_scores(m: Matching, gt: "GroundTruth") -> dict[str, float]:
    """MCC, per-level MCC and uniqueness."""
    d_sae = m.best_feature.size
    out = {"mcc": float(m.cosine.mean()) if m.cosine.size else 0.0,
           "uniqueness": float(np.unique(m.best_feature).size / d_sae) if d_sae else 0.0}
    level = gt.level.cpu().numpy()[m.feature]
    for k in np.unique(level):
        out[f"mcc_level_{int(k)}"] = float(m.cosine[level == k].mean())
    return out


def detection_scores(record: FiringRecord, m: Matching) -> dict[str, float]:
    """Mean precision, recall and F1 of each latent as a detector of its best-matching feature."""
    d_sae, n_features = m.best_feature.size, m.n_features
    f_rows, f_cols = record.labels()
    l_rows, l_cols = record.latents()
    label_keys = np.sort(f_rows * n_features + f_cols)
    hit = _contains(label_keys, l_rows * n_features + m.best_feature[l_cols])
    tp = np.bincount(l_cols[hit], minlength=d_sae).astype(np.float64)
    fires = np.bincount(l_cols, minlength=d_sae).astype(np.float64)
    active = np.bincount(f_cols, minlength=n_features).astype(np.float64)[m.best_feature]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(fires > 0, tp / fires, 0.0)
        recall = np.where(active > 0, tp / active, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())}


def l0_scores(record: FiringRecord, d_sae: int) -> dict[str, float]:
    """SAE L0, true L0, their ratio and the number of latents that never fired."""
    n = max(record.n_rows, 1)
    _, f_cols = record.labels()
    _, l_cols = record.latents()
    l0, true_l0 = l_cols.size / n, f_cols.size / n
    fired = np.zeros(d_sae, dtype=bool)
    fired[l_cols] = True
    return {"l0": l0, "true_l0": true_l0, "l0_ratio": l0 / true_l0 if true_l0 else float("nan"),
            "dead_latents": float(d_sae - fired.sum())}


def absorption_scores(record: FiringRecord, m: Matching, gt: "GroundTruth", threshold: float, min_count: int) -> dict[str, float]:
    """Feature absorption on ground truth over read-out parent -> child edges (module docstring)."""
    parent = gt.parent.cpu().numpy()
    latent_of = m.latent_of_feature()
    children = np.flatnonzero((parent >= 0) & (latent_of >= 0))
    children = children[latent_of[parent[children]] >= 0]
    f_rows, f_cols = record.labels()
    l_rows, l_cols = record.latents()
    d_sae = m.best_feature.size
    fire_keys = np.sort(l_rows * d_sae + l_cols)
    # For every active feature f with a matched parent: does the parent's latent fire there?
    parent_latent = np.where(parent[f_cols] >= 0, latent_of[np.maximum(parent[f_cols], 0)], -1)
    fires_for_parent = (parent_latent >= 0) & _contains(fire_keys, f_rows * d_sae + parent_latent)
    own_latent = latent_of[f_cols]
    fires_own = (own_latent >= 0) & _contains(fire_keys, f_rows * d_sae + own_latent)
    n_features = m.n_features
    count = np.bincount(f_cols, minlength=n_features)
    hits_child = np.bincount(f_cols[fires_for_parent], minlength=n_features)  # parent latent fires, child active
    hits_own = np.bincount(f_cols[fires_own], minlength=n_features)  # a feature's own latent fires
    c, p = children, parent[children]
    n_child, n_alone = count[c], count[p] - count[c]
    with np.errstate(divide="ignore", invalid="ignore"):
        r_child = hits_child[c] / n_child
        r_alone = (hits_own[p] - hits_child[c]) / n_alone
    evaluated = (n_child >= min_count) & (n_alone >= min_count) & (r_alone >= threshold)
    absorbed = evaluated & (r_child < threshold)
    n_eval = int(evaluated.sum())
    return {
        "absorbed_edge_fraction": float(absorbed.sum() / n_eval) if n_eval else float("nan"),
        "edges_evaluated": float(n_eval),
        "edges_matched": float(children.size),
        "parent_fire_rate_given_child": float(r_child[evaluated].mean()) if n_eval else float("nan"),
        "parent_fire_rate_without_child": float(r_alone[evaluated].mean()) if n_eval else float("nan"),
    }


# --------------------------------------------------------------------------- metric plugins
class _GroundTruthMetric(Metric):
    needs_labels: ClassVar[bool] = True

    def __init__(self, config: Any = None) -> None:
        super().__init__(config if config is not None else self.Config())
        self.record = FiringRecord()

    def reset(self) -> None:
        self.record.reset()

    def update(self, batch: "Batch", out: "SAEOutput", model: "SAE") -> None:
        self.record.update(batch, out)

    def _match(self, model: "SAE", ctx: EvalContext) -> tuple[Matching, "GroundTruth"]:
        gt = _ground_truth(ctx, self.name)
        return match(model.decoder_directions(), gt.directions), gt


class MCCMetric(_GroundTruthMetric):
    """MCC of decoder directions vs true features (Hungarian), per read-out level, and uniqueness."""

    name: ClassVar[str] = "mcc"
    needs_labels: ClassVar[bool] = False

    def update(self, batch: "Batch", out: "SAEOutput", model: "SAE") -> None:
        """MCC depends on the decoder only."""

    def compute(self, model: "SAE", ctx: EvalContext) -> dict[str, float]:
        m, gt = self._match(model, ctx)
        return mcc_scores(m, gt)


class FeatureF1Metric(_GroundTruthMetric):
    """Mean precision, recall and F1 of each latent as a detector of its best-matching true feature."""

    name: ClassVar[str] = "feature-f1"

    def compute(self, model: "SAE", ctx: EvalContext) -> dict[str, float]:
        m, _ = self._match(model, ctx)
        return detection_scores(self.record, m)


class L0VsTrueMetric(_GroundTruthMetric):
    """SAE L0 against the true L0 of the data, and dead latents."""

    name: ClassVar[str] = "l0-vs-true"

    def compute(self, model: "SAE", ctx: EvalContext) -> dict[str, float]:
        return l0_scores(self.record, model.decoder_directions().shape[0])


class ShrinkageMetric(_GroundTruthMetric):
    """Mean ratio of reconstruction norm to input norm (below 1: the SAE shrinks)."""

    name: ClassVar[str] = "shrinkage"
    needs_labels: ClassVar[bool] = False

    def update(self, batch: "Batch", out: "SAEOutput", model: "SAE") -> None:
        self.record.update(batch, out, labels=False, latents=False)

    def compute(self, model: "SAE", ctx: EvalContext) -> dict[str, float]:
        r = self.record
        return {"shrinkage": r.shrinkage_sum / r.shrinkage_count if r.shrinkage_count else float("nan")}


class AbsorptionMetric(_GroundTruthMetric):
    """Feature absorption on ground truth: fraction of parent->child edges whose parent latent goes silent."""

    name: ClassVar[str] = "absorption"

    @attrs.frozen
    class Config:
        """``threshold``: firing rate below which an edge counts as absorbed; ``min_count`` samples per edge."""

        threshold: float = 0.5
        min_count: int = 5

    def compute(self, model: "SAE", ctx: EvalContext) -> dict[str, float]:
        m, gt = self._match(model, ctx)
        return absorption_scores(self.record, m, gt, self.config.threshold, self.config.min_count)


class GroundTruthMetric(_GroundTruthMetric):
    """All ground-truth metrics from one pass: MCC, uniqueness, F1, L0 vs true, shrinkage, absorption."""

    name: ClassVar[str] = "ground-truth"
    Config = AbsorptionMetric.Config

    def compute(self, model: "SAE", ctx: EvalContext) -> dict[str, float]:
        m, gt = self._match(model, ctx)
        r = self.record
        return {
            **mcc_scores(m, gt),
            **detection_scores(r, m),
            **l0_scores(r, m.best_feature.size),
            "shrinkage": r.shrinkage_sum / r.shrinkage_count if r.shrinkage_count else float("nan"),
            **absorption_scores(r, m, gt, self.config.threshold, self.config.min_count),
        }


METRICS = (MCCMetric, FeatureF1Metric, L0VsTrueMetric, ShrinkageMetric, AbsorptionMetric, GroundTruthMetric)

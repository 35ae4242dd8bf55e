"""The ``group-hierarchy`` metric: do latent groups match the true subtrees (adjusted Rand index)?

Each latent stands for its best-matching true feature (largest ``|cos|`` between its decoder
direction and the true directions), and that feature for its subtree (its root in the
generator's forest). Scored latents fired on the eval batches and match with
``|cos| >= min_cosine``. Over them:

* ``ari``: ``adjusted_rand_score(true subtree, model group)``; only for models with groups;
* ``ari_kmeans``: the same against a post-hoc grouping any SAE has: k-means (``n_clusters``:
  the model's group count, else the number of true subtrees) on the latents' unit activation
  profiles (code-weighted mean inputs minus the mean input, the space ``group-reassign``
  moves latents in);
* ``scored_fraction`` of latents, ``subtrees_covered`` (fraction of true subtrees matched by
  some scored latent), and for grouped models ``moved_fraction``: latents no longer in
  their initial index group.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from hsae.metric import EvalContext, Metric
from hsae_group_ortho.collect import CodeRecord, alive_latents, feature_roots, ground_truth, latent_profiles
from hsae_group_ortho.groups import index_assignment, latent_groups
from hsae_synthetic.metrics import abs_cosines


class GroupHierarchyMetric(Metric):
    """Adjusted Rand index between latent groups and the true subtrees of the generator's tree."""

    name = "group-hierarchy"

    @attrs.frozen
    class Config:
        """``min_cosine`` for a latent to count as matched; k-means ``n_clusters`` (unset: see module) and ``seed``."""

        min_cosine: float = 0.5
        n_clusters: int | None = None
        seed: int = 0

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.record = CodeRecord()

    def reset(self) -> None:
        self.record.reset()

    def update(self, batch, out, model) -> None:
        self.record.update(batch, out)

    def compute(self, model, ctx: EvalContext) -> dict[str, float]:
        gt = ground_truth(ctx, self.name)
        codes, x = self.record.codes(), self.record.x()
        roots = feature_roots(gt.parent.cpu().numpy())
        cos = abs_cosines(model.decoder_directions(), gt.directions)
        best, best_cos = cos.argmax(1), cos.max(1)
        alive = alive_latents(codes).numpy()
        scored = alive[best_cos[alive] >= self.config.min_cosine]
        truth = roots[best[scored]]
        out = {"scored_fraction": scored.size / model.d_sae,
               "subtrees_covered": np.unique(truth).size / np.unique(roots).size}
        groups = latent_groups(model)
        if groups is not None:
            groups = groups.cpu()
            out["moved_fraction"] = float((groups != index_assignment(groups.numel(), model.n_groups)).float().mean())
            out["ari"] = adjusted_rand_score(truth, groups.numpy()[scored]) if scored.size else float("nan")
        n_clusters = self.config.n_clusters or (model.n_groups if groups is not None else np.unique(roots).size)
        if scored.size and alive.size >= n_clusters:
            profiles = F.normalize(latent_profiles(codes, x - x.mean(0))[torch.from_numpy(alive)], dim=1).numpy()
            labels = KMeans(n_clusters, n_init=10, random_state=self.config.seed).fit_predict(profiles)
            out["ari_kmeans"] = adjusted_rand_score(truth, labels[np.searchsorted(alive, scored)])
        return {k: float(v) for k, v in out.items()}

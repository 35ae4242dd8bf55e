"""The group-orthogonal hierarchical SAE, its contrastive baseline, and the evaluations that compare them.

Contributions:

* model ``group-ortho-sae``: the standard SAE with latents in groups and a group mask in the encoder;
* losses ``group-ortho``, ``group-sparsity``, ``group-centroid`` (the method) and
  ``code-infonce`` (the contrastive baseline);
* callbacks ``group-centroids``, ``pattern-cache``, ``group-reassign``;
* metrics ``sparse-probing`` (SAEBench), ``feature-separation``, ``group-hierarchy``,
  ``interpretability-export``;
* pipeline ``group-ortho-comparison`` (``recipes/group-ortho.toml``).

Where the group state lives: :mod:`hsae_group_ortho.groups`.
"""

from hsae.hookspecs import hookimpl


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001 - hsae.registry.Registry
    from hsae_group_ortho import (centroids, contrastive, export, hierarchy, losses, model, patterns, pipeline, probing,
                                  reassign, separation)

    for component in (
        model.GroupOrthoSAE,
        losses.GroupOrthoLoss, losses.GroupSparsityLoss, losses.GroupCentroidLoss, contrastive.ContrastiveLoss,
        centroids.GroupCentroidsCallback, patterns.PatternCacheCallback, reassign.GroupReassignCallback,
        probing.SparseProbingMetric, separation.FeatureSeparationMetric, hierarchy.GroupHierarchyMetric,
        export.InterpretabilityExportMetric,
        pipeline.GroupOrthoComparisonPipeline,
    ):
        registry.add(component)

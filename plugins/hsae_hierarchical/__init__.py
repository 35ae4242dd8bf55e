"""H-SAE (Muchane et al. 2025): the ``hsae`` model, its ``parent-topk`` / ``child-top1`` routers,
and the ``hsae-top-mse``, ``hsae-l1`` and ``hsae-ortho`` losses.

Registered through the ``hsae`` entry point exactly as a third-party plugin would be.
"""

from hsae.hookspecs import hookimpl


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001
    from hsae_hierarchical import losses, model, routers

    for component in (
        model.HierarchicalSAE,
        routers.ParentTopKRouter, routers.ChildTop1Router,
        losses.TopMSELoss, losses.HSAEL1Loss, losses.CrossOrthoLoss,
    ):
        registry.add(component)

"""The teacher pipeline: geometric teacher vectors (Park et al. 2024) to initialize an
H-SAE, plus the concept metrics (purity, leakage, steering leakage) that judge it."""

from hsae.hookspecs import hookimpl


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001
    from hsae_teacher import concept_metrics, init, losses, pipeline

    for component in (
        pipeline.TeacherPipeline, init.TeacherVectorsInitializer, losses.CausalOrthoLoss,
        concept_metrics.PurityMetric, concept_metrics.LeakageMetric, concept_metrics.SteeringLeakageMetric,
    ):
        registry.add(component)

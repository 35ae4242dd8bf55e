"""hsae's standard SAE family: the SAE model, linear encoder/decoder, ReLU/TopK/BatchTopK/JumpReLU
routers, mse/l1/auxk/l0/matryoshka losses, core metrics, and the ``train`` pipeline.

Registered through the ``hsae`` entry point exactly as a third-party plugin would be.
"""

from hsae.hookspecs import hookimpl


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001
    from hsae_standard import batchtopk, jumprelu, linear, losses, metrics, normalize, pipeline, relu, sae, topk

    for component in (
        sae.StandardSAE, linear.LinearEncoder, linear.LinearDecoder,
        relu.ReLURouter, topk.TopKRouter, batchtopk.BatchTopKRouter, jumprelu.JumpReLURouter,
        losses.MSELoss, losses.L1Loss, losses.MatryoshkaLoss, topk.AuxKLoss, jumprelu.L0Loss,
        metrics.MSEMetric, metrics.ExplainedVarianceMetric, metrics.L0Metric,
        metrics.DeadFractionMetric, metrics.DenseFractionMetric,
        normalize.UnitNormSource,
        pipeline.TrainPipeline,
    ):
        registry.add(component)

"""Activation tensors on disk (.safetensors, .npy, .npz, .pt) as a DataSource."""

from hsae.hookspecs import hookimpl


@hookimpl
def hsae_register(registry) -> None:  # noqa: ANN001
    from hsae_tensorfile.source import TensorFileSource

    registry.add(TensorFileSource)

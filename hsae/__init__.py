"""hsae: hierarchical sparse autoencoders, assembled from plugins and TOML recipes.

The public API::

    from hsae import load_recipe, run_recipe, load_sae, get_registry
"""

__version__ = "0.1.0"

from hsae.hookspecs import hookimpl  # noqa: E402

__all__ = ["__version__", "hookimpl", "load_recipe", "run_recipe", "load_sae", "get_registry"]


def __getattr__(name: str):
    # Lazy: importing hsae (e.g. for hookimpl in a plugin) must not load torch or plugins.
    if name == "load_recipe":
        from hsae.config import load_recipe

        return load_recipe
    if name == "run_recipe":
        from hsae.runner import run_recipe

        return run_recipe
    if name == "load_sae":
        from hsae.saving import load_sae

        return load_sae
    if name == "get_registry":
        from hsae.plugins import get_registry

        return get_registry
    raise AttributeError(name)

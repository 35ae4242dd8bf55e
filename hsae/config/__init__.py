"""Recipes: TOML files structured into frozen attrs configs, with located errors."""

from hsae.config.recipe import Recipe, load_recipe, loads_recipe
from hsae.config.spec import Spec

__all__ = ["Recipe", "Spec", "load_recipe", "loads_recipe"]

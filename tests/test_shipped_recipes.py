"""Every recipe under recipes/ validates: types check and every component builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsae.config import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_validates(path):
    load_recipe(path).build_pipeline().validate()


def test_the_headline_recipe_exists():
    assert "teacher.toml" in {p.name for p in RECIPES}

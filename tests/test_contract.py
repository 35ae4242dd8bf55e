"""Every registered component keeps the contract of its kind, checked with :mod:`hsae.testing`.

All components: a one-line docstring, the example config round-trips through TOML, and it
builds on the CPU. A few standard ones also train a few steps and resume bit for bit.
"""

from __future__ import annotations

import pytest

from hsae.plugins import get_registry
from hsae.testing import check_component, check_contract

ENTRIES = [(kind, name) for kind, name, _ in get_registry().entries()]
TRAINED = [("router", "topk"), ("router", "jumprelu"), ("model", "sae"), ("loss", "l1"), ("metric", "explained-variance")]


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_component_contract(kind, name, tmp_path):
    check_contract(get_registry().get(kind, name), tmp_path)


@pytest.mark.parametrize(("kind", "name"), TRAINED, ids=[f"{k}:{n}" for k, n in TRAINED])
def test_standard_components_train_and_resume_exactly(kind, name, tmp_path):
    cls = get_registry().get(kind, name)
    config = cls.Config(d_sae=32) if kind == "model" else None  # the default 4096 latents are more than a test needs
    check_component(cls, tmp_path, config)

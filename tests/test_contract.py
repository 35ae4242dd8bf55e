"""Every registered component: default config round-trips through TOML and builds on CPU."""

from __future__ import annotations

import pytest
import torch

from hsae.config import Recipe
from hsae.config.converter import make_converter
from hsae.config.toml_io import dump_toml, parse_toml
from hsae.plugins import get_registry

ENTRIES = [(kind, name) for kind, name, _ in get_registry().entries()]
D_IN, D_SAE = 16, 64


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_component_contract(kind, name, tmp_path):
    cls = get_registry().get(kind, name)
    assert cls.summary(), f"{kind}:{name} needs a one-line docstring"
    config = cls.example_config(tmp_path)
    conv = make_converter(tmp_path)
    text = dump_toml(conv.unstructure(config))
    assert conv.structure(parse_toml(text, "<roundtrip>"), cls.Config) == config

    x = torch.randn(8, D_IN)
    if kind == "router":
        router = cls(config, d_sae=D_SAE)
        codes = router(torch.randn(8, D_SAE))
        assert codes.dense().shape == (8, D_SAE)
    elif kind in ("encoder", "decoder"):
        cls(config, d_in=D_IN, d_sae=D_SAE)
    elif kind == "model":
        model = cls(config, d_in=D_IN)
        out = model(x)
        assert out.x_hat.shape == x.shape and out.codes.d_sae == model.d_sae
        assert model.decoder_directions().shape == (model.d_sae, D_IN)
    elif kind == "data":
        source = cls(config, seed=0)
        batch = next(iter(source.batches(4)))
        assert batch.x.shape == (4, source.d_in) and batch.x.dtype == torch.float32
    elif kind == "pipeline":
        assert cls.phases
        cls(config, recipe=Recipe(name, config, base_dir=tmp_path)).validate()
    else:
        cls(config)

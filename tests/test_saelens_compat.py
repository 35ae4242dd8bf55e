"""A saved SAE loads in SAELens (``SAE.load_from_disk(run_dir)``) and computes what ``hsae.load_sae`` does.

Each architecture SAELens knows is trained briefly from its shipped recipe; architectures it
does not know say so in ``cfg.json`` and still load with ``hsae.load_sae``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

sae_lens = pytest.importorskip("sae_lens")

from hsae import load_recipe, load_sae, run_recipe  # noqa: E402
from hsae.config.spec import ModelSpec  # noqa: E402
from hsae.engine.rundir import RunDir  # noqa: E402
from hsae.errors import UserError  # noqa: E402
from hsae.plugins import get_registry  # noqa: E402
from hsae.saving import saelens_cfg, saelens_state_dict  # noqa: E402

from conftest import REPO, TOY_RECIPE, write  # noqa: E402

# Shrinks a shipped recipe's synthetic data, model and schedule to a run of well under a second.
TINY = [
    "data.d_model=16", "data.hierarchy.n_features=64", "data.hierarchy.n_roots=8",
    "model.d_sae=32", "train.steps=40", "train.batch_size=64", "train.lr=3e-3", "train.lr_warmup_steps=0",
    "train.checkpoint_every=0", "train.progress=false", "eval.batches=1", "eval.batch_size=64",
]
PER_RECIPE = {
    "relu": [],
    "topk": ["model.router.k=4"],
    "batchtopk": ["model.router.k=4"],
    "jumprelu": ["losses.l0.warmup_steps=0", "model.router.initial_threshold=0.05"],
    "matryoshka": ["model.router.k=4", "losses.matryoshka.prefixes=[8,16]"],
}
# The SAELens architecture each recipe's run is saved as (BatchTopK-trained SAEs infer as JumpReLU).
SAELENS_ARCHITECTURE = {"relu": "standard", "topk": "topk", "batchtopk": "jumprelu", "jumprelu": "jumprelu",
                        "matryoshka": "jumprelu"}


def train(name: str, run_dir: Path) -> tuple[Path, torch.Tensor]:
    """Train recipes/NAME.toml tiny into ``run_dir``; returns it and held-out inputs from the same source."""
    recipe = load_recipe(REPO / "recipes" / f"{name}.toml", TINY + PER_RECIPE[name])
    run_recipe(recipe, run_dir)
    data = recipe.config.data.build(seed=recipe.config.train.seed + 1)
    return run_dir, next(iter(data.batches(256, split="eval"))).x


@pytest.mark.parametrize("name", sorted(PER_RECIPE))
def test_saelens_computes_what_hsae_computes(name, tmp_path):
    run, x = train(name, tmp_path / name)
    cfg = json.loads((run / "cfg.json").read_text())
    assert cfg["saelens_compatible"] is True and cfg["architecture"] == SAELENS_ARCHITECTURE[name]

    ours = load_sae(run)
    theirs = sae_lens.SAE.load_from_disk(run)
    assert theirs.cfg.architecture() == SAELENS_ARCHITECTURE[name]
    with torch.no_grad():
        our_codes = ours.encode(x).dense()
        their_codes = theirs.encode(x)
        assert (our_codes != 0).any(dim=1).float().mean() > 0.5, "codes mostly zero: the comparison would be vacuous"
        torch.testing.assert_close(their_codes, our_codes, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(theirs.decode(their_codes), ours.decode(ours.encode(x)), rtol=1e-5, atol=1e-5)


def test_batchtopk_infers_with_its_learned_threshold_in_both_loaders(tmp_path):
    run, x = train("batchtopk", tmp_path / "run")
    ours = load_sae(run)
    threshold = sae_lens.SAE.load_from_disk(run).threshold.detach()
    assert float(ours.router.threshold) > 0
    assert torch.equal(threshold, torch.full((32,), float(ours.router.threshold)))
    with torch.no_grad():  # a sample's codes no longer depend on the rest of its batch
        torch.testing.assert_close(ours.encode(x[:1]).dense(), ours.encode(x).dense()[:1])


MODELS_SAELENS_CANNOT_LOAD = {
    "hsae": """
        type = "hsae"
        n_parents = 8
        subspace = 2
        n_children = 4
        parent_router = { type = "parent-topk", k = 2 }
        """,
    "group_ortho": """
        type = "group-ortho-sae"
        d_sae = 32
        n_groups = 4
        active_groups = 2
        router = { type = "topk", k = 3 }
        """,
}


@pytest.mark.parametrize("architecture", sorted(MODELS_SAELENS_CANNOT_LOAD))
def test_models_saelens_cannot_load_say_so_and_load_in_hsae(architecture, tmp_path, toy_data):
    text = TOY_RECIPE.format(k=4, steps=10, checkpoint_every=0)
    model_table = text[text.index("[model]"):text.index("[losses.mse]")]
    text = text.replace(model_table, "[model]" + MODELS_SAELENS_CANNOT_LOAD[architecture] + "\n")
    text = text.replace('[losses.auxk]\ntype = "auxk"\n', "")
    run = tmp_path / "run"
    run_recipe(load_recipe(write(tmp_path / "r.toml", text)), run)

    cfg = json.loads((run / "cfg.json").read_text())
    assert cfg["saelens_compatible"] is False and cfg["architecture"] == architecture
    assert "hsae.load_sae" in cfg["saelens_note"]
    with pytest.raises(KeyError, match=architecture):  # rejected by name, not loaded as something else
        sae_lens.SAE.load_from_disk(run)
    x = torch.randn(8, 32)
    model = load_sae(run)
    assert model.name == {"hsae": "hsae", "group_ortho": "group-ortho-sae"}[architecture]
    assert model(x).x_hat.shape == x.shape


@pytest.mark.parametrize("file", ["model.safetensors", "sae_weights.safetensors", "cfg.json"])
def test_a_file_instead_of_the_run_directory_is_a_clear_error(file, tmp_path):
    run, _ = train("topk", tmp_path / "run")
    with pytest.raises(UserError, match=re.escape(f"pass {run}") + "$") as info:
        load_sae(run / file)
    assert "run directory" in str(info.value)


def test_a_directory_without_cfg_json_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        load_sae(tmp_path)


def test_an_untrained_batchtopk_sae_does_not_claim_a_saelens_form():
    recipe = load_recipe(REPO / "recipes" / "batchtopk.toml", TINY + PER_RECIPE["batchtopk"])
    data = recipe.config.data.build(seed=0)
    cfg = saelens_cfg(recipe.config.model.build(d_in=data.d_in), data)  # no step yet: no inference threshold
    assert cfg["saelens_compatible"] is False and cfg["architecture"] == "sae-batchtopk"


MODELS = sorted(name for kind, name, _ in get_registry().entries() if kind == "model")


@pytest.mark.parametrize("name", MODELS)
def test_every_model_says_whether_saelens_loads_it_and_hsae_reloads_it_exactly(name, tmp_path):
    model = ModelSpec(name, get_registry().get("model", name).example_config(tmp_path)).build(d_in=16)
    data_cls = get_registry().get("data", "tensor-file")
    data = data_cls(data_cls.example_config(tmp_path), seed=0)
    cfg = saelens_cfg(model, data)
    assert isinstance(cfg["saelens_compatible"], bool) and cfg["architecture"]
    RunDir(tmp_path / "run").write_model(saelens_state_dict(model), cfg)
    loaded = load_sae(tmp_path / "run").state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded[key], value, msg=key)

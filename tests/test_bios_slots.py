"""The slot SAE trained through the real engine on labelled clusters: slots, values, EV ceiling, saving, resume."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hsae import load_sae
from hsae.config import loads_recipe
from hsae.config.toml_io import dump_toml
from hsae.engine.assemble import assemble
from hsae.engine.checkpoint import list_checkpoints
from hsae.engine.rundir import RunDir
from hsae.errors import RecipeError
from hsae.testing import check_resume
from hsae_bios.slots.labels import confusion_from_metrics, split_labels
from hsae_bios.slots.probes import ev_ceiling
from hsae_bios.slots.router import temperature_at

LOSSES = {
    "recon": {"type": "slot-reconstruction"}, "entropy": {"type": "slot-entropy"},
    "align": {"type": "slot-alignment"}, "indep": {"type": "slot-independence"}, "value": {"type": "slot-value"},
}
METRICS = {"slots": {"type": "slot-assignment"}, "ev": {"type": "slot-explained-variance"},
           "value": {"type": "slot-value-accuracy"}}


def recipe(tmp_path, *, model=None, losses=LOSSES, metrics=METRICS, steps=300, lr=1e-2, **train):
    tables = {
        "data": {"type": "slot-clusters"},
        "model": {"type": "slot-sae", "n_values": 24, **(model or {})},
        "initializers": {"mean": {"type": "slot-mean-init"}},
        "losses": losses, "metrics": metrics,
        "callbacks": {"temperature": {"type": "slot-temperature"}},
        "train": {"steps": steps, "batch_size": 64, "lr": lr, "log_every": 50, "progress": False, "device": "cpu",
                  **train},
        "eval": {"batches": 4, "batch_size": 256},
    }
    return loads_recipe(dump_toml(tables), file="<slots>", base_dir=tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The seed's design (6 slots, no free latents) with value heads, 300 steps; its run directory and eval."""
    root = tmp_path_factory.mktemp("slots")
    trainer = assemble(recipe(root).config, run_dir=RunDir(root / "run"))
    return trainer, trainer.fit(), root / "run"


def test_slots_align_with_rules_and_values_are_read_by_the_predicted_slot(trained):
    _, results, _ = trained
    assert results["slots"]["slot_accuracy"] > 0.9
    value = results["value"]
    assert value["value_accuracy"] > 0.6 > 3 * value["value_majority"]  # 24 values: chance about 1/24


def test_one_hot_slots_do_not_beat_the_per_attribute_mean(trained):
    ev = trained[1]["ev"]
    assert ev["ev"] <= ev["ev_ceiling"] + 0.01
    assert ev["ev_hard"] <= ev["ev_ceiling"] + 1e-9  # one-hot codes: at most the ceiling, exactly
    assert ev["ev"] > 0.8 * ev["ev_ceiling"]  # and it learned most of it
    assert ev["ev_ratio"] == pytest.approx(ev["ev"] / ev["ev_ceiling"])


def test_metric_ceiling_matches_the_plain_function(trained):
    trainer, results, _ = trained
    batches = list(itertools.islice(trainer.data.batches(256, split="eval", with_labels=True), 4))
    x = torch.cat([b.x for b in batches])
    rule = torch.cat([split_labels(b.labels, 6)[0] for b in batches])
    assert results["ev"]["ev_ceiling"] == pytest.approx(ev_ceiling(x, rule), abs=1e-9)


def test_confusion_matrix_reads_back_from_the_metric_keys(trained):
    slots = trained[1]["slots"]
    matrix = confusion_from_metrics(slots, 6)
    assert matrix.sum() == slots["rows"] == 1024
    assert np.trace(matrix) / matrix.sum() == pytest.approx(slots["slot_accuracy"])


def test_training_ends_at_the_end_temperature_and_the_run_round_trips(trained):
    trainer, _, run = trained
    model = trainer.model.eval()
    assert float(model.temperature) == pytest.approx(0.1)
    cfg = json.loads((run / "cfg.json").read_text())
    assert cfg["saelens_compatible"] is False and cfg["architecture"] == "slot-sae"
    loaded = load_sae(run)
    x = next(trainer.data.batches(32, split="eval")).x
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.codes.dense(), b.codes.dense())
    assert torch.equal(a.extras["value_logits"], b.extras["value_logits"])
    assert torch.equal(model.predicted_slot(x), loaded.predicted_slot(x))
    assert float(loaded.temperature) == pytest.approx(0.1)


def test_eval_codes_are_deterministic_and_decode_is_linear(trained):
    model = trained[0].model.eval()
    x = next(trained[0].data.batches(16, split="eval")).x
    with torch.no_grad():
        out, again = model(x), model(x)
        assert torch.equal(out.codes.dense(), again.codes.dense())
        z = out.codes.dense()
        edited = z.clone()
        edited[:, 2] = 0
        delta = model.decode(type(out.codes).from_dense(edited)) - model.decode(out.codes)
        assert torch.allclose(delta, -z[:, 2:3] * model.W_dec_slot[2], atol=1e-5)
        assert torch.allclose(model.decode(out.codes, bias=False) + model.b_dec, out.x_hat, atol=1e-5)


def test_free_latents_can_pass_the_one_hot_ceiling(tmp_path):
    results = assemble(recipe(tmp_path, model={"n_free": 16, "k_free": 4}, steps=200).config).fit()
    ev = results["ev"]
    assert results["slots"]["slot_accuracy"] > 0.9
    assert ev["ev"] > ev["ev_ceiling"] + 0.05


def test_hard_slots_are_one_hot_in_training_and_at_evaluation(tmp_path):
    trainer = assemble(recipe(tmp_path, model={"hard": True}, steps=100).config)
    results = trainer.fit()
    assert results["slots"]["slot_accuracy"] > 0.9
    model = trainer.model
    x = next(trainer.data.batches(64)).x
    for mode in (True, False):
        z = model.train(mode).encode(x).dense()
        assert torch.equal(z.sum(1), torch.ones(64)) and set(z.unique().tolist()) <= {0.0, 1.0}


def test_temperature_is_checkpointed_and_resume_is_exact(tmp_path):
    short = recipe(tmp_path, steps=8, checkpoint_every=4, keep_checkpoints=2, log_every=4)
    check_resume(short, tmp_path / "resume")  # bitwise equal weights after a resume from step 4
    first = list_checkpoints(tmp_path / "resume" / "straight" / "checkpoints")[0]
    saved = load_file(first / "model.safetensors")["temperature"]
    assert float(saved) == pytest.approx(temperature_at(4, 8, 1.0, 0.1))
    final = load_file(tmp_path / "resume" / "resumed" / "model.safetensors")["temperature"]
    assert float(final) == pytest.approx(0.1)


def test_value_loss_needs_value_heads(tmp_path):
    with pytest.raises(RecipeError, match="value_heads"):
        assemble(recipe(tmp_path, model={"n_values": 0}, steps=2).config)


def test_k_free_above_n_free_is_a_located_error(tmp_path):
    with pytest.raises(RecipeError, match="k_free"):
        recipe(tmp_path, model={"n_free": 4, "k_free": 8}, steps=2).config.model.build(d_in=32)


def test_show_prints_the_models_keys_with_their_docs(cli):
    code, out, _ = cli("show", "slot-sae")
    assert code == 0
    for text in ("n_free", "k_free", "value_rank", "straight-through hard Gumbel-softmax",
                 "temperature_end", "reached through the slot-temperature callback"):
        assert text in out

"""The slot SAE's parts on hand-computed cases: labels, router schedule, losses, value heads, probes, matching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsae.data import Batch
from hsae.loss import StepContext
from hsae.metric import EvalContext
from hsae_bios.slots import losses
from hsae_bios.slots.callbacks import SlotTemperature
from hsae_bios.slots.labels import confusion_matrix, split_labels
from hsae_bios.slots.matching import best_latent_match, firing_f1
from hsae_bios.slots.metrics import SlotValueAccuracyMetric
from hsae_bios.slots.model import SlotSAE
from hsae_bios.slots.probes import ev_ceiling, logistic_probe, nearest_class_mean_probe
from hsae_bios.slots.router import temperature_at

CTX = StepContext(step=0, total_steps=1)


def labels_of(rule, value=None, n_rules=6, n_values=0):
    labels = torch.zeros(len(rule), n_rules + n_values)
    labels[torch.arange(len(rule)), torch.as_tensor(rule)] = 1
    if value is not None:
        labels[torch.arange(len(rule)), n_rules + torch.as_tensor(value)] = 1
    return labels


def one_hot_codes(rule, n=6):
    return F.one_hot(torch.as_tensor(rule), n).float()


def clusters(n=600, d=16, k=6, spread=4.0, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(k, d)) * spread / np.sqrt(d)
    rule = g.integers(k, size=n)
    return centers[rule] + g.normal(size=(n, d)) * 0.3, rule


# -- labels --------------------------------------------------------------------------------------


def test_split_labels_reads_rule_and_value_and_marks_missing_ones():
    labels = labels_of([2, 0, 5], [3, 0, 1], n_values=4)
    labels[1, :6] = 0  # no rule
    labels[2, 6:] = 0  # no value
    rule, value = split_labels(labels, 6)
    assert rule.tolist() == [2, -1, 5] and value.tolist() == [3, 0, -1]
    assert split_labels(labels_of([1, 4]), 6)[1] is None


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    m = confusion_matrix([0, 1, 1, 2, -1], [0, 1, 2, 2, 1], 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


# -- temperature ---------------------------------------------------------------------------------


def test_temperature_schedules_run_from_start_to_end():
    assert temperature_at(0, 101, 1.0, 0.1) == 1.0
    assert temperature_at(50, 101, 1.0, 0.1) == pytest.approx(0.55)
    assert temperature_at(100, 101, 1.0, 0.1) == pytest.approx(0.1)
    assert temperature_at(500, 101, 1.0, 0.1) == pytest.approx(0.1)
    assert temperature_at(50, 101, 1.0, 0.1, "exponential") == pytest.approx(math.sqrt(0.1))
    with pytest.raises(ValueError, match="schedule"):
        temperature_at(0, 10, 1.0, 0.1, "cosine")


def test_callback_sets_the_next_steps_temperature_and_holds_after_its_steps():
    model = SlotSAE(SlotSAE.Config(), d_in=8)
    callback = SlotTemperature(SlotTemperature.Config(steps=11))
    callback.setup(model, None)
    assert float(model.temperature) == 1.0
    callback.on_step_end(None, None, model, StepContext(step=4, total_steps=100))
    assert float(model.temperature) == pytest.approx(0.55)  # step 5 of an 11-step anneal: halfway
    callback.on_step_end(None, None, model, StepContext(step=60, total_steps=100))
    assert float(model.temperature) == pytest.approx(0.1)


# -- losses --------------------------------------------------------------------------------------


def fake_out(logits=None, codes=None, per_slot=None, model=None):
    from hsae.model import Codes, SAEOutput

    extras = {} if logits is None else {"slot_logits": logits}
    if per_slot is not None:
        extras["value_logits_per_slot"] = per_slot
    codes = codes if codes is not None else torch.softmax(logits, -1)
    return SAEOutput(x_hat=torch.zeros(len(codes), 2), codes=Codes.from_dense(codes), extras=extras)


def test_alignment_is_cross_entropy_to_the_rule():
    logits = torch.tensor([[2.0, 0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0, 3.0]])
    loss = losses.SlotAlignmentLoss(losses.SlotAlignmentLoss.Config())
    value = loss(Batch(torch.zeros(2, 2), labels_of([0, 1])), fake_out(logits), None, CTX)
    by_hand = ((math.log(math.exp(2) + 5) - 2) + (math.log(math.exp(1) + math.exp(3) + 4) - 1)) / 2
    assert float(value) == pytest.approx(by_hand, rel=1e-6)


def test_entropy_is_log_n_for_uniform_logits_and_vanishes_for_confident_ones():
    model = SlotSAE(SlotSAE.Config(), d_in=4)
    loss = losses.SlotEntropyLoss(losses.SlotEntropyLoss.Config())
    assert loss.config.coefficient == 1e-3
    uniform = loss(Batch(torch.zeros(3, 4)), fake_out(torch.zeros(3, 6)), model, CTX)
    assert float(uniform) == pytest.approx(math.log(6))
    confident = loss(Batch(torch.zeros(1, 4)), fake_out(torch.tensor([[30.0, 0, 0, 0, 0, 0]])), model, CTX)
    assert float(confident) < 1e-6
    model.temperature.fill_(2.0)  # the entropy is of softmax(logits / T)
    two = torch.tensor([[math.log(3.0), 0.0]])
    p = torch.softmax(two / 2, -1)
    assert float(loss(Batch(torch.zeros(1, 4)), fake_out(two), model, CTX)) == pytest.approx(float(-(p * p.log()).sum()))


def test_independence_is_zero_for_one_hot_codes_and_not_for_co_firing_slots():
    rule = torch.arange(600) % 6
    one_hot = one_hot_codes(rule)
    assert float(losses.slot_independence(one_hot)) < 1e-8
    co_firing = one_hot.clone()
    co_firing[rule == 0, 1] = 1.0  # slot 1 also fires on every rule-0 row
    assert float(losses.slot_independence(co_firing)) > 0.01
    soft = torch.full((600, 6), 1 / 6)  # every slot on every row
    assert float(losses.slot_independence(soft)) == pytest.approx(1.0)


def test_seed_independence_cannot_be_met_by_one_hot_codes():
    balanced = one_hot_codes(torch.arange(600) % 6)
    expected = 6 * (31 / 36) ** 2 + 30 / 36**2
    assert float(losses.seed_independence(balanced)) == pytest.approx(expected, rel=1e-5)
    skewed = one_hot_codes(torch.randint(6, (600,), generator=torch.Generator().manual_seed(0)) % 3)
    assert float(losses.seed_independence(skewed)) >= 6 * 0.75**2


def test_independence_with_free_latents_penalizes_duplicates_of_slots():
    g = torch.Generator().manual_seed(0)
    rule = torch.arange(3000) % 6
    slots = one_hot_codes(rule)
    free = torch.relu(torch.randn(3000, 4, generator=g))  # independent of the rule and of each other
    assert float(losses.slot_independence(slots, free)) < 0.01
    duplicate = torch.cat([free, slots[:, :1] * 2], 1)  # a free latent that re-encodes slot 0
    assert float(losses.slot_independence(slots, duplicate)) > 0.03


def test_independence_loss_reads_the_slot_part_of_the_code():
    loss = losses.SlotIndependenceLoss(losses.SlotIndependenceLoss.Config())
    assert loss.config.coefficient == 1e-2
    rule = torch.arange(60) % 6
    out = fake_out(torch.zeros(60, 6), codes=one_hot_codes(rule))
    assert float(loss(Batch(torch.zeros(60, 2)), out, None, CTX)) < 1e-8
    seed = losses.SlotIndependenceLoss(losses.SlotIndependenceLoss.Config(definition="seed"))
    assert float(seed(Batch(torch.zeros(60, 2)), out, None, CTX)) > 3


def test_reconstruction_is_the_seeds_mean_over_dimensions_or_hsaes_sum():
    x, x_hat = torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.zeros(1, 4)
    out = fake_out(torch.zeros(1, 6))
    out.x_hat = x_hat
    mean = losses.SlotReconstructionLoss(losses.SlotReconstructionLoss.Config())
    total = losses.SlotReconstructionLoss(losses.SlotReconstructionLoss.Config(reduction="sum"))
    assert float(mean(Batch(x), out, None, CTX)) == pytest.approx(30 / 4)
    assert float(total(Batch(x), out, None, CTX)) == pytest.approx(30)


def test_value_loss_is_cross_entropy_of_the_true_rules_head():
    model = SlotSAE(SlotSAE.Config(n_slots=2, n_values=3), d_in=4)
    per_slot = torch.tensor([[[5.0, 0, 0], [0, 0, 5.0]], [[0, 2.0, 0], [1.0, 0, 0]]])  # (B=2, S=2, V=3)
    batch = Batch(torch.zeros(2, 4), labels_of([1, 0], [2, 1], n_rules=2, n_values=3))
    loss = losses.SlotValueLoss(losses.SlotValueLoss.Config())
    assert loss.config.coefficient == 0.5
    value = loss(batch, fake_out(torch.zeros(2, 2), per_slot=per_slot), model, CTX)
    by_hand = (math.log(2 + math.exp(5)) - 5 + math.log(2 + math.exp(2)) - 2) / 2  # head 1 for row 0, head 0 for row 1
    assert float(value) == pytest.approx(by_hand, rel=1e-6)


# -- value heads at evaluation -------------------------------------------------------------------


def misrouting_model():
    """Two slots, two values; the router sends every row to slot 1; head 0 answers value 0, head 1 value 1."""
    model = SlotSAE(SlotSAE.Config(n_slots=2, n_values=2, value_rank=1), d_in=2).eval()
    with torch.no_grad():
        model.W_slot.zero_()
        model.b_slot.copy_(torch.tensor([0.0, 5.0]))
        model.U_value.zero_()
        model.W_value.zero_()
        model.b_value.copy_(torch.tensor([[3.0, 0.0], [0.0, 3.0]]))
    return model


def test_value_head_is_chosen_by_the_predicted_slot_not_the_label():
    model = misrouting_model()
    x, true_rule = torch.randn(4, 2), torch.zeros(4, dtype=torch.long)
    assert model.predicted_slot(x).tolist() == [1] * 4
    assert model.predict_value(x).tolist() == [1] * 4  # the predicted slot's head
    assert model.predict_value(x, slot=true_rule).tolist() == [0] * 4  # the label's head: a different answer
    with torch.no_grad():
        out = model(x)
    assert out.extras["value_logits"].argmax(-1).tolist() == [1] * 4

    metric = SlotValueAccuracyMetric(SlotValueAccuracyMetric.Config())
    metric.start(EvalContext(data=None, device=torch.device("cpu")))
    metric.update(Batch(x, labels_of(true_rule, torch.zeros(4, dtype=torch.long), n_rules=2, n_values=2)), out, model)
    result = metric.compute(model, None)
    assert result["value_accuracy"] == 0.0 and result["value_accuracy_oracle"] == 1.0


def test_a_slot_value_code_is_gated_by_its_slot():
    model = SlotSAE(SlotSAE.Config(n_slots=3, n_values=5, value_rank=8), d_in=4)
    x = torch.randn(2, 4)
    z = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    v = model.value_codes(x, z)
    assert torch.equal(v[0, 1:], torch.zeros(2, 8)) and torch.equal(v[1, :2], torch.zeros(2, 8))
    assert torch.allclose(v[0, 0], model.U_value[0] @ x[0])


# -- probes and matching -------------------------------------------------------------------------


def test_probes_find_clusters_and_fail_on_random_labels():
    x, rule = clusters(1200)
    train, test = slice(0, 600), slice(600, None)
    for probe in (logistic_probe, nearest_class_mean_probe):
        result = probe(x[train], rule[train], x[test], rule[test])
        assert result.accuracy > 0.95
        assert result.confusion.shape == (6, 6) and result.confusion.sum() == 600
    shuffled = np.random.default_rng(1).integers(6, size=1200)
    for probe in (logistic_probe, nearest_class_mean_probe):
        assert probe(x[train], shuffled[train], x[test], shuffled[test]).accuracy < 0.3  # chance is 1/6


def test_probes_accept_torch_tensors():
    x, rule = clusters(200)
    result = nearest_class_mean_probe(torch.tensor(x), torch.tensor(rule), torch.tensor(x), torch.tensor(rule))
    assert result.accuracy > 0.95


def test_ev_ceiling_by_hand():
    x = np.array([[0.0], [2.0], [10.0], [12.0]])
    assert ev_ceiling(x, [0, 0, 1, 1]) == pytest.approx(1 - 4 / 104)
    assert ev_ceiling(x, [0, 1, 2, 3]) == pytest.approx(1.0)
    assert ev_ceiling(x, [0, 0, 0, 0]) == pytest.approx(0.0)


def test_best_latent_match_finds_the_planted_latent_of_each_rule():
    g = np.random.default_rng(0)
    n, rule = 1200, g.integers(6, size=1200)
    codes = np.maximum(g.normal(size=(n, 40)) - 1.5, 0)  # noise latents, firing about 7% of rows
    planted = np.array([7, 3, 30, 12, 25, 0])
    codes[:, planted] = 0
    codes[np.arange(n), planted[rule]] = 1 + g.random(n)  # latent planted[r] fires exactly on rule r
    train, test = slice(0, 600), slice(600, None)
    result = best_latent_match(codes[train], rule[train], codes[test], rule[test])
    assert result.latents.tolist() == planted.tolist()
    assert result.accuracy == 1.0 and np.trace(result.confusion) == 600
    f1 = firing_f1(codes[train], rule[train])
    assert f1.shape == (6, 40) and np.allclose(f1[np.arange(6), planted], 1.0)


def test_best_latent_match_is_at_chance_without_rule_latents_and_counts_silent_rows_wrong():
    g = np.random.default_rng(0)
    rule = g.integers(6, size=1200)
    codes = np.maximum(g.normal(size=(1200, 40)) - 0.5, 0)
    result = best_latent_match(codes[:600], rule[:600], codes[600:], rule[600:])
    assert result.accuracy < 0.3
    silent = np.zeros((4, 6))
    silent[0, 0] = 1.0  # only the first row has any matched latent firing
    match = best_latent_match(np.eye(6), np.arange(6), silent, np.array([0, 1, 2, 3]))
    assert match.accuracy == 0.25 and match.confusion.sum() == 1


def test_mean_init_starts_at_the_data_mean_and_optionally_at_the_ceiling():
    from hsae_bios.slots.init import SlotMeanInit
    from hsae_bios.slots.synthetic import SlotClusters

    data = SlotClusters(SlotClusters.Config(noise=0.0, value_scale=0.0), seed=0)
    model = SlotSAE(SlotSAE.Config(), d_in=32)
    SlotMeanInit(SlotMeanInit.Config(slot_means=True)).apply(model, data)
    batch = next(data.batches(64, with_labels=True))
    rule, _ = split_labels(batch.labels, 6)
    from hsae.model import Codes

    x_hat = model.decode(Codes.from_dense(one_hot_codes(rule)))
    assert torch.allclose(x_hat, batch.x, atol=1e-5)  # noiseless clusters: each rule's mean is its center
    assert torch.allclose(model.b_dec, data.centers.mean(0), atol=0.2)


def test_results_unpack_and_read_by_field():
    x, rule = clusters(120)
    accuracy, confusion = result = nearest_class_mean_probe(x, rule, x, rule)
    assert result.accuracy == accuracy and result.confusion is confusion
    match = best_latent_match(np.eye(6), np.arange(6), np.eye(6), np.arange(6))
    accuracy, confusion, latents = match
    assert match.latents is latents and latents.tolist() == list(range(6))

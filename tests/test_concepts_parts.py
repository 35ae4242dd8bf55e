"""Concept features (seed 004): layer specs, labelled sentences, demo data, ranking, classifiers, the reader."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from hsae.errors import UserError
from hsae_concepts import demo
from hsae_concepts.labels import class_balance, read_sentences, stratified_split
from hsae_concepts.layers import parse_layers
from hsae_concepts.testing import write_sentence_dir


@pytest.mark.parametrize(("spec", "layers"), [
    ("0-5", (0, 1, 2, 3, 4, 5)), ("10-15", (10, 11, 12, 13, 14, 15)), ("2,5,10", (2, 5, 10)),
    ("0,12,25", (0, 12, 25)), ("0-2,10,15-17", (0, 1, 2, 10, 15, 16, 17)), ("5-7,12,20-22", (5, 6, 7, 12, 20, 21, 22)),
    ("12", (12,)), (" 3 - 4 , 40", (3, 4, 40)), ("25,0", (25, 0)),
])
def test_layer_specs_of_the_seed(spec, layers):
    assert parse_layers(spec) == layers


@pytest.mark.parametrize(("spec", "message"), [
    ("", "is not a layer"), ("0-", "is not a layer"), ("a", "is not a layer"), ("1,,2", "is not a layer"),
    ("-1", "is not a layer"), ("5-3", "runs backwards"), ("0-2,2", "appears twice"), ("1.5", "is not a layer"),
])
def test_bad_layer_specs(spec, message):
    with pytest.raises(UserError, match=message):
        parse_layers(spec)


def test_sentences_from_csv_and_jsonl(tmp_path):
    (tmp_path / "s.csv").write_text('text,label,source\n"A, b.",2,x\nC.,0,y\n')
    assert [(s.text, s.label) for s in read_sentences(tmp_path / "s.csv")] == [("A, b.", 2), ("C.", 0)]
    (tmp_path / "s.jsonl").write_text('{"text": "A.", "label": 3}\n\n{"text": "B.", "label": "1"}\n')
    assert [s.label for s in read_sentences(tmp_path / "s.jsonl")] == [3, 1]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("a.csv", "text,strength\nA.,1\n", "a.csv:1: the header needs the columns text and label"),
    ("b.csv", "text,label\nA.,1\nB.,7\n", "b.csv:3: label must be 0-3, got 7"),
    ("c.csv", "text,label\nA.,high\n", "c.csv:2: label must be an integer 0-3"),
    ("d.jsonl", '{"text": "A.", "label": 1}\n{"text": "B.", "label": 1\n', "d.jsonl:2: invalid JSON"),
    ("e.jsonl", '{"text": "", "label": 1}\n', "e.jsonl:1: text is missing or empty"),
])
def test_bad_sentence_files_name_the_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError, match=message):
        read_sentences(tmp_path / name)


def test_stratified_split_keeps_the_class_mix():
    labels = np.array([0] * 30 + [1] * 25 + [2] * 15 + [3] * 10)
    train, test = stratified_split(labels, 0.2, seed=1)
    assert class_balance(labels[test]) == {0: 6, 1: 5, 2: 3, 3: 2}
    assert sorted([*train, *test]) == list(range(80))
    again = stratified_split(labels, 0.2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip((train, test), again))


def test_shipped_demo_data_is_what_the_generator_writes():
    for trait in demo.traits():
        sentences = read_sentences(demo.demo_path(trait))
        assert sentences == demo.generate(trait)
        assert class_balance([s.label for s in sentences]) == dict(enumerate(demo.COUNTS))
        assert len({s.text for s in sentences}) == len(sentences)


def test_ranking_uses_training_sentences_only_and_its_csv_suits_the_seeds_workflow(tmp_path):
    from hsae_concepts.ranking import rank_features, write_ranked_csv
    from hsae_concepts.reader import open_directory

    written = write_sentence_dir(tmp_path / "d", n_sentences=16, layers=(3, 7), d_sae=6, seed=2)
    for index, arrays in written.files.items():  # latent 5 of layer 7 tracks the label on the even sentences only
        arrays = dict(arrays)
        arrays["activations"][1, written.final(index), 5] = arrays["concept_strength_label"] if index % 2 == 0 else 0
        np.savez(tmp_path / "d" / f"sentence_{index:06d}.npz", **arrays)
    info = open_directory(tmp_path / "d")
    even = set(range(0, 16, 2))
    ranked = rank_features(info, even, top=5)
    assert (ranked[0].layer, ranked[0].feature_id) == (7, 5) and ranked[0].score == pytest.approx(1.0)
    odd = rank_features(info, set(range(1, 16, 2)), top=12)
    assert (7, 5) not in {(r.layer, r.feature_id) for r in odd[:1]}
    write_ranked_csv(ranked, tmp_path / "ranked_features.csv")
    lines = (tmp_path / "ranked_features.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ["rank", "layer", "average_l0", "feature_id", "score"]
    fields = lines[1].split(",")  # the seed's Workflow 5: cut -f2 is the layer, -f4 the feature
    assert (fields[1], fields[3]) == ("7", "5")
    assert [int(r["rank"]) for r in csv.DictReader(lines)] == [1, 2, 3, 4, 5]


def test_classifiers_use_the_stored_split_and_beat_chance_on_separable_data(tmp_path):
    from hsae_concepts.classifiers import evaluate

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], [30, 25, 15, 10])
    x = rng.standard_normal((80, 5)) + np.eye(4, 5)[y] * 4
    train, test = stratified_split(y, 0.25, 0)
    result = evaluate(x, y, train, test, folds=5)
    assert result["n_train"] == len(train) and result["n_test"] == len(test)
    for model in ("logreg", "linear_svm"):
        assert result[model]["cv_mean"] > 0.8 and result[model]["test"] > 0.8
    assert result["majority"] == pytest.approx(np.mean(y[test] == 0))
    with pytest.raises(UserError, match="too few"):
        evaluate(x[:3], np.array([0, 1, 1]))


def test_reader_reads_only_the_final_token_slice(tmp_path, monkeypatch):
    """The activations member is never read whole: a few rows of bytes per file at most."""
    from hsae_concepts import npzslice
    from hsae_concepts.reader import Request, open_directory, read_final_tokens

    write_sentence_dir(tmp_path / "d", n_sentences=4, layers=(0, 1), d=8, d_sae=500, fragments=(20, 20))
    counts: dict[str, int] = {}
    original = npzslice.NpzSlices.read_flat

    def counting(self, name, start, count):
        counts[name] = counts.get(name, 0) + count
        return original(self, name, start, count)

    monkeypatch.setattr(npzslice.NpzSlices, "read_flat", counting)
    tokens = read_final_tokens(open_directory(tmp_path / "d"), Request(hidden_layers=(1,), feature=(0, 3)))
    assert tokens.hidden.shape == (4, 1, 8) and tokens.feature.shape == (4,)
    assert counts["activations"] == 4 and counts["hidden_states"] == 4 * 8  # one value and one row per file


@pytest.mark.parametrize("architecture", ["standard", "jumprelu", "topk"])
def test_saelens_format_directories_encode_with_saelens_formulas(tmp_path, architecture):
    import json

    import torch
    from safetensors.torch import save_file

    from hsae_concepts.saes import LayerSAE

    g = torch.Generator().manual_seed(0)
    t = {"W_enc": torch.randn(4, 6, generator=g), "b_enc": torch.randn(6, generator=g), "W_dec": torch.randn(6, 4),
         "b_dec": torch.randn(4, generator=g), "threshold": torch.full((6,), 0.5)}
    save_file(t, tmp_path / "sae_weights.safetensors")
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": architecture, "d_in": 4, "d_sae": 6, "k": 2}))
    x = torch.randn(5, 4, generator=g)
    pre = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    if architecture == "standard":
        expected = torch.relu(pre)
    elif architecture == "jumprelu":
        expected = pre * (pre > 0.5)
    else:
        top = pre.topk(2, dim=1)
        expected = torch.zeros_like(pre).scatter(1, top.indices, torch.relu(top.values))
    sae = LayerSAE(tmp_path)
    assert (sae.d_in, sae.d_sae) == (4, 6)
    np.testing.assert_allclose(sae.encode(x.numpy()), expected.numpy(), atol=1e-6)
    with pytest.raises(UserError, match="takes d_in = 4"):
        sae.encode(np.zeros((1, 5), dtype=np.float32))


def test_constant_columns_normalize_and_invert():
    from hsae_concepts.normalize import fit

    x = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]], dtype=np.float32)
    for method in ("standardize", "minmax", "none"):
        norm = fit(x, method)
        z = norm.apply(x)
        assert np.isfinite(z).all()
        np.testing.assert_allclose(norm.invert(z), x, atol=1e-6)

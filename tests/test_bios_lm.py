"""Seed 003's LM side: mixed-training texts, QA decoding, the SFT path, and the capture site."""

from __future__ import annotations

import json

import pytest
import torch

from hsae.errors import UserError
from hsae_bios.biographies import BiographyOptions
from hsae_bios.dataset import BiosConfig, build_dataset
from hsae_bios.output import write_dataset
from hsae_lm import testing


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("bios") / "data"
    config = BiosConfig(num_persons=12, bios=BiographyOptions(2, True, True))
    write_dataset(build_dataset(config), config, out)
    return out


def test_training_texts_are_every_biography_and_only_qa_train_pairs(dataset):
    from hsae_bios.lm_corpus import read_kg, read_qa, training_texts

    texts = training_texts(dataset)
    persons = read_kg(dataset / "train_kg.json") + read_kg(dataset / "test_kg.json")
    bios = [b for p in persons for b in p["biographies"]]
    assert texts[: len(bios)] == bios and len(bios) == 2 * 12
    qa_texts = texts[len(bios):]
    assert len(qa_texts) == len(read_qa(dataset / "qa_train.jsonl"))
    test_questions = {r["question"] for r in read_qa(dataset / "qa_test_persons.jsonl")}
    assert not any(t.split(" Answer:")[0] in test_questions for t in qa_texts)


def test_a_qa_file_that_does_not_match_its_kg_is_refused(dataset, tmp_path):
    from hsae_bios.lm_corpus import training_texts

    for name in ("train_kg.json", "test_kg.json", "qa_train.jsonl"):
        (tmp_path / name).write_text((dataset / name).read_text())
    rows = [json.loads(line) for line in (tmp_path / "qa_train.jsonl").read_text().splitlines()]
    rows[3]["answer"] = "Atlantis"
    (tmp_path / "qa_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match=r"qa_train.jsonl: row 4: .*does not match its knowledge graph"):
        training_texts(tmp_path)
    rows[3]["person_id"] = "person_9999"
    (tmp_path / "qa_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match="not in the knowledge graph"):
        training_texts(tmp_path)


def test_greedy_decoding_of_a_left_padded_batch_equals_one_prompt_at_a_time():
    from hsae_bios.qa_eval import greedy_continuations
    from hsae_lm.models import load_model, load_tokenizer

    model, tokenizer = load_model(str(testing.tiny_gpt2_dir())), load_tokenizer(str(testing.tiny_gpt2_dir()))
    prompts = ["Where was Ann born? Answer:", "Which university did Bob Lee Smith attend? Answer:", "Who? Answer:"]
    together = greedy_continuations(model, tokenizer, prompts, 5)
    alone = [greedy_continuations(model, tokenizer, [p], 5)[0] for p in prompts]
    assert together == alone
    # the answer-position logits too: left padding with these position ids changes nothing
    from hsae_bios.qa_eval import encode_prompts

    ids, mask = encode_prompts(tokenizer, prompts, torch.device("cpu"))
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        for i, prompt in enumerate(prompts):
            one, _ = encode_prompts(tokenizer, [prompt], torch.device("cpu"))
            assert torch.allclose(batched[i, -1], model(input_ids=one).logits[0, -1], atol=1e-4)


def test_sft_pads_per_batch_and_learns(dataset, tmp_path):
    from hsae_bios.lm_corpus import training_texts
    from hsae_bios.sft import SFTConfig, pad_batch, sft_causal_lm

    ids, mask, labels = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.shape == (2, 3) and mask.tolist() == [[1, 1, 1], [1, 0, 0]] and labels[1].tolist() == [8, -100, -100]
    record = sft_causal_lm(testing.tiny_gpt2_dir(), training_texts(dataset)[:40], tmp_path / "sft",
                           SFTConfig(epochs=2, batch_size=8, lr=3e-3, warmup_steps=2, progress=False))
    assert (tmp_path / "sft" / "config.json").is_file() and record["steps"] == 10
    assert record["padding_fraction"] < 0.5  # per-batch padding; padding to a fixed 512 would be > 0.8


def _tiny_lm():
    from hsae_lm.models import load_model, load_tokenizer

    return load_model(str(testing.tiny_gpt2_dir())), load_tokenizer(str(testing.tiny_gpt2_dir()))


def test_resid_hook_is_the_residual_stream_and_the_last_one_is_before_ln_f():
    from hsae_lm.hooks import resolve, run_to_hook

    model, tokenizer = _tiny_lm()
    enc = tokenizer(["the dog barked"], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
        for layer in range(2):
            assert torch.allclose(run_to_hook(model, resolve(model, f"resid:{layer}"), **enc), hidden[layer])
        last = run_to_hook(model, resolve(model, "resid:2"), **enc)
        assert not torch.allclose(last, hidden[2])  # hidden_states[-1] is after ln_f
        assert torch.allclose(model.transformer.ln_f(last), hidden[2], atol=1e-5)


@pytest.mark.parametrize("layer", [1, 2])
def test_the_intervention_edits_exactly_the_captured_activation(tmp_path, layer):
    """Capture (lm-activations, positions = last) and intervention (hooked at the answer
    column) see the same vector; the identity edit changes no answer; a real edit does."""
    from hsae.config.converter import make_converter
    from hsae.config.spec import DataSpec
    from hsae_bios import interventions as iv
    from hsae_bios.capture import CaptureSettings, source_config
    from hsae_bios.qa_eval import greedy_continuations
    from hsae_lm.hooks import resolve

    model, tokenizer = _tiny_lm()
    prompts = ["Where was Ann Lee born? Answer:", "What is Bob's major? Answer:"]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"text": p, "labels": [0, 6]}) + "\n" for p in prompts))
    table = source_config(testing.tiny_gpt2_dir(), layer, path, tmp_path / "cache", True, CaptureSettings(device="cpu"))
    source = make_converter(tmp_path).structure(table, DataSpec).build(seed=0)
    shards = list(source.store("train").in_order())
    captured = torch.cat([s["x"] for s in shards])
    order = [source.items("train")[i].text for i in torch.cat([s["item"] for s in shards]).tolist()]
    seen = []
    point = resolve(model, f"resid:{layer}")

    def record(x):
        seen.append(x.clone())
        return x

    clean = greedy_continuations(model, tokenizer, prompts, 4)
    same = greedy_continuations(model, tokenizer, prompts, 4, iv.at_answer(point, record))
    assert same == clean
    by_prompt = dict(zip(prompts, seen[0]))
    for text, row in zip(order, captured):
        assert torch.allclose(by_prompt[text], row.float(), atol=1e-5)
    changed = greedy_continuations(model, tokenizer, prompts, 4, iv.at_answer(point, lambda x: 50 * torch.randn_like(x)))
    assert changed != clean


def test_a_retrained_checkpoint_is_never_served_an_old_capture(tmp_path):
    import shutil

    from hsae.config.converter import make_converter
    from hsae.config.spec import DataSpec
    from hsae_bios.capture import CaptureSettings, source_config
    from hsae_lm.models import load_model

    model_dir = tmp_path / "model"
    shutil.copytree(testing.tiny_gpt2_dir(), model_dir)
    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"text": "Who? Answer:", "labels": [1, 7]}) + "\n")
    table = source_config(model_dir, 1, path, tmp_path / "cache", True, CaptureSettings(device="cpu"))
    build = lambda: make_converter(tmp_path).structure(table, DataSpec).build(seed=0)  # noqa: E731
    assert build().store("train").n_rows == 1
    model = load_model(str(model_dir))
    with torch.no_grad():
        model.transformer.wte.weight.add_(0.01)
    model.save_pretrained(model_dir)
    with pytest.raises(UserError, match="holds a different capture"):
        build().store("train")

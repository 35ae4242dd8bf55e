"""Activation capture on real models: hook points, early stop, positions, the lm-activations source."""

from __future__ import annotations

import json

import pytest
import torch

from hsae.errors import UserError
from hsae_lm import testing
from hsae_lm.capture import Capturer, CaptureConfig
from hsae_lm.hooks import resolve, run_to_hook
from hsae_lm.models import load_model, load_tokenizer
from hsae_lm.source import LMActivationsConfig, LMActivationsSource
from hsae_lm.texts import TextConfig, TextItem, read_texts

from conftest import write

SENTENCES = ["the dog barked at the cat", "a horse ran", "the cat and the dog saw a horse and ran away"]


@pytest.fixture(scope="module")
def minilm():
    return testing.minilm_model(), testing.minilm_tokenizer()


@pytest.fixture(scope="module")
def gpt2():
    folder = str(testing.tiny_gpt2_dir())
    return load_model(folder), load_tokenizer(folder)


@pytest.mark.parametrize("which", ["minilm", "gpt2"])
def test_hidden_hooks_equal_output_hidden_states(which, request):
    model, tok = request.getfixturevalue(which)
    enc = tok(SENTENCES, padding=True, return_tensors="pt") if tok.pad_token else None
    if enc is None:
        tok.pad_token = tok.eos_token
        enc = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = model(**enc, output_hidden_states=True).hidden_states
        for layer in range(len(ref)):
            got = run_to_hook(model, resolve(model, f"hidden:{layer}"), **enc)
            assert torch.equal(got, ref[layer]), layer


def test_forward_stops_at_the_hook(minilm):
    model, tok = minilm
    calls = []
    handles = [block.register_forward_hook(lambda *a, i=i: calls.append(i)) for i, block in enumerate(model.encoder.layer)]
    try:
        with torch.no_grad():
            run_to_hook(model, resolve(model, "hidden:2"), **tok(SENTENCES[:1], return_tensors="pt"))
            assert calls == [0, 1]  # blocks 2..5 never ran
            calls.clear()
            out = run_to_hook(model, resolve(model, "module:encoder.layer.3.output"), **tok(SENTENCES[:1], return_tensors="pt"))
            assert calls == [0, 1, 2] and out.shape[-1] == 384
    finally:
        for h in handles:
            h.remove()


def test_bad_hooks_are_explained(minilm):
    model, _ = minilm
    with pytest.raises(ValueError, match="layer must be in"):
        resolve(model, "hidden:9")
    with pytest.raises(ValueError, match="no module 'encoder.layers.3'"):
        resolve(model, "module:encoder.layers.3")
    with pytest.raises(ValueError, match="expected hidden:<layer>, resid:<layer> or module:<path>"):
        resolve(model, "layer3")


def test_positions(minilm):
    model, tok = minilm
    items = [TextItem("the dog barked", answer="dog", positions=(0, 2)), TextItem("a big horse ran", answer="horse", positions=(1,))]

    def rows(**kw):
        return Capturer(model, tok, CaptureConfig(hook="hidden:1", **kw))(items)

    everything = rows(positions="all", drop_special=False)
    assert len(everything.x) == 5 + 6  # [CLS] ... [SEP], no padding rows
    plain = rows(positions="all")
    assert not torch.isin(plain.token_ids, torch.tensor(tok.all_special_ids)).any() and len(plain.x) == 3 + 4
    last = rows(positions="last")
    assert tok.convert_ids_to_tokens(last.token_ids.tolist()) == ["barked", "ran"]
    answer = rows(positions="answer")
    assert sorted(tok.convert_ids_to_tokens(answer.token_ids.tolist())) == ["dog", "horse"]
    mask = rows(positions="mask")
    assert sorted(zip(mask.item.tolist(), mask.position.tolist())) == [(0, 0), (0, 2), (1, 1)]
    # the same row captured alone or in a padded batch is the same vector
    alone = Capturer(model, tok, CaptureConfig(hook="hidden:1", positions="last"))(items[:1])
    assert torch.allclose(alone.x[0], last.x[last.item.tolist().index(0)], atol=1e-5)


def _source(tmp_path, **kw) -> LMActivationsSource:
    texts = write(tmp_path / "texts.txt", "\n".join(SENTENCES * 20))
    config = dict(model=str(testing.tiny_gpt2_dir()), hook="hidden:1", texts=TextConfig("file", texts),
                  eval_fraction=0.1, shard_rows=64, shuffle_buffer_rows=128, batch_texts=4, progress=False, device="cpu")
    return LMActivationsSource(LMActivationsConfig(**{**config, **kw}))


def test_source_is_stateless_in_the_step_and_sharded(tmp_path):
    source = _source(tmp_path)
    stream = source.batches(16)
    first = [next(stream).x for _ in range(40)]  # several epochs of ~400 rows
    again = source.batches(16, start_step=25)
    assert all(torch.equal(next(again).x, first[s]) for s in range(25, 40))
    halves = [next(source.batches(8, start_step=7, shard=shard)).x for shard in (_shard(0), _shard(1))]
    assert torch.equal(torch.cat(halves), first[7])
    n = source.store("train").n_rows
    epoch = torch.cat([b for b in first])[:n]
    assert len(torch.unique(source.store("train").rows_at(0, n, 0, 2)["item"])) > 1
    assert torch.unique(epoch, dim=0).shape[0] == torch.unique(torch.cat([s["x"] for s in source.store("train").in_order()]), dim=0).shape[0]
    evals = list(source.batches(50, split="eval"))
    assert sum(len(b) for b in evals) == source.store("eval").n_rows and len(evals[-1]) <= 50


def _shard(rank):
    from hsae.data import Shard

    return Shard(rank, 2)


def test_width_of_a_module_hook_without_capturing(tmp_path):
    source = _source(tmp_path, hook="module:transformer.h.0.mlp.c_fc", cache_dir=tmp_path / "cache")
    assert source.d_in == 4 * 32  # the MLP's hidden width
    assert not (tmp_path / "cache").exists()


def test_cache_resumes_an_interrupted_capture_and_reuses_a_finished_one(tmp_path):
    full = _source(tmp_path, cache_dir=tmp_path / "full")
    reference = torch.cat([s["x"] for s in full.store("train").in_order()])

    broken = _source(tmp_path, cache_dir=tmp_path / "cache")
    calls = {"n": 0}
    original = broken._capture

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args)

    broken._capture = flaky
    with pytest.raises(KeyboardInterrupt):
        broken.store("train")
    manifest = json.loads((tmp_path / "cache" / "train" / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) >= 1

    resumed = _source(tmp_path, cache_dir=tmp_path / "cache")
    assert torch.equal(torch.cat([s["x"] for s in resumed.store("train").in_order()]), reference)
    reused = _source(tmp_path, cache_dir=tmp_path / "cache")
    assert reused.store("train").complete and reused._model is None  # no model loaded, nothing captured
    with pytest.raises(UserError, match="holds a different capture"):
        _source(tmp_path, cache_dir=tmp_path / "cache", hook="hidden:2").store("train")


@pytest.fixture(scope="module")
def mammal_prompts():
    """lm-activations over MiniLM concept prompts of the mammal subtree (a few hundred rows)."""
    from hsae_lm.concepts import ConceptConfig, restrict

    config = LMActivationsConfig(model=testing.minilm(), hook="hidden:3", positions="last",
                                 texts=TextConfig("concept-prompts"), concepts=ConceptConfig(root="mammal.n.01"),
                                 max_rows=300, max_eval_rows=100, progress=False, device="cpu", wordnet_dir=testing.wordnet_dir())
    source = LMActivationsSource(config)
    source._model, source._tokenizer = testing.minilm_model(), testing.minilm_tokenizer()
    source._hierarchy = restrict(testing.minilm_hierarchy(), config.concepts)  # the same as building it, cached
    return source


def test_concept_prompts_give_labelled_word_rows(mammal_prompts):
    source = mammal_prompts
    h = source.hierarchy
    batch = next(source.batches(64, split="teacher"))
    assert batch.labels.shape == (64, h.n_concepts) and (batch.labels[:, 0] == 1).all()  # every word is a mammal
    for token, labels in zip(batch.meta["token_ids"].tolist(), batch.labels.bool()):
        assert {c for c in range(h.n_concepts) if token in h.tokens[c]} == set(torch.nonzero(labels).flatten().tolist())
    train_words = set(source.store("train").shard(0)["token_ids"].tolist())
    eval_words = {t for s in source.store("eval").in_order() for t in s["token_ids"].tolist()}
    assert not train_words & eval_words  # a seeded word split


def test_text_sources(tmp_path):
    lines = write(tmp_path / "t.jsonl", '{"text": "a dog", "answer": "dog", "labels": [1]}\n\n{"text": "cats"}\n')
    items = read_texts(TextConfig("jsonl", lines))
    assert items == [TextItem("a dog", answer="dog", labels=(1,)), TextItem("cats")]
    bad = write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: expected an object with a string 'text'"):
        read_texts(TextConfig("jsonl", bad))
    glosses = read_texts(TextConfig("wordnet", max_texts=3), testing.wordnet_dir())
    assert glosses[0].text.startswith("that which is perceived or known")


def test_trains_an_sae_on_captured_activations(tmp_path, cli):
    texts = write(tmp_path / "texts.txt", "\n".join(SENTENCES * 30))
    recipe = write(tmp_path / "r.toml", f"""
        [data]
        type = "lm-activations"
        model = "{testing.tiny_gpt2_dir()}"
        hook = "hidden:1"
        texts = {{ source = "file", path = "{texts}" }}
        cache_dir = "cache"
        progress = false

        [model]
        type = "sae"
        d_sae = 64
        router = {{ type = "topk", k = 4 }}

        [losses.mse]
        type = "mse"

        [train]
        steps = 30
        batch_size = 32
        progress = false
        """)
    code, _, err = cli("validate", recipe)
    assert code == 0, err
    assert not (tmp_path / "cache").exists()  # validation captures nothing
    code, _, err = cli("run", recipe, "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "cache" / "train" / "manifest.json").read_text())["complete"]


def test_purity_and_leakage_on_concept_prompts(mammal_prompts):
    from hsae.config.spec import ModelSpec, RouterSpec
    from hsae.engine.evaluate import evaluate
    from hsae_lm.concept_metric import LMConceptMetric
    from hsae_standard.sae import StandardSAE
    from hsae_standard.topk import TopKRouter

    torch.manual_seed(0)
    sae = ModelSpec("sae", StandardSAE.Config(d_sae=64, router=RouterSpec("topk", TopKRouter.Config(k=4)))).build(d_in=384)
    metric = LMConceptMetric(LMConceptMetric.Config(parent_depth=1))
    result = evaluate(sae, mammal_prompts, {"concepts": metric}, batches=4, batch_size=64, device=torch.device("cpu"))
    values = result["concepts"]
    assert 0 <= values["purity_pp"] <= 100 and 0 <= values["leakage_parents"] <= 1
    assert values["n_concepts"] == mammal_prompts.hierarchy.n_concepts

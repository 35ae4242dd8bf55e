"""Splice metrics on a small causal LM trained in the session: identity ~ 1, zero ablation ~ 0."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from hsae.metric import EvalContext
from hsae_lm import testing
from hsae_lm.hooks import resolve
from hsae_lm.models import load_model, load_tokenizer
from hsae_lm.source import LMActivationsConfig, LMActivationsSource
from hsae_lm.splice import splice_logits, splice_metrics
from hsae_lm.splice_metric import LMSpliceMetric
from hsae_lm.texts import TextConfig

from conftest import write

TEXTS = ["a dog is a kind of canine", "a cat is a kind of feline", "every oak is a tree",
         "a rose is a type of shrub", "a trout is a kind of fish"]


@pytest.fixture(scope="module")
def lm():
    folder = str(testing.tiny_trained_lm_dir())
    model, tok = load_model(folder), load_tokenizer(folder)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    bos = torch.full((len(TEXTS), 1), tok.bos_token_id)
    ids = torch.cat([bos, enc["input_ids"]], 1)
    mask = torch.cat([torch.ones_like(bos), enc["attention_mask"]], 1)
    return model, tok, [(ids, mask)]


def test_identity_scores_one_and_zero_ablation_scores_zero(lm):
    model, _, batches = lm
    point = resolve(model, "hidden:1")
    identity = splice_metrics(model, point, batches, lambda x: x)
    assert identity["ce_loss_score"] == pytest.approx(1.0, abs=1e-6)
    assert identity["kl_div_sae"] == pytest.approx(0.0, abs=1e-6) and identity["kl_div_score"] == pytest.approx(1.0)
    zero = splice_metrics(model, point, batches, torch.zeros_like)
    assert zero["ce_loss_score"] == pytest.approx(0.0, abs=1e-6) and zero["kl_div_score"] == pytest.approx(0.0)
    assert zero["ce_zero_ablation"] > zero["ce_orig"] + 0.5  # the trained LM needs its residual stream
    g = torch.Generator().manual_seed(0)
    noisy = splice_metrics(model, point, batches, lambda x: x + 0.5 * x.std() * torch.randn(x.shape, generator=g))
    mean = splice_metrics(model, point, batches, lambda x: x.mean(0, keepdim=True).expand_as(x))
    assert 0.0 < mean["ce_loss_score"] < noisy["ce_loss_score"] < 1.0
    assert identity["n_tokens"] == zero["n_tokens"] > 0


def test_splice_changes_only_what_it_should(lm):
    model, _, [(ids, mask)] = lm
    point = resolve(model, "hidden:2")
    orig = splice_logits(model, point, ids, mask, None)
    assert torch.allclose(splice_logits(model, point, ids, mask, lambda x: x), orig, atol=1e-5)
    zeroed = splice_logits(model, point, ids, mask, torch.zeros_like, keep_first=True)
    assert torch.allclose(zeroed[:, 0], orig[:, 0], atol=1e-5)  # BOS kept, and causal: its logits unchanged
    assert not torch.allclose(zeroed[:, 1], orig[:, 1], atol=1e-3)


class IdentitySAE(nn.Module):
    """x_hat = x: the splice of a perfect reconstruction."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return SimpleNamespace(x_hat=self.scale * x)


def test_metric_on_the_data_source(tmp_path):
    texts = write(tmp_path / "t.txt", "\n".join(TEXTS * 4))
    source = LMActivationsSource(LMActivationsConfig(
        model=str(testing.tiny_trained_lm_dir()), hook="hidden:1", texts=TextConfig("file", texts), eval_fraction=0.25,
        progress=False, device="cpu"))
    ctx = EvalContext(data=source, device=torch.device("cpu"))
    result = LMSpliceMetric(LMSpliceMetric.Config(batches=2, batch_texts=4)).compute(IdentitySAE(), ctx)
    assert result["ce_loss_score"] == pytest.approx(1.0, abs=1e-6) and result["n_tokens"] > 0


def test_recipe_reports_ce_loss_score(tmp_path, cli):
    texts = write(tmp_path / "t.txt", "\n".join(TEXTS * 40))
    recipe = write(tmp_path / "r.toml", f"""
        [data]
        type = "lm-activations"
        model = "{testing.tiny_trained_lm_dir()}"
        hook = "hidden:1"
        texts = {{ source = "file", path = "{texts}" }}
        progress = false

        [model]
        type = "sae"
        d_sae = 128
        router = {{ type = "topk", k = 8 }}

        [losses.mse]
        type = "mse"

        [metrics.splice]
        type = "lm-splice"
        batches = 2

        [train]
        steps = 150
        batch_size = 64
        lr = 1e-2
        progress = false
        """)
    code, _, err = cli("run", recipe, "--run-dir", tmp_path / "run")
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "eval.json").read_text())["eval_result_metrics"]["splice"]
    assert metrics["ce_orig"] < metrics["ce_sae"] < metrics["ce_zero_ablation"]
    assert 0.0 < metrics["ce_loss_score"] < 1.0

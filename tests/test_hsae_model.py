"""H-SAE (hsae_hierarchical): a hand-computed forward pass, gather == dense, routers, losses, training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hsae import load_sae
from hsae.config import loads_recipe
from hsae.config.spec import RouterSpec
from hsae.data import Batch
from hsae.engine.assemble import assemble
from hsae.engine.rundir import RunDir
from hsae.loss import StepContext
from hsae.plugins import get_registry
from hsae_hierarchical.losses import CrossOrthoLoss, HSAEL1Loss, TopMSELoss, cross_orthogonality
from hsae_hierarchical.model import HierarchicalSAE
from hsae_hierarchical.routers import ChildTop1Router, ParentTopKRouter

from conftest import planted_features

CTX = StepContext(step=0, total_steps=1)


def make_hsae(m: int, s: int, a: int, k: int, d_in: int) -> HierarchicalSAE:
    router = RouterSpec("parent-topk", ParentTopKRouter.Config(k=k))
    return HierarchicalSAE(HierarchicalSAE.Config(n_parents=m, subspace=s, n_children=a, parent_router=router), d_in=d_in)


def t(rows) -> torch.Tensor:  # noqa: ANN001
    return torch.tensor(rows, dtype=torch.float64)


def hand_model(k: int) -> HierarchicalSAE:
    """d = 4 (offset 1/sqrt(4) = 0.5), m = 3 parents, subspace s = 2, a = 2 children each."""
    model = make_hsae(m=3, s=2, a=2, k=k, d_in=4).double()
    E = t([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]])  # parent j reads and writes axis j
    W_down = t([
        [[0, 0, 1, 0], [0, 0, 0, 1]],  # expert 0 sees (x2, x3)
        [[0, 0, 0, 1], [1, 0, 0, 0]],  # expert 1 sees (x3, x0)
        [[0, 1, 0, 0], [0, 0, 1, 0]],  # expert 2 sees (x1, x2)
    ])
    W_up = t([
        [[0, 0], [0, 0], [1, 0], [0, 1]],
        [[0, 1], [0, 0], [0, 0], [2, 0]],
        [[0, 0], [0, 0], [0, 0], [1, 1]],
    ])
    child_enc = t([[[2, 0], [1, -1]], [[1, 0], [0, -1]], [[1, 0], [0, 1]]])  # (m, a, s)
    child_dec = t([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[1, 0], [0, 1]]])  # (m, s, a)
    with torch.no_grad():
        model.W_enc.copy_(E.T)
        model.W_dec.copy_(E)
        model.W_down.copy_(W_down)
        model.W_up.copy_(W_up)
        model.W_child_enc.copy_(child_enc)
        model.W_child_dec.copy_(child_dec)
    return model


X = t([[0.9, 0.6, 0.3, 0.2]])


def test_forward_matches_hand_computation():
    # z = E x = (0.9, 0.6, 0.3); the threshold 0.5 zeroes parent 2; top-2 keeps parents 0 and 1.
    # Expert 0: u = (x2, x3) = (0.3, 0.2); E_0 u = (0.6, 0.1) -> leaky (0.6, 0.001) -> atom 0 = 0.6.
    #   It writes W_up_0 D_0[:, 0] * 0.6 = W_up_0 (1, 0) * 0.6 = (0, 0, 0.6, 0).
    # Expert 1: u = (x3, x0) = (0.2, 0.9); E_1 u = (0.2, -0.9) -> leaky (0.002, -0.009) -> atom 0 = 0.002.
    #   It writes W_up_1 D_1[:, 0] * 0.002 = W_up_1 (0, 1) * 0.002 = (0.002, 0, 0, 0).
    model = hand_model(k=2)
    out = model(X)
    x_hat_top = t([[0.9, 0.6, 0.0, 0.0]])
    torch.testing.assert_close(out.extras["x_hat_top"], x_hat_top)
    torch.testing.assert_close(out.x_hat, x_hat_top + t([[0.002, 0.0, 0.6, 0.0]]))
    # Latents: parents 0..2, then child i of parent j at 3 + 2 j + i.
    torch.testing.assert_close(out.codes.dense(), t([[0.9, 0.6, 0, 0.6, 0, 0.002, 0, 0, 0]]))
    assert out.codes.d_sae == model.d_sae == 9
    torch.testing.assert_close(out.extras["parent_acts"], t([[0.9, 0.6, 0.0]]))
    torch.testing.assert_close(out.extras["child_acts"].sort(1).values, t([[[0.002, -0.009], [0.6, 0.001]]]))
    assert sorted(out.extras["parent_idx"][0].tolist()) == [0, 1]
    assert out.extras["child_idx"].tolist() == [[0, 0]]


def test_selected_parent_below_threshold_gates_its_child():
    # With k = 3, parent 2 (z = 0.3 < 0.5, so 0) is selected too: its child (atom 0 = 0.6) is
    # computed, and counts in the L1, but the gate [z > 0] keeps it out of x_hat and the codes.
    small, large = hand_model(k=2), hand_model(k=3)
    a, b = small(X), large(X)
    torch.testing.assert_close(b.x_hat, a.x_hat)
    torch.testing.assert_close(b.codes.dense(), a.codes.dense())
    assert b.codes.l0().tolist() == [4.0]
    l1 = HSAEL1Loss(HSAEL1Loss.Config())
    # parents 0.9 + 0.6; children |0.6| + |0.001| + |0.002| + |-0.009| (+ 0.6 + 0.003 for expert 2)
    assert l1(Batch(X), a, small, CTX).item() == pytest.approx(1.5 + 0.612)
    assert l1(Batch(X), b, large, CTX).item() == pytest.approx(1.5 + 0.612 + 0.603)


def test_loss_values_on_the_hand_example():
    model = hand_model(k=2)
    out = model(X)
    mse = get_registry().get("loss", "mse")(get_registry().get("loss", "mse").Config())
    # x - x_hat_top = (0, 0, 0.3, 0.2); x - x_hat = (-0.002, 0, -0.3, 0.2)
    assert TopMSELoss(TopMSELoss.Config())(Batch(X), out, model, CTX).item() == pytest.approx(0.13)
    assert mse(Batch(X), out, model, CTX).item() == pytest.approx(0.130004)
    assert CrossOrthoLoss(CrossOrthoLoss.Config())(Batch(X), out, model, CTX).item() == pytest.approx(0.0, abs=1e-12)
    # Published defaults: top-mse 0.1; l1 1e-3 and ortho 0.1, both ramped over 1000 steps.
    assert TopMSELoss.Config().coefficient == 0.1
    assert (HSAEL1Loss.Config().coefficient, HSAEL1Loss.Config().warmup_steps) == (1e-3, 1000)
    assert (CrossOrthoLoss.Config().coefficient, CrossOrthoLoss.Config().warmup_steps) == (0.1, 1000)
    assert CrossOrthoLoss(CrossOrthoLoss.Config()).weight(499) == pytest.approx(0.05)


def test_decode_directions_and_parent_structure():
    model = hand_model(k=2)
    out = model(X)
    torch.testing.assert_close(model.decode(out.codes), out.x_hat)
    torch.testing.assert_close(model.decode(type(out.codes).from_dense(out.codes.dense())), out.x_hat)
    directions = model.decoder_directions()
    assert directions.shape == (9, 4)
    torch.testing.assert_close(directions[3], t([0, 0, 1, 0]))  # child 0 of parent 0: W_up_0 (1, 0)
    torch.testing.assert_close(directions[5], t([1, 0, 0, 0]))  # child 0 of parent 1: W_up_1 (0, 1)
    torch.testing.assert_close(directions[6], t([0, 0, 0, 2]))  # child 1 of parent 1: W_up_1 (1, 0)
    assert model.latent_parent().tolist() == [-1, -1, -1, 0, 0, 1, 1, 2, 2]


def _loss_and_grads(model: HierarchicalSAE, x: torch.Tensor, dense: bool):
    registry = get_registry()
    losses = [registry.get("loss", n)(registry.get("loss", n).Config()) for n in ("mse", "hsae-top-mse", "hsae-l1", "hsae-ortho")]
    model.zero_grad()
    x = x.clone().requires_grad_(True)
    out = model.forward_dense(x) if dense else model(x)
    total = sum(loss(Batch(x), out, model, CTX) for loss in losses)
    total.backward()
    return out, total, {n: p.grad.clone() for n, p in model.named_parameters()}, x.grad


@pytest.mark.parametrize(("m", "s", "a", "k", "scale"), [(32, 3, 5, 4, 1.0), (20, 2, 7, 1, 1.0), (24, 4, 3, 6, 0.5)])
def test_gathered_forward_equals_dense_reference(m, s, a, k, scale):
    """Values, codes and every gradient; scale 0.5 leaves fewer than k parents above threshold."""
    torch.manual_seed(0)
    model = make_hsae(m=m, s=s, a=a, k=k, d_in=16).double()
    x = torch.nn.functional.normalize(torch.randn(64, 16, dtype=torch.float64), dim=1) * scale
    out, total, grads, grad_x = _loss_and_grads(model, x, dense=False)
    ref, ref_total, ref_grads, ref_grad_x = _loss_and_grads(model, x, dense=True)
    torch.testing.assert_close(out.x_hat, ref.x_hat)
    torch.testing.assert_close(out.codes.dense(), ref.codes.dense())
    for key in out.extras:
        torch.testing.assert_close(out.extras[key], ref.extras[key], msg=key)
    torch.testing.assert_close(total, ref_total)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], msg=name)
        assert grads[name].abs().sum() > 0, name
    torch.testing.assert_close(grad_x, ref_grad_x)
    if scale < 1:
        assert (out.extras["parent_values"] == 0).any()  # selected parents gated off were exercised
        assert (out.extras["parent_values"] > 0).any()


def test_parent_router_threshold_and_top_k():
    pre = torch.tensor([[0.9, 0.1, 0.7, 0.6, -1.0]])
    for k, expected in [(1, [0.9, 0, 0, 0, 0]), (2, [0.9, 0, 0.7, 0, 0]), (3, [0.9, 0, 0.7, 0.6, 0])]:
        router = ParentTopKRouter(ParentTopKRouter.Config(k=k), d_sae=5, d_in=4)  # offset 0.5
        assert router.offset == 0.5
        torch.testing.assert_close(router(pre).dense(), torch.tensor([expected]))
    high = ParentTopKRouter(ParentTopKRouter.Config(k=3, offset=0.65), d_sae=5)
    torch.testing.assert_close(high(pre).dense(), torch.tensor([[0.9, 0, 0.7, 0, 0]]))
    assert ParentTopKRouter(ParentTopKRouter.Config(k=2), d_sae=5).offset == 0.0  # standalone, no d_in
    with pytest.raises(ValueError, match="k must be"):
        ParentTopKRouter(ParentTopKRouter.Config(k=6), d_sae=5)


def test_child_router_leaky_threshold_and_argmax():
    router = ChildTop1Router(ChildTop1Router.Config(), d_sae=3, d_in=4)  # offset 0.5, slope 0.01
    torch.testing.assert_close(router.activate(torch.tensor([0.2, 0.6, -1.0])), torch.tensor([0.002, 0.6, -0.01]))
    codes = router(torch.tensor([[0.2, 0.6, -1.0], [-0.3, -0.1, -0.2]]))
    # The argmax is kept whatever its value, as in the official code (here -0.001).
    torch.testing.assert_close(codes.dense(), torch.tensor([[0, 0.6, 0], [0, -0.001, 0]]))


def test_recipe_swaps_top1_and_top2_parents(tmp_path):
    x = torch.nn.functional.normalize(torch.randn(256, 16), dim=1)
    for k in (1, 2):
        text = f"""
        [data]
        type = "tensor-file"
        path = "x.npy"

        [model]
        type = "hsae"
        n_parents = 12
        subspace = 2
        n_children = 3
        parent_router = {{ type = "parent-topk", k = {k} }}
        child_router = {{ type = "child-top1", slope = 0.02 }}
        """
        np.save(tmp_path / "x.npy", x.numpy())
        recipe = loads_recipe("\n".join(line.strip() for line in text.splitlines()), base_dir=tmp_path)
        model = recipe.config.model.build(d_in=16)
        assert isinstance(model, HierarchicalSAE) and model.k == k and model.child_router.slope == 0.02
        assert model.parent_router.offset == pytest.approx(1 / math.sqrt(16))
        out = model(x)
        parents = out.codes.cols < model.m
        assert out.extras["parent_idx"].shape == (256, k) and int(parents.sum()) == 256 * k


def test_model_refuses_other_routers():
    with pytest.raises(ValueError, match="parent_router must be a parent-topk"):
        HierarchicalSAE(HierarchicalSAE.Config(n_parents=8, parent_router=RouterSpec("topk")), d_in=16)


def test_cross_orthogonality_off_diagonal_form():
    E = torch.eye(4)[:3]  # three orthonormal encoder rows, (m, d)
    assert cross_orthogonality(E.T, E).item() == 0.0
    # E D diagonal but not the identity: still 0 (encoder rows and decoder columns are normalized).
    assert cross_orthogonality(E.T, torch.diag(torch.tensor([2.0, -1.0, 5.0])) @ E).item() == 0.0
    # The official code subtracts the diagonal as a broadcast vector: nonzero even here.
    cos = E @ E.T
    assert torch.linalg.matrix_norm(cos - torch.diagonal(cos)).item() > 0
    # Parents 0 and 1 at 45 degrees: off-diagonal (1/sqrt2, 1/sqrt2), ||.||_F = 1, / (9 - 3).
    E2 = torch.tensor([[1.0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0]])
    assert cross_orthogonality(E2.T, E2).item() == pytest.approx(1 / 6)
    # Works on a standard SAE's linear encoder/decoder too.
    sae = get_registry().get("model", "sae")
    loss = CrossOrthoLoss(CrossOrthoLoss.Config())
    assert loss(None, None, sae(sae.Config(d_sae=32), d_in=16), CTX).item() > 0


def test_parameter_groups_and_unit_norm():
    model = make_hsae(m=8, s=2, a=3, k=2, d_in=16)
    groups = model.parameter_groups()
    ids = {name: {id(p) for p in ps} for name, ps in groups.items()}
    assert ids["decoders"] == {id(model.W_dec), id(model.W_up), id(model.W_child_dec)}
    assert ids["encoders"] | ids["decoders"] == ids["all"] == {id(p) for p in model.parameters()}
    assert {id(p) for p, _ in model.unit_norm_parameters()} == {id(model.W_dec), id(model.W_child_dec)}
    # Init: W_down rows and child-decoder columns are unit norm; D and W_up start as transposes.
    torch.testing.assert_close(model.W_down.norm(dim=-1), torch.ones(8, 2))
    torch.testing.assert_close(model.W_child_dec.norm(dim=1), torch.ones(8, 3))
    torch.testing.assert_close(model.W_dec, model.W_enc.T)
    torch.testing.assert_close(model.W_up, model.W_down.transpose(1, 2))


HSAE_RECIPE = """
[data]
type = "tensor-file"
path = "toy.npy"

[model]
type = "hsae"
n_parents = 16
subspace = 2
n_children = 4
parent_router = {{ type = "parent-topk", k = 2 }}

[losses.mse]
type = "mse"

[losses.top]
type = "hsae-top-mse"

[losses.l1]
type = "hsae-l1"
warmup_steps = 40

[losses.ortho]
type = "hsae-ortho"
warmup_steps = 40

[train]
steps = {steps}
batch_size = 128
lr = 5e-3
grad_clip = 0.75
log_every = 20
checkpoint_every = 0
progress = false

[[stages]]
name = "A"
steps = 20
freeze = ["decoders"]

[[stages]]
name = "B"
"""


def test_training_through_the_engine_reduces_the_loss(tmp_path):
    x, _, _ = planted_features(n=6000, n_features=24, d=16, p=0.08)
    x = torch.nn.functional.normalize(x[x.norm(dim=1) > 0], dim=1)
    np.save(tmp_path / "toy.npy", x.numpy())
    recipe = loads_recipe(HSAE_RECIPE.format(steps=200), base_dir=tmp_path)
    run = RunDir(tmp_path / "run")
    trainer = assemble(recipe.config, run_dir=run)
    model = trainer.model
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if n in ("W_dec", "W_up", "W_child_dec")}
    snapshots = {}
    stage_at = trainer.stage_at

    def spy(step):  # noqa: ANN001
        if step == 20:
            snapshots.update({n: p.detach().clone() for n, p in model.named_parameters()})
        return stage_at(step)

    trainer.stage_at = spy
    results = trainer.fit()
    for name, before in frozen.items():  # stage A froze every decoder-side parameter
        torch.testing.assert_close(snapshots[name], before, msg=name)
    assert not torch.equal(snapshots["W_enc"], model.W_enc.detach())

    records = [r for r in run.read_log() if "loss" in r]
    assert records[-1]["loss/mse"] < 0.5 * records[0]["loss/mse"]
    assert results["explained-variance"]["explained_variance"] > 0.5
    assert 0 < results["l0"]["l0"] <= 4
    torch.testing.assert_close(model.W_dec.norm(dim=1), torch.ones(16))
    torch.testing.assert_close(model.W_child_dec.norm(dim=1), torch.ones(16, 4))

    cfg = json.loads((run.root / "cfg.json").read_text())
    assert (cfg["architecture"], cfg["n_parents"], cfg["subspace"], cfg["n_children"], cfg["k"]) == ("hsae", 16, 2, 4, 2)
    assert cfg["d_sae"] == 16 + 16 * 4
    weights = load_file(run.root / "model.safetensors")
    assert weights["W_enc"].shape == (16, 16) and weights["W_dec"].shape == (16, 16)
    assert weights["W_down"].shape == (16, 2, 16) and weights["W_child_dec"].shape == (16, 2, 4)
    loaded = load_sae(run.root)
    torch.testing.assert_close(loaded(x[:64]).x_hat, model.cpu()(x[:64]).x_hat)

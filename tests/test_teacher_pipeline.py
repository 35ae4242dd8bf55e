"""The teacher pipeline (seed 001 on synthetic hierarchies): phases, initializer, losses, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hsae.config import load_recipe
from hsae.config.spec import ModelSpec, RouterSpec
from hsae_teacher.concept_metrics import ConceptCounts
from hsae_teacher.init import TeacherVectorsInitializer
from hsae_teacher.losses import CausalOrthoLoss

REPO = Path(__file__).resolve().parents[1]
TEACHER = REPO / "recipes" / "teacher.toml"
SMALL = ["train.steps=60", "stages.0.steps=20", "tuning.lrs=[1e-3,4e-3]", "train.log_every=20", "train.checkpoint_every=30",
         "train.progress=false", "extract.n_samples=6000", "eval.batches=2", "eval.batch_size=1024"]


def test_recipe_validates():
    recipe = load_recipe(TEACHER)
    recipe.build_pipeline().validate()
    assert set(recipe.config.arms) >= {"baseline", "teacher", "teacher_euclidean", "teacher_top1", "teacher_no_stage_a"}


def test_phases_resume_from_the_run_directory(tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli("run", TEACHER, "--run-dir", run, "--phase", "3", *sum((["--set", s] for s in SMALL), []))
    assert code == 2 and "no teacher vectors; run phase 1 first" in err

    for phase in ("1", "2", "3"):
        code, _, err = cli("run", TEACHER, "--run-dir", run, "--phase", phase, *sum((["--set", s] for s in SMALL), []))
        assert code == 0, err
    seed = run / "seed-0"
    geometry = json.loads((seed / "geometry" / "geometry.json").read_text())
    assert geometry["projection"]["auc_mean"] > 0.9
    assert geometry["controls"]["shuffled_labels"]["projection"]["auc_mean"] < 0.6
    assert (seed / "baseline" / "model.safetensors").is_file() and (seed / "teacher" / "model.safetensors").is_file()
    baseline_mtime = (seed / "baseline" / "model.safetensors").stat().st_mtime_ns

    code, _, err = cli("run", TEACHER, "--run-dir", run, "--phase", "4", *sum((["--set", s] for s in SMALL), []))
    assert code == 0, err
    assert (seed / "baseline" / "model.safetensors").stat().st_mtime_ns == baseline_mtime  # reused, not retrained
    report = json.loads((run / "report.json").read_text())
    arms = {"baseline", "teacher", "teacher_euclidean", "teacher_top1", "teacher_no_stage_a", "baseline_top1",
            "baseline_2x", "teacher_2x"}
    assert set(report["arms"]) == arms
    tuning = json.loads((run / "tuning" / "tuning.json").read_text())
    assert set(tuning["arms"]) == arms and tuning["seed"] == 1000
    for arm in tuning["arms"].values():  # the choice is the grid's lowest validation loss
        assert set(arm["losses"]) == {"0.001", "0.004"}
        assert arm["chosen_lr"] == float(min(arm["losses"], key=arm["losses"].get))
    assert (run / "tuning" / "geometry" / "teacher-data-covariance.safetensors").is_file()
    assert report["tuning"]["arms"]["baseline"]["chosen_lr"] == tuning["arms"]["baseline"]["chosen_lr"]
    for arm in report["arms"].values():
        assert np.isfinite(arm["purity_pp"]["mean"]) and np.isfinite(arm["one_minus_ev"]["mean"])
    assert len(report["targets"]) == 4 and all(isinstance(t["met"], bool) for t in report["targets"])
    text = (run / "report.md").read_text()
    assert "targets met" in text and "purity" in text and "| chosen lr |" in text
    assert (run / "training_curves.png").stat().st_size > 0 and (run / "concept_metrics.png").stat().st_size > 0
    stages = [r.get("stage") for r in map(json.loads, (seed / "teacher" / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert stages[0] == "A" and stages[-1] == "B"


def _tiny_hsae(d=8, m=2, s=2, a=2):
    from hsae.plugins import get_registry

    cls = get_registry().get("model", "hsae")
    router = RouterSpec("parent-topk", get_registry().get("router", "parent-topk").Config(k=1))
    return ModelSpec("hsae", cls.Config(n_parents=m, subspace=s, n_children=a, parent_router=router)).build(d_in=d)


def test_teacher_initializer_sets_parents_and_orthogonalized_children(tmp_path):
    from hsae.io import save_tensors

    g = torch.Generator().manual_seed(0)
    parents = torch.nn.functional.normalize(torch.randn(2, 8, generator=g), dim=1)
    deltas = torch.randn(4, 8, generator=g)
    save_tensors(tmp_path / "t.safetensors", {
        "parents": torch.tensor([0, 3]), "parent_vectors": 2 * parents,
        "children": torch.tensor([1, 2, 4, 5]), "child_parent": torch.tensor([0, 0, 3, 3]),
        "child_deltas": deltas, "causal_metric": torch.eye(8),
    })
    model = _tiny_hsae()
    TeacherVectorsInitializer(TeacherVectorsInitializer.Config(path=tmp_path / "t.safetensors")).apply(model, None)
    assert torch.allclose(model.W_dec.detach(), parents, atol=1e-6)
    assert torch.allclose(model.W_enc.detach().T, parents, atol=1e-6)
    children = model.child_directions().detach()  # (m, a, d)
    for j in range(2):
        for i in range(2):
            delta = deltas[2 * j + i]
            expected = torch.nn.functional.normalize(delta - (delta @ parents[j]) * parents[j], dim=0)
            assert torch.allclose(children[j, i], expected, atol=1e-5)
            assert abs(float(children[j, i] @ parents[j])) < 1e-5


def test_causal_ortho_loss_is_zero_only_for_orthogonal_children(tmp_path):
    model = _tiny_hsae(d=8, m=1, s=2, a=2)
    with torch.no_grad():
        model.W_dec[0] = torch.eye(8)[0]
        model.W_up[0] = torch.eye(8)[:, 1:3]
        model.W_child_dec[0] = torch.eye(2)
    loss = CausalOrthoLoss(CausalOrthoLoss.Config())
    out = model(torch.randn(4, 8))
    assert float(loss(None, out, model, None).detach()) == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        model.W_up[0, 0, 0] = 1.0  # child 0 now leans on the parent
    assert float(loss(None, out, model, None).detach()) > 0.1


def test_concept_counts_of_a_perfect_detector():
    active = torch.rand(500, 6) < 0.3
    counts = ConceptCounts()
    roots, children, child_parent = torch.tensor([0, 1]), torch.tensor([2, 3, 4, 5]), torch.tensor([0, 0, 1, 1])
    active[:, 2:4] &= active[:, :1]
    active[:, 4:6] &= active[:, 1:2]
    fires = torch.cat([active[:, [3, 0, 5]], active[:, [1, 2, 4]]], dim=1).float()  # latents permuted
    counts.update(fires, active, roots, children, child_parent)
    latent = counts.match()
    assert latent.tolist() == [1, 3, 4, 0, 5, 2]
    assert torch.allclose(counts.hits[latent, torch.arange(6)], counts.fires[latent])  # purity 100%
    assert float(counts.child_leak[latent[children], torch.arange(4)].sum()) == 0.0  # no leakage


def _spd_metric(d: int, seed: int = 1) -> torch.Tensor:
    """A symmetric positive-definite, clearly non-identity metric."""
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed))
    return a @ a.T / d + 0.1 * torch.eye(d)


def test_teacher_arms_train_stage_a_under_their_teachers_metric(tmp_path):
    from hsae.io import save_tensors

    recipe = load_recipe(TEACHER)
    pipeline = recipe.build_pipeline()
    d = recipe.config.data.config.source.config.d_model
    for metric, matrix in (("data-covariance", _spd_metric(d)), ("euclidean", torch.eye(d))):
        save_tensors(tmp_path / f"teacher-{metric}.safetensors", {"causal_metric": matrix})
    for arm, identity in (("teacher", False), ("teacher_euclidean", True)):
        train = pipeline.arm_recipe(arm, recipe.config.arms[arm], tmp_path)
        loss = train.losses["causal_ortho"].build()
        assert loss.metric.shape == (d, d), arm
        assert torch.allclose(loss.metric, torch.eye(d)) is identity, arm


def test_teacher_initializer_makes_children_orthogonal_under_the_causal_metric(tmp_path):
    from hsae.io import save_tensors

    g = torch.Generator().manual_seed(0)
    parents = torch.nn.functional.normalize(torch.randn(2, 8, generator=g), dim=1)
    metric = _spd_metric(8)
    save_tensors(tmp_path / "t.safetensors", {
        "parents": torch.tensor([0, 3]), "parent_vectors": 2 * parents,
        "children": torch.tensor([1, 2, 4, 5]), "child_parent": torch.tensor([0, 0, 3, 3]),
        "child_deltas": torch.randn(4, 8, generator=g), "causal_metric": metric,
    })
    model = _tiny_hsae()
    TeacherVectorsInitializer(TeacherVectorsInitializer.Config(path=tmp_path / "t.safetensors")).apply(model, None)
    children = model.child_directions().detach()  # (m, a, d)
    for j in range(2):
        parent = model.W_dec[j].detach()
        for i in range(2):
            causal_cos = children[j, i] @ metric @ parent / ((children[j, i] @ metric @ children[j, i]) * (parent @ metric @ parent)).sqrt()
            assert abs(float(causal_cos)) < 1e-5
    loss = CausalOrthoLoss(CausalOrthoLoss.Config(metric_file=tmp_path / "t.safetensors"))
    assert float(loss(None, model(torch.randn(4, 8)), model, None).detach()) < 1e-9


def test_lr_choice_is_the_lowest_finite_validation_loss_with_ties_to_the_smaller():
    from hsae.tuning import choose_lr

    assert choose_lr({1e-3: 0.5, 2e-3: 0.4, 4e-3: float("nan")}) == 2e-3
    assert choose_lr({1e-3: 0.4, 2e-3: 0.4}) == 1e-3
    with pytest.raises(ValueError):
        choose_lr({1e-3: float("inf")})


def test_tuning_on_an_evaluation_seed_is_refused(cli):
    code, _, err = cli("validate", TEACHER, "--set", "seeds=[0,1000]")
    assert code == 2 and "tuning.seed: must differ from the evaluation seeds" in err

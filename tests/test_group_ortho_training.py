"""The group-orthogonal SAE in training: exact resume with its state, and the comparison recipe end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hsae.config import load_recipe
from hsae.engine.assemble import assemble
from hsae.engine.rundir import RunDir

from conftest import REPO, write

RECIPE = """
[data]
type = "hierarchical-synthetic"
d_model = 16
orthogonal_features = false
[data.hierarchy]
n_features = 20
n_roots = 4
branching_factor = 4
depth = 1

[model]
type = "group-ortho-sae"
d_sae = 32
n_groups = 4
active_groups = 2
router = { type = "topk", k = 3 }

[losses.mse]
type = "mse"
[losses.ortho]
type = "group-ortho"
[losses.group_sparsity]
type = "group-sparsity"
[losses.centroid]
type = "group-centroid"

[callbacks.centroids]
type = "group-centroids"
decay = 0.9
[callbacks.patterns]
type = "pattern-cache"
capacity = 4
[callbacks.reassign]
type = "group-reassign"
every = 3
start_step = 3
stop_fraction = 1.0
momentum = 0.5
threshold = 0.0
max_moves = 2

[train]
steps = 60
batch_size = 64
lr = 1e-2
log_every = 10
checkpoint_every = 20
keep_checkpoints = 5
dead_window_steps = 10
progress = false
"""


class Killed(Exception):
    pass


def _dies_at(data, step: int):  # noqa: ANN001 - a data source whose training stream raises at ``step``
    real = data.batches

    def batches(batch_size, **kw):  # noqa: ANN001
        for batch in real(batch_size, **kw):
            if kw.get("split", "train") == "train" and batch.meta["step"] == step:
                raise Killed
            yield batch

    data.batches = batches
    return data


def _checkpoint(run: Path, step: int) -> tuple[dict, dict, dict]:
    folder = run / "checkpoints" / f"step_{step:08d}"
    state = json.loads((folder / "state.json").read_text())
    return load_file(folder / "model.safetensors"), load_file(folder / "callbacks.safetensors"), state["callbacks"]


def test_kill_and_resume_with_group_state_equals_an_uninterrupted_run(tmp_path):
    recipe = load_recipe(write(tmp_path / "r.toml", RECIPE)).config
    assemble(recipe, run_dir=RunDir(tmp_path / "straight")).fit()

    killed = tmp_path / "killed"
    with pytest.raises(Killed):
        assemble(recipe, run_dir=RunDir(killed), data=_dies_at(recipe.data.build(seed=0), 47)).fit()
    assert not (killed / "model.safetensors").exists()
    # A fresh trainer (new model, losses, callbacks) reads everything back from the step-40 checkpoint files.
    assemble(recipe, run_dir=RunDir(killed)).fit(resume=True)

    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and {"assignment", "centroids", "centroid_mass"} <= a.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    _, cb_straight, extra_straight = _checkpoint(tmp_path / "straight", 60)
    _, cb_resumed, extra_resumed = _checkpoint(killed, 60)
    assert cb_straight.keys() == cb_resumed.keys()
    for key in cb_straight:
        assert torch.equal(cb_straight[key], cb_resumed[key]), key
    assert extra_straight == extra_resumed

    # The state mattered: latents moved and patterns were evicted before and after the checkpoint.
    model_40, cb_40, extra_40 = _checkpoint(killed, 40)
    assert 0 < int(cb_40["reassign.moves"]) < int(cb_straight["reassign.moves"])
    assert not torch.equal(model_40["groups.assignment"], a["assignment"])
    evicted = lambda extra: sum(g["evicted"] for g in extra["patterns"]["groups"])  # noqa: E731
    assert 0 < evicted(extra_40) < evicted(extra_straight)
    assert all(len(g["entries"]) <= 4 for g in extra_straight["patterns"]["groups"])


SMALL = ["train.steps=40", "train.log_every=10", "train.checkpoint_every=20", "train.progress=false", "seeds=[3]",
         "eval.batches=1", "eval.batch_size=1024", "metrics.sparse_probing.ks=[1,5]", "metrics.sparse_probing.max_tasks=10",
         "arms.group_ortho.callbacks.reassign.start_step=5", "arms.group_ortho.callbacks.reassign.every=5"]


def test_comparison_recipe_end_to_end(tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli("run", REPO / "recipes" / "group-ortho.toml", "--run-dir", run, *sum((["--set", s] for s in SMALL), []))
    assert code == 0, err
    report = json.loads((run / "report.json").read_text())
    assert set(report["arms"]) == {"group_ortho", "vanilla", "contrastive"} and all(report["trained"].values())
    for arm, numbers in report["per_seed"].items():
        n = numbers["3"]
        assert n["steps"] == 40 and math.isfinite(n["final_loss"])
        assert 0.5 <= n["probe_top_1"] <= 1 and 0 <= n["cross_group_max_cos"] <= 1
        assert ("moved_fraction" in n) == (arm == "group_ortho")
        probing = json.loads((run / "seed-3" / arm / "sparse_probing.json").read_text())
        assert probing["eval_type_id"] == "sparse_probing" and probing["eval_result_details"]
        assert "sae_top_5_test_accuracy" in probing["eval_result_metrics"]["sae"]
        assert (run / "seed-3" / arm / "interpretability.md").read_text().startswith("# Top-activating examples")
    text = (run / "report.md").read_text()
    assert "sparse probing acc, k=1" in text and "most frequent activation patterns" in text
    for plot in ("training_curves.png", "sparse_probing.png", "groups.png"):
        assert (run / plot).stat().st_size > 0

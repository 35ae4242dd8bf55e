"""Training engine: feature recovery, outputs, stages, kill-and-resume, corrupt checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.optimize import linear_sum_assignment

from hsae import load_sae
from hsae.config import load_recipe
from hsae.engine.assemble import assemble
from hsae.engine.rundir import RunDir

from conftest import TOY_RECIPE, hsae_subprocess, planted_features, write


def mcc(learned: torch.Tensor, true: torch.Tensor) -> float:
    cos = (torch.nn.functional.normalize(learned, dim=1) @ true.T).abs().numpy()
    rows, cols = linear_sum_assignment(-cos)
    return float(cos[rows, cols].mean())


def test_topk_recovers_planted_features(tmp_path):
    x, directions, _ = planted_features(n=30000, n_features=32, d=32, p=0.1)
    np.save(tmp_path / "toy.npy", x.numpy())
    text = TOY_RECIPE.format(k=5, steps=1500, checkpoint_every=0).replace("d_sae = 64", "d_sae = 32")
    text = text.replace("lr = 3e-3", 'lr = 1e-2\nlr_schedule = "cosine"\nlr_warmup_steps = 50')
    trainer = assemble(load_recipe(write(tmp_path / "r.toml", text)).config)
    results = trainer.fit()
    assert results["explained-variance"]["explained_variance"] > 0.9
    assert mcc(trainer.model.decoder_directions().detach(), directions) > 0.9


def test_run_directory_contents(toy_recipe, tmp_path, cli):
    run = tmp_path / "run"
    code, _, err = cli("run", toy_recipe, "--run-dir", run)
    assert code == 0, err
    assert load_recipe(run / "recipe.toml").config == load_recipe(toy_recipe).config
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [50, 60]
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)
    cfg = json.loads((run / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["k"] == 4 and cfg["d_in"] == 32 and cfg["d_sae"] == 64
    weights = load_file(run / "model.safetensors")
    assert weights["W_enc"].shape == (32, 64) and weights["W_dec"].shape == (64, 32)
    assert torch.allclose(weights["W_dec"].norm(dim=1), torch.ones(64), atol=1e-5)
    report = json.loads((run / "eval.json").read_text())
    for key in ("eval_type_id", "eval_config", "eval_id", "datetime_epoch_millis", "eval_result_metrics", "sae_cfg_dict"):
        assert key in report
    assert 0 < report["eval_result_metrics"]["explained-variance"]["explained_variance"] <= 1
    model = load_sae(run)
    assert torch.equal(model.decoder.W_dec, weights["W_dec"])


def test_existing_run_dir_is_not_overwritten(toy_recipe, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("run", toy_recipe, "--run-dir", run)[0] == 0
    before = (run / "model.safetensors").read_bytes()
    code, _, err = cli("run", toy_recipe, "--run-dir", run)
    assert code == 2 and "already holds a run" in err
    assert (run / "model.safetensors").read_bytes() == before


def test_stage_freezes_decoder_and_switches_losses(tmp_path, toy_data):
    text = TOY_RECIPE.format(k=4, steps=40, checkpoint_every=0)
    text += '\n[[stages]]\nname = "A"\nsteps = 20\nfreeze = ["decoder"]\nlosses = ["mse"]\n\n[[stages]]\nname = "B"\n'
    trainer = assemble(load_recipe(write(tmp_path / "r.toml", text)).config, run_dir=RunDir(tmp_path / "run"))
    start = trainer.model.decoder.W_dec.detach().clone()
    snapshots = {}
    original_fit_step = trainer.stage_at

    def spy(step):
        if step == 20:
            snapshots["after_A"] = trainer.model.decoder.W_dec.detach().clone()
        return original_fit_step(step)

    trainer.stage_at = spy
    trainer.fit()
    assert torch.equal(snapshots["after_A"], start)
    assert not torch.equal(trainer.model.decoder.W_dec.detach(), start)
    records = RunDir(tmp_path / "run").read_log()
    assert [r.get("stage") for r in records if "loss" in r][:2] == ["A", "B"]
    assert "loss/auxk" not in records[0] and "loss/auxk" in records[1]


def test_unknown_freeze_group_is_located(tmp_path, toy_data, cli):
    text = TOY_RECIPE.format(k=4, steps=40, checkpoint_every=0) + '\n[[stages]]\nsteps = 20\nfreeze = ["decodr"]\n'
    code, _, err = cli("validate", write(tmp_path / "r.toml", text))
    assert code == 2 and "stages[0].freeze: no parameter group 'decodr'" in err


def _train_subprocess(recipe: Path, run: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hsae", "run", str(recipe), "--run-dir", str(run), *extra],
                            cwd=recipe.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_and_resume_is_bitwise_equal(tmp_path, toy_data):
    text = TOY_RECIPE.format(k=4, steps=400, checkpoint_every=25).replace("d_sae = 64", "d_sae = 256")
    recipe = write(tmp_path / "r.toml", text)
    straight = hsae_subprocess("run", recipe, "--run-dir", tmp_path / "straight", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "killed"
    proc = _train_subprocess(recipe, run)
    deadline = time.time() + 120
    # Kill once a checkpoint at step >= 100 is complete (older ones are pruned as training goes on).
    while not [p for p in (run / "checkpoints").glob("step_*/state.json") if int(p.parent.name[5:]) >= 100]:
        assert proc.poll() is None, f"run ended before it could be killed: {proc.communicate()[1]}"
        assert time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "model.safetensors").exists()

    resumed = hsae_subprocess("run", recipe, "--run-dir", run, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(run / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [r["step"] for r in RunDir(run).read_log() if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 400


def test_resume_with_changed_recipe_is_refused(toy_recipe, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("run", toy_recipe, "--run-dir", run)[0] == 0
    code, _, err = cli("run", toy_recipe, "--run-dir", run, "--resume", "--set", "train.lr=0.1")
    assert code == 2 and "recipe differs" in err


def test_corrupt_checkpoint_is_a_clear_error(toy_recipe, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("run", toy_recipe, "--run-dir", run)[0] == 0
    latest = sorted((run / "checkpoints").iterdir())[-1]
    (latest / "model.safetensors").write_bytes(b"not a safetensors file")
    code, _, err = cli("run", toy_recipe, "--run-dir", run, "--resume")
    assert code == 2 and "model.safetensors: not a readable safetensors file" in err
    assert "Traceback" not in err


def test_pickle_checkpoints_are_never_loaded(toy_recipe, tmp_path):
    run = tmp_path / "run"
    assert hsae_subprocess("run", toy_recipe, "--run-dir", run, cwd=tmp_path).returncode == 0
    for path in run.rglob("*"):
        assert path.suffix in ("", ".json", ".jsonl", ".toml", ".safetensors"), path

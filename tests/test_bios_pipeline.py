"""``hsae run recipes/bio-slots.toml`` as a user runs it, at a size a test affords."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--set", "data.num_persons=12", "--set", "lm.train.steps=30", "--set", "lm.model.n_layer=2",
    "--set", "lm.model.n_embd=32", "--set", "lm.model.n_head=2", "--set", "lm.model.context_length=96",
    "--set", "lm.eval_rows=24", "--set", "layers=[1,2]", "--set", "slot_train.seeds=[0,1]",
    "--set", "slot_train.epochs=4", "--set", "topk.epochs=4", "--set", "topk.d_sae=32",
    "--set", "evaluate.intervention_rows=12", "--set", "evaluate.alphas=[2.0]",
]


def hsae(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "hsae", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("bio")
    (work / "recipes").mkdir()
    (work / "recipes" / "bio-slots.toml").write_text((REPO / "recipes" / "bio-slots.toml").read_text())
    done = hsae("run", "recipes/bio-slots.toml", "--run-dir", "runs/bio", *TINY, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, work / "runs" / "bio", done


def test_every_phase_writes_its_outputs(run):
    work, root, done = run
    for name in ("report.md", "report.json", "per_layer.png", "confusion.png", "ablation.png", "lm_accuracy.json"):
        assert (root / name).is_file(), name
    report = json.loads((root / "report.json").read_text())
    assert report["layers"] == [1, 2] and report["seeds"] == [0, 1]
    assert set(report["lm"]) >= {"main", "single", "lm"}
    for layer in report["per_layer"].values():
        assert layer["causal"]["identity_unchanged"] is True
        assert set(layer["slot_sae"]) == {"train_template", "heldout_templates", "test_persons"}
        assert layer["slot_sae"]["heldout_templates"]["n"] == 2
        assert 0 <= layer["probes"]["logistic"]["heldout_templates"] <= 1
    text = (root / "report.md").read_text()
    assert "logistic probe" in text and "TopK best latent" in text and "QA-test persons" in text
    assert "LM exact match" in done.stdout + done.stderr


def test_one_phase_reruns_and_reuses_the_others(run):
    work, root, _ = run
    model = root / "lm" / "model.safetensors"
    before = model.stat().st_mtime_ns
    (root / "report.md").unlink()
    again = hsae("run", "recipes/bio-slots.toml", "--run-dir", "runs/bio", "--phase", "5", *TINY, cwd=work)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (root / "report.md").is_file() and model.stat().st_mtime_ns == before


def test_a_missing_dataset_directory_is_a_located_error(tmp_path):
    (tmp_path / "r.toml").write_text('pipeline = "bio-slots"\n[data]\ndir = "nowhere"\n')
    done = hsae("validate", "r.toml", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "r.toml" in done.stderr and "data.dir" in done.stderr and "train_kg.json" in done.stderr


def test_the_seeds_sft_path_fine_tunes_a_local_hf_model(tmp_path):
    """``lm.method = "sft"``: phases 1-2 fine-tune a local Hugging Face causal LM and score it."""
    from hsae_lm import testing

    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "bio-slots.toml").write_text((REPO / "recipes" / "bio-slots.toml").read_text())
    args = ["--run-dir", "runs/sft", "--set", "lm.method=sft", "--set", f"lm.base_model={testing.tiny_gpt2_dir()}",
            "--set", "lm.compare_single=false", "--set", "data.num_persons=8", "--set", "lm.sft.epochs=1",
            "--set", "lm.sft.progress=false", "--set", "lm.eval_rows=12"]
    for phase in ("1", "2"):
        done = hsae("run", "recipes/bio-slots.toml", "--phase", phase, *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    accuracy = json.loads((tmp_path / "runs" / "sft" / "lm_accuracy.json").read_text())
    assert accuracy["lm"]["method"] == "sft" and set(accuracy) == {"main", "lm"}
    training = json.loads((tmp_path / "runs" / "sft" / "lm" / "training.json").read_text())
    assert training["method"] == "sft" and training["padding_fraction"] < 0.5

"""``hsae run`` as a user meets it: relative paths from the repository root, resume rules,
no half-written run directories, file modes, progress lines, the end-of-run summary, Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TOY_RECIPE, write
from hsae.progress import LogProgress

TEACHER_SMALL = ["train.steps=60", "stages.0.steps=20", "tuning.lrs=[1e-3]", "train.log_every=20", "train.checkpoint_every=30",
                 "extract.n_samples=6000", "eval.batches=2", "eval.batch_size=1024"]
GROUP_SMALL = ["train.steps=40", "train.log_every=20", "train.checkpoint_every=20", "eval.batches=1",
               "eval.batch_size=1024", "metrics.sparse_probing.ks=[1,5]", "metrics.sparse_probing.max_tasks=10"]


def _sets(items: list[str]) -> list[str]:
    return [word for item in items for word in ("--set", item)]


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch) -> Path:
    """A copy of the repository's recipes, with the working directory at its root (as a user has it)."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "recipes", root / "recipes")
    monkeypatch.chdir(root)
    return root


def test_teacher_recipe_with_default_relative_run_dir_then_phase_and_resume(checkout, cli):
    code, _, err = cli("run", "recipes/teacher.toml", *_sets(TEACHER_SMALL))
    assert code == 0, err
    (run,) = (checkout / "runs").iterdir()
    assert run.name.startswith("teacher-") and (run / "report.md").is_file()
    assert not (checkout / "recipes" / "runs").exists()  # nothing resolved against the recipe's folder
    for phase in range(1, 5):
        assert f"phase {phase}/4: " in err
    assert "report:  runs/teacher-" in err and "weights: " in err

    code, _, err = cli("run", "recipes/teacher.toml", "--phase", "4", *_sets(TEACHER_SMALL))  # latest run, relative
    assert code == 0, err
    code, _, err = cli("run", "recipes/teacher.toml", "--resume", *_sets(TEACHER_SMALL))
    assert code == 0, err
    assert [p.name for p in (checkout / "runs").iterdir()] == [run.name]


def test_teacher_recipe_phase_by_phase_in_a_relative_run_dir(checkout, cli):
    for phase in ("1", "2", "3", "4"):
        code, _, err = cli("run", "recipes/teacher.toml", "--run-dir", "runs/t", "--phase", phase, *_sets(TEACHER_SMALL))
        assert code == 0, err
    assert (checkout / "runs" / "t" / "report.json").is_file()
    recipe = (checkout / "runs" / "t" / "seed-0" / "teacher" / "recipe.toml")
    assert not recipe.exists() or "recipes/runs" not in recipe.read_text()


def test_group_ortho_recipe_report_phase_in_a_relative_run_dir(checkout, cli):
    code, _, err = cli("run", "recipes/group-ortho.toml", "--run-dir", "runs/g", *_sets(GROUP_SMALL))
    assert code == 0, err
    report = checkout / "runs" / "g" / "report.md"
    report.unlink()
    code, _, err = cli("run", "recipes/group-ortho.toml", "--run-dir", "runs/g", "--phase", "2", *_sets(GROUP_SMALL))
    assert code == 0, err
    assert report.is_file()


def test_resume_without_a_run_is_an_error(toy_recipe, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli("run", toy_recipe, "--run-dir", empty, "--resume")
    assert code == 2 and "holds no run to resume" in err
    code, _, err = cli("run", toy_recipe, "--run-dir", tmp_path / "missing", "--resume")
    assert code == 2 and "holds no run to resume" in err
    assert not (tmp_path / "missing").exists() and list(empty.iterdir()) == []


def test_resume_without_run_dir_and_no_earlier_run_is_an_error(toy_recipe, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("run", toy_recipe, "--resume")
    assert code == 2 and "no earlier run" in err and not (tmp_path / "runs").exists()


def test_a_run_that_fails_before_training_leaves_no_directory(toy_recipe, tmp_path, cli, monkeypatch):
    (tmp_path / "toy.npy").unlink()
    code, _, err = cli("run", toy_recipe, "--run-dir", tmp_path / "run")
    assert code == 2 and "toy.npy" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("run", toy_recipe)
    assert code == 2 and not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_a_failed_resume_keeps_the_run(toy_recipe, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("run", toy_recipe, "--run-dir", run)[0] == 0
    (tmp_path / "toy.npy").unlink()
    code, _, _ = cli("run", toy_recipe, "--run-dir", run, "--resume")
    assert code == 2 and (run / "model.safetensors").is_file() and (run / "recipe.toml").is_file()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_results_follow_the_umask(toy_recipe, tmp_path, cli, umask):
    old = os.umask(umask)
    try:
        assert cli("run", toy_recipe, "--run-dir", tmp_path / "run")[0] == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and not p.is_symlink()]
    assert {"recipe.toml", "model.safetensors", "cfg.json", "eval.json", "state.json"} <= {p.name for p in files}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_end_of_run_summary_names_metrics_and_weights(toy_recipe, tmp_path, cli):
    code, _, err = cli("run", toy_recipe, "--run-dir", tmp_path / "run")
    assert code == 0
    assert "done in" in err and "explained_variance: " in err and "l0: " in err
    assert f"weights: {tmp_path / 'run' / 'model.safetensors'}" in err


def test_log_progress_prints_a_line_per_tenth():
    out = io.StringIO()
    bar = LogProgress(200, desc="run", unit="step", stream=out)
    for _ in range(200):
        bar.update(1)
    bar.set_postfix(loss="0.1")
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("run: 200/200 steps (100%)") and "\r" not in out.getvalue()


def test_log_progress_reports_where_it_stopped():
    out = io.StringIO()
    bar = LogProgress(100, desc="run", unit="step", stream=out)
    for _ in range(15):
        bar.update(1)
    bar.close()
    assert out.getvalue().splitlines()[-1].startswith("run: 15/100 steps")


def test_progress_without_a_terminal_is_plain_lines(tmp_path, toy_data):
    recipe = write(tmp_path / "r.toml", TOY_RECIPE.format(k=4, steps=60, checkpoint_every=0).replace("progress = false", ""))
    done = subprocess.run([sys.executable, "-m", "hsae", "run", "r.toml", "--run-dir", "run"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "run: 60/60 steps (100%)" in done.stderr


def test_ctrl_c_saves_and_prints_the_exact_resume_command(tmp_path, toy_data):
    text = TOY_RECIPE.format(k=4, steps=200000, checkpoint_every=0).replace("log_every = 50", "log_every = 5")
    write(tmp_path / "r.toml", text)
    proc = subprocess.Popen([sys.executable, "-m", "hsae", "run", "r.toml", "--run-dir", "runs/x", "--set", "train.lr=0.002"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "runs" / "x" / "metrics.jsonl").is_file():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "hsae run r.toml --set train.lr=0.002 --run-dir runs/x --resume" in err and "Traceback" not in err
    steps = [json.loads(line)["step"] for line in (tmp_path / "runs" / "x" / "metrics.jsonl").read_text().splitlines()]
    checkpoints = list((tmp_path / "runs" / "x" / "checkpoints").glob("step_*/state.json"))
    assert checkpoints and steps


def test_teacher_lm_recipe_phase_1_in_a_relative_run_dir(checkout, cli):
    from hsae_lm import testing

    testing.minilm()
    wordnet = testing.wordnet_dir()
    code, _, err = cli("run", "recipes/teacher-lm.toml", "--run-dir", "runs/teacher-lm", "--phase", "1",
                       "--set", 'concepts.root="animal.n.01"', "--set", "geometry.random_tokens=500",
                       "--set", f'wordnet_dir="{wordnet}"')
    assert code == 0, err
    assert (checkout / "runs" / "teacher-lm" / "geometry" / "geometry.md").is_file()
    assert not (checkout / "recipes" / "runs").exists()


def test_set_paths_are_relative_to_the_working_directory_and_file_paths_to_the_recipe(tmp_path, monkeypatch, toy_data):
    from hsae.config import load_recipe

    (tmp_path / "recipes").mkdir()
    write(tmp_path / "recipes" / "r.toml", TOY_RECIPE.format(k=4, steps=10, checkpoint_every=0))
    monkeypatch.chdir(tmp_path)
    from_file = load_recipe("recipes/r.toml").config.data.config.path
    assert from_file == tmp_path / "recipes" / "toy.npy"
    from_set = load_recipe("recipes/r.toml", ['data.path="toy.npy"']).config.data.config.path
    assert from_set == tmp_path / "toy.npy"
    bare = load_recipe("recipes/r.toml", ["data.path=toy.npy"]).config.data.config.path
    assert bare == tmp_path / "toy.npy" and type(load_recipe("recipes/r.toml", ["name=x"]).config.name) is str

"""Experiment reports rendered from small synthetic run directories (no training).

Each test writes what the pipelines leave behind (``eval.json``, ``metrics.jsonl``, phase 1's
``geometry.json``) for a few arms and seeds, renders the report and checks what a reader sees:
numbers in ``report.json``, the experiment's name (never an internal seed name), the
single-seed note, escaped table cells and the plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs
import pytest

from hsae.config import load_recipe
from hsae.engine.rundir import RunDir
from hsae.io import write_json
from hsae.report import (
    bar_panel,
    escape_cell,
    format_number,
    format_stat,
    markdown_table,
    metric_label,
    numbers_only,
    pyplot,
    seeds_note,
    stage_boundaries,
)

REPO = Path(__file__).resolve().parents[1]
PIPE_ARM = "teacher|top1"  # a name with a pipe: the table cell must escape it


# -- the shared helpers ------------------------------------------------------------------------


def test_markdown_table_escapes_pipes_and_line_breaks():
    lines = markdown_table(["metric", "a|b"], [["|cos|", "x\ny"]])
    assert lines == [r"| metric | a\|b |", "|---|---|", r"| \|cos\| | x y |"]
    assert escape_cell(3) == "3"


def test_numbers_share_one_format_per_kind():
    assert format_number(63.21, "percent") == "63.2"
    assert format_number(1.234, "pp") == "+1.2 pp"
    assert format_number(-0.2, "relative") == "-20.0%"
    assert format_number(0.87349, "fraction") == "0.873"
    assert format_number(40.0, "count") == "40"
    assert format_number(55.0, "value") == "55.0" and format_number(0.001234, "value") == "0.00123"
    assert format_number(None) == format_number(math.nan) == "n/a"
    assert format_stat({"mean": 0.5, "std": 0.01234, "n": 3}, "fraction") == "0.500 ± 0.012"
    assert format_stat({"mean": 2.0, "std": 0.5, "n": 2}, "pp") == "+2.0 pp ± 0.5 pp"
    assert format_stat({"mean": 0.5, "std": 0.0, "n": 1}, "fraction") == "0.500"
    assert format_stat({"mean": 12.5, "std": 0.7071, "n": 2}, "value") == "12.5 ± 0.71"
    assert format_stat({"mean": math.nan, "std": math.nan, "n": 0}) == "n/a"


def test_numbers_only_makes_strict_json_numbers():
    import numpy as np

    out = numbers_only({"a": np.float32(0.5), "b": [math.nan, np.int64(3)], 2: {"c": math.inf}})
    assert out == {"a": 0.5, "b": [None, 3], "2": {"c": None}}
    assert type(out["b"][1]) is int


def test_seed_notes_and_labels():
    assert seeds_note([0]).startswith("1 seed (0): no spread") and "seeds=[0,1,2]" in seeds_note([0])
    assert seeds_note([0, 1, 2]).startswith("3 seeds (0, 1, 2): mean ± sample standard deviation")
    assert metric_label("purity", "%", False) == "purity (%, higher is better ↑)"
    assert metric_label("loss", "", True) == "loss (lower is better ↓)"
    assert metric_label("L0") == "L0"


def test_stage_boundaries_follow_the_stage_lengths():
    stage = attrs.make_class("Stage", ["name", "steps"])
    assert stage_boundaries([stage("A", 300), stage("B", None)]) == [(300, "stage A → B")]
    assert stage_boundaries([stage("A", 10), stage("B", 20), stage("C", None)])[1] == (30, "stage B → C")
    assert stage_boundaries([stage("only", None)]) == []


@pytest.mark.parametrize(("n_seeds", "has_error_bars"), [(1, False), (3, True)])
def test_bar_panels_show_error_bars_only_over_several_seeds(n_seeds, has_error_bars):
    fig, ax = pyplot().subplots()
    bar_panel(ax, ["a", "b"], [{"mean": 1.0, "std": 0.1, "n": n_seeds}, {"mean": 2.0, "std": 0.2, "n": n_seeds}])
    from matplotlib.container import ErrorbarContainer

    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers) == has_error_bars
    pyplot().close(fig)


# -- synthetic run directories -----------------------------------------------------------------


def write_arm(arm_dir: Path, metrics: dict[str, dict[str, float]], steps: int = 40) -> None:
    """What a trained arm leaves for the report: ``eval.json`` and a short ``metrics.jsonl``."""
    write_json(arm_dir / "eval.json", {"eval_result_metrics": metrics})
    run = RunDir(arm_dir)
    for step in range(10, steps + 1, 10):
        run.log({"step": step, "loss": 1.0 / step, "loss/mse": 0.5 / step})


def teacher_metrics(offset: float) -> dict[str, dict[str, float]]:
    return {"purity": {"purity_pp": 60.0 + offset}, "leakage": {"leakage": 0.3 - offset / 100},
            "steering": {"steering_leakage": 0.2}, "explained_variance": {"explained_variance": 0.9},
            "ground_truth": {"mcc": 0.7, "absorbed_edge_fraction": math.nan}, "l0": {"l0": 12.5}}


def teacher_run(tmp_path: Path, seeds: list[int]) -> tuple[Any, RunDir]:
    """The shipped teacher recipe with one extra arm, and a run directory every arm 'trained' in."""
    config = load_recipe(REPO / "recipes" / "teacher.toml").config
    config = attrs.evolve(config, arms={**config.arms, PIPE_ARM: config.arms["teacher_top1"]})
    run = RunDir(tmp_path / "run")
    for seed in seeds:
        for i, name in enumerate(config.arms):
            write_arm(run.root / f"seed-{seed}" / name, teacher_metrics(offset=i + seed))
        geometry = {"projection": {"auc_mean": 0.95}, "markdown": "| metric | teacher |\n|---|---|\n| AUC | 0.950 |\n"}
        write_json(run.root / f"seed-{seed}" / "geometry" / "geometry.json", geometry)
    return config, run


def group_ortho_run(tmp_path: Path, seeds: list[int]) -> tuple[Any, RunDir]:
    """The shipped group-ortho recipe, and a run directory every arm 'trained' in."""
    config = load_recipe(REPO / "recipes" / "group-ortho.toml").config
    run = RunDir(tmp_path / "run")
    for seed in seeds:
        for i, name in enumerate(config.arms):
            metrics = {"sparse_probing": {"sae_top_1_test_accuracy": 0.7 + i / 100, "sae_top_5_test_accuracy": 0.8,
                                          "llm_test_accuracy": 0.9},
                       "separation": {"cross_group_max_cos": 0.2, "within_group_max_cos": 0.4, "ari": 0.5 + seed / 10},
                       "l0": {"l0": 8.0}}
            write_arm(run.root / f"seed-{seed}" / name, metrics)
    return config, run


def assert_numbers_only(value: Any, where: str = "report.json") -> None:
    """Every leaf under a number-valued key is an int, float, bool or null, never a formatted string."""
    if isinstance(value, dict):
        for key, inner in value.items():
            assert_numbers_only(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            assert_numbers_only(inner, f"{where}[{i}]")
    elif isinstance(value, str):
        assert not any(ch.isdigit() for ch in value) or where.endswith((".experiment", ".target", ".label")), \
            f"{where} is a preformatted string: {value!r}"


def assert_reads_well(run: RunDir, n_seeds: int, plots: tuple[str, ...]) -> tuple[dict, str]:
    """The checks every report must pass; returns report.json and report.md."""
    raw = (run.root / "report.json").read_text()
    report, text = json.loads(raw), (run.root / "report.md").read_text()
    assert_numbers_only(report)
    assert "NaN" not in raw and "Infinity" not in raw
    for shown in (raw, text):
        assert "seed 00" not in shown.lower()
    first_lines = "\n".join(text.splitlines()[:4])
    if n_seeds == 1:
        assert "1 seed (" in first_lines and "no spread" in first_lines
    else:
        assert f"{n_seeds} seeds (" in first_lines and "±" in text
    for plot in plots:
        assert (run.root / plot).stat().st_size > 0
    return report, text


# -- the reports -------------------------------------------------------------------------------


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_teacher_report(tmp_path, seeds):
    from hsae_teacher.report import EXPERIMENT, write_report

    config, run = teacher_run(tmp_path, seeds)
    write_report(config, run, seeds)
    report, text = assert_reads_well(run, len(seeds), ("training_curves.png", "concept_metrics.png"))
    assert text.startswith(f"# {EXPERIMENT}\n")
    assert r"| teacher\|top1 |" in text  # the arm's column header, escaped
    assert "| purity (%, higher is better ↑) |" in text
    assert "| L0 (active latents) | 12.5" in text
    (gap_row,) = [line for line in text.splitlines() if line.startswith("| 1 - EV above baseline |")]
    assert gap_row.startswith("| 1 - EV above baseline | at most 0.020 | 0.000 |") and gap_row.endswith("| yes |")
    assert ("n/a (1 seed)" in gap_row) == (len(seeds) == 1)
    assert "No learning-rate search: every arm trained at train.lr" in text
    purity_gain = next(t for t in report["targets"] if t["target"] == "purity_gain")
    assert purity_gain["measured"] == pytest.approx(1.0) and purity_gain["threshold"] == 10.0
    assert purity_gain["met"] is False and "+1.0 pp" in text
    assert "absorbed_edge_fraction" not in report["arms"]["baseline"]  # NaN in eval.json is null: not measured
    assert "markdown" not in report["geometry"][str(seeds[0])] and "| AUC | 0.950 |" in text


@pytest.mark.parametrize("seeds", [[3], [3, 4]])
def test_group_ortho_report(tmp_path, seeds):
    from hsae_group_ortho.report import EXPERIMENT, write_report

    config, run = group_ortho_run(tmp_path, seeds)
    write_report(config, run, seeds)
    report, text = assert_reads_well(run, len(seeds), ("training_curves.png", "sparse_probing.png", "groups.png"))
    assert text.startswith(f"# {EXPERIMENT}\n")
    assert r"| mean max \|cos\| across groups (lower is better ↓) |" in text
    assert report["per_seed"]["vanilla"][str(seeds[0])]["steps"] == 40
    assert all(report["trained"].values())


@pytest.mark.parametrize("seeds", [(), (0, 1, 2)])
def test_lm_arms_report(tmp_path, seeds):
    from hsae_lm.arms import EXPERIMENT, LMArm, compare_arms, headline
    from hsae_lm.teacher_pipeline import TeacherLMRecipe

    config = TeacherLMRecipe(model="tiny|model", arms={"baseline": LMArm(), "teacher": LMArm(init="teacher")},
                             seeds=seeds)
    for seed in seeds or (0,):
        for name, gain in (("baseline", 0.0), ("teacher", 12.0 + seed)):
            write_arm(tmp_path / "arms" / f"seed-{seed}" / name,
                      {"concepts": {"purity_pp": 55.0 + gain, "leakage_parents": 0.4 - gain / 100,
                                    "leakage_children": math.nan},
                       "explained_variance": {"explained_variance": 0.8}, "splice": {"ce_loss_score": 0.9}})
    recipe = attrs.make_class("Recipe", ["config"])(config)
    compare_arms(recipe, tmp_path)
    report = json.loads((tmp_path / "arms" / "report.json").read_text())
    text = (tmp_path / "arms" / "report.md").read_text()
    assert_numbers_only(report)
    assert "leakage_children" not in report["per_seed"]["teacher"]  # NaN everywhere: not measured
    assert text.startswith(f"# {EXPERIMENT} on tiny|model") and "seed 00" not in text.lower()
    assert "| purity (%, higher is better ↑) |" in text and "| CE loss score (spliced)" in text
    assert "No learning-rate search: every arm trained at train.lr" in text
    gain = next(t for t in report["targets"] if t["target"] == "purity_gain")
    assert gain["measured"] == pytest.approx(13.0 if seeds else 12.0) and gain["met"] is True
    (gain_row,) = [line for line in text.splitlines() if line.startswith("| purity gain |")]
    assert gain["n_seeds"] == len(seeds or (0,)) and ("n/a (1 seed)" in gain_row) == (not seeds)
    children = next(t for t in report["targets"] if t["target"] == "child_leakage_change")
    assert children["met"] is False  # not measured: never met
    lines = headline(tmp_path)
    assert lines[0].startswith(f"{EXPERIMENT} on tiny|model, {len(seeds or (0,))} seed")
    assert any(line.strip().startswith("purity gain: +1") and line.endswith(": met") for line in lines)
    assert (tmp_path / "arms" / "training_curves.png").stat().st_size > 0
"""Phases 3-4 of ``teacher-lm``: H-SAEs on the real model's activations, random vs teacher init.

Each arm is an ordinary training recipe built from the pipeline recipe's ``[data]``,
``[sae]``, ``[losses]``, ``[metrics]``, ``[train]`` and ``[eval]`` tables, plus the arm's own
``init`` (``teacher``: hsae_teacher's ``teacher-vectors`` initializer reading phase 1's
``teacher-unembedding.safetensors``) and ``set`` overrides.

The fair protocol (shared with the synthetic ``teacher`` pipeline, :mod:`hsae.tuning` and
:mod:`hsae.comparison`): each arm picks its learning rate from ``[tuning].lrs`` by
reconstruction on the data's ``validation`` split, trained with ``[tuning].seed``; then every
arm trains once per seed of ``seeds`` (the seed sets the SAE's init and the batch order; the
captured activations are the same for every seed and arm, captured once). ``evaluate``
writes ``<run>/arms/report.md`` and ``report.json``: every arm's metrics over seeds, the
learning-rate grid, and seed 001's targets judged on the per-seed paired effects of teacher
vs baseline, plus ``training_curves.png``.

Layout: ``arms/seed-<s>/<arm>/`` (one training run each), ``arms/tuning/<arm>/lr-<lr>/``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import attrs

from hsae import comparison
from hsae.comparison import Row, TargetSpec
from hsae.config.converter import error_problems, make_converter
from hsae.config.toml_io import apply_override, parse_override
from hsae.engine.rundir import RunDir
from hsae.errors import Problem, RecipeError, UserError
from hsae.io import read_json, write_json, write_text
from hsae.report import (PAIRED_TESTS, curve, metric_label, numbers_only, plot_curve, pyplot, save_figure, seeds_note,
                         spread_caption)
from hsae.summary import mean_std
from hsae.tuning import TUNING_DIR, tune_lr

ARMS_DIR = "arms"
TEACHER_FILE = "teacher-unembedding.safetensors"
EXPERIMENT = "Teacher-initialized vs random H-SAE"
_TABLES = {"data": "data", "sae": "model", "losses": "losses", "metrics": "metrics", "train": "train", "eval": "eval"}


@attrs.frozen
class LMArm:
    """One H-SAE of the comparison: ``init`` random or from phase 1's teacher; ``set`` overrides."""

    init: Literal["random", "teacher"] = "random"
    set: tuple[str, ...] = ()


@attrs.frozen
class LMTargets:
    """Seed 001's success criteria for teacher vs baseline on a real model (steering leakage has no LM metric)."""

    purity_gain_pp: float = 10.0
    leakage_reduction: float = 0.20  # parents' leakage (lm-concepts leakage_parents)
    child_leakage_reduction: float = 0.20  # children's leakage (leakage_children)
    reconstruction_tolerance: float = 0.02  # teacher's 1-EV at most this much above the baseline's


ROWS = (
    Row("purity_pp", "purity_pp", "purity", "%", "percent", False),
    Row("purity_parents_pp", "purity_parents_pp", "purity of parents", "%", "percent", False),
    Row("leakage_parents", "leakage_parents", "leakage (parents)", "rate", "fraction", True),
    Row("leakage_children", "leakage_children", "leakage (children)", "rate", "fraction", True),
    Row("unmatched_concepts", "unmatched_concepts", "unmatched concepts", "count", "value", True),
    Row("one_minus_ev", "explained_variance", "1 - EV", "fraction of variance", "fraction", True, lambda v: 1 - v),
    Row("l0", "l0", "L0", "active latents", "value", None),
    Row("ce_loss_score", "ce_loss_score", "CE loss score (spliced)", "score", "fraction", False),
    Row("ce_sae", "ce_sae", "CE with the SAE spliced in", "nats", "value", True),
    Row("ce_orig", "ce_orig", "CE of the model", "nats", "value", True),
    Row("kl_div_score", "kl_div_score", "KL score (spliced)", "score", "fraction", False),
)


def target_specs(t: LMTargets) -> tuple[TargetSpec, ...]:
    return (
        TargetSpec("purity_gain", "purity gain", "pp", "purity_pp", False, "at least", t.purity_gain_pp),
        TargetSpec("leakage_change", "relative change of parents' leakage", "relative", "leakage_parents", True,
                   "at most", -t.leakage_reduction),
        TargetSpec("child_leakage_change", "relative change of children's leakage", "relative", "leakage_children",
                   True, "at most", -t.child_leakage_reduction),
        TargetSpec("reconstruction_gap", "1 - EV above baseline", "fraction", "one_minus_ev", False, "at most",
                   t.reconstruction_tolerance, non_inferiority=True),
    )


def seeds_of(config) -> list[int]:  # noqa: ANN001 - TeacherLMRecipe
    """The evaluation seeds: ``seeds``, else ``train.seed`` alone."""
    return list(config.seeds) or [config.train.seed]


def arm_recipe(recipe, name: str, arm: LMArm, teacher_path: Path | None):  # noqa: ANN001 - hsae Recipe
    """The ``TrainRecipe`` of one arm; ``teacher_path`` None (validation) leaves out the initializer."""
    from hsae.engine.schema import TrainRecipe

    doc = recipe.to_dict()
    base = {target: doc[source] for source, target in _TABLES.items() if doc.get(source) is not None}
    if arm.init == "teacher" and teacher_path is not None:
        base["initializers"] = {"teacher": {"type": "teacher-vectors", "path": str(teacher_path)}}
    for item in arm.set:
        path, value = parse_override(item)
        apply_override(base, path, value, item)
    try:
        return make_converter(recipe.base_dir).structure(base, TrainRecipe)
    except Exception as exc:  # cattrs raises exception groups; each becomes a located problem
        raise RecipeError([Problem(m, path=f"arms.{name}: {p}", file=recipe.file) for p, m in error_problems(exc)]) from None


def validate_arms(recipe) -> None:  # noqa: ANN001
    """Build every arm's components without training (no teacher file needed)."""
    from hsae.engine.assemble import assemble
    from hsae_lm.splice_metric import lm_source

    for name, arm in recipe.config.arms.items():
        trainer = assemble(arm_recipe(recipe, name, arm, None), prefix=f"arms.{name}: ")
        if recipe.config.tuning.lrs and not lm_source(trainer.data)[0].config.validation_fraction:
            raise RecipeError([Problem("tuning.lrs needs a validation split: set data.source.validation_fraction > 0",
                                       path="tuning.lrs", file=recipe.file)])


class ArmRunner:
    """Trains the arms of one recipe, per seed and per grid point, over one shared capture."""

    def __init__(self, recipe, run_root: Path, ctx) -> None:  # noqa: ANN001 - Recipe, RunContext
        self.recipe, self.config, self.ctx = recipe, recipe.config, ctx
        self.arms_dir = ctx.run_dir.sub(ARMS_DIR)
        self.teacher = run_root / "geometry" / TEACHER_FILE
        self._data: dict[int, Any] = {}

    def data(self, seed: int):  # noqa: ANN201 - DataSource
        """The data source of ``seed``; every seed reuses the first one's model and captured rows."""
        from hsae_lm.splice_metric import lm_source

        if seed not in self._data:
            data = self.recipe.config.data.build(seed=seed)
            if self._data:
                lm_source(data)[0].reuse_capture(lm_source(next(iter(self._data.values())))[0])
            self._data[seed] = data
        return self._data[seed]

    def fit(self, name: str, seed: int, lr: float, arm_dir: RunDir, with_metrics: bool = True):  # noqa: ANN201
        """Train arm ``name`` with ``seed`` (init and batch order) at ``lr``; returns the trainer."""
        from hsae.engine.assemble import assemble

        arm = self.config.arms[name]
        if arm.init == "teacher" and not self.teacher.is_file():
            raise UserError(f"{self.teacher.parent}: no teacher vectors; run phase 1 first (--phase 1)")
        train = arm_recipe(self.recipe, name, arm, self.teacher)
        train = attrs.evolve(train, train=attrs.evolve(train.train, seed=seed, lr=lr))
        if not with_metrics:
            train = attrs.evolve(train, metrics={})  # tuning runs: only the validation loss counts
        trainer = assemble(train, run_dir=arm_dir, dist=self.ctx.dist, data=self.data(seed), prefix=f"arms.{name}: ")
        trainer.fit(resume=self.ctx.resume)
        return trainer

    def lr(self, name: str) -> float:
        """Arm ``name``'s learning rate: ``train.lr``, or the grid point chosen on the validation split."""
        tuning = self.config.tuning
        if not tuning.lrs:
            return self.config.train.lr
        return tune_lr(name, tuning, self.arms_dir.sub(TUNING_DIR),
                       lambda lr, run: self.fit(name, tuning.seed, lr, run, with_metrics=False),
                       resume=self.ctx.resume, is_main=self.ctx.dist.is_main)

    def train_all(self) -> None:
        """Every arm at its own lr, on every seed, skipping runs finished by an earlier invocation."""
        for name in self.config.arms:
            lr = self.lr(name)
            for seed in seeds_of(self.config):
                arm_dir = self.arms_dir.sub(f"seed-{seed}").sub(name)
                if (arm_dir.root / "model.safetensors").is_file() and not self.ctx.resume:
                    continue
                self.fit(name, seed, lr, arm_dir)


def train_arms(recipe, run_root: Path, ctx) -> None:  # noqa: ANN001 - RunContext
    """Phase 3: tune, then train every arm on every seed (``--resume`` continues an interrupted one)."""
    ArmRunner(recipe, run_root, ctx).train_all()


# -- phase 4: the report ------------------------------------------------------------------------


def collect(config, arms_dir: Path) -> dict[str, dict[str, list]]:  # noqa: ANN001
    """``{arm: {key: [value per seed]}}`` (None where a seed lacks it, so seeds stay paired)."""
    per_arm: dict[str, dict[str, list]] = {}
    for name in config.arms:
        for seed in seeds_of(config):
            arm_dir = arms_dir / f"seed-{seed}" / name
            if not (arm_dir / "eval.json").is_file():
                raise UserError(f"{arm_dir}: arm {name!r} is not trained; run its phase first")
            numbers = comparison.arm_numbers(arm_dir, ROWS)
            for row in ROWS:
                per_arm.setdefault(name, {}).setdefault(row.key, []).append(numbers.get(row.key))
    return {name: {key: values for key, values in keys.items() if any(v is not None for v in values)}
            for name, keys in per_arm.items()}


def compare_arms(recipe, run_root: Path) -> dict:  # noqa: ANN001
    """Every arm's metrics over seeds, the lr grid and the targets: ``report.json``, ``report.md``, plots."""
    config, arms_dir = recipe.config, run_root / ARMS_DIR
    seeds = seeds_of(config)
    per_arm = collect(config, arms_dir)
    has_pair = {"baseline", "teacher"} <= set(per_arm)
    tuning = arms_dir / TUNING_DIR / "tuning.json"
    report = numbers_only({
        "experiment": EXPERIMENT, "model": config.model, "seeds": seeds,
        "arms": {name: {key: mean_std(values) for key, values in keys.items()} for name, keys in per_arm.items()},
        "per_seed": per_arm,
        "targets": comparison.judge(target_specs(config.targets), per_arm) if has_pair else [],
        "tuning": read_json(tuning) if tuning.is_file() else None, "default_lr": config.train.lr,
    })
    write_json(arms_dir / "report.json", report)
    text = arms_markdown(report)
    write_text(arms_dir / "report.md", text)
    plot_training_curves(config, arms_dir)
    return {**report, "markdown": text}


def arms_markdown(report: dict[str, Any]) -> str:
    """``report.md``: the seeds note, the metrics table, the lr grid and the targets."""
    lines = [f"# {EXPERIMENT} on {report['model']}", "", seeds_note(report["seeds"], tests=PAIRED_TESTS), "",
             "Every arm and seed trains on the same captured activations; the seed sets the SAE's "
             "initialization and the batch order.", "",
             *comparison.metrics_table(report["arms"], ROWS), "",
             "## Learning rates (validation 1 - EV per arm and lr)", "",
             *comparison.tuning_table(report.get("tuning"), report.get("default_lr", math.nan),
                                      "never an evaluation seed; same activations, validation words held out of training"),
             ""]
    if report["targets"]:
        lines += ["## Targets (teacher vs random-init baseline, paired by seed)", "",
                  *comparison.targets_table(report["targets"]), "", comparison.verdict(report["targets"]), ""]
    lines += ["Steering leakage has no real-model metric here: not measured.", "", "Plot: `training_curves.png`."]
    return "\n".join(lines) + "\n"


def headline(run_root: Path) -> list[str]:
    """The targets of ``arms/report.json`` as ``hsae run`` prints them (nothing before phase 4)."""
    path = run_root / ARMS_DIR / "report.json"
    if not path.is_file():
        return []
    report = read_json(path)
    lines = comparison.headline(f"{EXPERIMENT} on {report['model']}", report["seeds"], report["targets"])
    return lines + [f"report: {path.with_suffix('.md')} (phase 1: {run_root / 'geometry' / 'geometry.md'})"]


def plot_training_curves(config, arms_dir: Path) -> Path:  # noqa: ANN001 - TeacherLMRecipe
    """Reconstruction loss of every arm over training (mean over seeds, ± std band)."""
    seeds = seeds_of(config)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    for name in config.arms:
        plot_curve(ax, [curve(RunDir(arms_dir / f"seed-{seed}" / name).read_log(), "loss/mse") for seed in seeds], name)
    ax.set(xlabel="training step", yscale="log",
           ylabel=metric_label("reconstruction loss", "MSE, log scale", lower_is_better=True, wrap=True),
           title=f"training curves ({spread_caption(len(seeds))})")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{EXPERIMENT} on {config.model}", fontsize="medium")
    return save_figure(fig, arms_dir / "training_curves.png")

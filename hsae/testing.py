"""Test helpers for plugin authors, in the spirit of pytest's ``pytester``.

Register a plugin for one test, run the contract checks hsae runs on its own components,
and train on a tiny in-memory data source with known features::

    from hsae.testing import check_component, registered
    import my_plugin
    from my_plugin.router import SignTopKRouter

    def test_sign_topk_contract(tmp_path):
        with registered(my_plugin):          # a no-op if the package is installed already
            check_component(SignTopKRouter, tmp_path)

:func:`check_component` runs every check below; each is callable on its own:

* :func:`check_contract`: a one-line docstring, the example config round-trips through
  TOML, and the component builds on the CPU (:func:`check_summary`,
  :func:`check_config_roundtrip`, :func:`check_builds`);
* :func:`tiny_recipe_for` then :func:`check_trains`: a few training steps of a tiny
  ``train`` recipe that uses the component, on :class:`PlantedFeatures`;
* :func:`check_resume`: a run killed after a checkpoint and resumed ends bitwise equal
  to an uninterrupted one.

A failed check raises :class:`ContractError` (an ``AssertionError``) naming the component.
pytest is imported only by :func:`plugin_fixture`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import shutil
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from hsae.data import Batch, DataSource, GroundTruth, Shard
from hsae.hookspecs import hookimpl
from hsae.registry import Component, Registry

__all__ = [
    "ContractError", "PlantedFeatures", "make_plugin", "registered", "plugin_fixture",
    "check_component", "check_contract", "check_summary", "check_config_roundtrip", "check_builds",
    "tiny_recipe", "tiny_recipe_for", "check_trains", "check_resume",
]

D_IN, D_SAE = 16, 64  # widths check_builds builds parts with


class ContractError(AssertionError):
    """A component breaks hsae's contract for its kind."""


# -- a tiny data source with ground truth ----------------------------------------------------


class PlantedFeatures(DataSource):
    """Planted sparse features: ``x = a @ D`` with sparse nonnegative ``a`` and known unit rows of ``D``."""

    name = "planted-features"

    @attrs.frozen
    class Config:
        """Tiny sizes by default: a training step takes milliseconds.

        d_in: width of each activation vector
        n_features: planted features (unit directions, drawn from the run's seed)
        p: probability that a feature fires in a sample (its value is uniform in [0.5, 1.5])
        """

        d_in: int = 16
        n_features: int = 32
        p: float = 0.1

    def __init__(self, config: Config, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        if config.d_in <= 0 or config.n_features <= 0:
            raise ValueError(f"d_in and n_features must be positive, got {config.d_in} and {config.n_features}")
        if not 0 < config.p <= 1:
            raise ValueError(f"p must be in (0, 1], got {config.p}")
        directions = torch.randn(config.n_features, config.d_in, generator=torch.Generator().manual_seed(seed))
        self.directions = directions / directions.norm(dim=1, keepdim=True)

    @property
    def d_in(self) -> int:
        return self.config.d_in

    def batches(
        self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
        with_labels: bool = False,
    ) -> Iterator[Batch]:
        """Endless batches; each is drawn from ``(seed, split, step, rank)`` alone."""
        n, split_id = self.config.n_features, 0 if split == "train" else 1
        for step in itertools.count(start_step):
            state = np.random.SeedSequence([abs(self.seed), split_id, step, shard.rank]).generate_state(1)[0]
            g = torch.Generator().manual_seed(int(state))
            fires = torch.rand(batch_size, n, generator=g) < self.config.p
            acts = fires.float() * (0.5 + torch.rand(batch_size, n, generator=g))
            yield Batch(acts @ self.directions, acts if with_labels else None, {"step": step})

    def ground_truth(self) -> GroundTruth:
        n = self.config.n_features
        return GroundTruth(directions=self.directions.clone(), parent=torch.full((n,), -1),
                           level=torch.zeros(n, dtype=torch.long))


# -- registering plugins for one test --------------------------------------------------------

_plugin_numbers = itertools.count()


def make_plugin(*components: type[Component], name: str | None = None) -> types.ModuleType:
    """A plugin object whose ``hsae_register`` hook adds ``components``."""
    plugin = types.ModuleType(name or f"hsae_testing_plugin_{next(_plugin_numbers)}")

    @hookimpl
    def hsae_register(registry: Registry) -> None:
        for component in components:
            registry.add(component)

    plugin.hsae_register = hsae_register
    return plugin


@contextlib.contextmanager
def registered(*plugins: object) -> Iterator[Registry]:
    """Register plugin objects (modules with hooks) or component classes for the ``with`` block.

    Yields the process-wide registry, which recipes loaded inside the block use. Plugins
    already registered (an installed package's entry point) are left as they are; the
    others are unregistered at the end, whatever happened.
    """
    from hsae.plugins import get_manager

    manager = get_manager()
    classes = [p for p in plugins if isinstance(p, type)]
    objects = [p for p in plugins if not isinstance(p, type)] + ([make_plugin(*classes)] if classes else [])
    added: list[object] = []
    try:
        for plugin in objects:
            if manager.pm.is_registered(plugin):
                continue
            before = {id(info) for info in manager.infos}
            try:
                manager.register(plugin)
            finally:
                added.append(plugin)
            failed = [i for i in manager.infos if id(i) not in before and i.status == "failed"]
            if failed:
                raise ContractError(f"plugin {failed[0].name!r} failed to register: {failed[0].error}")
        yield manager.registry
    finally:
        for plugin in reversed(added):
            manager.unregister(plugin)  # also forgets a refused plugin's entry in the listing


def plugin_fixture(*plugins: object) -> Any:
    """A pytest fixture registering ``plugins`` for each test that requests it (yields the registry).

    In a ``conftest.py``: ``my_plugin = plugin_fixture(my_package)``.
    """
    import pytest

    @pytest.fixture
    def fixture() -> Iterator[Registry]:
        with registered(*plugins) as registry:
            yield registry

    return fixture


@contextlib.contextmanager
def _planted_features() -> Iterator[None]:
    """:class:`PlantedFeatures` registered as data ``planted-features`` unless it is already."""
    from hsae.plugins import get_registry

    if PlantedFeatures.name in get_registry().names("data"):
        yield
        return
    with registered(_TESTING_PLUGIN):
        yield


_TESTING_PLUGIN = make_plugin(PlantedFeatures, name="hsae.testing")


# -- the contract checks -----------------------------------------------------------------------


def _label(cls: type[Component]) -> str:
    return f"{cls.kind}:{cls.name}"


def check_summary(cls: type[Component]) -> None:
    """The class has a docstring of its own (not its base class's), whose first paragraph ``hsae list`` shows."""
    if not (cls.__dict__.get("__doc__") or "").strip() or not cls.summary():
        raise ContractError(f"{_label(cls)}: needs a docstring (its first line is what `hsae list` shows)")


def check_config_roundtrip(cls: type[Component], config: Any, workdir: Path) -> None:
    """``config`` written as TOML and read back, as a recipe would, is equal to itself."""
    from hsae.config.converter import make_converter
    from hsae.config.toml_io import dump_toml, parse_toml

    converter = make_converter(Path(workdir))
    text = dump_toml(converter.unstructure(config))
    try:
        back = converter.structure(parse_toml(text, "<roundtrip>"), cls.Config)
    except Exception as exc:
        raise ContractError(f"{_label(cls)}: its config, written as TOML, does not load back: {exc}\n{text}") from exc
    if back != config:
        raise ContractError(f"{_label(cls)}: its config changes through TOML: {config!r} became {back!r}")


def check_builds(cls: type[Component], config: Any, workdir: Path) -> Any:
    """Build the component on the CPU with its kind's constructor and run it once; returns it."""
    from hsae.config import Recipe

    label, x = _label(cls), torch.randn(8, D_IN)
    kind = cls.kind
    if kind == "router":
        built = cls(config, d_sae=D_SAE)
        codes = built(torch.randn(8, D_SAE))
        _expect(codes.dense().shape == (8, D_SAE), f"{label}: codes of shape {tuple(codes.dense().shape)}, "
                                                   f"expected {(8, D_SAE)}")
    elif kind in ("encoder", "decoder"):
        built = cls(config, d_in=D_IN, d_sae=D_SAE)
    elif kind == "model":
        built = cls(config, d_in=D_IN)
        out = built(x)
        _expect(out.x_hat.shape == x.shape, f"{label}: x_hat of shape {tuple(out.x_hat.shape)}, expected {tuple(x.shape)}")
        _expect(out.codes.d_sae == built.d_sae, f"{label}: codes are {out.codes.d_sae} wide, d_sae is {built.d_sae}")
        shape = tuple(built.decoder_directions().shape)
        _expect(shape == (built.d_sae, D_IN), f"{label}: decoder_directions() is {shape}, expected (d_sae, d_in)")
    elif kind == "data":
        built = cls(config, seed=0)
        batch = next(iter(built.batches(4)))
        _expect(batch.x.shape == (4, built.d_in) and batch.x.dtype == torch.float32,
                f"{label}: a batch of 4 is {tuple(batch.x.shape)} {batch.x.dtype}, expected (4, d_in) float32")
    elif kind == "pipeline":
        _expect(bool(cls.phases), f"{label}: has no phases")
        built = cls(config, recipe=Recipe(cls.name, config, base_dir=Path(workdir)))
        built.validate()
    else:
        built = cls(config)
    return built


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise ContractError(message)


def check_contract(cls: type[Component], workdir: Path, config: Any = None) -> None:
    """A docstring, the config (default: ``cls.example_config(workdir)``) round-trips, and it builds."""
    config = cls.example_config(Path(workdir)) if config is None else config
    check_summary(cls)
    check_config_roundtrip(cls, config, workdir)
    check_builds(cls, config, workdir)


# -- tiny training runs ------------------------------------------------------------------------


def _base_tables(steps: int) -> dict[str, Any]:
    return {
        "data": {"type": PlantedFeatures.name},
        "model": {"type": "sae", "d_sae": 32, "router": {"type": "topk", "k": 4}},
        "losses": {"mse": {"type": "mse"}},
        "metrics": {"mse": {"type": "mse"}, "l0": {"type": "l0"}},
        "train": {"steps": steps, "batch_size": 32, "lr": 1e-3, "log_every": max(1, steps // 4),
                  "checkpoint_every": max(1, steps // 2), "keep_checkpoints": 2, "progress": False,
                  "device": "cpu"},
        "eval": {"batches": 2, "batch_size": 64},
    }


def _merge(base: dict[str, Any], tables: dict[str, Any]) -> dict[str, Any]:
    """``tables`` over ``base``, table by table; a table naming another ``type`` replaces the old one."""
    out = dict(base)
    for key, value in tables.items():
        old = out.get(key)
        same_type = isinstance(old, dict) and isinstance(value, dict) and value.get("type", old.get("type")) == old.get("type")
        out[key] = _merge(old, value) if same_type else value
    return out


def tiny_recipe(tables: dict[str, Any] | None = None, *, steps: int = 8, workdir: Path | None = None):
    """A ``train`` recipe (an :class:`hsae.config.Recipe`) of a few steps at tiny sizes.

    It trains a TopK ``sae`` (32 latents) on :class:`PlantedFeatures` on the CPU, checkpointing
    halfway. ``tables`` holds recipe tables as dicts, laid over those defaults as TOML
    tables would be: ``{"model": {"type": "gated"}, "losses": {"aux": {"type": "gated-aux"}}}``.
    """
    from hsae.config import loads_recipe
    from hsae.config.toml_io import dump_toml

    text = dump_toml(_merge(_base_tables(steps), tables or {}))
    with _planted_features():
        return loads_recipe(text, file="<tiny recipe>", base_dir=Path(workdir or Path.cwd()))


def tiny_recipe_for(cls: type[Component], config: Any = None, *, tables: dict[str, Any] | None = None,
                    steps: int = 8, workdir: Path | None = None):
    """A :func:`tiny_recipe` that uses ``cls`` (with ``config``, default its example config) where its kind goes.

    A model replaces the ``sae``; a router, encoder or decoder goes into the ``sae``; a loss,
    metric, callback or initializer is added beside the defaults; a data source replaces
    :class:`PlantedFeatures`. ``tables`` is laid over the result (e.g. the model a loss needs).
    """
    from hsae.config.converter import make_converter

    workdir = Path(workdir or Path.cwd())
    config = cls.example_config(workdir) if config is None else config
    table = {"type": cls.name, **make_converter(workdir).unstructure(config)}
    slot = {"data": {"data": table}, "model": {"model": table},
            "loss": {"losses": {cls.name: table}}, "metric": {"metrics": {cls.name: table}},
            "callback": {"callbacks": {cls.name: table}}, "initializer": {"initializers": {cls.name: table}}}
    if cls.kind in ("router", "encoder", "decoder"):
        slot[cls.kind] = {"model": {cls.kind: table}}
    if cls.kind not in slot:
        raise ValueError(f"{_label(cls)}: a {cls.kind} runs its own recipe; load it with hsae.load_recipe "
                         "and pass it to check_trains")
    return tiny_recipe(_merge(slot[cls.kind], tables or {}), steps=steps, workdir=workdir)


def _final_models(root: Path) -> list[Path]:
    """Every trained model's ``model.safetensors`` under ``root`` (not those inside checkpoints)."""
    return sorted(p for p in root.rglob("model.safetensors") if (p.parent / "cfg.json").is_file())


def check_trains(recipe: Any, run_dir: Path) -> Path:
    """Run ``recipe`` into ``run_dir``: every logged loss is finite and each trained model loads back."""
    from hsae import load_sae, run_recipe

    with _planted_features():
        root = run_recipe(recipe, run_dir).root
    models = _final_models(root)
    _expect(bool(models), f"{recipe.file}: the run wrote no model.safetensors under {root}")
    for log in sorted(root.rglob("metrics.jsonl")):
        for line in log.read_text().splitlines():
            record = json.loads(line)
            bad = {k: v for k, v in record.items() if k.startswith("loss") and not math.isfinite(v)}
            _expect(not bad, f"{log}: non-finite loss at step {record.get('step')}: {bad}")
    with _planted_features():
        for weights in models:
            sae = load_sae(weights.parent)
            out = sae(torch.zeros(2, sae.d_in))
            _expect(out.x_hat.shape == (2, sae.d_in), f"{weights.parent}: the loaded model's x_hat is {tuple(out.x_hat.shape)}")
    return root


def check_resume(recipe: Any, workdir: Path) -> None:
    """A run resumed from its next-to-last checkpoint ends with the same weights, bit for bit.

    Runs ``recipe`` to the end in ``workdir/straight``, copies it to ``workdir/resumed``
    without its last checkpoints (as if killed after the one before), resumes the copy and
    compares every ``model.safetensors``. The recipe must checkpoint before its last step
    and keep two checkpoints (:func:`tiny_recipe` does).
    """
    from safetensors.torch import load_file

    from hsae import run_recipe
    from hsae.engine.checkpoint import list_checkpoints

    workdir = Path(workdir)
    straight, resumed = workdir / "straight", workdir / "resumed"
    with _planted_features():
        run_recipe(recipe, straight)
        shutil.copytree(straight, resumed, symlinks=True)
        cut = False
        for folder in sorted(resumed.rglob("checkpoints")):
            found = list_checkpoints(folder)
            if len(found) >= 2:
                shutil.rmtree(found[-1])
                cut = True
        _expect(cut, f"{recipe.file}: no run kept two checkpoints; set train.checkpoint_every below "
                     "train.steps and train.keep_checkpoints >= 2")
        for weights in _final_models(resumed):
            weights.unlink()
        run_recipe(recipe, resumed, resume=True)
    for weights in _final_models(straight):
        again = resumed / weights.relative_to(straight)
        _expect(again.is_file(), f"{again}: the resumed run did not write it")
        a, b = load_file(weights), load_file(again)
        _expect(a.keys() == b.keys(), f"{again}: tensors {sorted(b)} differ from {sorted(a)}")
        for key in a:
            _expect(torch.equal(a[key], b[key]), f"{again}: {key} differs after resuming")


def check_component(cls: type[Component], workdir: Path, config: Any = None, *,
                    tables: dict[str, Any] | None = None) -> None:
    """Every check: :func:`check_contract`, then (all kinds but pipelines) a tiny run and an exact resume."""
    workdir = Path(workdir)
    check_contract(cls, workdir, config)
    if cls.kind == "pipeline":
        return
    recipe = tiny_recipe_for(cls, config, tables=tables, workdir=workdir)
    check_trains(recipe, workdir / "run")
    check_resume(recipe, workdir / "resume")

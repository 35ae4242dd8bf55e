"""Final model files in ecosystem formats, and loading them back.

``model.safetensors`` uses SAELens parameter names (``W_enc``, ``b_enc``, ``W_dec``,
``b_dec``, ``threshold``...): module prefixes are dropped. For the architectures SAELens
knows it holds SAELens' inference form exactly (a BatchTopK SAE is saved as a JumpReLU SAE
with a per-latent ``threshold``, a JumpReLU SAE with ``threshold`` rather than its trained
``log_threshold``), so ``sae_lens.SAE.load_from_disk(run_dir)`` loads the run; the model's
``from_saelens_tensors`` maps the file back for hsae. ``cfg.json`` carries SAELens' keys,
``saelens_compatible`` (false, with a ``saelens_note``, for models SAELens cannot load) and
``hsae_model``, the model's recipe table, so :func:`load_sae` rebuilds the original model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from hsae.data import DataSource
from hsae.errors import UserError
from hsae.io import load_tensors, read_json
from hsae.model import SAE


def _short_names(names: Iterable[str]) -> dict[str, str]:
    """Short name (module prefix dropped) -> full state-dict name; identity where short names clash."""
    names = list(names)
    short = {name.rsplit(".", 1)[-1]: name for name in names}
    return short if len(short) == len(names) else {name: name for name in names}


def saelens_state_dict(model: SAE) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``: short names, in SAELens' inference form where it has one."""
    state = model.state_dict()
    return model.to_saelens_tensors({short: state[full] for short, full in _short_names(state).items()})


def saelens_cfg(model: SAE, data: DataSource, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """``cfg.json``: SAELens' keys (which its loader accepts when ``saelens_compatible``), with hsae's own alongside."""
    from hsae import __version__
    from hsae.config.converter import make_converter

    cfg = {
        "d_in": model.d_in,
        "d_sae": model.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        **model.saelens_cfg(),
        "metadata": {"hsae_version": __version__, **data.describe()},
    }
    spec = getattr(model, "spec", None)
    if spec is not None:
        cfg["hsae_model"] = make_converter().unstructure(spec)
    cfg.update(extra or {})
    return cfg


def load_sae(path: str | Path, device: str = "cpu") -> SAE:
    """Rebuild the trained hsae model of a run directory (``cfg.json`` + ``model.safetensors``).

    Works for every architecture, including those SAELens cannot load (``cfg.json``'s
    ``saelens_compatible`` is false); for the others ``sae_lens.SAE.load_from_disk(run_dir)``
    gives the same codes and reconstructions.
    """
    root = _run_dir(Path(path))
    cfg = read_json(root / "cfg.json")
    model = _build_model(cfg, root / "cfg.json")
    weights = root / "model.safetensors"
    try:
        tensors = model.from_saelens_tensors(load_tensors(weights))
    except ValueError as exc:
        raise UserError(f"{weights}: {exc}") from None
    full = _short_names(model.state_dict())
    try:
        model.load_state_dict({full.get(name, name): tensor for name, tensor in tensors.items()})
    except RuntimeError as exc:
        raise UserError(f"{weights}: weights do not match cfg.json ({exc})") from None
    return model.to(device).eval()


def _run_dir(path: Path) -> Path:
    """``path`` itself if it is a run directory; a clear error for a file inside one."""
    if path.is_file():
        raise UserError(f"{path}: load_sae takes the run directory, not a file in it; pass {path.parent}")
    if path.is_dir() and not (path / "cfg.json").is_file():
        raise UserError(f"{path}: not a run directory (no cfg.json); pass the directory that holds cfg.json "
                        "and model.safetensors")
    return path


def _build_model(cfg: dict[str, Any], cfg_path: Path) -> SAE:
    """The untrained model described by ``cfg.json``'s ``hsae_model`` entry."""
    from hsae.config.converter import error_problems, make_converter
    from hsae.config.spec import ModelSpec

    if "hsae_model" not in cfg:
        raise UserError(f"{cfg_path}: no 'hsae_model' entry; not written by hsae")
    try:
        spec = make_converter().structure(cfg["hsae_model"], ModelSpec)
    except Exception as exc:
        raise UserError(f"{cfg_path}: hsae_model: " + "; ".join(f"{p}: {m}" for p, m in error_problems(exc))) from None
    return spec.build(d_in=cfg["d_in"])

"""Final model files in ecosystem formats, and loading them back.

``model.safetensors`` uses SAELens parameter names (``W_enc``, ``b_enc``, ``W_dec``,
``b_dec``, ``threshold``...): module prefixes are dropped. ``cfg.json`` carries SAELens'
keys plus ``hsae_model``, the model's recipe table, so :func:`load_sae` rebuilds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hsae.data import DataSource
from hsae.errors import UserError
from hsae.io import load_tensors, read_json
from hsae.model import SAE


def saelens_state_dict(model: SAE) -> dict[str, torch.Tensor]:
    """State dict with module prefixes dropped where that keeps names unique."""
    state = model.state_dict()
    short = {name.rsplit(".", 1)[-1]: name for name in state}
    if len(short) != len(state):
        return dict(state)
    return {s: state[full] for s, full in short.items()}


def saelens_cfg(model: SAE, data: DataSource, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``cfg.json`` that SAELens' loader accepts, with hsae's own keys alongside."""
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
    """Rebuild a trained SAE from a run directory (``cfg.json`` + ``model.safetensors``)."""
    from hsae.config.converter import error_problems, make_converter
    from hsae.config.spec import ModelSpec

    root = Path(path)
    cfg = read_json(root / "cfg.json")
    if "hsae_model" not in cfg:
        raise UserError(f"{root / 'cfg.json'}: no 'hsae_model' entry; not written by hsae")
    try:
        spec = make_converter().structure(cfg["hsae_model"], ModelSpec)
    except Exception as exc:
        raise UserError(f"{root / 'cfg.json'}: hsae_model: " + "; ".join(f"{p}: {m}" for p, m in error_problems(exc))) from None
    model = spec.build(d_in=cfg["d_in"])
    tensors = load_tensors(root / "model.safetensors")
    full = model.state_dict()
    short = {name.rsplit(".", 1)[-1]: name for name in full}
    state = {short.get(k, k): v for k, v in tensors.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{root / 'model.safetensors'}: weights do not match cfg.json ({exc})") from None
    return model.to(device).eval()

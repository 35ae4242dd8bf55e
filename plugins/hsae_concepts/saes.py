"""The SAE of each layer, from an hsae run directory or a SAELens-format directory.

* An hsae run (``cfg.json`` with ``hsae_model``, ``model.safetensors``) is loaded with
  :func:`hsae.load_sae`, whatever its architecture.
* Any other directory with a SAELens ``cfg.json`` (``architecture`` ``standard``, ``relu``,
  ``jumprelu`` or ``topk``; ``d_in``, ``d_sae``) and its weights (``sae_weights.safetensors``
  or ``model.safetensors``: ``W_enc`` [d_in, d_sae], ``b_enc``, ``b_dec``, and ``threshold``
  or ``k``) is encoded here with SAELens' inference formula.

Each gives dense codes ``[n, d_sae]`` for inputs ``[n, d_in]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hsae.errors import UserError
from hsae.io import load_tensors, read_json

_WEIGHT_FILES = ("model.safetensors", "sae_weights.safetensors")
_ARCHITECTURES = ("standard", "relu", "jumprelu", "topk")


class LayerSAE:
    """An SAE that encodes one layer's hidden states."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        cfg_path = self.path / "cfg.json"
        if not cfg_path.is_file():
            raise UserError(f"{self.path}: not an SAE directory (no cfg.json)")
        self.cfg = read_json(cfg_path)
        if "hsae_model" in self.cfg:
            from hsae import load_sae

            self.architecture = str(self.cfg.get("architecture", self.cfg["hsae_model"].get("type")))
            self._hsae = load_sae(self.path)
            self.d_in, self.d_sae = self._hsae.d_in, self._hsae.d_sae
        else:
            self._hsae = None
            self._load_saelens(cfg_path)

    def _load_saelens(self, cfg_path: Path) -> None:
        self.architecture = str(self.cfg.get("architecture", "standard"))
        if self.architecture not in _ARCHITECTURES:
            raise UserError(f"{cfg_path}: architecture {self.architecture!r} is not one of {', '.join(_ARCHITECTURES)}")
        weights = next((self.path / name for name in _WEIGHT_FILES if (self.path / name).is_file()), None)
        if weights is None:
            raise UserError(f"{self.path}: no weights ({' or '.join(_WEIGHT_FILES)})")
        t = load_tensors(weights)
        missing = [k for k in ("W_enc", "b_enc", "b_dec") if k not in t]
        if self.architecture == "jumprelu" and "threshold" not in t:
            missing.append("threshold")
        if missing:
            raise UserError(f"{weights}: missing tensors {', '.join(missing)}")
        self.W_enc, self.b_enc, self.b_dec = t["W_enc"].float(), t["b_enc"].float(), t["b_dec"].float()
        self.threshold = t["threshold"].float() if "threshold" in t else None
        self.d_in, self.d_sae = self.W_enc.shape
        if self.architecture == "topk" and not isinstance(self.cfg.get("k"), int):
            raise UserError(f"{cfg_path}: a topk SAE needs an integer k")

    @property
    def id(self) -> str:
        return str(self.path)

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> np.ndarray:
        """Dense codes of the rows of ``x``."""
        if x.shape[-1] != self.d_in:
            raise UserError(f"{self.path}: the SAE takes d_in = {self.d_in}, the hidden states have {x.shape[-1]}")
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self._hsae is not None:
            return self._hsae.encode(inputs).dense().numpy()
        if self.cfg.get("apply_b_dec_to_input", True):
            inputs = inputs - self.b_dec
        pre = inputs @ self.W_enc + self.b_enc
        if self.architecture == "jumprelu":
            return (pre * (pre > self.threshold)).numpy()
        if self.architecture == "topk":
            top = pre.topk(int(self.cfg["k"]), dim=-1)
            return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values)).numpy()
        return torch.relu(pre).numpy()

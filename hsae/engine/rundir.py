"""The run directory: everything a run writes, in ecosystem formats.

::

    run_dir/
      recipe.toml          resolved recipe (defaults filled in)
      metrics.jsonl        one JSON object per logged step / evaluation
      checkpoints/         step_XXXXXXXX/{model,optimizer,trainer}.safetensors + state.json
      model.safetensors    final weights (SAELens parameter names)
      cfg.json             SAELens-compatible config
      eval.json            SAEBench-style evaluation
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from hsae.io import dumps, save_tensors, write_json, write_text


class RunDir:
    """Paths and writers of one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    def sub(self, name: str) -> "RunDir":
        """A nested run directory (pipelines with several models)."""
        return RunDir(self.root / name)

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def write_recipe(self, text: str) -> None:
        write_text(self.root / "recipe.toml", text)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON line (flushed, so a killed run keeps what it logged)."""
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(dumps(record) + "\n")
            f.flush()

    def truncate_log(self, after_step: int) -> None:
        """Drop log lines past ``after_step`` (a resumed run re-logs them)."""
        if not self.metrics_path.is_file():
            return
        kept = [line for line in self.metrics_path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= after_step]
        write_text(self.metrics_path, "".join(line + "\n" for line in kept))

    def read_log(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    def write_model(self, tensors: dict[str, torch.Tensor], cfg: dict[str, Any]) -> None:
        """Final weights and SAELens ``cfg.json``; ``sae_weights.safetensors`` links to the weights
        so ``sae_lens.SAE.load_from_disk(run_dir)`` finds them under SAELens' file name."""
        save_tensors(self.root / "model.safetensors", tensors, metadata={"format": "pt"})
        write_json(self.root / "cfg.json", cfg)
        link = self.root / "sae_weights.safetensors"
        if not link.exists():
            try:
                os.symlink("model.safetensors", link)
            except OSError:
                pass

    def write_eval(self, metrics: dict[str, dict[str, float]], eval_config: dict[str, Any], sae_cfg: dict[str, Any],
                   eval_type: str = "core", details: list[Any] | None = None, name: str = "eval.json") -> dict[str, Any]:
        """An SAEBench-format evaluation record."""
        record = {
            "eval_type_id": eval_type,
            "eval_config": eval_config,
            "eval_id": str(uuid.uuid4()),
            "datetime_epoch_millis": int(time.time() * 1000),
            "eval_result_metrics": metrics,
            "eval_result_details": details or [],
            "sae_bench_commit_hash": None,
            "sae_lens_id": None,
            "sae_lens_release_id": None,
            "sae_lens_version": None,
            "sae_cfg_dict": sae_cfg,
            "eval_result_unstructured": None,
        }
        write_json(self.root / name, record)
        return record

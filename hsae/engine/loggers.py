"""Optional metric sinks besides ``metrics.jsonl``: TensorBoard and Weights & Biases (lazy imports)."""

from __future__ import annotations

from typing import Any

from hsae.engine.schema import TrainConfig
from hsae.errors import UserError


class TensorBoardWriter:
    def __init__(self, log_dir: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("train.tensorboard = true needs TensorBoard: pip install 'hsae[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir)

    def write(self, record: dict[str, Any]) -> None:
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self.writer.close()


class WandbWriter:
    def __init__(self, project: str, run_dir: str | None) -> None:
        try:
            import wandb
        except ImportError:
            raise UserError("train.wandb_project needs wandb: pip install 'hsae[wandb]'") from None
        self.run = wandb.init(project=project, dir=run_dir)

    def write(self, record: dict[str, Any]) -> None:
        self.run.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    def close(self) -> None:
        self.run.finish()


def make_writers(cfg: TrainConfig, run_dir) -> list[Any]:
    writers: list[Any] = []
    if cfg.tensorboard:
        writers.append(TensorBoardWriter(str(run_dir.root / "tensorboard") if run_dir else "tensorboard"))
    if cfg.wandb_project:
        writers.append(WandbWriter(cfg.wandb_project, str(run_dir.root) if run_dir else None))
    return writers

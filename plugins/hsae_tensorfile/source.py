"""TensorFileSource: shuffled batches from an activation file, stateless in the step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
import torch

from hsae.data import Batch, DataSource, Shard
from hsae.errors import Problem, RecipeError, UserError
from hsae_tensorfile.arrays import ArrayKeyError, open_array


class TensorFileSource(DataSource):
    """Activations from a .safetensors, .npy, .npz or .pt file of shape (samples, d_in)."""

    name = "tensor-file"

    @attrs.frozen
    class Config:
        """Where the activations are and how rows are split and ordered.

        path: the file (.safetensors, .npy, .npz or .pt), relative to the recipe's folder
        key: the array to read in a file with several (default: the only one, else ``data``)
        eval_fraction: fraction of rows held out for evaluation, in [0, 1); 0 leaves none (metrics are then skipped)
        split_seed: seeds which rows are held out; fixed, so every run and seed is evaluated on the same rows
        shuffle: visit training rows in a fresh random order each epoch
        """

        path: Path
        key: str | None = None
        eval_fraction: float = 0.05
        shuffle: bool = True
        split_seed: int = 0

    def __init__(self, config: Config, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        if not 0 <= config.eval_fraction < 1:
            raise RecipeError([Problem(f"must be in [0, 1), got {config.eval_fraction}", path="eval_fraction")])
        self.array = _open(config)
        n = self.array.shape[0]
        split = torch.randperm(n, generator=torch.Generator().manual_seed(config.split_seed)).numpy()
        n_eval = int(round(n * config.eval_fraction))
        if n - n_eval <= 0:
            raise RecipeError([Problem(f"{config.path} has too few rows ({n}) for eval_fraction {config.eval_fraction}",
                                       path="eval_fraction")])
        self.eval_rows, self.train_rows = np.sort(split[:n_eval]), split[n_eval:]
        self._epoch_cache: tuple[int, np.ndarray] | None = None

    @classmethod
    def example_config(cls, workdir: Path) -> Config:
        path = workdir / "example_activations.npy"
        np.save(path, np.random.default_rng(0).standard_normal((256, 16)).astype(np.float32))
        return cls.Config(path=path)

    @property
    def d_in(self) -> int:
        return int(self.array.shape[1])

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            rows = self.train_rows
            if self.config.shuffle:
                gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + 1)
                rows = rows[torch.randperm(len(rows), generator=gen).numpy()]
            self._epoch_cache = (epoch, rows)
        return self._epoch_cache[1]

    def _rows(self, start: int, count: int) -> np.ndarray:
        """Rows at positions ``[start, start + count)`` of the endless sequence of shuffled epochs."""
        n = len(self.train_rows)
        out = []
        while count > 0:
            epoch, offset = divmod(start, n)
            take = min(count, n - offset)
            out.append(self._epoch_order(epoch)[offset : offset + take])
            start, count = start + take, count - take
        return np.concatenate(out)

    def _load(self, rows: np.ndarray) -> torch.Tensor:
        order = np.argsort(rows, kind="stable")  # sorted reads are kind to memory maps
        block = np.empty((len(rows), self.d_in), dtype=np.float32)
        block[order] = self.array[rows[order]]
        if not np.isfinite(block).all():
            bad = int(rows[np.flatnonzero(~np.isfinite(block).all(axis=1))[0]])
            raise UserError(f"{self.config.path}: row {bad} contains NaN or infinite values")
        return torch.from_numpy(block)

    def batches(self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
                with_labels: bool = False) -> Iterator[Batch]:
        if split == "eval":  # held-out rows only: never training rows, even when there are none
            rows = self.eval_rows
            for start in range(0, len(rows), batch_size):
                yield Batch(self._load(rows[start : start + batch_size]))
            return
        step = start_step
        global_batch = batch_size * shard.world_size
        while True:
            yield Batch(self._load(self._rows(step * global_batch + shard.rank * batch_size, batch_size)))
            step += 1

    def describe(self) -> dict:
        return {"type": self.name, "dataset_path": str(self.config.path), "key": self.config.key}


def _open(config: TensorFileSource.Config) -> np.ndarray:
    """The config's array; problems point at the recipe's ``path`` or ``key`` line."""
    try:
        return open_array(Path(config.path), config.key)
    except FileNotFoundError:
        raise RecipeError([Problem(f"file not found: {config.path}", path="path")]) from None
    except ArrayKeyError as exc:
        raise RecipeError([Problem(str(exc), path="key")]) from None
    except UserError as exc:
        raise RecipeError([Problem(str(exc), path="path")]) from None

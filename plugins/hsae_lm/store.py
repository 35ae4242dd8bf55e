"""Captured activations as shards, in memory or on disk (safetensors + ``manifest.json``).

Filling: texts are captured in chunks, in a fixed order; whenever at least ``shard_rows``
rows have accumulated they are written as one shard, and the manifest records how many
texts are done. An interrupted capture resumes after the last written shard; a finished
one (``complete``) is reused as is. The manifest's ``fingerprint`` (model, hook, positions,
texts...) must match, so a cache is never silently reused for a different capture.

Serving (:meth:`ShardStore.rows_at`) is a function of the position alone, which is what
makes the data source stateless in the step: epoch ``e`` permutes the shards (seeded by
``(seed, e)``), groups them ``buffer_shards`` at a time, and permutes the rows inside each
group (seeded by ``(seed, e, group)``): a shuffle buffer of ``buffer_shards`` shards whose
contents depend only on the epoch and the group. Only the current group is held in memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from hsae.errors import UserError
from hsae.io import load_tensors, save_tensors, write_json
from hsae.progress import progress as progress_bar

MANIFEST = "manifest.json"
VERSION = 1


class ShardStore:
    """Shards of captured rows (``x`` and per-row tensors) in ``folder``, or in memory if None."""

    def __init__(self, folder: Path | None, fingerprint: dict) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.shards: list[dict] = []  # {"file", "rows"} (plus "tensors" in memory)
        self.items_done = 0
        self.complete = False
        self._group_cache: tuple[tuple[int, int], dict[str, torch.Tensor]] | None = None
        if self.folder is not None and (self.folder / MANIFEST).is_file():
            self._load_manifest()

    # -- manifest -------------------------------------------------------------------------

    def _load_manifest(self) -> None:
        path = self.folder / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: unreadable capture manifest ({exc}); delete the folder to capture again") from None
        if data.get("fingerprint") != self.fingerprint:
            raise UserError(f"{self.folder}: holds a different capture (model, hook, texts or positions differ); "
                            "delete it or choose another cache_dir")
        self.shards = [s for s in data["shards"] if (self.folder / s["file"]).is_file()]
        if len(self.shards) != len(data["shards"]):
            raise UserError(f"{path}: lists shards that are missing; delete the folder to capture again")
        self.items_done, self.complete = int(data["items_done"]), bool(data["complete"])

    def _write_manifest(self) -> None:
        if self.folder is None:
            return
        write_json(self.folder / MANIFEST, {
            "version": VERSION, "fingerprint": self.fingerprint, "complete": self.complete,
            "items_done": self.items_done, "n_rows": self.n_rows,
            "shards": [{"file": s["file"], "rows": s["rows"], "items_done": s["items_done"]} for s in self.shards],
        })

    # -- filling ----------------------------------------------------------------------------

    @property
    def n_rows(self) -> int:
        return sum(s["rows"] for s in self.shards)

    def fill(self, n_items: int, capture: Callable[[int, int], dict[str, torch.Tensor]], *, chunk_items: int,
             shard_rows: int, max_rows: int | None = None, progress: bool = True, desc: str = "capture") -> None:
        """Capture items ``[items_done, n_items)`` with ``capture(start, stop) -> tensors``
        until ``max_rows`` rows are stored; each shard is written as soon as it is full."""
        if self.complete:
            return
        pending: list[dict[str, torch.Tensor]] = []
        pending_rows = 0
        total = max_rows if max_rows is not None else None
        bar = progress_bar(total, initial=self.n_rows, unit="row", desc=desc, enabled=progress)
        start = self.items_done
        while start < n_items and (max_rows is None or self.n_rows + pending_rows < max_rows):
            stop = min(start + chunk_items, n_items)
            part = capture(start, stop)
            pending.append(part)
            pending_rows += len(part["x"])
            bar.update(len(part["x"]))
            start = stop
            if pending_rows >= shard_rows:
                self._add_shard(_cat(pending), start, max_rows)
                pending, pending_rows = [], 0
        if pending_rows:
            self._add_shard(_cat(pending), start, max_rows)
        bar.close()
        self.complete = True
        self._write_manifest()
        if self.n_rows == 0:
            raise UserError("the capture produced no rows (no texts, or no selected positions)")

    def _add_shard(self, tensors: dict[str, torch.Tensor], items_done: int, max_rows: int | None) -> None:
        if max_rows is not None:
            keep = max_rows - self.n_rows
            tensors = {k: v[:keep] for k, v in tensors.items()}
        name = f"shard-{len(self.shards):05d}.safetensors"
        entry = {"file": name, "rows": int(len(tensors["x"])), "items_done": items_done}
        if self.folder is None:
            entry["tensors"] = tensors
        else:
            save_tensors(self.folder / name, tensors)
        self.shards.append(entry)
        self.items_done = items_done
        self._write_manifest()

    # -- reading ------------------------------------------------------------------------------

    def shard(self, i: int) -> dict[str, torch.Tensor]:
        entry = self.shards[i]
        return entry["tensors"] if "tensors" in entry else load_tensors(self.folder / entry["file"])

    def in_order(self) -> Iterable[dict[str, torch.Tensor]]:
        """Every shard, in capture order (for evaluation)."""
        for i in range(len(self.shards)):
            yield self.shard(i)

    def rows_at(self, start: int, count: int, seed: int, buffer_shards: int) -> dict[str, torch.Tensor]:
        """Rows at positions ``[start, start + count)`` of the endless shuffled sequence."""
        n = self.n_rows
        parts = []
        while count > 0:
            epoch, offset = divmod(start, n)
            sizes, groups = self._groups(epoch, seed, buffer_shards)
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            g = int(np.searchsorted(bounds, offset, side="right") - 1)
            inner = offset - int(bounds[g])
            take = min(count, int(sizes[g]) - inner)
            group = self._group(epoch, g, groups[g], seed)
            parts.append({k: v[inner: inner + take] for k, v in group.items()})
            start, count = start + take, count - take
        return _cat(parts)

    def _groups(self, epoch: int, seed: int, buffer_shards: int) -> tuple[np.ndarray, list[list[int]]]:
        order = torch.randperm(len(self.shards), generator=_generator(seed, epoch)).tolist()
        groups = [order[i: i + buffer_shards] for i in range(0, len(order), buffer_shards)]
        return np.array([sum(self.shards[s]["rows"] for s in g) for g in groups]), groups

    def _group(self, epoch: int, g: int, shards: list[int], seed: int) -> dict[str, torch.Tensor]:
        key = (seed, epoch, g)  # a store shared by sources of different seeds never mixes their orders
        if self._group_cache is None or self._group_cache[0] != key:
            tensors = _cat([self.shard(s) for s in shards])
            perm = torch.randperm(len(tensors["x"]), generator=_generator(seed, epoch, g + 1))
            self._group_cache = (key, {k: v[perm] for k, v in tensors.items()})
        return self._group_cache[1]


def _generator(*parts: int) -> torch.Generator:
    value = 0
    for p in parts:
        value = (value * 1_000_003 + int(p) + 1) % (2**63 - 1)
    return torch.Generator().manual_seed(value)


def _cat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    if len(parts) == 1:
        return parts[0]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def buffer_shards(buffer_rows: int, shard_rows: int) -> int:
    """How many shards make a shuffle buffer of about ``buffer_rows`` rows (at least one)."""
    return max(1, math.ceil(buffer_rows / shard_rows))

"""Writing generated data: ``.pt``, ``.safetensors`` or ``.npz``, always atomically.

Every format holds the same named arrays:

* ``data`` (n, d_model) float32: the generated vectors;
* ``activations`` (n, n_features) float32: the true feature activations, dense; when that
  matrix would exceed :data:`DENSE_LIMIT` entries, it is stored as COO instead:
  ``activation_rows``, ``activation_cols`` (int64) and ``activation_values`` (float32);
* ``feature_directions`` (n_features, d_model) float32;
* ``feature_parent``, ``feature_level`` (n_features,) int64: the read-out hierarchy;
* the tree and the generator parameters as JSON: in ``.pt`` and ``.npz`` files as uint8
  arrays ``tree_json`` / ``params_json`` (UTF-8 bytes, so ``torch.load(weights_only=True)``
  works); in ``.safetensors`` files as the metadata entries ``tree`` and ``params``.

:func:`load_generated` reads any of them back into tensors plus decoded ``tree``/``params``.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from hsae.errors import UserError

FORMATS = (".pt", ".safetensors", ".npz")
DENSE_LIMIT = 2**26  # entries of the dense activation matrix (256 MiB of float32)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")  # same folder: os.replace is atomic
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # writers such as safetensors create 0600 files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def check_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: unknown output format {suffix or '(none)'!r}; use one of {', '.join(FORMATS)}")
    return suffix


def _json_bytes(obj: Any) -> torch.Tensor:
    return torch.frombuffer(bytearray(json.dumps(obj).encode("utf-8")), dtype=torch.uint8).clone()


def write_generated(
    path: str | Path, tensors: dict[str, torch.Tensor], tree: dict[str, Any], params: dict[str, Any]
) -> None:
    """Save named tensors plus the tree and parameters in the format given by the extension."""
    suffix = check_format(path)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        if suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(tensors, str(tmp), metadata={"tree": json.dumps(tree), "params": json.dumps(params)})
            return
        tensors = {**tensors, "tree_json": _json_bytes(tree), "params_json": _json_bytes(params)}
        with open(tmp, "wb") as f:
            if suffix == ".pt":
                torch.save(tensors, f)
            else:
                np.savez(f, **{k: v.numpy() for k, v in tensors.items()})


def load_generated(path: str | Path) -> dict[str, Any]:
    """Tensors of a generated file, with ``tree`` and ``params`` decoded from JSON."""
    suffix = check_format(path)
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            out: dict[str, Any] = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata() or {}
        out["tree"], out["params"] = json.loads(meta["tree"]), json.loads(meta["params"])
        return out
    if suffix == ".pt":
        out = torch.load(path, weights_only=True)
    else:
        with np.load(path) as z:
            out = {k: torch.from_numpy(z[k]) for k in z.files}
    out["tree"] = json.loads(bytes(out.pop("tree_json").numpy()).decode("utf-8"))
    out["params"] = json.loads(bytes(out.pop("params_json").numpy()).decode("utf-8"))
    return out

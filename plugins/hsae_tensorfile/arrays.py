"""Open a 2-D activation array from disk, memory-mapped where the format allows.

Formats: ``.npy``; ``.npz``, ``.safetensors`` and ``.pt`` (a tensor, or a dict of tensors
saved with ``torch.save``, read with ``weights_only=True``). In a file with several arrays,
``key`` picks one; without it the only array is used, else the one named ``data`` (what
``hsae generate`` writes the vectors under).
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np

from hsae.errors import UserError

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}


DEFAULT_KEY = "data"
FORMATS = (".safetensors", ".npy", ".npz", ".pt")


class ArrayKeyError(UserError):
    """``key`` names no array of the file, or is needed to choose one."""


def open_array(path: Path, key: str | None) -> np.ndarray:
    """A 2-D ``(n, d)`` array; ``.npy``, ``.safetensors`` and ``.pt`` are memory-mapped, ``.npz`` is loaded.

    A missing file raises :class:`FileNotFoundError`; a bad ``key`` :class:`ArrayKeyError`.
    """
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    array = _read(path, key)
    if array.ndim != 2:
        raise UserError(f"{path}: expected a 2-D (samples, d_in) array, got shape {tuple(array.shape)}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UserError(f"{path}: array is empty, shape {tuple(array.shape)}")
    if not np.issubdtype(array.dtype, np.floating):
        raise UserError(f"{path}: expected floating-point activations, got {array.dtype}")
    return array


def _read(path: Path, key: str | None) -> np.ndarray:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r")
        if suffix == ".npz":
            with np.load(path) as archive:
                return archive[_pick_key(path, key, list(archive.keys()))]
        if suffix == ".safetensors":
            return _mmap_safetensors(path, key)
        if suffix == ".pt":
            return _load_torch(path, key)
    except (ValueError, OSError, KeyError, RuntimeError, pickle.UnpicklingError, struct.error,
            json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read activations ({exc})") from None
    raise UserError(f"{path}: unsupported file type {suffix!r}; use {', '.join(FORMATS)}")


def _pick_key(path: Path, key: str | None, keys: list[str]) -> str:
    if key is not None:
        if key not in keys:
            raise ArrayKeyError(f"{path}: no array named {key!r}; it holds {', '.join(keys)}")
        return key
    if len(keys) == 1:
        return keys[0]
    if DEFAULT_KEY in keys:
        return DEFAULT_KEY
    raise ArrayKeyError(f"{path}: holds several arrays ({', '.join(keys)}); set `key` in the recipe")


def _load_torch(path: Path, key: str | None) -> np.ndarray:
    """A tensor of a ``torch.save`` file: a bare tensor or a dict of tensors (``weights_only``)."""
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(obj, torch.Tensor):
        if key is not None:
            raise ArrayKeyError(f"{path}: holds a single tensor, not a dict; remove `key`")
        tensor = obj
    elif isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if not tensors:
            raise UserError(f"{path}: holds no tensors")
        tensor = tensors[_pick_key(path, key, list(tensors))]
    else:
        raise UserError(f"{path}: expected a tensor or a dict of tensors, got {type(obj).__name__}")
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.detach().numpy()


def _mmap_safetensors(path: Path, key: str | None) -> np.ndarray:
    """Memory-map one tensor of a safetensors file: 8-byte header length, JSON header, raw data."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    header.pop("__metadata__", None)
    name = _pick_key(path, key, list(header))
    info = header[name]
    dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
    if dtype is None:
        raise UserError(f"{path}: tensor {name!r} has dtype {info['dtype']}; store float32, float16 or float64")
    start, _ = info["data_offsets"]
    return np.memmap(path, dtype=dtype, mode="r", offset=8 + header_len + start, shape=tuple(info["shape"]))

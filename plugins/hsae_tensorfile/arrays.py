"""Open a 2-D activation array from disk, memory-mapped where the format allows."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from hsae.errors import UserError

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}


def open_array(path: Path, key: str | None) -> np.ndarray:
    """A 2-D ``(n, d)`` array; ``.npy`` and ``.safetensors`` are memory-mapped, ``.npz`` is loaded."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, mmap_mode="r")
        elif suffix == ".npz":
            with np.load(path) as archive:
                array = archive[_pick_key(path, key, list(archive.keys()))]
        elif suffix == ".safetensors":
            array = _mmap_safetensors(path, key)
        else:
            raise UserError(f"{path}: unsupported file type {suffix!r}; use .safetensors, .npy or .npz")
    except (ValueError, OSError, KeyError, struct.error, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read activations ({exc})") from None
    if array.ndim != 2:
        raise UserError(f"{path}: expected a 2-D (samples, d_in) array, got shape {tuple(array.shape)}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise UserError(f"{path}: array is empty, shape {tuple(array.shape)}")
    if not np.issubdtype(array.dtype, np.floating):
        raise UserError(f"{path}: expected floating-point activations, got {array.dtype}")
    return array


def _pick_key(path: Path, key: str | None, keys: list[str]) -> str:
    if key is not None:
        if key not in keys:
            raise UserError(f"{path}: no array named {key!r}; it holds {', '.join(keys)}")
        return key
    if len(keys) != 1:
        raise UserError(f"{path}: holds several arrays ({', '.join(keys)}); set `key` in the recipe")
    return keys[0]


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

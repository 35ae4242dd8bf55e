"""The per-sentence feature file (seed 004's s1 output) and its directory sidecar.

``sentence_NNNNNN.npz`` (``NNNNNN`` = the sentence's 0-based index in the labelled data, so
file numbers and ``meta_sentence_indices`` agree), one per sentence, written uncompressed
(``np.savez``) so that readers can memory-map or seek into members:

* ``embeddings`` ``[n_fragments, d]`` float32: the residual stream entering the first
  transformer block, i.e. transformers' ``hidden_states[0]``. That is the token embedding
  plus whatever the architecture adds before block 0: position embeddings (GPT-2), the
  embedding LayerNorm (BERT, MiniLM), the sqrt(d) scale (Gemma, in every transformers
  version, because it is read where block 0 receives it and not at ``embed_tokens``).
  For SmolLM2 (Llama) it is exactly the unscaled ``embed_tokens`` row of each token.
* ``hidden_states`` ``[n_layers, n_fragments, d]`` float32: layer ``L`` is the residual
  stream *after* block ``L`` (GemmaScope's convention; transformers' ``hidden_states[L + 1]``
  before any final norm), for each layer in ``layers``.
* ``activations`` ``[n_layers, n_fragments, d_sae]`` float32: the SAE codes of
  ``hidden_states`` with the SAE of each layer. Stored sparsely instead (``--sparse``) as
  CSR over the ``n_layers * n_fragments`` rows: ``activations_indptr`` (int64),
  ``activations_indices`` (int32), ``activations_values`` (float32) and
  ``activations_shape`` (int64 ``[n_layers, n_fragments, d_sae]``).
* ``concept_strength_label`` int64 scalar (0-3); ``is_final_token`` bool ``[n_fragments]``
  (true at the last real token: the representation of the complete sentence);
  ``layers`` int64 ``[n_layers]``; ``average_l0s`` float32 ``[n_layers]`` (each layer's SAE
  L0, averaged over the tokens its SAE was trained or evaluated on); ``sentence_index``
  int64 scalar.

A fragment is a token position (special tokens such as a prepended BOS included).
The readers need only numpy (hsae.io, which imports torch, is imported by the writers alone).
``features.json`` beside the files records the provenance: model (its resolved
directory and the SHA-256 of its weight files), hook points, SAE ids, dtype, the split, and this definition of ``embeddings``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

SIDECAR = "features.json"
FILE_PATTERN = re.compile(r"^sentence_(\d+)\.npz$")
EMBEDDINGS_DEFINITION = ("residual stream entering block 0 (transformers hidden_states[0]): token embedding plus "
                         "anything the architecture adds before block 0 (positions, embedding norm, Gemma's sqrt(d) "
                         "scale); unscaled embed_tokens rows for Llama/SmolLM2")
HIDDEN_DEFINITION = "residual stream after block L (GemmaScope's layer L; transformers hidden_states[L + 1] before any final norm)"


def file_name(index: int) -> str:
    return f"sentence_{index:06d}.npz"


def sparse_arrays(dense: np.ndarray) -> dict[str, np.ndarray]:
    """``[n_layers, n_fragments, d_sae]`` codes as the CSR arrays of the sparse layout."""
    rows = dense.reshape(-1, dense.shape[-1])
    row, col = np.nonzero(rows)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=len(rows)), out=indptr[1:])
    return {"activations_indptr": indptr, "activations_indices": col.astype(np.int32),
            "activations_values": rows[row, col].astype(np.float32),
            "activations_shape": np.asarray(dense.shape, dtype=np.int64)}


def write_sentence_file(folder: Path, index: int, arrays: dict[str, np.ndarray], *, sparse: bool) -> Path:
    """Write one sentence's arrays (``activations`` dense) as ``sentence_NNNNNN.npz``, atomically."""
    from hsae.io import atomic_write

    arrays = dict(arrays)
    if sparse:
        arrays.update(sparse_arrays(arrays.pop("activations")))
    return atomic_write(Path(folder) / file_name(index), lambda tmp: _savez(tmp, arrays))


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def write_sidecar(folder: Path, provenance: dict) -> Path:
    from hsae.io import write_json

    return write_json(Path(folder) / SIDECAR, provenance)


def read_sidecar(folder: Path) -> dict | None:
    """``features.json`` of a feature directory, or None (directories from elsewhere have none)."""
    from hsae.io import read_json

    path = Path(folder) / SIDECAR
    return read_json(path) if path.is_file() else None

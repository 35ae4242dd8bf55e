"""Hand-built sentence file directories in the seed's format, for tests and the benchmark.

:func:`write_sentence_dir` writes ``sentence_NNNNNN.npz`` files with random arrays of the
given sizes straight with numpy (not through s1), so readers are tested against the format
itself, and returns what it wrote so tests can compute the expected X and y by hand.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np


@attrs.frozen
class Written:
    """The arrays of every file written, by sentence number."""

    files: dict[int, dict[str, np.ndarray]]

    def final(self, index: int) -> int:
        return int(np.flatnonzero(self.files[index]["is_final_token"])[-1])


def write_sentence_dir(folder: Path, *, n_sentences: int = 12, layers: tuple[int, ...] = (0, 1, 2), d: int = 6,
                       d_sae: int = 10, fragments: tuple[int, int] = (2, 5), first_index: int = 0, seed: int = 0,
                       compressed: bool = False, density: float = 0.3, extra_keys: bool = True) -> Written:
    """Write ``n_sentences`` files numbered from ``first_index``; labels cycle 0-3.

    ``extra_keys``: also write ``layers`` and ``average_l0s`` (the seed's docs list only the
    five main keys; its troubleshooting section reads these two).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    save = np.savez_compressed if compressed else np.savez
    files = {}
    for i in range(n_sentences):
        t = int(rng.integers(fragments[0], fragments[1] + 1))
        acts = rng.random((len(layers), t, d_sae)).astype(np.float32)
        acts[acts > density] = 0
        final = np.zeros(t, dtype=bool)
        final[t - 1] = True
        arrays = {
            "embeddings": rng.standard_normal((t, d)).astype(np.float32),
            "hidden_states": rng.standard_normal((len(layers), t, d)).astype(np.float32),
            "activations": acts,
            "concept_strength_label": np.array(i % 4, dtype=np.int64),
            "is_final_token": final,
        }
        if extra_keys:
            arrays["layers"] = np.asarray(layers, dtype=np.int64)
            arrays["average_l0s"] = np.linspace(60, 140, len(layers)).astype(np.float32)
        index = first_index + i
        save(folder / f"sentence_{index:06d}.npz", **arrays)
        files[index] = arrays
    return Written(files)

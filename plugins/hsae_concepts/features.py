"""s1: per-sentence feature files from a model and one SAE per layer.

Each batch of sentences goes through the model once (:class:`~.capture.LayerCapture`); each
layer's hidden states are encoded by that layer's SAE; each sentence becomes
``sentence_NNNNNN.npz`` (:mod:`.featurefile`). The directory is written under a temporary
name and renamed when complete, so an interrupted run never leaves a directory that looks
finished. ``average_l0s`` is each SAE's mean L0 over the non-special tokens of the first
batch (a TopK SAE's is exactly ``k``); every file of a directory holds the same values.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hsae.errors import UserError
from hsae_concepts import featurefile
from hsae_concepts.capture import CaptureOptions, Captured, LayerCapture
from hsae_concepts.labels import Sentence, class_balance
from hsae_concepts.saes import LayerSAE


def write_features(sentences: Sequence[Sentence], model_ref: str, saes: Mapping[int, LayerSAE], out_dir: Path, *,
                   options: CaptureOptions = CaptureOptions(), sparse: bool = False, device: str = "cpu",
                   dtype: str = "float32", extra: Mapping | None = None, progress: bool = True) -> Path:
    """Write one feature file per sentence into ``out_dir`` (which must not hold any yet)."""
    from hsae_lm.models import load_model, load_tokenizer, resolve_model

    out_dir = Path(out_dir)
    if out_dir.is_dir() and any(out_dir.glob("sentence_*.npz")):
        raise UserError(f"{out_dir}: already holds sentence files; remove it or choose another output")
    layers = tuple(saes)
    model = load_model(model_ref, device=device, dtype=dtype)
    capture = LayerCapture(model, load_tokenizer(model_ref), layers, options)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        average_l0s = _first_batch_l0(capture, sentences, saes, options.batch_size)
        for index, (sentence, captured) in enumerate(zip(sentences, capture([s.text for s in sentences]))):
            codes = np.stack([saes[layer].encode(captured.hidden[i]) for i, layer in enumerate(layers)])
            arrays = {
                "embeddings": captured.embeddings, "hidden_states": captured.hidden, "activations": codes,
                "concept_strength_label": np.array(sentence.label, dtype=np.int64),
                "is_final_token": captured.is_final, "layers": np.asarray(layers, dtype=np.int64),
                "average_l0s": average_l0s, "sentence_index": np.array(index, dtype=np.int64),
            }
            featurefile.write_sentence_file(work, index, arrays, sparse=sparse)
            if progress and (index + 1) % 100 == 0:
                print(f"s1: {index + 1}/{len(sentences)} sentences", file=sys.stderr, flush=True)
        featurefile.write_sidecar(work, _provenance(model_ref, resolve_model(model_ref), model, layers, saes, capture,
                                                    sentences, sparse, dtype, average_l0s, extra))
        work.chmod(0o755)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above for sentence files; anything else makes rmdir fail loudly)
        work.rename(out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_dir


def _first_batch_l0(capture: LayerCapture, sentences: Sequence[Sentence], saes: Mapping[int, LayerSAE],
                    batch_size: int) -> np.ndarray:
    """Mean L0 per layer over the non-special tokens of the first ``batch_size`` sentences."""
    first: list[Captured] = list(capture([s.text for s in sentences[:batch_size]]))
    out = []
    for i, layer in enumerate(saes):
        rows = np.concatenate([c.hidden[i][~c.special] for c in first])
        out.append(float((saes[layer].encode(rows) != 0).sum(1).mean()))
    return np.asarray(out, dtype=np.float32)


def _provenance(model_ref: str, resolved: str, model, layers: tuple[int, ...], saes: Mapping[int, LayerSAE],  # noqa: ANN001
                capture: LayerCapture, sentences: Sequence[Sentence], sparse: bool, dtype: str,
                average_l0s: np.ndarray, extra: Mapping | None) -> dict:
    import transformers
    from hsae_lm.models import weights_digest

    blocks = {id(m): name for name, m in model.named_modules()}
    return {
        "format": "seed 004 s1 sentence files (hsae_concepts.featurefile)",
        "model": model_ref, "model_path": resolved, "model_weights_sha256": weights_digest(resolved),
        "model_class": type(model).__name__,
        "model_name_or_path": getattr(model.config, "_name_or_path", ""),
        "transformers_version": transformers.__version__, "dtype": dtype,
        "layers": list(layers),
        "hooks": {"embeddings": f"input of {blocks[id(capture.points[0].module)]}",
                  **{str(layer): f"output of {blocks[id(p.module)]}" for layer, p in zip(layers, capture.points[1:])}},
        "embeddings": featurefile.EMBEDDINGS_DEFINITION, "hidden_states": featurefile.HIDDEN_DEFINITION,
        "position": "every real token is a fragment; is_final_token marks the last non-special token",
        "prepend_bos": bool(capture.prefix), "context_length": capture.options.context_length,
        "saes": {str(layer): {"id": sae.id, "architecture": sae.architecture, "d_sae": sae.d_sae,
                              "average_l0": float(l0)} for (layer, sae), l0 in zip(saes.items(), average_l0s)},
        "activations": "sparse CSR (activations_indptr/indices/values/shape)" if sparse else "dense",
        "n_sentences": len(sentences),
        "class_balance": class_balance([s.label for s in sentences]),
        **(extra or {}),
    }

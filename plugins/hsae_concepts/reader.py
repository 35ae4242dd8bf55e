"""Stream the final-token slice of every sentence file in a directory (s4's reader).

Only what a request names is read from each file: the row of the final token in
``embeddings``, in ``hidden_states`` for the requested layers, and in ``activations`` (a
whole ``d_sae`` row per layer, or one latent), besides the small ``is_final_token``,
``concept_strength_label``, ``layers`` and ``average_l0s``. Files are opened one at a time
and only the output rows stay in memory, so peak memory does not grow with the size of the
files and grows with their number only by the output itself (see :mod:`.npzslice`).

Layer numbers and ``d_sae`` come from the data (the ``layers`` array of each file, the
shape of ``activations``), never from a model's defaults. Directories in the seed's
documented format without ``layers`` are read as layers ``0 .. n_layers-1``, and without
``average_l0s`` as average L0 unknown (NaN).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np

from hsae.errors import UserError
from hsae_concepts.featurefile import FILE_PATTERN
from hsae_concepts.messages import warn
from hsae_concepts.npzslice import CorruptFile, NpzSlices


@attrs.frozen
class Request:
    """What to read at each final token.

    ``activation_layers``: whole SAE code rows of these layers; ``feature``: one latent
    ``(layer, feature_id)``.
    """

    embeddings: bool = False
    hidden_layers: tuple[int, ...] = ()
    activation_layers: tuple[int, ...] = ()
    feature: tuple[int, int] | None = None

    def sae_layers(self) -> set[int]:
        """Layers whose SAE activations are read."""
        return {*self.activation_layers, *([self.feature[0]] if self.feature else [])}

    def layers(self) -> set[int]:
        return {*self.hidden_layers, *self.sae_layers()}


@attrs.frozen
class DirInfo:
    """A feature directory as its first file describes it."""

    directory: Path
    files: tuple[Path, ...]  # sorted by sentence number
    layers: tuple[int, ...]
    average_l0s: np.ndarray  # per entry of ``layers``; NaN when the files do not say
    d_model: int
    d_sae: int | None  # None: the files hold no activations
    sparse: bool  # activations stored in the sparse (CSR) layout

    def average_l0(self, layer: int) -> float:
        return float(self.average_l0s[self.layers.index(layer)])


@attrs.frozen
class FinalTokens:
    """One row per sentence file that has a final token."""

    sentence_indices: np.ndarray  # (n,) the NNNNNN of each file
    labels: np.ndarray  # (n,) int64 concept strength
    embeddings: np.ndarray | None  # (n, d)
    hidden: np.ndarray | None  # (n, len(hidden_layers), d)
    activations: np.ndarray | None  # (n, len(activation_layers), d_sae)
    feature: np.ndarray | None  # (n,) the requested latent


def sentence_files(directory: Path) -> tuple[Path, ...]:
    """``sentence_*.npz`` in ``directory`` by number; a UserError when there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory (--input must be the s1 sentence NPZ directory)")
    found = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := FILE_PATTERN.match(p.name)))
    if not found:
        raise UserError(f"No sentence_*.npz files found in {directory} (run s1 first, check --input, and use "
                        "sentence-wise files, not the old layer-wise format)")
    return tuple(p for _, p in found)


def open_directory(directory: Path) -> DirInfo:
    """Describe a feature directory from its first file."""
    files = sentence_files(directory)
    with _reading(files[0]) as npz:
        hidden = npz.member("hidden_states").shape
        if len(hidden) != 3:
            raise UserError(f"{files[0]}: hidden_states has shape {hidden}, expected [n_layers, n_fragments, d]")
        layers = _layers(npz, hidden[0], files[0])
        d_sae, sparse = _activation_width(npz, files[0])
        return DirInfo(Path(directory), files, layers, _average_l0s(npz, len(layers), files[0]),
                       hidden[2], d_sae, sparse)


def check_request(info: DirInfo, request: Request) -> None:
    """The seed's errors, raised before anything is read: a layer or a feature the data lacks."""
    for layer in sorted(request.layers()):
        if layer not in info.layers:
            raise UserError(f"Layer {layer} not found in data: {info.files[0].name} has layers "
                            f"{list(info.layers)}")
    if request.sae_layers() and info.d_sae is None:
        raise UserError(f"{info.files[0]}: no SAE activations in the data (activations is missing)")
    if request.feature is not None and not 0 <= request.feature[1] < info.d_sae:
        raise UserError(f"Feature index must be 0-{info.d_sae - 1} (the layer-{request.feature[0]} SAE has "
                        f"{info.d_sae} features), got {request.feature[1]}")


def read_final_tokens(info: DirInfo, request: Request) -> FinalTokens:
    """The final-token rows of every file, streamed; warns when files have no final token."""
    check_request(info, request)
    n = len(info.files)
    d, n_hidden, n_acts = info.d_model, len(request.hidden_layers), len(request.activation_layers)
    indices, labels = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    emb = np.zeros((n, d), dtype=np.float32) if request.embeddings else None
    hidden = np.zeros((n, n_hidden, d), dtype=np.float32) if n_hidden else None
    acts = np.zeros((n, n_acts, info.d_sae), dtype=np.float32) if n_acts else None
    feature = np.zeros(n, dtype=np.float32) if request.feature else None
    row = 0
    for path in info.files:
        with _reading(path) as npz:
            reader = _FileReader(npz, path, info, request)
            if reader.final is None:
                continue
            indices[row] = int(FILE_PATTERN.match(path.name).group(1))
            labels[row] = reader.label()
            if emb is not None:
                emb[row] = reader.embedding()
            for j, layer in enumerate(request.hidden_layers):
                hidden[row, j] = reader.hidden(layer)
            for j, layer in enumerate(request.activation_layers):
                acts[row, j] = reader.activations(layer)
            if feature is not None:
                feature[row] = reader.activations(request.feature[0], request.feature[1])
        row += 1
    if row < n:
        warn(f"Only {row} samples (expected ~{n}, one per sentence file): {n - row} files have no final token")
    cut = slice(0, row)
    return FinalTokens(indices[cut], labels[cut], None if emb is None else emb[cut],
                       None if hidden is None else hidden[cut], None if acts is None else acts[cut],
                       None if feature is None else feature[cut])


class _FileReader:
    """The final-token slices of one open sentence file, checked against the directory."""

    def __init__(self, npz: NpzSlices, path: Path, info: DirInfo, request: Request) -> None:
        self.npz, self.path, self.info = npz, path, info
        mask = npz.read("is_final_token")
        if mask.ndim != 1:
            self._fail(f"is_final_token has shape {mask.shape}, expected [n_fragments]")
        final = np.flatnonzero(mask)
        self.n_fragments, self.final = len(mask), int(final[-1]) if len(final) else None
        hidden = npz.member("hidden_states").shape
        if len(hidden) != 3 or hidden[1:] != (self.n_fragments, info.d_model):
            self._fail(f"hidden_states has shape {hidden}, expected [n_layers, {self.n_fragments}, {info.d_model}] "
                       "(n_fragments from is_final_token, d from the first file)")
        self.layers = _layers(npz, hidden[0], path) if "layers" in npz else info.layers
        for layer in sorted(request.layers()):
            if layer not in self.layers:
                raise UserError(f"Layer {layer} not found in data: {path} has layers {list(self.layers)}")
        self._check_average_l0s(request.sae_layers())

    def _check_average_l0s(self, layers: set[int]) -> None:
        mine = _average_l0s(self.npz, len(self.layers), self.path)
        for layer in sorted(layers):
            have, want = float(mine[self.layers.index(layer)]), self.info.average_l0(layer)
            if not (have == want or (np.isnan(have) and np.isnan(want))):
                raise UserError(f"average_l0 mismatch for layer {layer}: {self.path.name} has {have:g}, "
                                f"{self.info.files[0].name} has {want:g} (the files come from different SAEs)")

    def _fail(self, message: str) -> None:
        raise UserError(f"{self.path}: {message}")

    def label(self) -> int:
        value = self.npz.read("concept_strength_label").reshape(-1)
        if value.size != 1 or not np.isfinite(value[0]) or value[0] != int(value[0]):
            self._fail(f"concept_strength_label must be one integer, got {value.tolist()}")
        return int(value[0])

    def embedding(self) -> np.ndarray:
        shape = self.npz.member("embeddings").shape
        if shape != (self.n_fragments, self.info.d_model):
            self._fail(f"embeddings has shape {shape}, expected [{self.n_fragments}, {self.info.d_model}]")
        d = self.info.d_model
        return self.npz.read_flat("embeddings", self.final * d, d)

    def hidden(self, layer: int) -> np.ndarray:
        d = self.info.d_model
        return self.npz.read_flat("hidden_states", (self.layers.index(layer) * self.n_fragments + self.final) * d, d)

    def activations(self, layer: int, feature: int | None = None) -> np.ndarray | float:
        """The final token's SAE codes at ``layer`` (one latent when ``feature`` is given)."""
        width = self.info.d_sae
        row = self.layers.index(layer) * self.n_fragments + self.final
        if "activations" in self.npz:
            shape = self.npz.member("activations").shape
            if shape != (len(self.layers), self.n_fragments, width):
                self._fail(f"activations has shape {shape}, expected [{len(self.layers)}, {self.n_fragments}, {width}]")
            if feature is not None:
                return float(self.npz.read_flat("activations", row * width + feature, 1)[0])
            return self.npz.read_flat("activations", row * width, width)
        start, stop = (int(v) for v in self.npz.read_flat("activations_indptr", row, 2))
        cols = self.npz.read_flat("activations_indices", start, stop - start)
        values = self.npz.read_flat("activations_values", start, stop - start)
        if feature is not None:
            return float(values[cols == feature].sum())
        out = np.zeros(width, dtype=np.float32)
        out[cols] = values
        return out


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[NpzSlices]:
    """The open file; its CorruptFile problems become a one-line UserError naming it."""
    try:
        with NpzSlices(path) as npz:
            yield npz
    except CorruptFile as exc:
        raise UserError(f"{path}: corrupt or truncated sentence file: {exc}") from None


def _layers(npz: NpzSlices, n_layers: int, path: Path) -> tuple[int, ...]:
    if "layers" not in npz:
        return tuple(range(n_layers))
    layers = tuple(int(v) for v in npz.read("layers").reshape(-1))
    if len(layers) != n_layers or len(set(layers)) != n_layers:
        raise UserError(f"{path}: layers {list(layers)} do not match hidden_states' {n_layers} layers")
    return layers


def _average_l0s(npz: NpzSlices, n_layers: int, path: Path) -> np.ndarray:
    if "average_l0s" not in npz:
        return np.full(n_layers, np.nan)
    values = npz.read("average_l0s").reshape(-1).astype(np.float64)
    if len(values) != n_layers:
        raise UserError(f"average_l0 mismatch: {path} has {len(values)} average_l0s for {n_layers} layers")
    return values


def _activation_width(npz: NpzSlices, path: Path) -> tuple[int | None, bool]:
    """``d_sae`` and whether the activations are sparse; ``(None, False)`` without activations."""
    if "activations" in npz:
        shape = npz.member("activations").shape
        if len(shape) != 3:
            raise UserError(f"{path}: activations has shape {shape}, expected [n_layers, n_fragments, d_sae]")
        return shape[2], False
    if "activations_shape" in npz:
        return int(npz.read("activations_shape")[2]), True
    return None, False

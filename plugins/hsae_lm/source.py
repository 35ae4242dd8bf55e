"""The ``lm-activations`` data source: activations of a real language model at a hook point.

How it is stateless in the step: the source first *captures* a fixed set of rows (texts in
a seeded order, up to ``max_rows``) into a :class:`~hsae_lm.store.ShardStore` (on disk in
``cache_dir``, or in memory), then serves batch ``s`` of rank ``r`` as the rows at positions
``[(s * world + r) * B, ... + B)`` of an endless sequence of shuffled epochs, each shuffled
through a buffer of ``shuffle_buffer_rows`` rows whose order depends only on ``(seed, epoch,
group)``. So ``batches(start_step=s)`` equals an uninterrupted stream from step ``s`` on, and
``--resume`` is exact. The capture itself runs once: with a ``cache_dir`` an interrupted
capture resumes and a finished one is reused by later runs (and by other seeds, since the
text order uses ``text_seed``, not the run's seed).

Several processes (DDP) each read their shard of every global batch from the same store;
let one process fill a ``cache_dir`` first (e.g. a one-step run), since concurrent captures
into one folder are not coordinated.

Splits: ``train`` (endless), ``eval`` (held-out texts, ends), ``validation`` (a seeded
``validation_fraction`` of the train texts held out of training, ends; for choosing learning
rates, see ``hsae.tuning``), ``teacher`` (the train rows, with labels). ``concept-prompts``
texts are split by word (a seeded 70/30 split of the concept tokens, the validation words
taken from the 70%); other texts by a seeded ``eval_fraction`` of them. ``extra_texts``
(unlabelled, e.g. WordNet glosses) are split the same way on their own and added to every
split, so concept prompts can be mixed with generic text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs
import numpy as np
import torch

from hsae.data import Batch, DataSource, Shard
from hsae.errors import Problem, RecipeError, UserError
from hsae_lm.capture import Capturer, CaptureConfig, PositionKind
from hsae_lm.concepts import ConceptConfig, ConceptHierarchy
from hsae_lm.hooks import check_spec
from hsae_lm.models import resolve_model, weights_digest
from hsae_lm.store import ShardStore, buffer_shards
from hsae_lm.texts import TextConfig, TextItem, read_texts


@attrs.frozen
class LMActivationsConfig:
    """Model, hook point, positions, texts, and how much to capture.

    ``model``: a local HF model directory, ``pkg:<package>`` or a hub name. ``hook``:
    ``hidden:<L>``, ``resid:<L>`` or ``module:<path>`` (see ``hsae_lm.hooks``). ``d_model``: the width, if
    known, so that building the source (``hsae validate``) never opens the model; without it
    the width comes from the model's config (``hidden:``) or one probe forward (``module:``).
    ``cache_dir``: where the capture is kept (relative to the recipe); None keeps it in memory.
    Causal LMs are loaded with their LM head (which capture never runs: it stops at the
    hook), so ``module:`` paths start at the head model (``transformer.h.1`` for GPT-2).
    ``prepend_bos``: put the tokenizer's BOS token before every text (for tokenizers that add
    none, so an attention sink lands on it and ``drop_special`` drops it; see ``hsae_lm.capture``).
    ``extra_texts``: unlabelled texts captured besides ``texts`` (in every split).
    """

    model: str
    hook: str = "hidden:3"
    positions: PositionKind = "all"
    drop_special: bool = True
    context_length: int = 128
    batch_texts: int = 32
    texts: TextConfig = TextConfig()
    concepts: ConceptConfig = ConceptConfig()
    eval_fraction: float = 0.05
    validation_fraction: float = 0.0
    prepend_bos: bool = False
    extra_texts: TextConfig | None = None
    max_rows: int = 200_000
    max_eval_rows: int = 20_000
    shard_rows: int = 16_384
    shuffle_buffer_rows: int = 65_536
    cache_dir: Path | None = None
    device: str = "auto"
    dtype: str = "float32"
    d_model: int | None = None
    text_seed: int = 0
    progress: bool = True
    wordnet_dir: Path | None = None


class LMActivationsSource(DataSource):
    """Activations of a Hugging Face model at a hook point, captured from texts (cached, shuffled)."""

    name: ClassVar[str] = "lm-activations"
    Config = LMActivationsConfig

    def __init__(self, config: LMActivationsConfig, *, seed: int = 0) -> None:
        super().__init__(config, seed=seed)
        self._model = self._tokenizer = self._hierarchy = None
        self._stores: dict[str, ShardStore] = {}
        self._items: dict[str, list[TextItem]] | None = None
        _check(config)

    @classmethod
    def example_config(cls, workdir: Path) -> LMActivationsConfig:
        from hsae_lm import testing

        texts = workdir / "texts.txt"
        texts.write_text("the dog barked\nthe cat sat on the mat\na horse ran across the field\n" * 4)
        return cls.Config(model=str(testing.tiny_gpt2_dir()), hook="hidden:1", texts=TextConfig("file", texts),
                          eval_fraction=0.25, progress=False, device="cpu")

    def reuse_capture(self, other: "LMActivationsSource") -> None:
        """Take ``other``'s loaded model, tokenizer, concepts and captured rows (same config, any seed).

        Several seeds of one experiment then share one capture and one model in memory; only
        the batch order (this source's ``seed``) differs.
        """
        if other.config != self.config:
            raise ValueError("reuse_capture needs a source with the same config")
        self._model, self._tokenizer, self._hierarchy = other._model, other._tokenizer, other._hierarchy
        self._stores, self._items = other._stores, other._items

    # -- lazily loaded parts ----------------------------------------------------------------

    @property
    def model(self):  # noqa: ANN201
        if self._model is None:
            from hsae.engine.device import pick_device
            from hsae_lm.models import load_model

            self._model = load_model(self.config.model, device=str(pick_device(self.config.device)),
                                     dtype=self.config.dtype)
        return self._model

    @property
    def tokenizer(self):  # noqa: ANN201
        if self._tokenizer is None:
            from hsae_lm.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.config.model)
        return self._tokenizer

    @property
    def hierarchy(self) -> ConceptHierarchy:
        """The WordNet concepts of ``concept-prompts`` texts (for this model's tokenizer)."""
        if self._hierarchy is None:
            from hsae_lm.concepts import build_hierarchy
            from hsae_lm.wordnet_db import open_db

            self._hierarchy = build_hierarchy(self.tokenizer, self.config.concepts, open_db(self.config.wordnet_dir))
        return self._hierarchy

    @property
    def d_in(self) -> int:
        c = self.config
        if c.d_model is not None:
            return c.d_model
        if c.hook.startswith(("hidden:", "resid:")):
            from transformers import AutoConfig

            return int(AutoConfig.from_pretrained(resolve_model(c.model)).hidden_size)
        return self._probe_width()

    def _probe_width(self) -> int:
        """The width at a ``module:`` hook, from one forward pass on one short text."""
        from hsae_lm.hooks import resolve, run_to_hook

        enc = self.tokenizer(["the"], return_tensors="pt")
        device = next(self.model.parameters()).device
        with torch.no_grad():
            act = run_to_hook(self.model, resolve(self.model, self.config.hook), **{k: v.to(device) for k, v in enc.items()})
        return int(act.shape[-1])

    # -- texts and capture ---------------------------------------------------------------------

    def items(self, split: str) -> list[TextItem]:
        """The texts of ``train``, ``validation`` or ``eval``, in capture order."""
        if self._items is None:
            self._items = self._split_items()
        return self._items[split]

    def _split_items(self) -> dict[str, list[TextItem]]:
        c = self.config
        out = self._concept_items() if c.texts.source == "concept-prompts" else self._text_items(c.texts)
        if c.extra_texts is not None:
            extra = self._text_items(c.extra_texts)
            # every split mixed in a seeded order, so max_rows / max_eval_rows keep both kinds
            out = {split: _shuffled(out[split] + extra[split], c.text_seed) for split in out}
        return out

    def _concept_items(self) -> dict[str, list[TextItem]]:
        """Concept prompts, split by word; train in a seeded order."""
        from hsae_lm.prompts import concept_prompts

        c = self.config
        out = {}
        for split, name in (("train", "train"), ("validation", "validation"), ("eval", "test")):
            prompts = concept_prompts(self.hierarchy, split=name, seed=c.text_seed,
                                      validation_fraction=c.validation_fraction)
            words = self.hierarchy.words
            out[split] = [TextItem(p.text, answer=words[p.token_id], labels=p.concepts) for p in prompts]
        out["train"] = _shuffled(out["train"], c.text_seed)
        return out

    def _text_items(self, texts: TextConfig) -> dict[str, list[TextItem]]:
        """``texts`` split by a seeded ``eval_fraction``; ``validation_fraction`` of the rest held out."""
        c = self.config
        items = read_texts(texts, c.wordnet_dir)
        order = np.random.default_rng(c.text_seed).permutation(len(items))
        n_eval = int(round(c.eval_fraction * len(items)))
        n_validation = int(round(c.validation_fraction * (len(items) - n_eval)))
        if len(items) - n_eval - n_validation <= 0:
            raise UserError(f"only {len(items)} texts: too few for eval_fraction {c.eval_fraction} "
                            f"and validation_fraction {c.validation_fraction}")
        rest = order[n_eval:]
        return {"eval": [items[i] for i in np.sort(order[:n_eval])],
                "validation": [items[i] for i in np.sort(rest[:n_validation])],
                "train": [items[i] for i in rest[n_validation:]]}

    def n_labels(self) -> int | None:
        if self.config.texts.source == "concept-prompts":
            return self.hierarchy.n_concepts
        found = [max(it.labels) for split in ("train", "validation", "eval") for it in self.items(split) if it.labels]
        return max(found) + 1 if found else None

    def fingerprint(self, split: str) -> dict:
        c = self.config
        return {
            "model": resolve_model(c.model), "weights": weights_digest(resolve_model(c.model)),
            "hook": c.hook, "positions": c.positions, "drop_special": c.drop_special,
            "context_length": c.context_length, "texts": attrs.asdict(c.texts), "texts_digest": _digest(c.texts),
            "dtype": c.dtype,
            "concepts": attrs.asdict(c.concepts) if c.texts.source == "concept-prompts" else None,
            "eval_fraction": c.eval_fraction, "text_seed": c.text_seed, "split": split,
            "max_rows": c.max_rows if split == "train" else c.max_eval_rows,
            **_new_options(c),
        }

    def store(self, split: str) -> ShardStore:
        """The captured rows of ``train``, ``validation`` or ``eval``, capturing them first if needed."""
        if split not in self._stores:
            c = self.config
            folder = None if c.cache_dir is None else Path(c.cache_dir) / split
            store = ShardStore(folder, self.fingerprint(split))
            if not store.complete:
                items = self.items(split)
                if split == "validation" and not items:
                    raise UserError("data: the 'validation' split has no texts; set validation_fraction > 0")
                try:
                    capturer = Capturer(self.model, self.tokenizer, CaptureConfig(
                        c.hook, c.positions, c.drop_special, c.context_length, c.batch_texts, c.prepend_bos))
                except ValueError as exc:
                    raise UserError(f"data: {exc}") from None
                n_labels = self.n_labels()
                store.fill(len(items), lambda a, b: self._capture(capturer, items, a, b, n_labels),
                           chunk_items=c.batch_texts * 8, shard_rows=c.shard_rows,
                           max_rows=c.max_rows if split == "train" else c.max_eval_rows,
                           progress=c.progress, desc=f"capture {split}")
            self._stores[split] = store
        return self._stores[split]

    @staticmethod
    def _capture(capturer: Capturer, items: list[TextItem], start: int, stop: int, n_labels: int | None) -> dict:
        rows = capturer(items[start:stop], offset=start)
        out = {"x": rows.x, "token_ids": rows.token_ids.to(torch.int32), "item": rows.item}
        if n_labels is not None:
            labels = torch.zeros(len(rows.item), n_labels, dtype=torch.uint8)
            for r, i in enumerate(rows.item.tolist()):
                if items[i].labels:
                    labels[r, list(items[i].labels)] = 1
            out["labels"] = labels
        return out

    # -- batches ---------------------------------------------------------------------------------

    def batches(self, batch_size: int, *, start_step: int = 0, shard: Shard = Shard(), split: str = "train",
                with_labels: bool = False) -> Iterator[Batch]:
        if split in ("eval", "validation"):
            yield from self._held_out_batches(split, batch_size, with_labels)
            return
        store = self.store("train")
        buffer = buffer_shards(self.config.shuffle_buffer_rows, self.config.shard_rows)
        global_batch = batch_size * shard.world_size
        step = start_step
        while True:
            rows = store.rows_at(step * global_batch + shard.rank * batch_size, batch_size, self.seed, buffer)
            yield self._batch(rows, with_labels or split == "teacher")
            step += 1

    def _held_out_batches(self, split: str, batch_size: int, with_labels: bool) -> Iterator[Batch]:
        """The rows of ``eval`` or ``validation`` in capture order, once."""
        pending: list[dict] = []
        count = 0
        for part in self.store(split).in_order():
            pending.append(part)
            count += len(part["x"])
            while count >= batch_size:
                rows = {k: torch.cat([p[k] for p in pending]) for k in pending[0]}
                yield self._batch({k: v[:batch_size] for k, v in rows.items()}, with_labels)
                pending, count = [{k: v[batch_size:] for k, v in rows.items()}], count - batch_size
        if count:
            yield self._batch({k: torch.cat([p[k] for p in pending]) for k in pending[0]}, with_labels)

    @staticmethod
    def _batch(rows: dict[str, torch.Tensor], with_labels: bool) -> Batch:
        labels = rows.get("labels") if with_labels else None
        return Batch(rows["x"], None if labels is None else labels.float(),
                     {"token_ids": rows["token_ids"].long(), "item": rows["item"]})

    def describe(self) -> dict:
        c = self.config
        return {"type": self.name, "model_name": c.model, "hook_name": c.hook, "positions": c.positions,
                "context_size": c.context_length, "texts": c.texts.source,
                "dataset_path": str(c.texts.path) if c.texts.path else c.texts.source}


def _layer_problems(hook: str, resolved: str) -> list[str]:
    kind, _, arg = hook.partition(":")
    if kind not in ("hidden", "resid") or not arg.isdigit() or not Path(resolved).is_dir():
        return []  # hub names are checked when the model loads (validation never goes online)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolved)
    except (OSError, ValueError):
        return []  # a hub name out of reach: checked when the model loads
    n = getattr(config, "num_hidden_layers", None)
    if isinstance(n, int) and int(arg) > n:
        return [f"hook {hook!r}: layer must be in [0, {n}] for this model ({n} layers)"]
    return []


def _new_options(c: LMActivationsConfig) -> dict:
    """Fingerprint entries of options added later, only when set, so older caches stay valid."""
    out = {}
    if c.validation_fraction:
        out["validation_fraction"] = c.validation_fraction
    if c.prepend_bos:
        out["prepend_bos"] = True
    if c.extra_texts is not None:
        out["extra_texts"] = attrs.asdict(c.extra_texts)
        out["extra_texts_digest"] = _digest(c.extra_texts)
    return out


def _digest(texts: TextConfig) -> str | None:
    """SHA-256 of a text file's bytes, so a cache is never served for an edited or regenerated file."""
    if texts.source not in ("file", "jsonl") or texts.path is None:
        return None
    import hashlib

    return hashlib.sha256(Path(texts.path).read_bytes()).hexdigest()


def _shuffled(items: list, seed: int) -> list:
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order]


def _check(c: LMActivationsConfig) -> None:
    """Every problem visible without loading weights (the model's config is read when no d_model).

    Problems are located at their key (``data.hook``, ``data.texts.path``, ...).
    """
    problems = [_at_key(text) for text in c.texts.problems("texts")] + _texts_file_problems(c.texts)
    if c.extra_texts is not None:
        problems += [_at_key(text) for text in c.extra_texts.problems("extra_texts")]
        problems += _texts_file_problems(c.extra_texts, "extra_texts")
        if c.extra_texts.source == "concept-prompts":
            problems.append(Problem("must be unlabelled texts (file, jsonl or wordnet)", path="extra_texts.source"))
    hook = check_spec(c.hook)
    if hook:
        problems.append(Problem(hook, path="hook"))
    if c.d_model is None:
        try:
            resolved = resolve_model(c.model)
        except UserError as exc:
            problems.append(Problem(str(exc), path="model"))
        else:
            if not hook:
                problems += [Problem(text, path="hook") for text in _layer_problems(c.hook, resolved)]
    for key in ("eval_fraction", "validation_fraction"):
        if not 0 <= getattr(c, key) < 1:
            problems.append(Problem(f"must be in [0, 1), got {getattr(c, key)}", path=key))
    for key in ("max_rows", "max_eval_rows", "shard_rows", "shuffle_buffer_rows", "batch_texts", "context_length"):
        if getattr(c, key) < 1:
            problems.append(Problem(f"must be at least 1, got {getattr(c, key)}", path=key))
    if c.dtype not in ("float32", "float16", "bfloat16"):
        problems.append(Problem(f"must be float32, float16 or bfloat16, got {c.dtype!r}", path="dtype"))
    if c.positions == "answer" and c.texts.source not in ("jsonl", "concept-prompts"):
        problems.append(Problem("positions = 'answer' needs jsonl texts with an 'answer' (or concept-prompts)",
                                path="positions"))
    if problems:
        raise RecipeError(problems)


def _at_key(text: str) -> Problem:
    """``"texts.path: required ..."`` as a problem at ``texts.path``."""
    path, sep, message = text.partition(": ")
    return Problem(message, path=path) if sep and " " not in path else Problem(text)


def _texts_file_problems(texts: TextConfig, where: str = "texts") -> list[Problem]:
    """A ``file`` or ``jsonl`` text source whose file does not exist."""
    if texts.source in ("file", "jsonl") and texts.path is not None and not Path(texts.path).is_file():
        return [Problem(f"file not found: {texts.path}", path=f"{where}.path")]
    return []

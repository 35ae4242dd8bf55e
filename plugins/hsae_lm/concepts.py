"""WordNet noun concepts as token sets of one tokenizer, built the way Park et al. (2024) do.

1. Every noun synset's lemma set is the union of its hyponyms' lemmas, recursively
   (``hyponyms()``, not instance hyponyms; the synset's own lemmas are not included).
2. A lemma contributes the tokens of its forms lower / Capitalized / plural / Plural that
   are single tokens at a word start (:class:`~hsae_lm.words.WordTokens`).
3. Synsets with more than ``min_tokens_build`` (5) tokens are kept. Edges: for every
   hypernym path of a kept synset, its nearest kept ancestor on that path.
4. Single-child chains are merged (Park's ``merge_nodes``, leaves first: a node with one
   child absorbs it when the child has one parent or adds fewer than 6 tokens).
5. At analysis time only concepts with more than ``min_tokens`` (50) tokens remain (induced
   subgraph), and chains are merged once more (fewer than 5 tokens).

Park et al.'s ``.other`` nodes (created when a merged parent keeps leftover lemmas) are not
created. The teacher needs a tree, so each concept keeps one parent: among its parents in
the graph, the one with the fewest tokens (the tightest category; ties by name). All
graph parents stay listed in ``graph_parents``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import attrs
import numpy as np

from hsae.errors import UserError
from hsae.io import write_text
from hsae_lm.wordnet_db import WordNetDB
from hsae_lm.words import WordTokens, word_forms


@attrs.frozen
class ConceptConfig:
    """How the hierarchy is built and filtered.

    ``root``: keep only this synset and its descendants (e.g. ``"animal.n.01"``).
    ``max_depth``: drop concepts deeper than this below the top (None: all).
    """

    min_tokens_build: int = 5
    min_tokens: int = 50
    root: str | None = None
    max_depth: int | None = None


@attrs.frozen(eq=False)
class ConceptHierarchy:
    """Concepts (synset names, parents first), their token ids and one parent each."""

    names: tuple[str, ...]
    tokens: tuple[tuple[int, ...], ...]  # sorted token ids per concept
    parent_of: np.ndarray  # (C,) int64, -1 at the top
    graph_parents: tuple[tuple[int, ...], ...]  # every parent in the merged graph
    words: dict[int, str]  # token id -> one word form giving it

    @property
    def n_concepts(self) -> int:
        return len(self.names)

    def token_ids(self) -> np.ndarray:
        """Every token carrying at least one concept, sorted."""
        return np.array(sorted({t for ts in self.tokens for t in ts}), dtype=np.int64)

    def labels(self, token_ids: Iterable[int]) -> np.ndarray:
        """``(n, C)`` bool: which concepts each token belongs to."""
        index = {int(t): i for i, t in enumerate(token_ids)}
        out = np.zeros((len(index), self.n_concepts), dtype=bool)
        for c, ts in enumerate(self.tokens):
            rows = [index[t] for t in ts if t in index]
            out[rows, c] = True
        return out

    def depth(self) -> np.ndarray:
        depth = np.zeros(self.n_concepts, dtype=np.int64)
        for c in range(self.n_concepts):  # parents come first
            p = self.parent_of[c]
            depth[c] = 0 if p < 0 else depth[p] + 1
        return depth

    def to_json(self) -> dict:
        return {
            "names": list(self.names), "tokens": [list(t) for t in self.tokens],
            "parent_of": self.parent_of.tolist(), "graph_parents": [list(p) for p in self.graph_parents],
            "words": {str(k): v for k, v in sorted(self.words.items())},
        }

    @classmethod
    def from_json(cls, data: dict) -> "ConceptHierarchy":
        return cls(tuple(data["names"]), tuple(tuple(t) for t in data["tokens"]),
                   np.asarray(data["parent_of"], dtype=np.int64), tuple(tuple(p) for p in data["graph_parents"]),
                   {int(k): v for k, v in data["words"].items()})

    def save(self, path: Path) -> None:
        write_text(path, json.dumps(self.to_json()) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ConceptHierarchy":
        return cls.from_json(json.loads(Path(path).read_text()))


class _Graph:
    """A small DAG of synset offsets with parent and child sets."""

    def __init__(self) -> None:
        self.children: dict[int, set[int]] = {}
        self.parents: dict[int, set[int]] = {}

    def add_node(self, n: int) -> None:
        self.children.setdefault(n, set())
        self.parents.setdefault(n, set())

    def add_edge(self, p: int, c: int) -> None:
        self.add_node(p)
        self.add_node(c)
        self.children[p].add(c)
        self.parents[c].add(p)

    def remove(self, n: int) -> None:
        for p in self.parents.pop(n):
            self.children[p].discard(n)
        for c in self.children.pop(n):
            self.parents[c].discard(n)

    def subgraph(self, keep: set[int]) -> "_Graph":
        g = _Graph()
        for n in self.children:
            if n in keep:
                g.add_node(n)
                for c in self.children[n]:
                    if c in keep:
                        g.add_edge(n, c)
        return g

    def topological(self, key) -> list[int]:
        """Parents before children (Kahn's algorithm, ties broken by ``key``)."""
        indegree = {n: len(ps) for n, ps in self.parents.items()}
        ready = sorted((n for n, d in indegree.items() if d == 0), key=key)
        order = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for c in sorted(self.children[n], key=key):
                indegree[c] -= 1
                if indegree[c] == 0:
                    ready.append(c)
        return order


def merge_chains(graph: _Graph, tokens: dict[int, frozenset[int]], min_extra: int, key) -> None:
    """Park et al.'s ``merge_nodes``: leaves first, a node with one child absorbs it when the
    child has one parent or the node has fewer than ``min_extra`` tokens the child lacks."""
    for node in reversed(graph.topological(key)):
        if node not in graph.children or len(graph.children[node]) != 1:
            continue
        (child,) = graph.children[node]
        if len(graph.parents[child]) == 1 or len(tokens[node] - tokens[child]) < min_extra:
            grandchildren = list(graph.children[child])
            graph.remove(child)
            for g in grandchildren:
                graph.add_edge(node, g)


def lemma_tokens(db: WordNetDB, tokenizer) -> dict[str, dict[str, int]]:  # noqa: ANN001
    """Single-word noun lemma -> ``{form: token id}`` of its single-token forms (lemmas with none left out)."""
    irregular = db.noun_exceptions
    lemmas = {l for s in db.synsets("n").values() for l in s.lemmas if "_" not in l}
    forms = {l: word_forms(l, irregular) for l in lemmas}
    found = WordTokens(tokenizer).lookup(f for fs in forms.values() for f in fs)
    out = {}
    for lemma, fs in forms.items():
        ids = {f: found[f] for f in fs if f in found}
        if ids:
            out[lemma] = ids
    return out


_BUILT: dict[tuple, ConceptHierarchy] = {}  # full hierarchies already built in this process


def build_hierarchy(tokenizer, config: ConceptConfig = ConceptConfig(), db: WordNetDB | None = None) -> ConceptHierarchy:  # noqa: ANN001
    """The WordNet noun hierarchy as token sets of ``tokenizer`` (see the module docstring).

    The full hierarchy of a (tokenizer, WordNet, thresholds) is built once per process;
    ``root`` and ``max_depth`` are applied to it afterwards.
    """
    db = db or WordNetDB()
    vocab = tokenizer.get_vocab()
    key = (str(db.root), getattr(tokenizer, "name_or_path", ""), len(vocab), hash(frozenset(vocab.items())),
           config.min_tokens_build, config.min_tokens)
    if key not in _BUILT:
        _BUILT[key] = _build_full(tokenizer, config, db)
    return restrict(_BUILT[key], config)


def _build_full(tokenizer, config: ConceptConfig, db: WordNetDB) -> ConceptHierarchy:  # noqa: ANN001
    synsets = db.synsets("n")
    per_lemma = lemma_tokens(db, tokenizer)
    own = {off: frozenset(t for l in s.lemmas for t in per_lemma.get(l, {}).values()) for off, s in synsets.items()}
    closure: dict[int, frozenset[int]] = {}

    def below(off: int) -> frozenset[int]:  # union over hyponyms of their lemmas and closures
        if off not in closure:
            closure[off] = frozenset().union(*(own[h] | below(h) for h in synsets[off].hyponyms))
        return closure[off]

    for off in synsets:
        below(off)
    kept = {off for off, ts in closure.items() if len(ts) > config.min_tokens_build}

    nearest: dict[int, frozenset[int]] = {}

    def kept_ancestors(off: int) -> frozenset[int]:  # nearest kept synset on every hypernym path
        if off not in nearest:
            nearest[off] = frozenset().union(
                *({h} if h in kept else kept_ancestors(h) for h in synsets[off].hypernyms))
        return nearest[off]

    graph = _Graph()
    for off in kept:
        graph.add_node(off)
        for p in kept_ancestors(off):
            graph.add_edge(p, off)
    name = lambda off: synsets[off].name  # noqa: E731
    merge_chains(graph, closure, 6, name)

    analysed = {off for off in graph.children if len(closure[off]) > config.min_tokens}
    graph = graph.subgraph(analysed)
    merge_chains(graph, closure, 5, name)
    return _as_hierarchy(graph, closure, synsets, per_lemma)


def restrict(hierarchy: ConceptHierarchy, config: ConceptConfig) -> ConceptHierarchy:
    """Apply ``config.root`` (one subtree) and ``config.max_depth`` to a built hierarchy."""
    h = hierarchy
    if config.root is not None:
        if config.root not in h.names:
            raise UserError(f"concepts.root = {config.root!r} is not one of the {h.n_concepts} concepts kept for "
                            "this tokenizer (unknown synset, too few single-token words, or merged into its parent)")
        root = h.names.index(config.root)
        inside = np.zeros(h.n_concepts, dtype=bool)
        inside[root] = True
        for c in range(root + 1, h.n_concepts):  # parents come first
            inside[c] = h.parent_of[c] >= 0 and inside[h.parent_of[c]]
        h = _select(h, np.flatnonzero(inside))
    if config.max_depth is not None:
        h = _select(h, np.flatnonzero(h.depth() <= config.max_depth))
    return h


def _as_hierarchy(graph: _Graph, closure, synsets, per_lemma) -> ConceptHierarchy:
    order = graph.topological(lambda off: synsets[off].name)
    index = {off: i for i, off in enumerate(order)}
    parent_of = np.full(len(order), -1, dtype=np.int64)
    for off in order:
        ps = sorted(graph.parents[off], key=lambda p: (len(closure[p]), synsets[p].name))
        if ps:
            parent_of[index[off]] = index[ps[0]]
    return ConceptHierarchy(
        names=tuple(synsets[off].name for off in order),
        tokens=tuple(tuple(sorted(closure[off])) for off in order),
        parent_of=parent_of,
        graph_parents=tuple(tuple(sorted(index[p] for p in graph.parents[off])) for off in order),
        words=_token_words(per_lemma),
    )


def _token_words(per_lemma: dict[str, dict[str, int]]) -> dict[int, str]:
    """One word form per token id, the form that gives exactly that token (lower case first)."""
    pairs = sorted((form.lower() != form, form, t) for forms in per_lemma.values() for form, t in forms.items())
    words: dict[int, str] = {}
    for _, form, t in pairs:
        words.setdefault(t, form)
    return words


def _select(h: ConceptHierarchy, keep: np.ndarray) -> ConceptHierarchy:
    """The concepts ``keep`` (sorted indices), re-indexed; parents outside become -1."""
    new = {int(old): i for i, old in enumerate(keep)}
    return ConceptHierarchy(
        names=tuple(h.names[i] for i in keep), tokens=tuple(h.tokens[i] for i in keep),
        parent_of=np.array([new.get(int(h.parent_of[i]), -1) for i in keep], dtype=np.int64),
        graph_parents=tuple(tuple(new[p] for p in h.graph_parents[i] if p in new) for i in keep),
        words=h.words,
    )


def split_tokens(token_ids: np.ndarray, train_frac: float = 0.7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of tokens into train and test (70/30 by default), each sorted."""
    order = np.random.default_rng(seed).permutation(np.asarray(token_ids))
    n_train = int(round(train_frac * order.size))
    return np.sort(order[:n_train]), np.sort(order[n_train:])

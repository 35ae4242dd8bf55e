"""Word forms and single-token words, for building token sets of WordNet concepts.

Park et al. (2024) keep a lemma when one of its forms, lower-case, Capitalized, plural or
Plural, is a single vocabulary token at a word start (with the tokenizer's word-start
marker: ``▁`` for SentencePiece, ``Ġ`` for byte-level BPE, none for WordPiece, whose
*continuation* pieces carry ``##`` instead). :class:`WordTokens` finds those tokens for
any Hugging Face tokenizer; :func:`plural` inflects English nouns (regular rules plus
WordNet's own irregular plurals from ``noun.exc``, instead of the ``inflect`` package).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ANCHORS = ("the", "a", "of", "is", "and")  # words put before a candidate so that it sits at a word start
_ES = ("s", "x", "z", "ch", "sh")


def plural(word: str, irregular: Mapping[str, str] | None = None) -> str:
    """The plural of an English noun: WordNet's irregular form, else the regular rules."""
    if irregular and word in irregular:
        return irregular[word]
    if word.endswith(_ES):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def word_forms(lemma: str, irregular: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``lower, Capitalized, plural, Plural`` of a lemma (duplicates removed, order kept)."""
    word = lemma.lower()
    many = plural(word, irregular)
    return tuple(dict.fromkeys((word, word.capitalize(), many, many.capitalize())))


class WordTokens:
    """Maps words to the single token a tokenizer gives them at a word start (or nothing).

    The word-start marker is detected from the tokenizer itself: ``"the the"`` is encoded
    and the second token's text, minus ``the``, is the marker (another common word stands
    in for ``the`` when that is not a known single token). Candidates (the word, or its
    lower-case form for lower-casing tokenizers, behind the marker) are looked up in the
    vocabulary and then confirmed by encoding ``"the <word>"``, so only words the tokenizer
    really turns into one token are kept, whatever its normalizer or pre-tokenizer does.
    """

    def __init__(self, tokenizer) -> None:  # noqa: ANN001 - a transformers tokenizer
        self.tokenizer = tokenizer
        self.vocab: dict[str, int] = tokenizer.get_vocab()
        self._backend = _plain_backend(tokenizer)
        self.anchor, self.marker = self._detect_marker()
        self.anchor_ids = self._encode([self.anchor])[0]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if self._backend is not None:  # the Rust tokenizer directly: twice as fast on many short texts
            return [e.ids for e in self._backend.encode_batch(texts, add_special_tokens=False)]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _detect_marker(self) -> tuple[str, str | None]:
        """The anchor word and the word-start marker (None: unknown convention)."""
        unk = getattr(self.tokenizer, "unk_token_id", None)
        for anchor in ANCHORS:
            one, two = self._encode([anchor, f"{anchor} {anchor}"])
            if len(one) != 1 or one[0] == unk or len(two) != 2:
                continue
            text = self.tokenizer.convert_ids_to_tokens(two[1])
            if text.lower().endswith(anchor):
                return anchor, text[: -len(anchor)]
        return ANCHORS[0], None

    def lookup(self, words: Iterable[str]) -> dict[str, int]:
        """``{word: token id}`` for the words that are one token at a word start."""
        words = list(dict.fromkeys(words))
        if self.marker is None:  # unknown convention: encode every word (slower, still exact)
            candidates = words
        else:
            m, vocab = self.marker, self.vocab
            candidates = [w for w in words if m + w in vocab or m + w.lower() in vocab]
        found = {}
        n_anchor = len(self.anchor_ids)
        for start in range(0, len(candidates), 8192):
            chunk = candidates[start: start + 8192]
            for word, ids in zip(chunk, self._encode([f"{self.anchor} {w}" for w in chunk])):
                if len(ids) == n_anchor + 1 and ids[:n_anchor] == self.anchor_ids:
                    found[word] = ids[-1]
        return found


def _plain_backend(tokenizer):  # noqa: ANN001, ANN202
    """A copy of a fast tokenizer's Rust tokenizer without padding or truncation, or None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(backend.to_str())
    plain.no_padding()
    plain.no_truncation()
    return plain

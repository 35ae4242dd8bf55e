"""WordNet for nltk from Debian's files, the fast database view, and Park et al.'s concept hierarchy."""

from __future__ import annotations

import json
import os
import random
import stat

import numpy as np
import pytest

from hsae.errors import UserError
from hsae_lm import testing
from hsae_lm.concepts import ConceptConfig, restrict, split_tokens
from hsae_lm.prompts import concept_prompts
from hsae_lm.wordnet_data import LEXNAMES, load_wordnet, prepare_wordnet
from hsae_lm.words import WordTokens, plural, word_forms


@pytest.fixture(scope="module")
def wn_dir():
    return testing.wordnet_dir()


@pytest.fixture(scope="module")
def nltk_wordnet(wn_dir):
    return load_wordnet(wn_dir)


@pytest.fixture(scope="module")
def hierarchy():
    return testing.minilm_hierarchy()


def test_prepared_directory_is_private_and_has_lexnames(wn_dir):
    root = wn_dir / "corpora" / "wordnet"
    lines = (root / "lexnames").read_text().splitlines()
    assert len(lines) == 45 == len(LEXNAMES)
    assert lines[5] == "05\tnoun.animal\t1" and lines[44] == "44\tadj.ppl\t3"
    for path in [wn_dir, root, *root.iterdir()]:
        assert not os.stat(path).st_mode & (stat.S_IWGRP | stat.S_IWOTH), path


def test_nltk_reads_the_prepared_wordnet(nltk_wordnet):
    dog = nltk_wordnet.synset("dog.n.01")
    assert dog.lexname() == "noun.animal"
    assert "canine.n.02" in [h.name() for h in dog.hypernyms()]


def test_missing_wordnet_is_one_line_with_the_install_hint(tmp_path, monkeypatch, cli):
    with pytest.raises(UserError) as info:
        prepare_wordnet(tmp_path / "out", source=tmp_path / "nowhere")
    assert "apt-get install wordnet-base wordnet-sense-index" in str(info.value)
    assert "\n" not in str(info.value)
    monkeypatch.setattr("hsae_lm.wordnet_data.DEBIAN_DIRS", (tmp_path / "nowhere",))
    with pytest.raises(UserError, match="WordNet not found"):
        load_wordnet(tmp_path / "empty")
    code, _, err = cli("data", "wordnet", "--source", tmp_path / "nowhere", "--dest", tmp_path / "x")
    assert code == 2 and err.count("\n") == 1 and "apt-get install" in err


def test_cli_prepares_and_says_how_to_point_nltk(tmp_path, cli, wn_dir):
    code, out, _ = cli("data", "wordnet", "--dest", tmp_path / "nltk")
    assert code == 0
    assert f"WordNet ready for nltk in {tmp_path / 'nltk'}" in out
    assert f"NLTK_DATA={tmp_path / 'nltk'}" in out


def test_database_view_matches_nltk(nltk_wordnet):
    db, wn = testing.wordnet_db(), nltk_wordnet
    nouns = db.synsets("n")
    assert len(nouns) == 82115
    for offset in random.Random(0).sample(sorted(nouns), 100):
        ours, theirs = nouns[offset], wn.synset_from_pos_and_offset("n", offset)
        assert ours.name == theirs.name()
        assert ours.lemmas == tuple(l.name() for l in theirs.lemmas())
        assert sorted(ours.hyponyms) == sorted(h.offset() for h in theirs.hyponyms())
        assert sorted(ours.hypernyms) == sorted(h.offset() for h in theirs.hypernyms() + theirs.instance_hypernyms())
        assert (ours.definition, list(ours.examples)) == (theirs.definition(), theirs.examples())


def test_plural_and_forms(wn_dir):
    irregular = testing.wordnet_db().noun_exceptions
    assert [plural(w, irregular) for w in ("dog", "box", "city", "day", "mouse", "wolf")] == \
        ["dogs", "boxes", "cities", "days", "mice", "wolves"]
    assert word_forms("Dog") == ("dog", "Dog", "dogs", "Dogs")


def test_word_tokens_wordpiece_and_byte_level_bpe():
    bert = WordTokens(testing.minilm_tokenizer())
    assert bert.marker == ""  # WordPiece: word starts are bare, continuations carry ##
    found = bert.lookup(["dog", "Dog", "dogs", "aardvark", "xylophonist"])
    assert found["dog"] == found["Dog"]  # uncased
    assert "xylophonist" not in found  # several word pieces
    bpe = WordTokens(testing.byte_bpe_tokenizer())
    assert bpe.marker == "\u0120"  # GPT-2's Ġ
    found = bpe.lookup(["dog", "dogs", "horse", "zebra"])
    assert set(found) == {"dog", "dogs", "horse"}
    assert testing.byte_bpe_tokenizer().convert_ids_to_tokens(found["dog"]) == "\u0120dog"


def test_hierarchy_follows_park_et_al(hierarchy):
    h = hierarchy
    assert 150 < h.n_concepts < 500
    assert h.names[0] == "entity.n.01" and h.parent_of[0] == -1
    assert all(len(t) > 50 for t in h.tokens)
    sets = [set(t) for t in h.tokens]
    for c, p in enumerate(h.parent_of):
        if p >= 0:
            assert p < c  # parents first
            assert sets[c] <= sets[p]  # a parent's lemmas include its hyponyms'
            assert p in h.graph_parents[c]
    animal = h.names.index("animal.n.01")
    mammal = h.names.index("mammal.n.01")
    assert animal in _ancestors(h, mammal)
    dog_id = testing.minilm_tokenizer().convert_tokens_to_ids("dog")
    assert dog_id in sets[mammal] and dog_id not in sets[h.names.index("bird.n.01")]


def test_subtree_split_and_prompts(hierarchy):
    tok = testing.minilm_tokenizer()
    animals = restrict(hierarchy, ConceptConfig(root="animal.n.01"))
    assert animals.names[0] == "animal.n.01" and (animals.parent_of[1:] >= 0).all()
    assert set(animals.names) < set(hierarchy.names)
    tokens = animals.token_ids()
    train, test = split_tokens(tokens, 0.7, seed=3)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(tokens)
    assert abs(len(train) / len(tokens) - 0.7) < 0.01
    assert np.array_equal(train, split_tokens(tokens, 0.7, seed=3)[0])
    prompts = list(concept_prompts(animals, split="test", seed=3))
    assert {p.token_id for p in prompts} == set(test.tolist())
    p = prompts[7]
    ids = tok(p.text, add_special_tokens=False)["input_ids"]
    assert ids[-1] == p.token_id  # the word is the prompt's last token
    assert 0 in p.concepts and all(p.token_id in animals.tokens[c] for c in p.concepts)


def test_concepts_command_writes_the_token_sets(tmp_path, cli, hierarchy, monkeypatch):
    monkeypatch.setenv("HSAE_NLTK_DATA", str(testing.wordnet_dir()))
    code, out, err = cli("data", "concepts", testing.minilm(), "--out", tmp_path / "c.json", "--root", "mammal.n.01")
    assert code == 0, err
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["names"][0] == "mammal.n.01" and data["parent_of"][0] == -1
    assert f"{len(data['names'])} concepts" in out


def test_unknown_root_is_a_user_error(hierarchy):
    with pytest.raises(UserError, match="'unicorn.n.07' is not one of the"):
        restrict(hierarchy, ConceptConfig(root="unicorn.n.07"))
    shallow = restrict(hierarchy, ConceptConfig(max_depth=2))
    assert shallow.depth().max() == 2 and shallow.names == tuple(n for n, d in zip(hierarchy.names, hierarchy.depth()) if d <= 2)


def _ancestors(h, c):
    out = []
    while h.parent_of[c] >= 0:
        c = int(h.parent_of[c])
        out.append(c)
    return out

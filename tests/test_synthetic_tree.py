"""Tree format: validation names every problem with its JSON path; analytic statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hsae.errors import RecipeError, UserError
from hsae_synthetic.tree import Tree, read_json

TREES = Path(__file__).resolve().parents[1] / "recipes" / "trees"


def problems_of(obj, file="tree.json") -> list[str]:
    with pytest.raises(RecipeError) as info:
        Tree(obj, file=file)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ({"active_prob": 1.0, "children": [{"active_prob": 0.2, "children": [{"active_prob": 0.1}, {"active_prob": 1.5}]}]},
         "tree.json: $.children[0].children[1].active_prob: 1.5 is not in [0, 1]"),
        ({"active_prob": -0.1}, "tree.json: $.active_prob: -0.1 is not in [0, 1]"),
        ({"active_prob": float("nan")}, "tree.json: $.active_prob: nan is not in [0, 1]"),
        ({"active_prob": "0.5"}, 'tree.json: $.active_prob: expected a number in [0, 1], got a string "0.5"'),
        ({"active_prob": True}, "tree.json: $.active_prob: expected a number in [0, 1], got a boolean true"),
        ({"active_prob": 1, "is_read_out": "yes"}, 'tree.json: $.is_read_out: expected true or false, got a string "yes"'),
        ({"active_prob": 1, "mutually_exclusive_children": 1}, "tree.json: $.mutually_exclusive_children: expected true or false, got a number 1"),
        ({"active_prob": 1, "is_binary": None}, "tree.json: $.is_binary: expected true or false, got null"),
        ({"active_prob": 1, "id": 7}, "tree.json: $.id: expected a string, got a number 7"),
        ({"active_prob": 1, "children": {"active_prob": 1}}, "tree.json: $.children: expected a list of tree nodes, got an object"),
        ({"active_prob": 1, "children": [3]}, "tree.json: $.children[0]: expected a tree node (an object), got a number 3"),
        ({"active_prob": 1, "activ_prob": 1}, "tree.json: $.activ_prob: unknown key; did you mean 'active_prob'?"),
        ({"active_prob": 1, "colour": "red"}, "tree.json: $.colour: unknown key; allowed keys: active_prob, is_read_out, "
                                              "mutually_exclusive_children, children, id, is_binary"),
        ({"is_read_out": True}, "tree.json: $: missing required key 'active_prob'"),
        ({}, "tree.json: $: empty tree: expected an object with at least 'active_prob'"),
        ([], "tree.json: $: empty tree: expected an object with at least 'active_prob'"),
        (None, "tree.json: $: empty tree: expected an object with at least 'active_prob'"),
        ([{"active_prob": 1}], "tree.json: $: expected a tree node (an object), got a list"),
        ({"active_prob": 1, "is_read_out": False, "children": [{"active_prob": 0.5, "is_read_out": False}]},
         "tree.json: $: no read-out node: at least one node needs is_read_out true (the default)"),
        ({"active_prob": 1, "children": [{"active_prob": 0.5, "mutually_exclusive_children": True,
                                          "children": [{"active_prob": 0.7}, {"active_prob": 0.4}]}]},
         "tree.json: $.children[0].children: mutually exclusive children's active_prob sum to 1.1, more than 1"),
        ({"active_prob": 1, "children": [{"id": "a", "active_prob": 0.5}, {"id": "a", "active_prob": 0.5}]},
         "tree.json: $.children[1].id: duplicate id 'a' (also at $.children[0])"),
    ],
)
def test_each_bad_tree_reports_its_message_and_path(tree, expected):
    assert problems_of(tree) == [expected]


def test_all_problems_are_reported_at_once():
    tree = {"active_prob": 1, "colour": 1, "children": [
        {"active_prob": 2, "children": [{"active_prob": "x"}]},
        {"is_read_out": 3},
    ]}
    assert problems_of(tree) == [
        "tree.json: $.colour: unknown key; allowed keys: active_prob, is_read_out, mutually_exclusive_children, children, id, is_binary",
        "tree.json: $.children[0].active_prob: 2 is not in [0, 1]",
        "tree.json: $.children[1]: missing required key 'active_prob'",
        "tree.json: $.children[1].is_read_out: expected true or false, got a number 3",
        'tree.json: $.children[0].children[0].active_prob: expected a number in [0, 1], got a string "x"',
    ]


def test_exclusive_children_summing_to_exactly_one_are_valid():
    tree = Tree({"active_prob": 1, "mutually_exclusive_children": True,
                 "children": [{"active_prob": 0.1}, {"active_prob": 0.2}, {"active_prob": 0.7}]})
    assert tree.n_features == 4


def test_bad_json_and_missing_files_are_one_line_user_errors(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"active_prob": 1.0,\n  "children": [}\n')
    with pytest.raises(RecipeError) as info:
        read_json(bad)
    (problem,) = info.value.problems
    assert problem.file == str(bad) and problem.line == 2 and "invalid JSON" in problem.message
    with pytest.raises(UserError, match="nope.json: no such file"):
        Tree.load(tmp_path / "nope.json")


def test_abc_tree_compiles_breadth_first_with_analytic_stats():
    tree = Tree.load(TREES / "tree.json")
    assert tree.names == ["A", "B", "C", "A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3", "B1a", "B1b", "B2a", "B2b"]
    parent = {tree.names[f]: (tree.names[p] if p >= 0 else None) for f, p in enumerate(tree.feature_parent)}
    assert parent["A1"] == "A" and parent["B1a"] == "B1" and parent["A"] is None
    assert tree.feature_level.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]
    # Expected L0 by hand: A 0.15*(1 + 0.6); B 0.1*(1 + 0.5*(1 + 1.4) + 0.3*(1 + 1.1)); C 0.05*(1 + 0.9).
    by_hand = 0.15 * 1.6 + 0.1 * (1 + 0.5 * 2.4 + 0.3 * 2.1) + 0.05 * 1.9
    assert tree.expected_l0() == pytest.approx(by_hand, abs=1e-12)
    freq = dict(zip(tree.names, tree.feature_frequencies()))
    assert freq["B1a"] == pytest.approx(0.1 * 0.5 * 0.8) and freq["A2"] == pytest.approx(0.15 * 0.2)


def test_non_read_out_nodes_gate_but_have_no_feature():
    tree = Tree({"active_prob": 1, "is_read_out": False, "children": [
        {"id": "gate", "active_prob": 0.5, "is_read_out": False, "children": [{"id": "leaf", "active_prob": 0.5}]},
        {"id": "top", "active_prob": 0.4, "children": [
            {"id": "none", "active_prob": 0.3, "is_read_out": False, "children": [{"id": "deep", "active_prob": 1.0}]}]},
    ]})
    assert tree.names == ["top", "leaf", "deep"]
    assert tree.feature_parent.tolist() == [-1, -1, 0]  # "deep" skips the non-read-out "none" up to "top"
    assert tree.feature_level.tolist() == [0, 0, 1]
    np.testing.assert_allclose(tree.feature_frequencies(), [0.4, 0.25, 0.12])


def test_continuous_moments_and_global_default():
    tree = Tree({"active_prob": 0.5, "children": [{"active_prob": 0.5, "is_binary": False}, {"active_prob": 0.5, "is_binary": True}]})
    mean, std = tree.expected_activation_moments(binary_default=False)
    np.testing.assert_allclose(mean, [0.25, 0.125, 0.25])  # the root follows the default (continuous)
    np.testing.assert_allclose(std[1], np.sqrt(0.25 / 3 - 0.125**2))
    assert tree.feature_binary(True).tolist() == [True, False, True]


def test_printout_shows_structure_and_probabilities():
    text = Tree.load(TREES / "tree.json").format()
    lines = text.splitlines()
    assert lines[0] == "tree: 16 nodes, 15 features, depth 3, expected L0 0.618"
    assert "├── A [f0] p=0.15 P(active)=0.15 mutually-exclusive" in lines
    assert "│   │   ├── B1a [f11] p=0.8 P(active)=0.04" in lines
    assert lines[-1] == "    └── C3 [f10] p=0.2 P(active)=0.01"
    assert Tree.load(TREES / "tree.json").format(max_nodes=3).splitlines()[-1] == "... (13 more nodes)"


def test_shipped_trees_are_valid_and_match_the_seed():
    simple = json.loads((TREES / "simple_hierarchy.json").read_text())
    assert Tree(simple).n_features == 3 and Tree(simple).expected_l0() == pytest.approx(0.2 * 2.4)
    exclusive = Tree.load(TREES / "exclusive_groups.json")
    assert exclusive.exclusive.tolist() == [False, True, False, False]
    assert exclusive.expected_l0() == pytest.approx(0.3 * 2)

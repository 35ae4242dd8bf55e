"""Feature trees in the seed's JSON format: parsing, validation, compilation, analytic stats.

A tree is a JSON object with the keys

* ``active_prob`` (number in [0, 1], required): P(node active | parent active);
* ``is_read_out`` (bool, default true): whether the node is a feature (has a direction);
* ``mutually_exclusive_children`` (bool, default false): at most one child fires;
* ``children`` (list of nodes, default none);
* ``id`` (string, optional): the node's name;
* ``is_binary`` (bool, optional): magnitude 1 when active (true) or uniform(0, 1]
  (false); unset means the generator-wide default.

Under a mutually exclusive parent, child ``i`` fires with probability ``active_prob_i``
and no child with ``1 - sum(active_prob)``; a sum above 1 is an error. A non-read-out node
gates its children but has no feature.

:class:`Tree` numbers nodes breadth-first (so every node's children are contiguous) and
read-out nodes, in that same order, as features ``0..n_features-1``: parents come before
their children.
"""

from __future__ import annotations

import difflib
import json
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from hsae.errors import Problem, RecipeError, UserError

KEYS = ("active_prob", "is_read_out", "mutually_exclusive_children", "children", "id", "is_binary")
_BOOL_KEYS = ("is_read_out", "mutually_exclusive_children", "is_binary")
ME_TOLERANCE = 1e-9  # slack on "sum of exclusive probabilities <= 1" for float round-off


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    name = kind.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)
    shown = json.dumps(value) if not isinstance(value, (dict, list)) else ""
    return f"{name} {shown}".strip()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_tree(obj: Any, file: str = "") -> list[Problem]:
    """Every problem in a tree, each with its JSON path (``$.children[0].active_prob``)."""
    problems: list[Problem] = []

    def add(path: str, message: str) -> None:
        problems.append(Problem(message, path=path, file=file))

    if obj is None or obj == {} or obj == []:
        add("$", "empty tree: expected an object with at least 'active_prob'")
        return problems
    seen_ids: dict[str, str] = {}
    any_read_out = False
    queue: deque[tuple[Any, str]] = deque([(obj, "$")])
    while queue:
        node, path = queue.popleft()
        if not isinstance(node, dict):
            add(path, f"expected a tree node (an object), got {_describe(node)}")
            continue
        for key in node:
            if key not in KEYS:
                close = difflib.get_close_matches(str(key), KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; allowed keys: {', '.join(KEYS)}"
                add(f"{path}.{key}", f"unknown key{hint}")
        if "active_prob" not in node:
            add(path, "missing required key 'active_prob'")
        else:
            p = node["active_prob"]
            if not _is_number(p):
                add(f"{path}.active_prob", f"expected a number in [0, 1], got {_describe(p)}")
            elif not 0.0 <= p <= 1.0:  # also rejects NaN
                add(f"{path}.active_prob", f"{p} is not in [0, 1]")
        for key in _BOOL_KEYS:
            if key in node and not isinstance(node[key], bool):
                add(f"{path}.{key}", f"expected true or false, got {_describe(node[key])}")
        if "id" in node:
            if not isinstance(node["id"], str):
                add(f"{path}.id", f"expected a string, got {_describe(node['id'])}")
            elif node["id"] in seen_ids:
                add(f"{path}.id", f"duplicate id {node['id']!r} (also at {seen_ids[node['id']]})")
            else:
                seen_ids[node["id"]] = path
        if node.get("is_read_out", True) is not False:
            any_read_out = True
        children = node.get("children", [])
        if not isinstance(children, list):
            add(f"{path}.children", f"expected a list of tree nodes, got {_describe(children)}")
            continue
        if node.get("mutually_exclusive_children") is True:
            probs = [c.get("active_prob") for c in children if isinstance(c, dict)]
            total = sum(p for p in probs if _is_number(p) and 0.0 <= p <= 1.0)
            if total > 1.0 + ME_TOLERANCE:
                add(f"{path}.children", f"mutually exclusive children's active_prob sum to {total:.6g}, more than 1")
        for i, child in enumerate(children):
            queue.append((child, f"{path}.children[{i}]"))
    if not problems and not any_read_out:
        add("$", "no read-out node: at least one node needs is_read_out true (the default)")
    return problems


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing file or bad JSON is a one-line user error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a JSON file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError([Problem(f"invalid JSON: {exc.msg} (column {exc.colno})", file=str(path), line=exc.lineno)]) from None


class Tree:
    """A validated tree compiled to flat arrays (breadth-first node order).

    Node arrays (length ``n_nodes``): ``parent`` (-1 for the root), ``depth``, ``prob``
    (``active_prob``), ``read_out``, ``binary`` (1, 0, or -1 for "generator default"),
    ``exclusive`` (children are mutually exclusive), ``child_start``/``child_count``
    (children are nodes ``child_start .. child_start + child_count - 1``), ``feature``
    (feature index or -1). Feature arrays (length ``n_features``): ``feature_node``,
    ``feature_parent`` (nearest read-out ancestor's feature or -1), ``feature_level``
    (number of read-out ancestors). ``names`` holds each feature's ``id`` or JSON path.
    """

    def __init__(self, obj: dict[str, Any], file: str = "") -> None:
        problems = validate_tree(obj, file)
        if problems:
            raise RecipeError(problems)
        self.json = obj
        self.file = file
        parent, depth, prob, read_out, binary, exclusive, paths, ids = [], [], [], [], [], [], [], []
        child_start, child_count = [], []
        queue: deque[tuple[dict, int, int, str]] = deque([(obj, -1, 0, "$")])
        next_index = 1
        while queue:
            node, par, dep, path = queue.popleft()
            children = node.get("children", [])
            parent.append(par)
            depth.append(dep)
            prob.append(float(node["active_prob"]))
            read_out.append(node.get("is_read_out", True))
            binary.append(-1 if node.get("is_binary") is None else int(node["is_binary"]))
            exclusive.append(node.get("mutually_exclusive_children", False))
            paths.append(path)
            ids.append(node.get("id"))
            child_start.append(next_index)
            child_count.append(len(children))
            me = len(parent) - 1
            for i, child in enumerate(children):
                queue.append((child, me, dep + 1, f"{path}.children[{i}]"))
            next_index += len(children)
        self.parent = np.asarray(parent, dtype=np.int64)
        self.depth = np.asarray(depth, dtype=np.int64)
        self.prob = np.asarray(prob, dtype=np.float64)
        self.read_out = np.asarray(read_out, dtype=bool)
        self.binary = np.asarray(binary, dtype=np.int8)
        self.exclusive = np.asarray(exclusive, dtype=bool)
        self.child_start = np.asarray(child_start, dtype=np.int64)
        self.child_count = np.asarray(child_count, dtype=np.int64)
        self.paths = paths
        self.node_ids = ids
        self.feature_node = np.flatnonzero(self.read_out)
        self.feature = np.full(self.n_nodes, -1, dtype=np.int64)
        self.feature[self.feature_node] = np.arange(self.feature_node.size)
        self.names = [ids[n] if ids[n] is not None else paths[n] for n in self.feature_node]
        self.marginal = self._marginals()
        self.feature_parent, self.feature_level = self._read_out_ancestry()

    @classmethod
    def load(cls, path: str | Path) -> "Tree":
        """Read and validate a tree JSON file."""
        return cls(read_json(path), file=str(path))

    @property
    def n_nodes(self) -> int:
        return int(self.parent.size)

    @property
    def n_features(self) -> int:
        return int(self.feature_node.size)

    @property
    def max_depth(self) -> int:
        return int(self.depth.max())

    def _marginals(self) -> np.ndarray:
        """P(node active) = product of ``active_prob`` along the path from the root."""
        marginal = self.prob.copy()
        for node in range(1, self.n_nodes):  # breadth-first: the parent is already final
            marginal[node] *= marginal[self.parent[node]]
        return marginal

    def _read_out_ancestry(self) -> tuple[np.ndarray, np.ndarray]:
        anc_feature = np.full(self.n_nodes, -1, dtype=np.int64)  # nearest read-out ancestor-or-self
        anc_level = np.full(self.n_nodes, -1, dtype=np.int64)  # its level
        feature_parent = np.full(self.n_features, -1, dtype=np.int64)
        feature_level = np.zeros(self.n_features, dtype=np.int64)
        for node in range(self.n_nodes):
            par = self.parent[node]
            up_feature = anc_feature[par] if par >= 0 else -1
            up_level = anc_level[par] if par >= 0 else -1
            f = self.feature[node]
            if f >= 0:
                feature_parent[f], feature_level[f] = up_feature, up_level + 1
                anc_feature[node], anc_level[node] = f, up_level + 1
            else:
                anc_feature[node], anc_level[node] = up_feature, up_level
        return feature_parent, feature_level

    # ----------------------------------------------------------------- analytic statistics
    def feature_frequencies(self) -> np.ndarray:
        """Analytic P(feature active), ``(n_features,)``."""
        return self.marginal[self.feature_node]

    def expected_l0(self) -> float:
        """Analytic expected number of active features per sample."""
        return float(self.feature_frequencies().sum())

    def feature_binary(self, default: bool = True) -> np.ndarray:
        """Whether each feature's magnitude is binary, given the generator-wide default."""
        b = self.binary[self.feature_node]
        return np.where(b < 0, default, b == 1)

    def expected_activation_moments(self, binary_default: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Analytic per-feature mean and standard deviation of the activation value.

        Binary features are 1 when active; continuous ones are uniform(0, 1] (mean 1/2,
        second moment 1/3).
        """
        freq = self.feature_frequencies()
        binary = self.feature_binary(binary_default)
        m1 = np.where(binary, 1.0, 0.5)
        m2 = np.where(binary, 1.0, 1.0 / 3.0)
        mean = freq * m1
        return mean, np.sqrt(np.maximum(freq * m2 - mean**2, 0.0))

    # ----------------------------------------------------------------------- printing
    def format(self, max_nodes: int = 200) -> str:
        """A readable tree printout: name, feature index, P(active | parent), P(active)."""
        lines = [f"tree: {self.n_nodes} nodes, {self.n_features} features, depth {self.max_depth}, "
                 f"expected L0 {self.expected_l0():.4g}"]
        shown = 0
        stack: list[tuple[int, str, str]] = [(0, "", "")]
        while stack and shown < max_nodes:
            node, lead, branch = stack.pop()
            f = self.feature[node]
            name = self.node_ids[node] or (self.paths[node] if node else "root")
            tag = f"[f{f}]" if f >= 0 else "(gate)"
            flags = " mutually-exclusive" if self.exclusive[node] and self.child_count[node] else ""
            if self.binary[node] == 0:
                flags += " continuous"
            lines.append(f"{lead}{branch}{name} {tag} p={self.prob[node]:.4g} P(active)={self.marginal[node]:.4g}{flags}")
            shown += 1
            start, count = self.child_start[node], self.child_count[node]
            child_lead = lead + ("" if not branch else ("    " if branch.startswith("└") else "│   "))
            for i in reversed(range(count)):
                stack.append((int(start + i), child_lead, "└── " if i == count - 1 else "├── "))
        if self.n_nodes > shown:
            lines.append(f"... ({self.n_nodes - shown} more nodes)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Tree(n_nodes={self.n_nodes}, n_features={self.n_features}, expected_l0={self.expected_l0():.4g})"


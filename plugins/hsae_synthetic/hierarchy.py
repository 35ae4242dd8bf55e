"""Generated trees: SynthSAEBench-like forests and the seed's ``create_custom_tree_config``.

Both produce a tree in the seed's JSON format, so everything downstream (validation,
sampling, analytic statistics, output files) treats them like a hand-written tree.

SynthSAEBench-like forests (:func:`generate_hierarchy`) follow SAELens
``sae_lens.synthetic`` (``HierarchyConfig`` + ``ZipfianFiringProbabilityConfig``):

1. ``n_roots`` trees are built breadth first to ``depth`` (depth 1 = roots with leaf
   children), ``branching_factor`` children per parent (or uniform in
   ``[branching_factor, max_branching_factor]``). Features are numbered roots first, then
   breadth first; ``n_features`` beyond the trees are independent features (no parent),
   and a tree larger than ``n_features`` is cut off, as in SAELens.
2. Feature ``k`` (in that numbering) gets the Zipf base probability
   ``z_k = min_prob + (max_prob - min_prob) * (r_k - r_min) / (r_max - r_min)`` with
   ``r_k = (k + 1) ** -zipf_exponent``.
3. With ``compensate_probabilities`` (SynthSAEBench's setting), SAELens scales each
   child's base probability by ``1 / z_parent`` and, in a mutually exclusive group, by
   ``1 + (sum of the siblings' z) / z_parent``, clipped at 1; call the result ``p``.
4. SAELens then fires every feature independently with ``p``, zeroes children of inactive
   parents, and in a mutually exclusive group keeps one uniformly random winner among the
   active siblings. That is exactly a categorical choice: child ``i`` wins with
   ``q_i = p_i * E[1 / (1 + #other active siblings)] = p_i * int_0^1 prod_{j != i} (1 - p_j + p_j t) dt``,
   which we compute exactly (Gauss-Legendre; the integrand is a polynomial) and store as the
   children's ``active_prob``. The tree format's semantics then reproduce SAELens's
   distribution of active features exactly (binary magnitudes, no feature correlation).

The default :class:`HierarchyConfig` is SynthSAEBench-16k's shape: 16,384 features, 128
roots, branching 4, depth 3, all mutually exclusive, Zipf 0.5 from 0.4 to 5e-4, with
compensation: expected L0 about 34.2.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import attrs
import numpy as np

from hsae.errors import Problem, RecipeError


@attrs.frozen
class HierarchyConfig:
    """A generated SynthSAEBench-like forest (defaults: SynthSAEBench-16k)."""

    n_features: int = 16384
    n_roots: int = 128
    branching_factor: int = 4
    max_branching_factor: int | None = None  # set for a random branching in [branching_factor, this]
    depth: int = 3
    mutually_exclusive_portion: float = 1.0
    zipf_exponent: float = 0.5
    max_prob: float = 0.4
    min_prob: float = 5e-4
    compensate_probabilities: bool = True
    seed: int = 0  # structure randomness only (branching range, which parents are exclusive)

    def problems(self, path: str = "hierarchy", file: str = "") -> list[Problem]:
        """Every invalid value, each with its path."""
        out: list[Problem] = []

        def bad(key: str, message: str) -> None:
            out.append(Problem(message, path=f"{path}.{key}" if path else key, file=file))

        if self.n_features < 1:
            bad("n_features", f"must be at least 1, got {self.n_features}")
        if self.n_roots < 1:
            bad("n_roots", f"must be at least 1, got {self.n_roots}")
        if self.branching_factor < 1:
            bad("branching_factor", f"must be at least 1, got {self.branching_factor}")
        if self.max_branching_factor is not None and self.max_branching_factor < self.branching_factor:
            bad("max_branching_factor", f"{self.max_branching_factor} is less than branching_factor {self.branching_factor}")
        if self.depth < 0:
            bad("depth", f"must be at least 0, got {self.depth}")
        if not 0.0 <= self.mutually_exclusive_portion <= 1.0:
            bad("mutually_exclusive_portion", f"{self.mutually_exclusive_portion} is not in [0, 1]")
        if not self.zipf_exponent > 0:
            bad("zipf_exponent", f"must be positive, got {self.zipf_exponent}")
        if not 0.0 < self.min_prob <= self.max_prob <= 1.0:
            bad("max_prob", f"need 0 < min_prob <= max_prob <= 1, got min_prob {self.min_prob}, max_prob {self.max_prob}")
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "hierarchy", file: str = "") -> "HierarchyConfig":
        """From a JSON object; ``branching_factor`` may be ``[lo, hi]``. Reports every problem."""
        problems: list[Problem] = []
        fields = {f.name: f for f in attrs.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            where = f"{path}.{key}"
            if key == "branching_factor" and isinstance(value, list):
                if len(value) == 2 and all(_is_int(v) for v in value):
                    kwargs["branching_factor"], kwargs["max_branching_factor"] = value
                else:
                    problems.append(Problem(f"expected an integer or [lo, hi], got {value!r}", path=where, file=file))
                continue
            if key not in fields:
                problems.append(Problem(f"unknown key; allowed keys: {', '.join(fields)}", path=where, file=file))
                continue
            want = fields[key].type
            if "int" in str(want) and "float" not in str(want):
                ok = _is_int(value) or (value is None and "None" in str(want))
                kind = "an integer"
            elif "float" in str(want):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
                kind = "a number"
            else:
                ok = isinstance(value, bool)
                kind = "true or false"
            if not ok:
                problems.append(Problem(f"expected {kind}, got {value!r}", path=where, file=file))
            else:
                kwargs[key] = float(value) if kind == "a number" else value
        if problems:
            raise RecipeError(problems)
        cfg = cls(**kwargs)
        problems = cfg.problems(path, file)
        if problems:
            raise RecipeError(problems)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def zipf_probabilities(n: int, exponent: float, max_prob: float, min_prob: float) -> np.ndarray:
    """SAELens's Zipf firing probabilities: ``(k+1)^-exponent`` rescaled to ``[min_prob, max_prob]``."""
    if n == 1:
        return np.array([max_prob])
    r = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return min_prob + (max_prob - min_prob) * (r - r.min()) / (r.max() - r.min())


@functools.lru_cache(maxsize=64)
def _gauss_legendre_01(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of ``n``-point Gauss-Legendre quadrature on [0, 1]."""
    t, w = np.polynomial.legendre.leggauss(n)
    return (t + 1) / 2, w / 2


def exclusive_win_probabilities(p: np.ndarray) -> np.ndarray:
    """P(child i is the one kept) when siblings fire independently with ``p`` and one active
    sibling is kept uniformly at random: ``p_i * int_0^1 prod_{j != i} (1 - p_j + p_j t) dt``."""
    p = np.asarray(p, dtype=np.float64)
    if p.size < 2:
        return p.copy()
    t, w = _gauss_legendre_01(p.size // 2 + 1)  # exact for polynomials of degree <= p.size
    factors = 1.0 - p[:, None] + p[:, None] * t[None, :]  # (k, nodes), > 0 inside (0, 1)
    others = np.exp(np.log(factors).sum(0, keepdims=True) - np.log(factors))
    return np.minimum(p * (others @ w), 1.0)


@attrs.frozen
class Forest:
    """A generated forest in SAELens's terms, before conversion to the tree format.

    Features ``0..n-1`` are numbered roots first, then breadth first, then the independent
    extras. ``parent[k]`` is -1 for roots and extras; ``fire_prob[k]`` is SAELens's
    independent firing probability (after compensation); ``exclusive`` holds the parents
    whose children are mutually exclusive.
    """

    parent: np.ndarray
    names: list[str]
    children: dict[int, list[int]]
    exclusive: frozenset[int]
    base_prob: np.ndarray
    fire_prob: np.ndarray
    n_tree: int  # features 0..n_tree-1 are in the trees, the rest are independent extras


def build_forest(cfg: HierarchyConfig = HierarchyConfig()) -> Forest:
    """The structure and SAELens firing probabilities of a generated forest."""
    problems = cfg.problems()
    if problems:
        raise RecipeError(problems)
    rng = np.random.default_rng(cfg.seed)
    parent: list[int] = []
    names: list[str] = []
    for r in range(min(cfg.n_roots, cfg.n_features)):
        parent.append(-1)
        names.append(f"r{r}")
    level = list(range(len(parent)))
    children: dict[int, list[int]] = {}
    hi = cfg.max_branching_factor or cfg.branching_factor
    for _ in range(cfg.depth):
        next_level = []
        for node in level:
            if len(parent) >= cfg.n_features:
                break
            k = int(rng.integers(cfg.branching_factor, hi + 1))
            kids = list(range(len(parent), min(len(parent) + k, cfg.n_features)))
            for i, _kid in enumerate(kids):
                parent.append(node)
                names.append(f"{names[node]}.{i}")
            children[node] = kids
            next_level.extend(kids)
        level = next_level
    n_tree = len(parent)
    parent += [-1] * (cfg.n_features - n_tree)
    names += [f"x{k}" for k in range(cfg.n_features - n_tree)]
    base = zipf_probabilities(cfg.n_features, cfg.zipf_exponent, cfg.max_prob, cfg.min_prob)

    eligible = [node for node, kids in children.items() if len(kids) >= 2]
    n_exclusive = int(len(eligible) * cfg.mutually_exclusive_portion)
    exclusive = frozenset(rng.choice(eligible, size=n_exclusive, replace=False).tolist()) if n_exclusive else frozenset()

    fire = base.copy()
    if cfg.compensate_probabilities:
        for node, kids in children.items():
            factor = np.full(len(kids), 1.0 / base[node])
            if node in exclusive:
                zs = base[kids]
                factor *= 1.0 + np.maximum(zs.sum() - zs, 0.0) / base[node]
            fire[kids] = np.minimum(base[kids] * factor, 1.0)
    return Forest(np.asarray(parent, dtype=np.int64), names, children, exclusive, base, fire, n_tree)


def forest_to_tree(forest: Forest) -> dict[str, Any]:
    """The seed-format tree (under a non-read-out root) with exactly the forest's distribution."""
    active_prob = forest.fire_prob.copy()
    for node in forest.exclusive:
        kids = forest.children[node]
        active_prob[kids] = exclusive_win_probabilities(forest.fire_prob[kids])

    def node_json(i: int) -> dict[str, Any]:
        d: dict[str, Any] = {"id": forest.names[i], "active_prob": float(active_prob[i]), "is_read_out": True}
        if i in forest.exclusive:
            d["mutually_exclusive_children"] = True
        if i in forest.children:
            d["children"] = [node_json(c) for c in forest.children[i]]
        return d

    top = [i for i in range(forest.parent.size) if forest.parent[i] == -1]
    return {"id": "root", "active_prob": 1.0, "is_read_out": False, "children": [node_json(i) for i in top]}


def generate_hierarchy(cfg: HierarchyConfig = HierarchyConfig()) -> dict[str, Any]:
    """A SynthSAEBench-like forest as a seed-format tree (under a non-read-out root)."""
    return forest_to_tree(build_forest(cfg))


def create_custom_tree_config(
    n_levels: int = 3,
    branching_factor: float = 3,
    root_prob: float = 0.1,
    decay_factor: float = 0.7,
    mutually_exclusive_prob: float = 0.3,
    seed: int | None = None,
) -> dict[str, Any]:
    """A random tree in the seed's format (its ``create_custom_tree_config``).

    The root is an always-active gate; below it ``n_levels`` levels of read-out features.
    A feature at level ``L`` (1 = top) has ``active_prob = root_prob * decay_factor ** (L - 1)``;
    each node has ``Poisson(branching_factor)`` children, capped at 8 (the root at least 1);
    each feature's children are mutually exclusive with probability
    ``mutually_exclusive_prob``. Where exclusive children's probabilities would sum above
    1, they are scaled down to sum to 1 so the tree stays valid.
    """
    if n_levels < 1:
        raise ValueError(f"n_levels must be at least 1, got {n_levels}")
    if not 0.0 <= root_prob <= 1.0 or not 0.0 <= decay_factor <= 1.0 or not 0.0 <= mutually_exclusive_prob <= 1.0:
        raise ValueError("root_prob, decay_factor and mutually_exclusive_prob must be in [0, 1]")
    if branching_factor < 0:
        raise ValueError(f"branching_factor must be >= 0, got {branching_factor}")
    rng = np.random.default_rng(seed)

    def make(level: int) -> dict[str, Any]:
        if level == 0:
            node: dict[str, Any] = {"active_prob": 1.0, "is_read_out": False}
        else:
            node = {"active_prob": round(root_prob * decay_factor ** (level - 1), 8), "is_read_out": True}
            if rng.random() < mutually_exclusive_prob:
                node["mutually_exclusive_children"] = True
        if level < n_levels:
            n_children = int(min(rng.poisson(branching_factor), 8))
            if level == 0:
                n_children = max(n_children, 1)
            kids = [make(level + 1) for _ in range(n_children)]
            total = math.fsum(k["active_prob"] for k in kids)
            if node.get("mutually_exclusive_children") and total > 1.0:
                for k in kids:
                    k["active_prob"] = k["active_prob"] / total * (1 - 1e-12)
            node["children"] = kids
        return node

    return make(0)

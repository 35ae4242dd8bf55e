"""Teacher geometry (Park et al. 2024): whitening, the LDA estimator, the angle check, controls.

Planted data: ``x = sum of active concept directions * magnitudes + isotropic noise`` on a
2-level hierarchy (each parent active with p=0.3; each of its children, independently, with
p=0.15 and only when the parent is active). Generated here; no dependency on hsae_synthetic.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

from hsae_teacher.estimator import TeacherConfig, estimate_teacher, lda_vector
from hsae_teacher.geometry import Whitening, fit_whitening
from hsae_teacher.validation import (
    ValidationConfig,
    parent_delta_angles,
    render_markdown,
    validate_teacher,
)

METRICS = ("euclidean", "data-covariance")


def planted_hierarchy(
    n: int = 20000,
    d: int = 32,
    n_parents: int = 4,
    n_children: int = 3,
    lean: float | None = None,
    noise: float = 0.45,
    seed: int = 0,
):
    """Returns ``(x, labels, parent_of, true_directions)``; concepts 0..P-1 are the parents.

    ``lean=None``: all directions orthonormal. ``lean=s``: each child's direction is
    ``normalize(parent + s * u)`` with ``u`` orthogonal to every other direction.
    """
    rng = np.random.default_rng(seed)
    n_concepts = n_parents * (1 + n_children)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0].T[:n_concepts]
    parent_of = np.concatenate([np.full(n_parents, -1), np.repeat(np.arange(n_parents), n_children)])
    directions = basis.copy()
    if lean is not None:
        kids = np.arange(n_parents, n_concepts)
        directions[kids] = basis[parent_of[kids]] + lean * basis[kids]
        directions[kids] /= np.linalg.norm(directions[kids], axis=1, keepdims=True)
    labels = np.zeros((n, n_concepts), dtype=bool)
    labels[:, :n_parents] = rng.random((n, n_parents)) < 0.3
    kids = np.arange(n_parents, n_concepts)
    labels[:, kids] = labels[:, parent_of[kids]] & (rng.random((n, kids.size)) < 0.15)
    magnitudes = rng.uniform(0.8, 1.2, size=(n, n_concepts))
    x = (labels * magnitudes) @ directions + noise * rng.standard_normal((n, d))
    return x, labels, parent_of, directions


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module")
def orthogonal():
    return planted_hierarchy()


@pytest.fixture(scope="module")
def leaning():
    return planted_hierarchy(lean=0.3)  # each child 17 degrees from its parent


# -- whitening -----------------------------------------------------------------------------


def test_data_whitening_round_trip_and_identity_covariance():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 12)) @ rng.standard_normal((12, 12)) + 3.0
    w = Whitening.from_data(x)
    g = w.transform(x)
    assert w.rank == 12
    np.testing.assert_allclose(g.mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(g.T @ g / len(g), np.eye(12), atol=1e-8)
    np.testing.assert_allclose(w.inverse_transform(g), x, atol=1e-8)
    v = rng.standard_normal((5, 12))
    np.testing.assert_allclose(w.to_causal(w.to_input(v)), v, atol=1e-8)
    np.testing.assert_allclose(w.to_input(v) @ w.to_input(v).T, v @ w.sqrt @ w.sqrt @ v.T, atol=1e-8)
    np.testing.assert_allclose(w.sqrt @ w.sqrt, np.cov(x.T, bias=True), atol=1e-8)


def test_matrix_whitening_from_an_unembedding_and_the_dual_map():
    rng = np.random.default_rng(2)
    gamma = torch.from_numpy(rng.standard_normal((5000, 16)) * np.linspace(0.2, 3.0, 16)).float()
    w = fit_whitening("matrix", matrix=gamma)
    g = w.transform(gamma)
    np.testing.assert_allclose(g.T @ g / len(g), np.eye(16), atol=1e-6)
    # unembedding side maps by Cov^{1/2}, residual side by Cov^{-1/2}: their pairing is kept
    u, v = rng.standard_normal(16), rng.standard_normal(16)
    assert np.isclose(w.to_dual(u) @ w.to_input(v), u @ v)
    assert np.allclose(w.back_map(u, "dual"), w.to_dual(u)) and np.allclose(w.back_map(u), w.to_input(u))


def test_rank_deficient_covariance_uses_a_pseudo_inverse():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 5)) @ rng.standard_normal((5, 8)) + 1.0  # rank 5 in 8 dims
    w = Whitening.from_data(x)
    g = w.transform(x)
    assert w.rank == 5 and np.all(np.isfinite(g))
    assert np.allclose(np.sort(np.linalg.eigvalsh(g.T @ g / len(g))), [0, 0, 0, 1, 1, 1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(w.inverse_transform(g), x, atol=1e-8)


def test_euclidean_whitening_only_centres():
    x = np.random.default_rng(4).standard_normal((100, 6)) + 2.0
    w = fit_whitening("euclidean", data=x)
    np.testing.assert_allclose(w.transform(x), x - x.mean(0))
    np.testing.assert_allclose(w.to_input(x), x)


# -- estimator -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [40, 500])  # fewer and more samples than dimensions
def test_lda_vector_matches_the_reference_formula(n):
    rng = np.random.default_rng(5)
    g = rng.standard_normal((n, 64)) * np.linspace(0.3, 2.0, 64) + rng.standard_normal(64)
    mu = g.mean(0)
    w = np.linalg.pinv(LedoitWolf().fit(g).covariance_) @ mu
    g_tilde = w / np.linalg.norm(w)
    np.testing.assert_allclose(lda_vector(g), (g_tilde @ mu) * g_tilde, rtol=1e-7, atol=1e-10)
    ell = lda_vector(torch.from_numpy(g))  # torch in, numpy out
    assert np.isclose(np.mean(g @ ell / (ell @ ell)), 1.0)  # magnitude kept: projection mean 1


@pytest.mark.parametrize("kind", METRICS)
def test_estimator_recovers_planted_directions(orthogonal, kind):
    x, labels, parent_of, true = orthogonal
    teacher = estimate_teacher(x, labels, parent_of, fit_whitening(kind, data=x))
    assert teacher.parents.tolist() == [0, 1, 2, 3] and teacher.children.size == 12
    assert np.all(teacher.child_parent == parent_of[teacher.children])
    assert _cos(teacher.parent_vectors_input, true[teacher.parents]).min() > 0.95
    assert _cos(teacher.deltas_input, true[teacher.children]).min() > 0.95
    # deltas are differences of the unnormalized vectors, in both spaces
    parent_causal = teacher.vectors_of(teacher.child_parent)
    parent_input = teacher.vectors_of(teacher.child_parent, "input")
    np.testing.assert_allclose(teacher.deltas_causal, teacher.child_vectors_causal - parent_causal)
    np.testing.assert_allclose(teacher.deltas_input, teacher.child_vectors_input - parent_input)


@pytest.mark.parametrize("kind", METRICS)
def test_angle_check_can_fail_on_a_leaning_hierarchy(orthogonal, leaning, kind):
    medians = {}
    for name, (x, labels, parent_of, _) in (("orthogonal", orthogonal), ("leaning", leaning)):
        teacher = estimate_teacher(x, labels, parent_of, fit_whitening(kind, data=x))
        medians[name] = float(np.median(parent_delta_angles(teacher)))
    assert medians["leaning"] < 65.0, medians  # well below the seed's 80-degree target
    assert 80.0 < medians["orthogonal"] < 100.0, medians


def test_normalizing_before_subtracting_forces_obtuse_angles(leaning):
    x, labels, parent_of, _ = leaning
    teacher = estimate_teacher(x, labels, parent_of, fit_whitening("data-covariance", data=x))
    honest = parent_delta_angles(teacher)
    pitfall = parent_delta_angles(teacher, normalize_first=True)
    assert np.median(honest) < 65.0
    assert np.all(pitfall >= 90.0)  # <ell_p, delta> = |ell_p| (cos - 1) <= 0: cannot fail
    # the same holds for any vectors at all
    a, b = np.random.default_rng(6).standard_normal((2, 1000, 8))
    a_hat, b_hat = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    assert np.all(np.sum(a_hat * (b_hat - a_hat), axis=1) <= 1e-12)


def test_back_map_convention_is_explicit():
    x, labels, parent_of, _ = planted_hierarchy(n=4000, seed=2)
    w = fit_whitening("data-covariance", data=x)
    sample = estimate_teacher(x, labels, parent_of, w)
    dual = estimate_teacher(x, labels, parent_of, w, TeacherConfig(back_map="dual"))
    np.testing.assert_allclose(sample.vectors_causal, dual.vectors_causal)
    np.testing.assert_allclose(sample.vectors_input, sample.vectors_causal @ w.sqrt)  # Cov^{1/2}
    np.testing.assert_allclose(dual.vectors_input, dual.vectors_causal @ w.inv_sqrt)  # Cov^{-1/2}
    assert (sample.back_map, dual.back_map) == ("sample", "dual")


def test_concepts_below_min_samples_are_skipped_and_listed(orthogonal):
    x, labels, parent_of, _ = orthogonal
    labels = labels.copy()
    labels[30:, 1] = False  # parent 1 keeps at most 30 positives ...
    labels[:, 7] = labels[:, 7] & labels[:, 1]  # ... its children even fewer
    teacher = estimate_teacher(x, labels, parent_of, fit_whitening("euclidean", data=x), TeacherConfig(min_samples=50))
    assert 1 in teacher.skipped and 7 in teacher.skipped
    assert 1 not in teacher.parents and not np.isin([7], teacher.children).any()
    assert set(teacher.orphans) == {c for c in (8, 9) if c not in teacher.skipped}
    with pytest.raises(KeyError):
        teacher.vector(1)


# -- validation report ---------------------------------------------------------------------


def test_report_controls_collapse_and_serialize():
    x, labels, parent_of, true = planted_hierarchy(n=8000, noise=0.2, seed=1)
    report = validate_teacher(x, labels, parent_of, fit_whitening("data-covariance", data=x), true_directions=true)
    json.dumps(report, allow_nan=False)
    proj, controls = report["projection"], report["controls"]
    assert proj["auc_mean"] > 0.97 and proj["auc_min"] > 0.9
    assert proj["proj_train_mean"] == pytest.approx(1.0) and proj["proj_test_mean"] > 0.9
    assert abs(proj["proj_random_mean"]) < 0.2
    assert abs(controls["shuffled_labels"]["projection"]["auc_mean"] - 0.5) < 0.05
    assert controls["shuffled_labels"]["true_cosine"]["parent_median"] < 0.5
    assert report["true_cosine"]["parent_min"] > 0.95 and report["true_cosine"]["delta_median"] > 0.95
    # against a wrong parent the delta points away from it: clearly obtuse
    assert controls["random_parent"]["angles"]["median_deg"] > report["angles"]["median_deg"] + 20.0
    assert controls["euclidean"]["projection"]["auc_mean"] > 0.97
    assert report["angles_normalized_first"]["median_deg"] >= 90.0
    table = render_markdown(report)
    assert table.startswith("| metric | teacher (data-covariance) | shuffled labels | random parent | euclidean |")
    assert "projection AUC (mean)" in table and "angle(ell_p, delta) median (deg)" in table
    gap = report["angles"]["median_deg"] - controls["random_parent"]["angles"]["median_deg"]
    assert f"random parent {gap:+.1f}" in table and "from orthogonal" in table


def test_report_without_truth_or_controls_and_grandparents():
    # three levels: 0 -> 1 -> 2; the grandparent statistic is defined for concept 2
    rng = np.random.default_rng(7)
    n, d = 4000, 16
    dirs = np.linalg.qr(rng.standard_normal((d, d)))[0].T[:3]
    labels = np.zeros((n, 3), dtype=bool)
    labels[:, 0] = rng.random(n) < 0.4
    labels[:, 1] = labels[:, 0] & (rng.random(n) < 0.5)
    labels[:, 2] = labels[:, 1] & (rng.random(n) < 0.5)
    x = labels @ dirs + 0.3 * rng.standard_normal((n, d))
    report = validate_teacher(
        torch.from_numpy(x), torch.from_numpy(labels), [-1, 0, 1], fit_whitening("euclidean", data=x),
        config=ValidationConfig(controls=False),
    )
    assert report["true_cosine"] is None and report["controls"] is None
    assert report["counts"] == {"n_parents": 2, "n_children": 2, "skipped": [], "orphans": []}
    assert report["grandparent"]["n"] == 1 and abs(report["grandparent"]["median_cos"]) < 0.3
    assert "teacher (euclidean)" in render_markdown(report)

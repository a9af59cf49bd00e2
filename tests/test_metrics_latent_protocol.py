"""The latent-quality protocol on arrays: answers known by construction, and agreement with a
direct, loop-by-loop scikit-learn computation of InfoDiffusion's eval_disentanglement.py."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from protodiff.metrics.latent.protocol_scores import auroc_matrix, entropy_reduction, latent_auroc, tad_fold, tad_score
from protodiff.metrics.latent.protocol_settings import Folds, Thresholds

N, A = 4000, 8


def _attributes(rng: np.random.Generator, n: int = N, correlated: bool = True) -> np.ndarray:
    """Independent fair coins; with ``correlated``, the last attribute copies the one before it 95% of the time."""
    y = (rng.random((n, A)) < 0.5).astype(np.int64)
    if correlated:
        y[:, -1] = np.where(rng.random(n) < 0.95, y[:, -2], 1 - y[:, -2])
    return y


# ---------------------------------------------------------------------------------------------
# Known by construction
# ---------------------------------------------------------------------------------------------
def test_a_latent_copying_each_attribute_captures_all_independent_ones() -> None:
    rng = np.random.default_rng(0)
    y = _attributes(rng)
    result = tad_score(y.astype(float), y)
    # The correlated pair removes ~70% of each other's entropy, so both are filtered out.
    assert result.captured.per_fold == [A - 2.0] * 5
    assert all(f.kept[: A - 2].all() and not f.kept[A - 2 :].any() for f in result.folds)
    # AUROC(copy) = 1 and every other dimension ~0.5, so each kept attribute adds ~0.5
    # (TAD's per-attribute maximum: a negated dimension makes every AUROC >= 0.5).
    assert result.tad.mean == pytest.approx(0.5 * (A - 2), abs=0.03 * (A - 2))
    for fold in result.folds:
        assert np.allclose(np.diag(fold.aurocs), 1.0)
        assert list(fold.best_dim) == list(range(A))


def test_a_negated_copy_is_captured_as_well() -> None:
    rng = np.random.default_rng(1)
    y = _attributes(rng, correlated=False)
    result = tad_score(-y.astype(float), y)
    assert result.captured.per_fold == [float(A)] * 5


def test_a_random_latent_captures_nothing() -> None:
    rng = np.random.default_rng(2)
    y = _attributes(rng)
    result = tad_score(rng.normal(size=(N, 16)), y)
    assert result.tad.per_fold == [0.0] * 5
    assert result.captured.per_fold == [0.0] * 5
    assert latent_auroc(rng.normal(size=(N, 16)), y).auroc.mean == pytest.approx(0.5, abs=0.03)


def test_entropy_reduction_of_independent_and_identical_attributes() -> None:
    rng = np.random.default_rng(3)
    y = _attributes(rng, correlated=False)
    assert entropy_reduction(y).max() < 0.01
    twins = np.concatenate([y[:, :1], y[:, :1]], axis=1)
    assert entropy_reduction(twins) == pytest.approx([1.0, 1.0])
    assert entropy_reduction(y[:, :1]) == pytest.approx([0.0])  # one attribute: no other to share with


def test_single_class_attribute_is_undefined_and_never_kept() -> None:
    rng = np.random.default_rng(4)
    y = _attributes(rng, n=500, correlated=False)
    y[:, 0] = 1
    fold = tad_fold(y.astype(float), y)
    assert np.isnan(fold.aurocs[0]).all() and not fold.kept[0] and fold.best_dim[0] == -1
    assert fold.kept[1:].all()
    result = latent_auroc(y.astype(float) + rng.normal(size=y.shape), y)
    assert result.undefined == 5 and np.isnan(result.per_attribute[:, 0]).all()
    assert not np.isnan(result.auroc.per_fold).any()


def test_one_latent_dimension_gap_is_its_auroc() -> None:
    """The script zeroes the best AUROC and takes the max of the rest: with one dimension, 0."""
    rng = np.random.default_rng(5)
    y = _attributes(rng, n=500, correlated=False)
    fold = tad_fold(y[:, :1].astype(float), y)
    assert fold.gap[0] == pytest.approx(1.0)


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="binary"):
        tad_score(np.zeros((10, 2)), np.full((10, 1), 2))
    with pytest.raises(ValueError, match="expected latents"):
        latent_auroc(np.zeros((10, 2)), np.zeros((9, 1)))
    with pytest.raises(ValueError):
        Folds(1)
    with pytest.raises(ValueError):
        Thresholds(auroc=0.4)


# ---------------------------------------------------------------------------------------------
# Agreement with a direct scikit-learn computation of the same protocol
# ---------------------------------------------------------------------------------------------
def _reference(z: np.ndarray, y: np.ndarray) -> tuple[list[float], list[int], list[float]]:
    """eval_disentanglement.py's steps written out plainly: per fold (TAD, captured, latent AUROC)."""
    tads, counts, probes = [], [], []
    for tr, te in KFold(n_splits=5, shuffle=True, random_state=0).split(z):
        scaler = StandardScaler().fit(z[tr])
        ztr, zte = scaler.transform(z[tr]), scaler.transform(z[te])
        ytr, yte = y[tr], y[te]
        n_attr, n_dim = y.shape[1], z.shape[1]
        auc = np.zeros((n_attr, n_dim))
        for i in range(n_attr):
            for j in range(n_dim):
                auc[i, j] = max(roc_auc_score(ytr[:, i], ztr[:, j]), roc_auc_score(ytr[:, i], -ztr[:, j]))
        mi = np.zeros((n_attr, n_attr))
        for i in range(n_attr):
            for j in range(n_attr):
                mi[i, j] = mutual_info_score(ytr[:, i], ytr[:, j])
        tad, count = 0.0, 0
        for i in range(n_attr):
            ranked = sorted(auc[i], reverse=True)
            ent_red = max(mi[i, j] for j in range(n_attr) if j != i) / mi[i, i]
            if ranked[0] >= 0.75 and ent_red <= 0.2:
                tad += ranked[0] - ranked[1]
                count += 1
        tads.append(tad)
        counts.append(count)
        aucs = []
        for i in range(n_attr):
            probe = LogisticRegression().fit(ztr, ytr[:, i])
            aucs.append(roc_auc_score(yte[:, i], probe.predict_proba(zte)[:, 1]))
        probes.append(float(np.mean(aucs)))
    return tads, counts, probes


def test_agrees_with_direct_sklearn_computation_on_random_data() -> None:
    rng = np.random.default_rng(6)
    n = 1000
    y = _attributes(rng, n=n)
    # A latent with real structure, so that some attributes pass the filter and some do not:
    # strong, weak, mixed and pure-noise dimensions, on different scales.
    z = np.column_stack(
        [
            3.0 * y[:, 0] + rng.normal(size=n),
            -y[:, 1] + 0.3 * rng.normal(size=n),
            0.4 * y[:, 2] + rng.normal(size=n),
            y[:, 3] + y[:, 4] + 0.5 * rng.normal(size=n),
            10.0 * (y[:, 6] + 0.2 * rng.normal(size=n)),
            rng.normal(size=(n, 3)),
        ]
    )
    tads, counts, probes = _reference(z, y)
    assert min(counts) > 0 and max(counts) < A  # the filter matters on this data

    result = tad_score(z, y)
    assert result.tad.per_fold == pytest.approx(tads, abs=1e-6)
    assert result.captured.per_fold == counts
    assert result.tad.mean == pytest.approx(np.mean(tads), abs=1e-6)
    assert result.tad.std == pytest.approx(np.std(tads), abs=1e-6)
    assert latent_auroc(z, y).auroc.per_fold == pytest.approx(probes, abs=1e-6)


def test_auroc_matrix_matches_sklearn_with_negation() -> None:
    rng = np.random.default_rng(7)
    y = _attributes(rng, n=300)
    z = rng.normal(size=(300, 4)) + y[:, :4]
    expected = [[max(roc_auc_score(a, b), roc_auc_score(a, -b)) for b in z.T] for a in y.T]
    assert auroc_matrix(z, y) == pytest.approx(np.array(expected), abs=1e-12)

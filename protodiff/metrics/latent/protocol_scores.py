"""The latent-quality protocol of the Patronus and InfoDiffusion papers, on plain arrays.

Numbers in, numbers out, so that every choice below can be checked against a direct scikit-learn
computation. The source is InfoDiffusion's ``eval_disentanglement.py`` (isjakewong/InfoDiffusion,
commit 43c8728; Patronus copies it), which in turn takes TAD from NashAE (Yeats et al. 2022):

* **Folds.** ``KFold(n_splits=5, shuffle=True, random_state=0)`` over the rows; in each fold a
  ``StandardScaler`` is fitted on the train rows and applied to both train and test rows.
* **TAD and attributes captured** are computed on the *train* rows of each fold only (the script
  calls ``TADMetric.evaluate(tr_a, tr_y)``; the test rows are not used by TAD). For attribute
  ``i`` and latent dimension ``j``, ``AUROC[i, j] = max(auc(y_i, z_j), auc(y_i, -z_j))``; the gap
  of attribute ``i`` is its best AUROC minus its second best (with a single latent dimension the
  script's second best is 0, so the gap is the best AUROC). An attribute is *kept* when its best
  AUROC is >= 0.75 and its entropy-reduction proportion
  ``max_{j != i} MI(y_i, y_j) / H(y_i)`` is <= 0.2. TAD is the sum of the kept gaps,
  attributes captured their count. (The scaler is a positive affine map per dimension, so it
  does not change these AUROCs; it is applied anyway to follow the script step for step.)
* **Mutual information** is the plug-in estimate from the joint frequencies of two binary
  attributes in natural log, and ``H(y_i) = MI(y_i, y_i)``: the script writes this sum out by
  hand; :func:`sklearn.metrics.mutual_info_score` computes the same estimate (the proportion
  does not depend on the base of the log). With a single attribute the script's maximum over
  the other attributes is 0.
* **Latent AUROC**: per attribute, ``LogisticRegression()`` with scikit-learn's defaults is
  fitted on the standardised train rows and scored by ``roc_auc_score`` of its
  ``predict_proba[:, 1]`` on the test rows; the fold's value is the mean over attributes.
* **Summaries** are the mean and the population standard deviation (``np.std``, ddof 0) of the
  per-fold values, as the script prints them.

Two numerical details differ, deliberately: the script casts latents to float32 before its
AUROCs and computes the mutual information in float32 torch; here both are float64 (results can
differ only where values tie after float32 rounding, or at a threshold to ~1e-7).

Where the script is silent (it would raise), this module decides, and says so in the results:
an attribute with a single class among the rows a computation uses has no defined AUROC. For TAD
its row of AUROCs is NaN and it is never kept (in the script its entropy-reduction proportion
would be 0/0 = NaN, which fails the filter too). For latent AUROC it is left out of that fold's
mean, and :attr:`LatentAUROCResult.undefined` counts such (fold, attribute) pairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler

from protodiff.metrics.latent.protocol_settings import Folds, Summary, Thresholds


def standardised_folds(latents: np.ndarray, folds: Folds) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(train_z, test_z, train_idx, test_idx)`` per fold, scaled by a scaler fitted on train_z."""
    splitter = KFold(n_splits=folds.n, shuffle=True, random_state=folds.seed)
    for train_idx, test_idx in splitter.split(latents):
        scaler = StandardScaler().fit(latents[train_idx])
        yield scaler.transform(latents[train_idx]), scaler.transform(latents[test_idx]), train_idx, test_idx


def _check(latents: np.ndarray, attributes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    latents = np.asarray(latents, dtype=np.float64)
    attributes = np.asarray(attributes)
    if latents.ndim != 2 or attributes.ndim != 2 or len(latents) != len(attributes):
        raise ValueError(f"expected latents (N, K) and attributes (N, A), got {latents.shape} and {attributes.shape}")
    if latents.shape[1] == 0 or attributes.shape[1] == 0:
        raise ValueError("need at least one latent dimension and one attribute")
    if not np.isin(attributes, (0, 1)).all():
        raise ValueError("attributes must be binary (0/1)")
    return latents, attributes.astype(np.int64)


def _single_class(y: np.ndarray) -> bool:
    return np.unique(y).size < 2


# ---------------------------------------------------------------------------------------------
# TAD and attributes captured
# ---------------------------------------------------------------------------------------------
def auroc_matrix(latents: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """(A, K) AUROC of every dimension, or its negation, for every attribute (NaN: single class).

    ``auc(y, -z) = 1 - auc(y, z)`` exactly (ties score one half either way), so each pair needs
    one ``roc_auc_score`` call.
    """
    latents, attributes = _check(latents, attributes)
    result = np.full((attributes.shape[1], latents.shape[1]), np.nan)
    for i, y in enumerate(attributes.T):
        if _single_class(y):
            continue
        for j, z in enumerate(latents.T):
            auc = roc_auc_score(y, z)
            result[i, j] = max(auc, 1.0 - auc)
    return result


def entropy_reduction(attributes: np.ndarray) -> np.ndarray:
    """(A,) ``max_{j != i} MI(y_i, y_j) / H(y_i)``; NaN for an attribute with a single class."""
    attributes = np.asarray(attributes).astype(np.int64)
    count = attributes.shape[1]
    mi = np.array([[mutual_info_score(a, b) for b in attributes.T] for a in attributes.T])
    entropy = np.diag(mi).copy()
    others = np.where(np.eye(count, dtype=bool), 0.0, mi).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(entropy > 0, others / np.where(entropy > 0, entropy, 1.0), np.nan)


@dataclass
class TADFold:
    """TAD of one fold, with the per-attribute quantities it is made of."""

    aurocs: np.ndarray  # (A, K)
    best_dim: np.ndarray  # (A,) argmax over dimensions (-1 where undefined)
    gap: np.ndarray  # (A,) best minus second-best AUROC
    entropy_reduction: np.ndarray  # (A,)
    kept: np.ndarray  # (A,) bool

    @property
    def score(self) -> float:
        return float(self.gap[self.kept].sum())

    @property
    def captured(self) -> int:
        return int(self.kept.sum())


def tad_fold(latents: np.ndarray, attributes: np.ndarray, thresholds: Thresholds = Thresholds()) -> TADFold:
    """TAD on one set of rows (the protocol calls this on each standardised train fold)."""
    latents, attributes = _check(latents, attributes)
    aurocs = auroc_matrix(latents, attributes)
    defined = ~np.isnan(aurocs).any(axis=1)
    ordered = np.sort(np.where(defined[:, None], aurocs, 0.0), axis=1)[:, ::-1]
    best = ordered[:, 0]
    second = ordered[:, 1] if aurocs.shape[1] > 1 else np.zeros(len(best))
    reduction = entropy_reduction(attributes)
    with np.errstate(invalid="ignore"):
        kept = defined & (best >= thresholds.auroc) & (reduction <= thresholds.entropy_reduction)
    best_dim = np.where(defined, np.argmax(np.where(defined[:, None], aurocs, 0.0), axis=1), -1)
    gap = np.where(defined, best - second, np.nan)
    return TADFold(aurocs, best_dim, gap, reduction, kept)


@dataclass
class TADResult:
    folds: list[TADFold]

    @property
    def tad(self) -> Summary:
        return Summary([f.score for f in self.folds])

    @property
    def captured(self) -> Summary:
        return Summary([float(f.captured) for f in self.folds])


def tad_score(
    latents: np.ndarray, attributes: np.ndarray, folds: Folds = Folds(), thresholds: Thresholds = Thresholds()
) -> TADResult:
    """TAD and attributes captured over the protocol's folds (each on its standardised train rows)."""
    latents, attributes = _check(latents, attributes)
    return TADResult(
        [tad_fold(train_z, attributes[train_idx], thresholds) for train_z, _, train_idx, _ in standardised_folds(latents, folds)]
    )


# ---------------------------------------------------------------------------------------------
# Latent AUROC
# ---------------------------------------------------------------------------------------------
@dataclass
class LatentAUROCResult:
    #: (folds, A) held-out AUROC of each attribute's probe (NaN: undefined in that fold).
    per_attribute: np.ndarray
    #: (fold, attribute) pairs whose train or test rows held a single class.
    undefined: int = 0
    #: Probes for which scikit-learn warned that lbfgs had not converged (default max_iter=100).
    not_converged: int = 0
    fold_means: list[float] = field(default_factory=list)

    @property
    def auroc(self) -> Summary:
        return Summary(self.fold_means)


def latent_auroc(latents: np.ndarray, attributes: np.ndarray, folds: Folds = Folds()) -> LatentAUROCResult:
    """Mean held-out AUROC of per-attribute logistic-regression probes, over the protocol's folds."""
    latents, attributes = _check(latents, attributes)
    scores = np.full((folds.n, attributes.shape[1]), np.nan)
    not_converged = 0
    for fold, (train_z, test_z, train_idx, test_idx) in enumerate(standardised_folds(latents, folds)):
        for i in range(attributes.shape[1]):
            y_train, y_test = attributes[train_idx, i], attributes[test_idx, i]
            if _single_class(y_train) or _single_class(y_test):
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                probe = LogisticRegression().fit(train_z, y_train)
            others = [w for w in caught if not issubclass(w.category, ConvergenceWarning)]
            not_converged += len(caught) > len(others)
            for w in others:  # passed on; convergence warnings are only counted (one per probe)
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            scores[fold, i] = roc_auc_score(y_test, probe.predict_proba(test_z)[:, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a fold where every attribute is undefined
        means = [float(m) for m in np.nanmean(scores, axis=1)]
    return LatentAUROCResult(scores, int(np.isnan(scores).sum()), not_converged, means)

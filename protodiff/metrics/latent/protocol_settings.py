"""The parameters of InfoDiffusion's latent-quality protocol (its computations: protocol_scores.py).

Kept apart from the scikit-learn code so that metric configs can be built and validated without
importing it (every CLI command builds the registries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOURCE = "isjakewong/InfoDiffusion eval_disentanglement.py (commit 43c8728)"


@dataclass(frozen=True)
class Folds:
    """The cross-validation of the protocol: ``KFold(n, shuffle=True, random_state=seed)``.

    ``seed`` is a protocol constant (0 in the script), not the evaluation run's seed.
    """

    n: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError("the number of folds must be at least 2")

    def describe(self) -> dict[str, object]:
        """What is recorded beside every result."""
        return {
            "folds": self.n,
            "splitter": f"KFold(n_splits={self.n}, shuffle=True, random_state={self.seed})",
            "scaler": "StandardScaler fitted on the train fold",
            "source": SOURCE,
        }


@dataclass(frozen=True)
class Thresholds:
    """TAD's filter: some dimension predicts the attribute with AUROC >= ``auroc``, and no other
    attribute removes more than ``entropy_reduction`` of its entropy."""

    auroc: float = 0.75
    entropy_reduction: float = 0.2

    def __post_init__(self) -> None:
        if not 0.5 <= self.auroc <= 1.0:
            raise ValueError("the AUROC threshold must be in [0.5, 1]")
        if not 0.0 <= self.entropy_reduction <= 1.0:
            raise ValueError("the entropy-reduction threshold must be in [0, 1]")


@dataclass
class Summary:
    """Per-fold values and their mean and population standard deviation."""

    per_fold: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_fold))

    @property
    def std(self) -> float:
        return float(np.std(self.per_fold))

    def to_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "std": self.std, "per_fold": list(self.per_fold)}

"""``tad``, ``attributes-captured`` and ``latent-auroc``: how readable a model's latent is.

Each encodes the first ``num_latents`` images of a split (shared between the three through the
``shared`` memo) and hands the arrays to :mod:`protodiff.metrics.disentanglement`, which holds
the protocol and its sources (imported on first use: it pulls in scikit-learn). The default
split is ``train``: InfoDiffusion's script, which Patronus reuses, scores the first 10k CelebA
*train* latents.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from protodiff.errors import ProtodiffError
from protodiff.metrics.base import Metric
from protodiff.metrics.latents import Latents, encode_latents, require_attributes, require_latent
from protodiff.metrics.protocol import Folds, Thresholds
from protodiff.metrics.shared import Shared

if TYPE_CHECKING:
    from protodiff.data.base import LabeledImages
    from protodiff.metrics.disentanglement import TADResult
    from protodiff.model import ConditionedDiffusion


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined value is written as null."""
    return None if np.isnan(value) else float(value)


class _LatentMetric(Metric):
    default_split: ClassVar[str] = "train"

    @dataclass
    class Config:
        #: Encode the first this many images of the split (the protocol: the first 10k).
        num_latents: int = 10000
        folds: int = 5
        #: ``KFold``'s ``random_state``: a protocol constant (0), not the run's seed.
        fold_seed: int = 0
        batch_size: int = 256

        def __post_init__(self) -> None:
            if self.num_latents < self.folds:
                raise ValueError("num_latents must be at least the number of folds")
            if self.batch_size < 1:
                raise ValueError("batch_size must be positive")
            Folds(self.folds, self.fold_seed)

    @property
    def folds(self) -> Folds:
        return Folds(self.config.folds, self.config.fold_seed)

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        require_latent(model)
        require_attributes(data)

    def latents(
        self, model: ConditionedDiffusion, data: LabeledImages, shared: Shared | None, progress: bool
    ) -> Latents:
        """The latents of this metric's images, encoded once per evaluation."""

        def encode() -> Latents:
            return encode_latents(model, data, self.config.num_latents, batch_size=self.config.batch_size, progress=progress)

        latents = (shared or Shared()).get(("latents", id(model), id(data), self.config.num_latents), encode)
        if len(latents.vectors) < self.config.folds:
            raise ProtodiffError(f"{self.config.folds}-fold cross-validation needs at least {self.config.folds} images")
        return latents

    @staticmethod
    def counts(latents: Latents) -> dict[str, int]:
        n, k = latents.vectors.shape
        return {"num_latents": n, "latent_dim": k, "num_attributes": latents.attributes.shape[1]}


class TAD(_LatentMetric):
    """Total AUROC Difference (NashAE, via InfoDiffusion's script): sum over captured attributes of
    (best - second-best) single-dimension AUROC. Each attribute adds at most 0.5."""

    @dataclass
    class Config(_LatentMetric.Config):
        auroc_threshold: float = 0.75
        entropy_threshold: float = 0.2

        def __post_init__(self) -> None:
            super().__post_init__()
            Thresholds(self.auroc_threshold, self.entropy_threshold)

    label: ClassVar[str] = "TAD"

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.config.auroc_threshold, self.config.entropy_threshold)

    def protocol(self) -> dict[str, Any]:
        return {
            **self.folds.describe(),
            "evaluated_on": "the standardised train rows of each fold",
            "auroc": "max(auc(y_i, z_j), auc(y_i, -z_j))",
            "auroc_threshold": self.thresholds.auroc,
            "entropy_reduction": "max_{j != i} MI(y_i, y_j) / H(y_i), natural log (sklearn mutual_info_score)",
            "entropy_threshold": self.thresholds.entropy_reduction,
        }

    def tad(
        self, model: ConditionedDiffusion, data: LabeledImages, shared: Shared | None, progress: bool
    ) -> tuple[Latents, TADResult]:
        from protodiff.metrics.disentanglement import tad_score

        shared = shared or Shared()
        latents = self.latents(model, data, shared, progress)
        key = ("tad", id(latents), self.folds, self.thresholds)
        return latents, shared.get(key, lambda: tad_score(latents.vectors, latents.attributes, self.folds, self.thresholds))

    def compute(
        self,
        model: ConditionedDiffusion,
        data: LabeledImages,
        *,
        shared: Shared | None = None,
        progress: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        latents, result = self.tad(model, data, shared, progress)
        per_attribute = {}
        for i, name in enumerate(latents.attribute_names):
            best = Counter(int(f.best_dim[i]) for f in result.folds if f.best_dim[i] >= 0).most_common(1)
            per_attribute[name] = {
                "captured_in_folds": int(sum(f.kept[i] for f in result.folds)),
                "best_dim": latents.dimension_names[best[0][0]] if best else None,
                "best_auroc": _number(np.mean([np.max(f.aurocs[i]) for f in result.folds])),
                "gap": _number(np.mean([f.gap[i] for f in result.folds])),
                "entropy_reduction": _number(np.mean([f.entropy_reduction[i] for f in result.folds])),
            }
        return {
            "label": self.label,
            **result.tad.to_dict(),
            **self.counts(latents),
            "protocol": self.protocol(),
            "per_attribute": per_attribute,
        }


class AttributesCaptured(TAD):
    """The number of attributes TAD keeps (best AUROC >= 0.75, entropy reduction <= 0.2)."""

    label: ClassVar[str] = "attributes captured"

    def compute(
        self,
        model: ConditionedDiffusion,
        data: LabeledImages,
        *,
        shared: Shared | None = None,
        progress: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        latents, result = self.tad(model, data, shared, progress)
        folds_captured = {
            name: int(sum(f.kept[i] for f in result.folds)) for i, name in enumerate(latents.attribute_names)
        }
        return {
            "label": self.label,
            **result.captured.to_dict(),
            **self.counts(latents),
            "protocol": self.protocol(),
            "captured_in_folds": {name: n for name, n in folds_captured.items() if n},
        }


class LatentAUROC(_LatentMetric):
    """Mean held-out AUROC of a logistic-regression probe per attribute (InfoDiffusion's script)."""

    label: ClassVar[str] = "latent AUROC"

    def compute(
        self,
        model: ConditionedDiffusion,
        data: LabeledImages,
        *,
        shared: Shared | None = None,
        progress: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        from protodiff.metrics.disentanglement import latent_auroc

        shared = shared or Shared()
        latents = self.latents(model, data, shared, progress)
        result = shared.get(
            ("latent-auroc", id(latents), self.folds),
            lambda: latent_auroc(latents.vectors, latents.attributes, self.folds),
        )
        per_attribute = {}
        for i, name in enumerate(latents.attribute_names):
            column = result.per_attribute[:, i]
            defined = column[~np.isnan(column)]
            per_attribute[name] = {
                "mean": _number(defined.mean()) if defined.size else None,
                "std": _number(defined.std()) if defined.size else None,
            }
        return {
            "label": self.label,
            **result.auroc.to_dict(),
            **self.counts(latents),
            "protocol": {
                **self.folds.describe(),
                "probe": "sklearn LogisticRegression() with default parameters, one per attribute",
                "fitted_on": "the standardised train rows of each fold",
                "scored_on": "the test rows of each fold (roc_auc_score of predict_proba[:, 1])",
            },
            "undefined_fold_attributes": result.undefined,
            "not_converged_probes": result.not_converged,
            "per_attribute": per_attribute,
        }

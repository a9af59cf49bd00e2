"""``tad`` and ``attributes-captured``: does each attribute live in one dimension of the latent?

Both come from one TAD computation (:func:`~protodiff.metrics.latent.protocol_scores.tad_score`),
cached per evaluation, under InfoDiffusion's protocol (see
:mod:`protodiff.metrics.latent.cross_validated`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.metrics.latent.cross_validated import CrossValidatedMetric, json_number
from protodiff.metrics.latent.protocol_settings import Thresholds

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.contracts.metric import EvalContext
    from protodiff.metrics.latent.latents import Latents
    from protodiff.metrics.latent.protocol_scores import TADResult
    from protodiff.model import ConditionedDiffusion


class TAD(CrossValidatedMetric):
    """Total AUROC Difference (NashAE, via InfoDiffusion's script): sum over captured attributes of
    (best - second-best) single-dimension AUROC. Each attribute adds at most 0.5."""

    @dataclass
    class Config(CrossValidatedMetric.Config):
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

    def tad(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> tuple[Latents, TADResult]:
        """The latents and their TAD computation, each made once per evaluation."""
        from protodiff.metrics.latent.protocol_scores import tad_score

        latents = self.latents(model, data, context)
        key = ("tad", id(latents), self.folds, self.thresholds)
        return latents, context.cache.get(
            key, lambda: tad_score(latents.vectors, latents.attributes, self.folds, self.thresholds)
        )

    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        latents, result = self.tad(model, data, context)
        per_attribute = {}
        for i, name in enumerate(latents.attribute_names):
            best = Counter(int(f.best_dim[i]) for f in result.folds if f.best_dim[i] >= 0).most_common(1)
            per_attribute[name] = {
                "captured_in_folds": int(sum(f.kept[i] for f in result.folds)),
                "best_dim": latents.dimension_names[best[0][0]] if best else None,
                "best_auroc": json_number(np.mean([np.max(f.aurocs[i]) for f in result.folds])),
                "gap": json_number(np.mean([f.gap[i] for f in result.folds])),
                "entropy_reduction": json_number(np.mean([f.entropy_reduction[i] for f in result.folds])),
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

    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        latents, result = self.tad(model, data, context)
        folds_captured = {name: int(sum(f.kept[i] for f in result.folds)) for i, name in enumerate(latents.attribute_names)}
        return {
            "label": self.label,
            **result.captured.to_dict(),
            **self.counts(latents),
            "protocol": self.protocol(),
            "captured_in_folds": {name: n for name, n in folds_captured.items() if n},
        }


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.metric.add("tad", TAD)
    registry.metric.add("attributes-captured", AttributesCaptured)

"""``latent-auroc``: can a linear probe read each attribute off the latent, on held-out images?

InfoDiffusion's protocol (see :mod:`protodiff.metrics.latent.cross_validated`): per attribute, a
logistic regression fitted on each standardised train fold and scored on its test fold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.metrics.latent.cross_validated import CrossValidatedMetric, json_number

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.contracts.metric import EvalContext
    from protodiff.model import ConditionedDiffusion


class LatentAUROC(CrossValidatedMetric):
    """Mean held-out AUROC of a logistic-regression probe per attribute (InfoDiffusion's script)."""

    label: ClassVar[str] = "latent AUROC"

    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        from protodiff.metrics.latent.protocol_scores import latent_auroc

        latents = self.latents(model, data, context)
        result = context.cache.get(
            ("latent-auroc", id(latents), self.folds),
            lambda: latent_auroc(latents.vectors, latents.attributes, self.folds),
        )
        per_attribute = {}
        for i, name in enumerate(latents.attribute_names):
            column = result.per_attribute[:, i]
            defined = column[~np.isnan(column)]
            per_attribute[name] = {
                "mean": json_number(defined.mean()) if defined.size else None,
                "std": json_number(defined.std()) if defined.size else None,
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


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.metric.add("latent-auroc", LatentAUROC)

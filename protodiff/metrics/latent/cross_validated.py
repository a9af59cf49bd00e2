"""What the cross-validated latent metrics share: their options, their latents and their counts.

TAD, attributes captured and latent AUROC each encode the first ``num_latents`` images of a split
(one encoding shared between them, see :func:`~protodiff.metrics.latent.latents.cached_latents`)
and hand the arrays to :mod:`protodiff.metrics.latent.protocol_scores` (imported on first use: it
pulls in scikit-learn). Their default split is ``train``: InfoDiffusion's script, which Patronus
reuses, scores the first 10k CelebA *train* latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from protodiff.contracts.metric import Metric, flag
from protodiff.errors import ProtodiffError
from protodiff.metrics.latent.latents import Latents, cached_latents, require_attributes, require_latent
from protodiff.metrics.latent.protocol_settings import Folds
from protodiff.validation import at_least
from protodiff.validation import seed as check_seed

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.contracts.metric import EvalContext
    from protodiff.model import ConditionedDiffusion


def json_number(value: float) -> float | None:
    """JSON has no NaN: an undefined value is written as null."""
    return None if np.isnan(value) else float(value)


class CrossValidatedMetric(Metric):
    """Base of the metrics scored by the protocol's k-fold cross-validation over the first N latents."""

    default_split: ClassVar[str] = "train"

    @dataclass
    class Config:
        #: Encode the first this many images of the split (the protocol: the first 10k).
        num_latents: int = flag(10000, "Latent metrics: the first N images [10000].")
        folds: int = 5
        #: ``KFold``'s ``random_state``: a protocol constant (0), not the run's seed.
        fold_seed: int = 0
        batch_size: int = flag(256, "Batch size for encoding and generating.")

        def __post_init__(self) -> None:
            if self.num_latents < self.folds:
                raise ValueError("num_latents must be at least the number of folds")
            at_least(1, batch_size=self.batch_size)
            check_seed(fold_seed=self.fold_seed)
            Folds(self.folds, self.fold_seed)

    @property
    def folds(self) -> Folds:
        return Folds(self.config.folds, self.config.fold_seed)

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        require_latent(model)
        require_attributes(data)

    def latents(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> Latents:
        """The latents of this metric's images, encoded once per evaluation."""
        latents = cached_latents(model, data, context, self.config.num_latents, batch_size=self.config.batch_size)
        if len(latents.vectors) < self.config.folds:
            raise ProtodiffError(f"{self.config.folds}-fold cross-validation needs at least {self.config.folds} images")
        return latents

    @staticmethod
    def counts(latents: Latents) -> dict[str, int]:
        n, k = latents.vectors.shape
        return {"num_latents": n, "latent_dim": k, "num_attributes": latents.attributes.shape[1]}

"""Latents and labels of the first N images of a split: the input of every latent-space metric,
encoded once per evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from protodiff.encoding import encode_split
from protodiff.errors import ProtodiffError, UnsupportedData, UnsupportedModel

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.contracts.metric import EvalContext
    from protodiff.model import ConditionedDiffusion


@dataclass
class Latents:
    vectors: np.ndarray  # (N, K) float64: Condition.vector of each image
    attributes: np.ndarray  # (N, A) int64, 0/1
    dimension_names: list[str]
    attribute_names: list[str]


def require_latent(model: ConditionedDiffusion) -> None:
    """Refuse a model without a latent (the ``none`` conditioner, i.e. a plain DDPM)."""
    if not model.is_conditional:
        name = model.config.conditioner.name
        raise UnsupportedModel(
            f"the model's conditioner {name!r} has no latent (condition dim 0, a plain DDPM): "
            "latent metrics (tad, attributes-captured, latent-auroc) need a conditional model"
        )


def require_attributes(data: LabeledImages) -> None:
    if not data.attribute_names:
        raise UnsupportedData("the dataset has no attribute labels: latent metrics need binary attributes to score against")


def encode_latents(
    model: ConditionedDiffusion,
    data: LabeledImages,
    num: int,
    *,
    batch_size: int = 256,
    progress: bool = False,
) -> Latents:
    """Encode the first ``num`` images of ``data`` (all of it if shorter), in order.

    "First" as in the protocol (InfoDiffusion evaluates the first 10k CelebA train latents), so
    the rows, and hence the folds, do not depend on any seed.
    """
    require_latent(model)
    require_attributes(data)
    if min(num, len(data)) < 1:
        raise ProtodiffError("the split is empty: no latents to evaluate")
    encoded = encode_split(model, data, limit=num, batch_size=batch_size, progress=progress)
    attributes = encoded.attributes.numpy()
    if not np.isin(attributes, (0, 1)).all():
        raise ProtodiffError("the dataset's attributes are not binary 0/1: the latent metrics score binary attributes")
    return Latents(encoded.vectors.double().numpy(), attributes.astype(np.int64), encoded.names, encoded.attribute_names)


def cached_latents(
    model: ConditionedDiffusion, data: LabeledImages, context: EvalContext, num: int, *, batch_size: int = 256
) -> Latents:
    """:func:`encode_latents`, once per evaluation: every metric asking for the same model, split
    and ``num`` shares one encoding through ``context.cache``."""

    def encode() -> Latents:
        return encode_latents(model, data, num, batch_size=batch_size, progress=context.progress)

    return context.cache.get(("latents", id(model), id(data), num), encode)

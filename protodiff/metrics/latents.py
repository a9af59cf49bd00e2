"""Latents and labels of the first N images of a split: the input of the latent-quality metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from protodiff.errors import ProtodiffError

if TYPE_CHECKING:
    from protodiff.data.base import LabeledImages
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
        raise ProtodiffError(
            f"the model's conditioner {name!r} has no latent (condition dim 0, a plain DDPM): "
            "latent metrics (tad, attributes-captured, latent-auroc) need a conditional model"
        )


def require_attributes(data: LabeledImages) -> None:
    if not data.attribute_names:
        raise ProtodiffError("the dataset has no attribute labels: latent metrics need binary attributes to score against")


@torch.no_grad()
def encode_latents(
    model: ConditionedDiffusion,
    data: LabeledImages,
    num: int,
    *,
    batch_size: int = 256,
    progress: bool = False,
) -> Latents:
    """Encode the first ``num`` images of ``data`` (all of it if shorter), in order.

    "First" as in the protocol: InfoDiffusion's ``run.py --mode save_latent`` encodes the CelebA
    train split in order (``shuffle=False``) and its evaluation keeps the first 10k rows, so the
    rows, and hence the folds, depend on no seed. Unlike that script, whose CelebA loader keeps
    its ``RandomHorizontalFlip`` while encoding, images are encoded as the dataset gives them, so
    the latents are deterministic.
    """
    require_latent(model)
    require_attributes(data)
    count = min(num, len(data))
    if count < 1:
        raise ProtodiffError("the split is empty: no latents to evaluate")
    loader = DataLoader(Subset(data, range(count)), batch_size=batch_size, shuffle=False)
    vectors, labels = [], []
    for images, attributes in tqdm(loader, desc="encoding", unit="batch", disable=not progress, leave=False):
        vectors.append(model.encode(images).vector.detach().double().cpu())
        labels.append(attributes)
    attributes = torch.cat(labels).numpy()
    if not np.isin(attributes, (0, 1)).all():
        raise ProtodiffError("the dataset's attributes are not binary 0/1: the latent metrics score binary attributes")
    return Latents(
        torch.cat(vectors).numpy(), attributes.astype(np.int64), list(model.conditioner.names), list(data.attribute_names)
    )

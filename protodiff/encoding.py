"""Encode a whole dataset split with a model's conditioner, in batches, without gradients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.model import ConditionedDiffusion


@dataclass
class EncodedSplit:
    """The conditions of the first ``len(vectors)`` images of a split, in order, on the CPU."""

    vectors: Tensor  # (N, K)
    attributes: Tensor  # (N, A)
    names: list[str]
    attribute_names: list[str]
    maps: Tensor | None = None  # (N, K, H, W) when kept


@torch.no_grad()
def encode_split(
    model: ConditionedDiffusion,
    data: LabeledImages,
    *,
    limit: int | None = None,
    batch_size: int = 128,
    keep_maps: bool = False,
    progress: bool = False,
) -> EncodedSplit:
    """Condition vectors (and optionally maps) of the first ``limit`` items of ``data`` (all by default)."""
    count = len(data) if limit is None else min(limit, len(data))
    loader = DataLoader(Subset(data, range(count)), batch_size=batch_size, shuffle=False)
    vectors, maps, attributes = [], [], []
    for images, attrs in tqdm(loader, desc="encoding", unit="batch", disable=not progress, leave=False):
        condition = model.encode(images)
        vectors.append(condition.vector.float().cpu())
        if keep_maps and condition.maps is not None:
            maps.append(condition.maps.float().cpu())
        attributes.append(attrs)
    return EncodedSplit(
        torch.cat(vectors) if vectors else torch.zeros(0, model.conditioner.dim),
        torch.cat(attributes) if attributes else torch.zeros(0, len(data.attribute_names)),
        list(model.conditioner.names),
        list(data.attribute_names),
        torch.cat(maps) if maps else None,
    )
